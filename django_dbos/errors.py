"""The exception hierarchy.

Every error django_dbos raises on purpose is a ``DBOSException`` (except the cancellation signal,
which is a ``BaseException`` so that a user's ``except Exception`` cannot swallow it). Names follow
DBOS Python so that DBOS docs and habits carry over. Each class keeps its structured fields as
attributes and survives pickling (``__reduce__`` rebuilds it from those fields).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured


class DBOSException(Exception):
    """Base class of every django_dbos error."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self._fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.message, self._fields))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[DBOSException], message: str, fields: dict[str, Any]) -> DBOSException:
    error = cls.__new__(cls)
    DBOSException.__init__(error, message, **fields)
    return error


class DBOSConfigurationError(DBOSException, ImproperlyConfigured):
    """settings.DBOS, a decorator's arguments or the project's set-up is wrong."""


class DBOSSerializationError(DBOSException):
    """A value could not be serialized (or a stored one could not be read back)."""

    def __init__(self, message: str, *, type_name: str = "") -> None:
        super().__init__(message, type_name=type_name)


class DBOSConflictingWorkflowError(DBOSException):
    """A workflow ID is already in use by a workflow with another name."""

    def __init__(self, workflow_id: str, existing_name: str, requested_name: str) -> None:
        super().__init__(
            f"Workflow ID {workflow_id!r} already belongs to workflow {existing_name!r}; "
            f"it cannot be reused for {requested_name!r}. Pick another workflow ID.",
            workflow_id=workflow_id,
            existing_name=existing_name,
            requested_name=requested_name,
        )


class DBOSNonExistentWorkflowError(DBOSException):
    """No workflow has this ID."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"No workflow with ID {workflow_id!r} exists.", workflow_id=workflow_id)


class DBOSWorkflowFunctionNotFoundError(DBOSException):
    """A workflow's name is not registered in this process."""

    def __init__(self, name: str, workflow_id: str = "") -> None:
        super().__init__(
            f"No workflow named {name!r} is registered in this process"
            + (f" (needed by workflow {workflow_id!r})" if workflow_id else "")
            + ". Is the app that defines it in INSTALLED_APPS, in its workflows module?",
            name=name,
            workflow_id=workflow_id,
        )


class DBOSUnexpectedStepError(DBOSException):
    """Replay found another operation at this position: the workflow is not deterministic."""

    def __init__(
        self, workflow_id: str, step_id: int, expected_name: str, recorded_name: str
    ) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} step {step_id}: the code now calls {expected_name!r} "
            f"but the recorded history has {recorded_name!r}. Workflow code must call the same "
            "steps in the same order on every run. Change a workflow's code only when no run of "
            "it is pending, or deploy the change as a new application version.",
            workflow_id=workflow_id,
            step_id=step_id,
            expected_name=expected_name,
            recorded_name=recorded_name,
        )


class DBOSMaxStepRetriesExceeded(DBOSException):
    """A step failed on every one of its allowed attempts."""

    def __init__(
        self, step_name: str, max_attempts: int, errors: Sequence[BaseException] | None = None
    ):
        last = f" Last error: {errors[-1]!r}" if errors else ""
        super().__init__(
            f"Step {step_name!r} failed {max_attempts} times; giving up.{last}",
            step_name=step_name,
            max_attempts=max_attempts,
            errors=list(errors or []),
        )


class DBOSRecoveryError(DBOSException):
    """A workflow could not be recovered."""

    def __init__(self, workflow_id: str, reason: str) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} could not be recovered: {reason}",
            workflow_id=workflow_id,
            reason=reason,
        )


class DBOSMaxRecoveryAttemptsExceededError(DBOSException):
    """A workflow was recovered more often than its max_recovery_attempts and was dead-lettered."""

    def __init__(self, workflow_id: str, max_recovery_attempts: int) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} exceeded its {max_recovery_attempts} recovery attempts and "
            "was moved to MAX_RECOVERY_ATTEMPTS_EXCEEDED; it will not be recovered again.",
            workflow_id=workflow_id,
            max_recovery_attempts=max_recovery_attempts,
        )


class DBOSAwaitedWorkflowCancelledError(DBOSException):
    """The workflow whose result was awaited was cancelled."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(
            f"Awaited workflow {workflow_id!r} was cancelled.", workflow_id=workflow_id
        )


class DBOSNotInWorkflowError(DBOSException):
    """An operation that only makes sense inside a workflow was called outside one."""

    def __init__(self, operation: str) -> None:
        super().__init__(
            f"{operation} can only be called from inside a workflow.", operation=operation
        )


class DBOSWorkflowConflictIDError(DBOSException):
    """Another execution of this workflow recorded the same step first; this one stops."""

    def __init__(self, workflow_id: str, step_id: int = 0) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} is being executed elsewhere: step {step_id} was already "
            "recorded by another execution. This execution stops; the other one carries on.",
            workflow_id=workflow_id,
            step_id=step_id,
        )


class DBOSQueueDeduplicatedError(DBOSException):
    """A live workflow with the same deduplication ID already sits on the queue."""

    def __init__(self, workflow_id: str, queue_name: str, deduplication_id: str) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} was not enqueued: queue {queue_name!r} already holds a "
            f"live workflow with deduplication ID {deduplication_id!r}.",
            workflow_id=workflow_id,
            queue_name=queue_name,
            deduplication_id=deduplication_id,
        )


class DBOSStreamTimeoutError(DBOSException):
    """No stream value arrived within the timeout (or the stream ended before the offset)."""

    def __init__(self, workflow_id: str, key: str, offset: int, reason: str) -> None:
        super().__init__(
            f"Stream {key!r} of workflow {workflow_id!r}: no value at offset {offset} ({reason}).",
            workflow_id=workflow_id,
            key=key,
            offset=offset,
        )


class DBOSInvalidArgumentError(DBOSException, ValueError):
    """An API was given an argument of the wrong type or out of range (nothing was done)."""

    def __init__(
        self, argument: str, value: Any, expected: str, *, operation: str | None = None
    ) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        prefix = f"{operation}: " if operation else ""
        super().__init__(
            f"{prefix}{argument} must be {expected}, not {shown}.",
            operation=operation,
            argument=argument,
            value=shown,
            expected=expected,
        )


class DBOSInvalidStartStepError(DBOSException):
    """``fork_workflow`` was given a ``start_step`` outside the workflow's recorded steps."""

    def __init__(self, workflow_id: str, start_step: Any, last_step: int) -> None:
        super().__init__(
            f"Cannot fork workflow {workflow_id!r} at step {start_step!r}: start_step must be "
            f"an integer from 1 to {last_step + 1} (its last recorded step is {last_step}; "
            "steps before start_step are copied, the rest run again).",
            workflow_id=workflow_id,
            start_step=start_step,
            last_step=last_step,
        )


class DBOSWorkflowIDInUseError(DBOSException):
    """The ID chosen for a new (forked) workflow already belongs to another workflow."""

    def __init__(self, workflow_id: str, workflow_status: str, workflow_name: str) -> None:
        super().__init__(
            f"Workflow ID {workflow_id!r} is already in use by workflow {workflow_name!r} "
            f"(status {workflow_status}). Pick another ID with SetWorkflowID.",
            workflow_id=workflow_id,
            workflow_status=workflow_status,
            workflow_name=workflow_name,
        )


class TimeoutError(DBOSException, builtins.TimeoutError):
    """Waiting for a result took longer than the given timeout; the workflow keeps running."""

    def __init__(self, workflow_id: str, timeout: float) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} did not finish within {timeout} seconds "
            "(it keeps running; ask again later).",
            workflow_id=workflow_id,
            timeout=timeout,
        )


class DBOSWorkflowCancelledError(BaseException):
    """Raised inside a cancelled workflow at its next durable operation.

    A ``BaseException`` on purpose: ``except Exception`` in user code must not swallow a cancel.
    """

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"Workflow {workflow_id!r} was cancelled.")
        self.workflow_id = workflow_id

    def __reduce__(self) -> Any:
        return (type(self), (self.workflow_id,))


class DBOSWorkflowInterrupted(BaseException):
    """The process is shutting down (or a test simulates a crash): stop here and stay PENDING.

    The workflow is neither failed nor finished; recovery resumes it from its last checkpoint.
    """

    def __init__(self, workflow_id: str, reason: str = "shutdown") -> None:
        super().__init__(f"Workflow {workflow_id!r} interrupted ({reason}); it stays PENDING.")
        self.workflow_id = workflow_id
        self.reason = reason

    def __reduce__(self) -> Any:
        return (type(self), (self.workflow_id, self.reason))


class DBOSQueueNotFoundError(DBOSException):
    """A client named a queue that no process has declared (it has no row in dbos_queues)."""

    def __init__(self, queue_name: str, known: Sequence[str] = ()) -> None:
        listed = ", ".join(repr(name) for name in known) or "none yet"
        super().__init__(
            f"No queue named {queue_name!r} has been declared: a process declares a queue with "
            f"Queue({queue_name!r}, ...) in a workflows module, and its configuration is stored "
            "when a worker serving it starts or when it is first enqueued to. Known queues: "
            f"{listed}.",
            queue_name=queue_name,
            known=list(known),
        )


class DBOSInvalidCronError(DBOSException, ValueError):
    """A schedule's cron expression does not parse (nothing was written)."""

    def __init__(self, schedule: Any, reason: str = "") -> None:
        super().__init__(
            f"Invalid cron schedule {schedule!r}"
            + (f" ({reason})" if reason else "")
            + ": give 5 fields (minute hour day-of-month month day-of-week, e.g. '0 9 * * *') "
            "or 6 with seconds first (e.g. '*/5 * * * * *').",
            schedule=schedule,
        )


class DBOSInvalidTimezoneError(DBOSException, ValueError):
    """A schedule's ``cron_timezone`` is not a known IANA time zone (nothing was written)."""

    def __init__(self, cron_timezone: Any) -> None:
        super().__init__(
            f"Invalid cron_timezone {cron_timezone!r}: give an IANA time zone name such as "
            "'UTC', 'Europe/Paris' or 'America/New_York' (or None for UTC).",
            cron_timezone=cron_timezone,
        )


class DBOSScheduleExistsError(DBOSException):
    """``create_schedule`` with a name that another schedule already has (nothing was written)."""

    def __init__(self, schedule_name: str, detail: str = "") -> None:
        super().__init__(
            f"A schedule named {schedule_name!r} already exists"
            + (f" ({detail})" if detail else "")
            + ". Pick another name, delete_schedule() it first, or use apply_schedules() to "
            "update it in place.",
            schedule_name=schedule_name,
        )


class DBOSNonExistentScheduleError(DBOSException):
    """No schedule has this name (nothing was done)."""

    def __init__(self, schedule_name: str, operation: str = "") -> None:
        super().__init__(
            (f"{operation}: " if operation else "")
            + f"no schedule is named {schedule_name!r} (see DBOS.list_schedules()).",
            schedule_name=schedule_name,
            operation=operation,
        )


__all__ = [
    "DBOSAwaitedWorkflowCancelledError",
    "DBOSConfigurationError",
    "DBOSConflictingWorkflowError",
    "DBOSException",
    "DBOSInvalidArgumentError",
    "DBOSInvalidCronError",
    "DBOSInvalidStartStepError",
    "DBOSInvalidTimezoneError",
    "DBOSMaxRecoveryAttemptsExceededError",
    "DBOSMaxStepRetriesExceeded",
    "DBOSNonExistentScheduleError",
    "DBOSNonExistentWorkflowError",
    "DBOSNotInWorkflowError",
    "DBOSQueueDeduplicatedError",
    "DBOSQueueNotFoundError",
    "DBOSRecoveryError",
    "DBOSScheduleExistsError",
    "DBOSSerializationError",
    "DBOSStreamTimeoutError",
    "DBOSUnexpectedStepError",
    "DBOSWorkflowCancelledError",
    "DBOSWorkflowConflictIDError",
    "DBOSWorkflowFunctionNotFoundError",
    "DBOSWorkflowIDInUseError",
    "DBOSWorkflowInterrupted",
    "TimeoutError",
]

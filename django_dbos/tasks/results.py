"""A task run is a ``django_dbos.tasks.run_task`` workflow; this module reads one back as the
Tasks API's ``TaskResult``.

The workflow's inputs are ``(task_path, args, kwargs, options)``: the dotted path of the
``Task`` object, its JSON-normalized arguments, and the per-enqueue settings that
``Task.using()`` can change (``backend``, ``queue_name``, ``priority``, ``run_after``). Its
output is the task's JSON-normalized return value. A failed task also publishes the event
``django_dbos.tasks.error`` (the exception's class path and formatted traceback), because the
recorded error of a workflow keeps the exception but not its traceback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import traceback
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from django_dbos import serialization
from django_dbos.engine.records import WorkflowStatus
from django_dbos.errors import DBOSMaxRecoveryAttemptsExceededError, DBOSWorkflowCancelledError
from django_dbos.models import WorkflowEvent, WorkflowStatusString
from django_dbos.serialization.rebuild import RecordedError
from django_dbos.tasks.compat import InvalidTask, Task, TaskError, TaskResult, TaskResultStatus

RUN_TASK = "django_dbos.tasks.run_task"
ERROR_EVENT = "django_dbos.tasks.error"
OPTION_FIELDS = ("backend", "queue_name", "priority", "run_after")

S = WorkflowStatusString
STATUS_MAP = {
    S.ENQUEUED: TaskResultStatus.READY,
    S.DELAYED: TaskResultStatus.READY,
    S.PENDING: TaskResultStatus.RUNNING,
    S.SUCCESS: TaskResultStatus.SUCCESSFUL,
    S.ERROR: TaskResultStatus.FAILED,
    S.CANCELLED: TaskResultStatus.FAILED,
    S.MAX_RECOVERY_ATTEMPTS_EXCEEDED: TaskResultStatus.FAILED,
}


def class_path(cls: type) -> str:
    """``module.QualName``, the form ``TaskError.exception_class_path`` resolves."""
    return f"{cls.__module__}.{cls.__qualname__}"


def task_options(task: Task[..., Any]) -> dict[str, Any]:
    """What ``run_task`` needs beside the path to rebuild the enqueued ``Task``."""
    return {name: getattr(task, name) for name in OPTION_FIELDS}


def load_task(task_path: str, options: Mapping[str, Any] | None = None) -> Task[..., Any]:
    """The ``Task`` object at ``task_path`` with the enqueue-time ``options`` applied.

    Raises ``InvalidTask`` when the path does not import or is not a Task: the input of a
    ``run_task`` workflow is never trusted to name an arbitrary callable. The options are set
    without running ``validate_task`` again: a result enqueued under an older configuration
    must stay readable."""
    try:
        found = import_string(task_path)
    except ImportError as exc:
        raise InvalidTask(f"Task {task_path!r} cannot be imported: {exc}") from exc
    if not isinstance(found, Task):
        raise InvalidTask(
            f"{task_path!r} is a {type(found).__name__}, not a Task: decorate the function "
            "with @task."
        )
    changes = {k: v for k, v in (options or {}).items() if k in OPTION_FIELDS}
    if all(getattr(found, k) == v for k, v in changes.items()):
        return found
    rebuilt = object.__new__(type(found))
    for field in dataclasses.fields(found):
        value = changes.get(field.name, getattr(found, field.name))
        object.__setattr__(rebuilt, field.name, value)
    return rebuilt


def as_datetime(epoch_ms: int | None) -> dt.datetime | None:
    """Epoch milliseconds as the datetime Django would store (aware unless USE_TZ is off)."""
    if epoch_ms is None:
        return None
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


def split_inputs(status: WorkflowStatus) -> tuple[str, list[Any], dict[str, Any], dict[str, Any]]:
    """``(task_path, args, kwargs, options)`` of a ``run_task`` workflow."""
    inputs = status.input or {}
    args = list(inputs.get("args") or ())
    kwargs = dict(inputs.get("kwargs") or {})
    names = ("task_path", "args", "kwargs", "options")
    values = dict(zip(names, args, strict=False)) | {k: kwargs[k] for k in names if k in kwargs}
    return (
        str(values.get("task_path", "")),
        list(values.get("args") or []),
        dict(values.get("kwargs") or {}),
        dict(values.get("options") or {}),
    )


def error_of(exc: BaseException, tb: str | None = None) -> TaskError:
    """A ``TaskError`` for ``exc``; its traceback text is formatted here unless given."""
    # a RecordedError stands in for a class not importable here: keep the recorded name
    path = exc.type_name if isinstance(exc, RecordedError) else class_path(type(exc))
    if tb is None:
        tb = "".join(traceback.format_exception(exc))
    return TaskError(exception_class_path=path, traceback=tb)


def _errors(status: WorkflowStatus) -> list[TaskError]:
    if status.status == S.CANCELLED:
        text = f"Workflow {status.workflow_id!r} was cancelled (or reached its timeout).\n"
        return [
            TaskError(exception_class_path=class_path(DBOSWorkflowCancelledError), traceback=text)
        ]
    if status.status == S.MAX_RECOVERY_ATTEMPTS_EXCEEDED:
        text = (
            f"Workflow {status.workflow_id!r} exceeded its recovery attempts and was "
            "dead-lettered.\n"
        )
        return [
            TaskError(
                exception_class_path=class_path(DBOSMaxRecoveryAttemptsExceededError),
                traceback=text,
            )
        ]
    if status.status != S.ERROR:
        return []
    recorded = (
        WorkflowEvent.objects.using(_alias())
        .filter(workflow_id=status.workflow_id, key=ERROR_EVENT)
        .values_list("value", flat=True)
        .first()
    )
    detail = serialization.deserialize(recorded) if recorded is not None else None
    if isinstance(detail, dict) and {"exception_class_path", "traceback"} <= set(detail):
        return [
            TaskError(
                exception_class_path=str(detail["exception_class_path"]),
                traceback=str(detail["traceback"]),
            )
        ]
    if status.error is not None:  # failed before the task ran (e.g. its path did not import)
        return [error_of(status.error, "".join(traceback.format_exception_only(status.error)))]
    return []


def _alias() -> str:
    from django_dbos.conf import dbos_settings

    return dbos_settings().DATABASE


def build_result(
    status: WorkflowStatus,
    *,
    task: Task[..., Any] | None = None,
    result_status: TaskResultStatus | None = None,
    errors: list[TaskError] | None = None,
) -> TaskResult[..., Any]:
    """The ``TaskResult`` of a ``run_task`` workflow's status snapshot.

    ``worker_ids`` holds the executor that runs (or ran) the task once per attempt: the first
    run plus each recovery (``recovery_attempts``); earlier executors' IDs are not kept, so
    ``attempts`` is right and the IDs name the latest. ``task``, ``result_status`` and
    ``errors`` override what the row says (``run_task`` describes itself while running)."""
    task_path, args, kwargs, options = split_inputs(status)
    if task is None:
        task = load_task(task_path, options)
    state = result_status or STATUS_MAP[S(status.status)]
    started = status.dequeued_at
    if started is None and status.status not in (S.ENQUEUED, S.DELAYED):
        started = status.created_at if status.executor_id else None
    attempts = (status.recovery_attempts or 0) + 1 if status.executor_id and started else 0
    last_attempted = started
    if status.recovery_attempts and status.status == S.PENDING:
        last_attempted = status.updated_at  # adoption stamps updated_at
    result = TaskResult(
        task=task,
        id=status.workflow_id,
        status=state,
        enqueued_at=as_datetime(status.created_at),
        started_at=as_datetime(started),
        finished_at=as_datetime(status.completed_at),
        last_attempted_at=as_datetime(last_attempted),
        args=args,
        kwargs=kwargs,
        backend=str(options.get("backend") or task.backend),
        errors=errors if errors is not None else _errors(status),
        worker_ids=[status.executor_id or ""] * attempts,
    )
    if state == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", status.output)
    return result

"""``DBOS`` methods for cron schedules: create, list, get, pause, resume, delete, trigger,
backfill, apply.

Every argument is checked before anything is written; a mistake is a ``DBOSException``
subclass that names it (``DBOSInvalidCronError``, ``DBOSInvalidTimezoneError``,
``DBOSWorkflowFunctionNotFoundError``, ``DBOSQueueNotFoundError``, ``DBOSScheduleExistsError``,
``DBOSNonExistentScheduleError``, ``DBOSInvalidArgumentError``). Inside a workflow, create /
pause / resume / delete are recorded as transactions (the write and its checkpoint commit
together) and list / get as steps, under DBOS's step names; trigger, backfill and apply refuse
to run there, as in DBOS. The engine side is ``engine/scheduler.py``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypedDict, TypeVar

from django_dbos import serialization
from django_dbos.api.introspection import _durably, epoch_ms
from django_dbos.conf import dbos_settings
from django_dbos.context import current_workflow
from django_dbos.engine import scheduler, steps
from django_dbos.engine.handles import WorkflowHandle, WorkflowHandleAsync
from django_dbos.engine.scheduler import ScheduleChanges, ScheduleValues, WorkflowSchedule
from django_dbos.engine.threads import to_thread
from django_dbos.errors import (
    DBOSException,
    DBOSInvalidArgumentError,
    DBOSScheduleExistsError,
    DBOSWorkflowFunctionNotFoundError,
)
from django_dbos.models import Schedule, ScheduleStatus
from django_dbos.registry import ScheduleDefinition, registry

F = TypeVar("F", bound=Callable[..., Any])

ScheduledWorkflow = (
    Callable[[datetime.datetime, Any], Any]
    | Callable[[datetime.datetime, Any], Coroutine[Any, Any, Any]]
)

MAX_BACKFILL = 10_000
"""A backfill enqueues at most this many firings per call (split a larger window)."""


class ScheduleInput(TypedDict, total=False):
    """One entry of ``DBOS.apply_schedules`` (DBOS's keys). ``schedule_name``, ``workflow_fn``
    and ``schedule`` are required."""

    schedule_name: str
    workflow_fn: ScheduledWorkflow | str
    schedule: str
    context: Any
    automatic_backfill: bool
    cron_timezone: str | None
    queue_name: str | None


_INPUT_KEYS = frozenset(ScheduleInput.__annotations__)
_REQUIRED_KEYS = ("schedule_name", "workflow_fn", "schedule")


def workflow_name_of(workflow_fn: Any, operation: str) -> str:
    """The registered name of a ``@DBOS.workflow()`` function (or a registered name given as a
    string); raises before anything is written."""
    if isinstance(workflow_fn, str):
        name = workflow_fn
    else:
        definition = getattr(workflow_fn, "__dbos_workflow__", None)
        if definition is None:
            raise DBOSInvalidArgumentError(
                "workflow_fn",
                workflow_fn,
                "a @DBOS.workflow() function (or a registered workflow name); decorate it first",
                operation=operation,
            )
        name = definition.name
    if name not in registry.workflows:
        raise DBOSWorkflowFunctionNotFoundError(name)
    return name


def check_schedule_name(schedule_name: Any, operation: str) -> str:
    if (
        not isinstance(schedule_name, str)
        or not schedule_name.strip()
        or len(schedule_name) > scheduler.MAX_NAME_LENGTH
    ):
        raise DBOSInvalidArgumentError(
            "schedule_name",
            schedule_name,
            f"a non-empty string of at most {scheduler.MAX_NAME_LENGTH} characters",
            operation=operation,
        )
    return schedule_name


def schedule_values(
    operation: str,
    schedule_name: Any,
    workflow_fn: Any,
    schedule: Any,
    context: Any = None,
    automatic_backfill: Any = False,
    cron_timezone: Any = None,
    queue_name: Any = None,
) -> ScheduleValues:
    """Validate one schedule definition (all of it, before any write)."""
    name = check_schedule_name(schedule_name, operation)
    cron = scheduler.check_cron(schedule)
    scheduler.zone(cron_timezone)
    if not isinstance(automatic_backfill, bool):
        raise DBOSInvalidArgumentError(
            "automatic_backfill", automatic_backfill, "True or False", operation=operation
        )
    if queue_name is not None and (not isinstance(queue_name, str) or not queue_name):
        raise DBOSInvalidArgumentError(
            "queue_name", queue_name, "a declared queue's name, or None", operation=operation
        )
    workflow_name = workflow_name_of(workflow_fn, operation)
    scheduler.check_queue(queue_name, operation)
    return ScheduleValues(
        schedule_name=name,
        workflow_name=workflow_name,
        schedule=cron,
        context=serialization.serialize(context),
        cron_timezone=cron_timezone,
        queue_name=queue_name,
        automatic_backfill=automatic_backfill,
    )


def string_list(operation: str, argument: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise DBOSInvalidArgumentError(
            argument, value, "a string, a list of strings, or None", operation=operation
        )
    return list(values)


def check_schedule_status(value: Any) -> list[str] | None:
    statuses = string_list("list_schedules", "status", value)
    if statuses is not None and not set(statuses) <= set(ScheduleStatus.values):
        raise DBOSInvalidArgumentError(
            "status", value, "'ACTIVE', 'PAUSED' or a list of them", operation="list_schedules"
        )
    return statuses


def _as_transaction(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Inside a workflow: the write and its checkpoint commit together (recorded once,
    replayed after); elsewhere a plain call."""
    ctx = current_workflow()
    if ctx is None or ctx.in_step:
        return fn(*args)
    config = steps.TransactionConfig(name=name, using=dbos_settings().DATABASE)
    return steps.run_transaction(config, fn, args, {})


def _not_in_workflow(operation: str) -> None:
    ctx = current_workflow()
    if ctx is not None:
        raise DBOSException(
            f"DBOS.{operation} cannot be called from within a workflow (its firings are "
            "workflows of their own); call it from ordinary code, or start a child workflow."
        )


def _time(operation: str, argument: str, value: Any) -> datetime.datetime:
    if value is None:
        raise DBOSInvalidArgumentError(
            argument, value, "a datetime or an ISO 8601 string", operation=operation
        )
    ms = epoch_ms(operation, argument, value)
    assert ms is not None
    return scheduler.from_ms(ms)


def backfill_window(
    schedule_name: Any, start: Any, end: Any, operation: str
) -> tuple[Schedule, list[datetime.datetime]]:
    """The schedule and its fire times strictly between ``start`` and ``end``, each bound a
    datetime or an ISO string; raises ``DBOSInvalidArgumentError`` for a bad or reversed window
    or one of more than ``MAX_BACKFILL`` firings (shared by ``DBOS`` and ``DBOSClient``)."""
    name = check_schedule_name(schedule_name, operation)
    begin, finish = _time(operation, "start", start), _time(operation, "end", end)
    if begin > finish:
        raise DBOSInvalidArgumentError(
            "start", start, f"at or before end ({end!r})", operation=operation
        )
    row = scheduler.get_row(name, operation)
    times = scheduler.backfill_times(row, begin, finish, MAX_BACKFILL)
    if len(times) > MAX_BACKFILL:
        raise DBOSInvalidArgumentError(
            "end",
            end,
            f"close enough to start for at most {MAX_BACKFILL} firings; split the window",
            operation=operation,
        )
    return row, times


def _backfill(schedule_name: Any, start: Any, end: Any) -> list[str]:
    return scheduler.backfill(*backfill_window(schedule_name, start, end, "backfill_schedule"))


def checked_entries(
    schedules: Any,
    operation: str,
    kind: str,
    keys: tuple[frozenset[str], Sequence[str]],
    check: Callable[..., ScheduleValues],
) -> list[ScheduleValues]:
    """Each entry of an ``apply_schedules`` list checked with ``check(where, **entry)``, every
    one before anything is written: a list of ``kind`` dicts with the allowed and required
    ``keys``, names unique in the list (shared by ``DBOS`` and ``DBOSClient``)."""
    allowed, required = keys
    if not isinstance(schedules, list | tuple):
        raise DBOSInvalidArgumentError(
            "schedules", schedules, f"a list of {kind} dicts", operation=operation
        )
    values: list[ScheduleValues] = []
    for i, entry in enumerate(schedules):
        where = f"{operation} (entry {i})"
        if not isinstance(entry, dict):
            raise DBOSInvalidArgumentError("schedules", entry, f"a {kind} dict", operation=where)
        missing = [key for key in required if key not in entry]
        unknown = sorted(set(entry) - allowed)
        if missing or unknown:
            raise DBOSInvalidArgumentError(
                "schedules",
                entry,
                f"a dict with the keys {list(required)} (missing: {missing}) and no others"
                f" than {sorted(allowed)} (unknown: {unknown})",
                operation=where,
            )
        checked = check(where, **entry)
        if any(v.schedule_name == checked.schedule_name for v in values):
            raise DBOSInvalidArgumentError(
                "schedule_name", checked.schedule_name, "unique in the list", operation=where
            )
        values.append(checked)
    return values


def _apply(schedules: Any, delete_missing: Any) -> ScheduleChanges:
    operation = "apply_schedules"
    if not isinstance(delete_missing, bool):
        raise DBOSInvalidArgumentError(
            "delete_missing", delete_missing, "True or False", operation=operation
        )

    def check(where: str, **entry: Any) -> ScheduleValues:
        checked = schedule_values(where, **entry)
        if checked.schedule_name in registry.schedules:
            raise DBOSScheduleExistsError(
                checked.schedule_name, "it is declared in code with @DBOS.scheduled"
            )
        return checked

    keys = (_INPUT_KEYS, _REQUIRED_KEYS)
    values = checked_entries(schedules, operation, "ScheduleInput", keys, check)
    return scheduler.apply(values, delete_missing)


class SchedulesAPI:
    # -- declared in code --------------------------------------------------------------------

    @staticmethod
    def scheduled(
        cron: str,
        *,
        name: str | None = None,
        context: Any = None,
        cron_timezone: str | None = None,
        queue_name: str | None = None,
        automatic_backfill: bool = False,
    ) -> Callable[[F], F]:
        """Declare a schedule in code: ``@DBOS.scheduled("*/5 * * * *")`` above (or instead of)
        ``@DBOS.workflow()``. The function becomes a workflow if it is not one yet, and gets
        ``(scheduled_time, context)`` like a managed schedule's workflow. Each worker upserts
        the schedule (named ``name``, default the workflow's name) into ``dbos_schedules`` when
        it starts, keeping its status and history; pause and resume it like any other.

        The cron and time zone are checked here (``DBOSInvalidCronError``,
        ``DBOSInvalidTimezoneError``); the queue when it fires. Two declarations under one
        name are reported by the ``django_dbos.E004`` check."""
        expression = scheduler.check_cron(cron)
        scheduler.zone(cron_timezone)
        if name is not None:
            check_schedule_name(name, "@DBOS.scheduled")
        if not isinstance(automatic_backfill, bool):
            raise DBOSInvalidArgumentError(
                "automatic_backfill",
                automatic_backfill,
                "True or False",
                operation="@DBOS.scheduled",
            )
        serialization.serialize(context)  # an unserializable context fails at import

        def decorate(func: F) -> F:
            from django_dbos.dbos import DBOS

            wrapped: Any = func if hasattr(func, "__dbos_workflow__") else DBOS.workflow()(func)
            definition = wrapped.__dbos_workflow__
            schedule_name = name or definition.name
            check_schedule_name(schedule_name, "@DBOS.scheduled")
            registry.add_schedule(
                ScheduleDefinition(
                    schedule_name=schedule_name,
                    workflow_name=definition.name,
                    schedule=expression,
                    context=context,
                    cron_timezone=cron_timezone,
                    queue_name=queue_name,
                    automatic_backfill=automatic_backfill,
                )
            )
            return wrapped

        return decorate

    # -- create / read -----------------------------------------------------------------------

    @staticmethod
    def create_schedule(
        schedule_name: str,
        workflow_fn: ScheduledWorkflow | str,
        schedule: str,
        *,
        context: Any = None,
        automatic_backfill: bool = False,
        cron_timezone: str | None = None,
        queue_name: str | None = None,
    ) -> None:
        """Fire ``workflow_fn(scheduled_time, context)`` at each time of the cron ``schedule``
        (5 fields, or 6 with seconds first), evaluated in ``cron_timezone`` (IANA; default
        UTC), on ``queue_name`` (default: the internal queue every worker serves). Each firing
        runs once however many workers run the scheduler. ``automatic_backfill``: after
        downtime or a pause, missed firings run too (once each).

        Raises ``DBOSInvalidCronError``, ``DBOSInvalidTimezoneError``,
        ``DBOSWorkflowFunctionNotFoundError``, ``DBOSQueueNotFoundError``,
        ``DBOSScheduleExistsError`` or ``DBOSInvalidArgumentError``; nothing is written then."""
        values = schedule_values(
            "create_schedule",
            schedule_name,
            workflow_fn,
            schedule,
            context,
            automatic_backfill,
            cron_timezone,
            queue_name,
        )
        _as_transaction("DBOS.createSchedule", scheduler.create, values)

    @staticmethod
    async def create_schedule_async(
        schedule_name: str,
        workflow_fn: ScheduledWorkflow | str,
        schedule: str,
        *,
        context: Any = None,
        automatic_backfill: bool = False,
        cron_timezone: str | None = None,
        queue_name: str | None = None,
    ) -> None:
        await to_thread(
            lambda: SchedulesAPI.create_schedule(
                schedule_name,
                workflow_fn,
                schedule,
                context=context,
                automatic_backfill=automatic_backfill,
                cron_timezone=cron_timezone,
                queue_name=queue_name,
            )
        )

    @staticmethod
    def list_schedules(
        *,
        status: str | Sequence[str] | None = None,
        workflow_name: str | Sequence[str] | None = None,
        schedule_name_prefix: str | Sequence[str] | None = None,
    ) -> list[WorkflowSchedule]:
        """The schedules matching every filter given (each a string or a list: any of them),
        ordered by name."""
        statuses = check_schedule_status(status)
        names = string_list("list_schedules", "workflow_name", workflow_name)
        prefixes = string_list("list_schedules", "schedule_name_prefix", schedule_name_prefix)
        return _durably("DBOS.listSchedules", scheduler.list_schedules, statuses, names, prefixes)

    @staticmethod
    async def list_schedules_async(
        *,
        status: str | Sequence[str] | None = None,
        workflow_name: str | Sequence[str] | None = None,
        schedule_name_prefix: str | Sequence[str] | None = None,
    ) -> list[WorkflowSchedule]:
        return await to_thread(
            lambda: SchedulesAPI.list_schedules(
                status=status,
                workflow_name=workflow_name,
                schedule_name_prefix=schedule_name_prefix,
            )
        )

    @staticmethod
    def get_schedule(name: str) -> WorkflowSchedule | None:
        """The schedule named ``name``, or ``None``."""
        check_schedule_name(name, "get_schedule")
        return _durably("DBOS.getSchedule", scheduler.get_schedule, name)

    @staticmethod
    async def get_schedule_async(name: str) -> WorkflowSchedule | None:
        return await to_thread(SchedulesAPI.get_schedule, name)

    # -- pause / resume / delete -------------------------------------------------------------

    @staticmethod
    def pause_schedule(name: str) -> None:
        """Stop firing (nothing fires while paused). ``DBOSNonExistentScheduleError`` for an
        unknown name."""
        check_schedule_name(name, "pause_schedule")
        _as_transaction(
            "DBOS.pauseSchedule",
            scheduler.set_status,
            name,
            ScheduleStatus.PAUSED,
            "pause_schedule",
        )

    @staticmethod
    async def pause_schedule_async(name: str) -> None:
        await to_thread(SchedulesAPI.pause_schedule, name)

    @staticmethod
    def resume_schedule(name: str) -> None:
        """Fire again from now on (with ``automatic_backfill``: the firings missed while paused
        run first, once each). ``DBOSNonExistentScheduleError`` for an unknown name."""
        check_schedule_name(name, "resume_schedule")
        _as_transaction(
            "DBOS.resumeSchedule",
            scheduler.set_status,
            name,
            ScheduleStatus.ACTIVE,
            "resume_schedule",
        )

    @staticmethod
    async def resume_schedule_async(name: str) -> None:
        await to_thread(SchedulesAPI.resume_schedule, name)

    @staticmethod
    def delete_schedule(name: str) -> None:
        """Delete the schedule (no-op for an unknown name, as in DBOS); enqueued firings still
        run. A schedule declared with ``@DBOS.scheduled`` comes back when a worker starts."""
        check_schedule_name(name, "delete_schedule")
        _as_transaction("DBOS.deleteSchedule", scheduler.delete, name)

    @staticmethod
    async def delete_schedule_async(name: str) -> None:
        await to_thread(SchedulesAPI.delete_schedule, name)

    # -- trigger / backfill / apply ----------------------------------------------------------

    @staticmethod
    def trigger_schedule(schedule_name: str) -> WorkflowHandle:
        """Fire now, whatever the cron says and even if paused: the workflow gets the current
        time as ``scheduled_time``. Not from inside a workflow."""
        _not_in_workflow("trigger_schedule")
        check_schedule_name(schedule_name, "trigger_schedule")
        return WorkflowHandle(scheduler.trigger(schedule_name))

    @staticmethod
    async def trigger_schedule_async(schedule_name: str) -> WorkflowHandleAsync:
        _not_in_workflow("trigger_schedule_async")
        check_schedule_name(schedule_name, "trigger_schedule_async")
        return WorkflowHandleAsync(await to_thread(scheduler.trigger, schedule_name))

    @staticmethod
    def backfill_schedule(
        schedule_name: str,
        start: datetime.datetime | str,
        end: datetime.datetime | str,
    ) -> list[WorkflowHandle]:
        """Enqueue every time of the schedule strictly between ``start`` and ``end`` (DBOS's
        window; datetimes or ISO 8601 strings, naive ones in Django's current time zone).
        Each time uses the live firing's workflow ID, so a time that already ran (or runs
        meanwhile) is not repeated; the handles cover every time in the window. At most
        10,000 times per call. Not from inside a workflow."""
        _not_in_workflow("backfill_schedule")
        return [WorkflowHandle(wid) for wid in _backfill(schedule_name, start, end)]

    @staticmethod
    async def backfill_schedule_async(
        schedule_name: str,
        start: datetime.datetime | str,
        end: datetime.datetime | str,
    ) -> list[WorkflowHandleAsync]:
        _not_in_workflow("backfill_schedule_async")
        ids = await to_thread(_backfill, schedule_name, start, end)
        return [WorkflowHandleAsync(wid) for wid in ids]

    @staticmethod
    def apply_schedules(
        schedules: Sequence[ScheduleInput], *, delete_missing: bool = True
    ) -> ScheduleChanges:
        """Make the database's schedules match ``schedules`` in one transaction: create the
        new, update the changed in place (a paused one stays paused; its firing history is
        kept), leave the same alone, and (``delete_missing``) delete the schedules not listed,
        except those declared in code with ``@DBOS.scheduled``. Idempotent: run it at every
        deploy. Every entry is validated before anything is written. Not from inside a
        workflow."""
        _not_in_workflow("apply_schedules")
        return _apply(schedules, delete_missing)

    @staticmethod
    async def apply_schedules_async(
        schedules: Sequence[ScheduleInput], *, delete_missing: bool = True
    ) -> ScheduleChanges:
        _not_in_workflow("apply_schedules_async")
        return await to_thread(_apply, schedules, delete_missing)

"""``DBOSClient``'s schedule methods (DBOS's client names): create, list, get, pause, resume,
delete, trigger, backfill and apply cron schedules from a process that does not import the
workflows they fire.

A schedule names its workflow by its registered name, as ``DBOSClient.enqueue`` does: the
client cannot check that a worker knows it (a firing of an unknown name ends as ERROR at the
worker that claims it). Everything else is checked as ``DBOS.create_schedule`` checks it, with
the same named errors, before anything is written; the queue against ``dbos_queues``, as the
client's enqueue looks it up. Trigger and backfill write the same firing rows (workflow IDs,
inputs) a worker's scheduler writes, through ``queues.enqueue_by_name``: a worker runs them,
never the client. The engine side is ``engine/scheduler.py``.

Imported by ``client`` before Django is set up, so nothing here touches the models at import.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from django_dbos.client_options import check_text
from django_dbos.errors import DBOSInvalidArgumentError

if TYPE_CHECKING:
    from django_dbos.client_handles import (
        WorkflowHandleClientAsyncPolling,
        WorkflowHandleClientPolling,
    )
    from django_dbos.engine.scheduler import ScheduleChanges, ScheduleValues, WorkflowSchedule

R = TypeVar("R")


class ClientScheduleInput(TypedDict, total=False):
    """One entry of ``DBOSClient.apply_schedules`` (DBOS's keys): ``ScheduleInput`` with the
    workflow named by ``workflow_name`` (its registered name) instead of ``workflow_fn``.
    ``schedule_name``, ``workflow_name`` and ``schedule`` are required. ``workflow_class_name``
    exists for DBOS compatibility and must be ``None`` (a registered name is complete)."""

    schedule_name: str
    workflow_name: str
    workflow_class_name: str | None
    schedule: str
    context: Any
    automatic_backfill: bool
    cron_timezone: str | None
    queue_name: str | None


_INPUT_KEYS = frozenset(ClientScheduleInput.__annotations__)
_REQUIRED_KEYS = ("schedule_name", "workflow_name", "schedule")


def _values(
    operation: str,
    schedule_name: Any,
    workflow_name: Any,
    schedule: Any,
    context: Any = None,
    automatic_backfill: Any = False,
    cron_timezone: Any = None,
    queue_name: Any = None,
    workflow_class_name: Any = None,
) -> ScheduleValues:
    """One schedule definition checked (all of it, the queue included) and ready to write."""
    from django_dbos import serialization
    from django_dbos.api.schedules import check_schedule_name
    from django_dbos.engine import scheduler

    name = check_schedule_name(schedule_name, operation)
    check_text("workflow_name", workflow_name, operation)
    if workflow_class_name is not None:
        raise DBOSInvalidArgumentError(
            "workflow_class_name",
            workflow_class_name,
            "None (workflow_name, the registered name, names any workflow completely)",
            operation=operation,
        )
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
    serialized = serialization.serialize(context)
    scheduler.check_queue(queue_name, operation)
    return scheduler.ScheduleValues(
        schedule_name=name,
        workflow_name=workflow_name,
        schedule=cron,
        context=serialized,
        cron_timezone=cron_timezone,
        queue_name=queue_name,
        automatic_backfill=automatic_backfill,
    )


def _apply(schedules: Any) -> ScheduleChanges:
    from django_dbos.api.schedules import checked_entries
    from django_dbos.engine import scheduler

    keys = (_INPUT_KEYS, _REQUIRED_KEYS)
    operation = "DBOSClient.apply_schedules"
    values = checked_entries(schedules, operation, "ClientScheduleInput", keys, _values)
    return scheduler.apply(values, delete_missing=False)


def _backfill(schedule_name: Any, start: Any, end: Any) -> list[str]:
    from django_dbos.api.schedules import backfill_window
    from django_dbos.engine import scheduler

    operation = "DBOSClient.backfill_schedule"
    return scheduler.backfill_by_name(*backfill_window(schedule_name, start, end, operation))


def _name(operation: str, schedule_name: Any) -> str:
    from django_dbos.api.schedules import check_schedule_name

    return check_schedule_name(schedule_name, f"DBOSClient.{operation}")


class ClientSchedulesMixin:
    """The schedule methods of ``DBOSClient`` (which provides ``_run`` and ``_off_loop``)."""

    if TYPE_CHECKING:

        def _run(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R: ...

        async def _off_loop(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R: ...

    # -- create / read -----------------------------------------------------------------------

    def create_schedule(
        self,
        *,
        schedule_name: str,
        workflow_name: str,
        schedule: str,
        context: Any = None,
        workflow_class_name: str | None = None,
        automatic_backfill: bool = False,
        cron_timezone: str | None = None,
        queue_name: str | None = None,
    ) -> None:
        """Fire the workflow registered as ``workflow_name`` with ``(scheduled_time, context)``
        at each time of the cron ``schedule`` (5 fields, or 6 with seconds first) in
        ``cron_timezone`` (IANA; default UTC), on ``queue_name`` (default: the internal queue
        every worker serves). Workers' schedulers fire it, each firing once.

        Raises ``DBOSInvalidCronError``, ``DBOSInvalidTimezoneError``,
        ``DBOSQueueNotFoundError`` (a queue no process has declared), ``DBOSScheduleExistsError``
        or ``DBOSInvalidArgumentError``; nothing is written then."""

        def write() -> None:
            from django_dbos.engine import scheduler

            values = _values(
                "DBOSClient.create_schedule",
                schedule_name,
                workflow_name,
                schedule,
                context,
                automatic_backfill,
                cron_timezone,
                queue_name,
                workflow_class_name,
            )
            scheduler.create(values)

        self._run(write)

    def list_schedules(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow_name: str | Sequence[str] | None = None,
        schedule_name_prefix: str | Sequence[str] | None = None,
    ) -> list[WorkflowSchedule]:
        """The schedules matching every filter given (each a string or a list: any of them),
        ordered by name, as ``DBOS.list_schedules`` returns them."""
        from django_dbos.api.schedules import check_schedule_status, string_list
        from django_dbos.engine import scheduler

        operation = "DBOSClient.list_schedules"
        statuses = check_schedule_status(status)
        names = string_list(operation, "workflow_name", workflow_name)
        prefixes = string_list(operation, "schedule_name_prefix", schedule_name_prefix)
        return self._run(scheduler.list_schedules, statuses, names, prefixes)

    def get_schedule(self, name: str) -> WorkflowSchedule | None:
        """The schedule named ``name``, or ``None``."""
        from django_dbos.engine import scheduler

        return self._run(scheduler.get_schedule, _name("get_schedule", name))

    # -- pause / resume / delete -------------------------------------------------------------

    def pause_schedule(self, name: str) -> None:
        """Stop firing it. ``DBOSNonExistentScheduleError`` for an unknown name."""
        from django_dbos.engine import scheduler
        from django_dbos.models import ScheduleStatus

        checked = _name("pause_schedule", name)
        self._run(scheduler.set_status, checked, ScheduleStatus.PAUSED, "pause_schedule")

    def resume_schedule(self, name: str) -> None:
        """Fire again from now on (with ``automatic_backfill``: the firings missed while paused
        run first, once each). ``DBOSNonExistentScheduleError`` for an unknown name."""
        from django_dbos.engine import scheduler
        from django_dbos.models import ScheduleStatus

        checked = _name("resume_schedule", name)
        self._run(scheduler.set_status, checked, ScheduleStatus.ACTIVE, "resume_schedule")

    def delete_schedule(self, name: str) -> None:
        """Delete it (a no-op for an unknown name, as in DBOS); enqueued firings still run. A
        schedule declared in code with ``@DBOS.scheduled`` comes back when a worker starts."""
        from django_dbos.engine import scheduler

        self._run(scheduler.delete, _name("delete_schedule", name))

    # -- trigger / backfill / apply ----------------------------------------------------------

    def trigger_schedule(self, schedule_name: str) -> WorkflowHandleClientPolling:
        """Fire now, whatever the cron says and even if paused: the workflow gets the current
        time as ``scheduled_time``; a worker runs it. ``DBOSNonExistentScheduleError`` for an
        unknown name, ``DBOSQueueNotFoundError`` if its queue is no longer stored."""
        from django_dbos.client_handles import WorkflowHandleClientPolling
        from django_dbos.engine import scheduler

        checked = _name("trigger_schedule", schedule_name)
        return WorkflowHandleClientPolling(self._run(scheduler.trigger_by_name, checked))

    def backfill_schedule(
        self,
        schedule_name: str,
        start: datetime.datetime | str,
        end: datetime.datetime | str,
    ) -> list[WorkflowHandleClientPolling]:
        """Enqueue every time of the schedule strictly between ``start`` and ``end``
        (datetimes or ISO 8601 strings; naive ones in Django's current time zone) under the
        live firing's workflow ID, so a time that already ran is not repeated; a handle per
        time. At most 10,000 times per call; ``start`` after ``end`` is refused."""
        from django_dbos.client_handles import WorkflowHandleClientPolling

        ids = self._run(_backfill, schedule_name, start, end)
        return [WorkflowHandleClientPolling(workflow_id) for workflow_id in ids]

    def apply_schedules(self, schedules: Sequence[ClientScheduleInput]) -> ScheduleChanges:
        """Create or update in place (a paused one stays paused, its history is kept) each of
        ``schedules`` in one transaction; what it did, by name. Schedules not listed are left
        alone (as DBOS's client does; ``DBOS.apply_schedules`` can delete them). Every entry is
        checked before anything is written."""
        return self._run(_apply, schedules)

    # -- async twins -------------------------------------------------------------------------

    async def create_schedule_async(
        self,
        *,
        schedule_name: str,
        workflow_name: str,
        schedule: str,
        context: Any = None,
        workflow_class_name: str | None = None,
        automatic_backfill: bool = False,
        cron_timezone: str | None = None,
        queue_name: str | None = None,
    ) -> None:
        await self._off_loop(
            lambda: self.create_schedule(
                schedule_name=schedule_name,
                workflow_name=workflow_name,
                schedule=schedule,
                context=context,
                workflow_class_name=workflow_class_name,
                automatic_backfill=automatic_backfill,
                cron_timezone=cron_timezone,
                queue_name=queue_name,
            )
        )

    async def list_schedules_async(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow_name: str | Sequence[str] | None = None,
        schedule_name_prefix: str | Sequence[str] | None = None,
    ) -> list[WorkflowSchedule]:
        return await self._off_loop(
            lambda: self.list_schedules(
                status=status,
                workflow_name=workflow_name,
                schedule_name_prefix=schedule_name_prefix,
            )
        )

    async def get_schedule_async(self, name: str) -> WorkflowSchedule | None:
        return await self._off_loop(self.get_schedule, name)

    async def pause_schedule_async(self, name: str) -> None:
        await self._off_loop(self.pause_schedule, name)

    async def resume_schedule_async(self, name: str) -> None:
        await self._off_loop(self.resume_schedule, name)

    async def delete_schedule_async(self, name: str) -> None:
        await self._off_loop(self.delete_schedule, name)

    async def trigger_schedule_async(self, schedule_name: str) -> WorkflowHandleClientAsyncPolling:
        from django_dbos.client_handles import WorkflowHandleClientAsyncPolling

        handle = await self._off_loop(self.trigger_schedule, schedule_name)
        return WorkflowHandleClientAsyncPolling(handle.workflow_id)

    async def backfill_schedule_async(
        self,
        schedule_name: str,
        start: datetime.datetime | str,
        end: datetime.datetime | str,
    ) -> list[WorkflowHandleClientAsyncPolling]:
        from django_dbos.client_handles import WorkflowHandleClientAsyncPolling

        handles = await self._off_loop(self.backfill_schedule, schedule_name, start, end)
        return [WorkflowHandleClientAsyncPolling(handle.workflow_id) for handle in handles]

    async def apply_schedules_async(
        self, schedules: Sequence[ClientScheduleInput]
    ) -> ScheduleChanges:
        return await self._off_loop(self.apply_schedules, schedules)

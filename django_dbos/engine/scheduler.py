"""Cron schedules: the ``dbos_schedules`` rows, cron times, and firings (the loop that fires
them on each worker is ``engine/scheduler_loop.py``).

A firing is an enqueue with a deterministic workflow ID, ``sched-{name}-{time}`` where the time
is the scheduled instant in UTC ISO 8601 (``sched-report-2025-05-01T09:00:00+00:00``). The
status table's primary key makes it happen once: every worker's scheduler, a restarted one, a
backfill and automatic backfill may all try the same firing, and all but the first INSERT find
the row there ("already fired", not an error). So the loop needs no leader election and no
lock; ``last_fired_at`` (epoch ms, only ever moved forward) is bookkeeping for automatic
backfill and for operators, not the guard."""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypedDict
from zoneinfo import ZoneInfo

from croniter import croniter
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from django_dbos import serialization
from django_dbos.conf import dbos_settings
from django_dbos.context import StartOptions
from django_dbos.errors import (
    DBOSException,
    DBOSInvalidArgumentError,
    DBOSInvalidCronError,
    DBOSInvalidTimezoneError,
    DBOSNonExistentScheduleError,
    DBOSQueueNotFoundError,
    DBOSScheduleExistsError,
)
from django_dbos.models import QueueConfig, Schedule, ScheduleStatus, now_ms
from django_dbos.registry import ScheduleDefinition, registry

if TYPE_CHECKING:
    from django_dbos.queues import Queue

logger = logging.getLogger("django_dbos.scheduler")

UTC = datetime.UTC
MAX_NAME_LENGTH = 200
"""Schedule names are at most this long, so ``sched-{name}-{time}`` fits a workflow ID."""


class WorkflowSchedule(TypedDict):
    """A schedule as the API returns it (DBOS's keys; ``created_at``/``updated_at`` in epoch
    ms as for workflows; ``last_fired_at`` an ISO 8601 UTC string, as in DBOS)."""

    schedule_id: str
    schedule_name: str
    workflow_name: str
    workflow_class_name: str | None
    schedule: str
    status: str
    context: Any
    last_fired_at: str | None
    automatic_backfill: bool
    cron_timezone: str | None
    queue_name: str | None
    created_at: int
    updated_at: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleValues:
    """A validated schedule definition, ready to write (``context`` already serialized)."""

    schedule_name: str
    workflow_name: str
    schedule: str
    context: str
    cron_timezone: str | None
    queue_name: str | None
    automatic_backfill: bool

    def columns(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


class ScheduleChanges(TypedDict):
    """What ``apply_schedules`` did, by schedule name."""

    created: list[str]
    updated: list[str]
    unchanged: list[str]
    deleted: list[str]


# -- cron and time ---------------------------------------------------------------------------


def check_cron(expression: Any) -> str:
    """A valid 5-field cron, or 6 fields with seconds first (DBOS's convention), or a
    ``@daily``-style alias; raises ``DBOSInvalidCronError``."""
    if not isinstance(expression, str) or not expression.strip():
        raise DBOSInvalidCronError(expression, "not a non-empty string")
    expression = " ".join(expression.split())
    fields = len(expression.split(" "))
    if not expression.startswith("@") and fields not in (5, 6):
        raise DBOSInvalidCronError(expression, f"{fields} fields")
    try:
        valid = croniter.is_valid(expression, second_at_beginning=True)
    except Exception:  # croniter raises a few kinds for odd input
        valid = False
    if not valid:
        raise DBOSInvalidCronError(expression)
    try:  # parses, but may never match (February 30th)
        next(cron_times(expression, UTC, datetime.datetime.now(UTC)))
    except Exception:
        raise DBOSInvalidCronError(expression, "it never fires") from None
    return expression


def zone(cron_timezone: Any) -> datetime.tzinfo:
    """The schedule's time zone (``None``: UTC); raises ``DBOSInvalidTimezoneError``."""
    if cron_timezone is None:
        return UTC
    if not isinstance(cron_timezone, str) or not cron_timezone.strip():
        raise DBOSInvalidTimezoneError(cron_timezone)
    try:
        return ZoneInfo(cron_timezone)
    except (ValueError, TypeError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        raise DBOSInvalidTimezoneError(cron_timezone) from None


def from_ms(epoch_ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch_ms / 1000, UTC)


def to_ms(when: datetime.datetime) -> int:
    return int(when.timestamp() * 1000)


def cron_times(
    expression: str, tz: datetime.tzinfo, after: datetime.datetime
) -> Iterator[datetime.datetime]:
    """The cron's times strictly after ``after``, as aware datetimes in ``tz`` (croniter's
    answers, DST included)."""
    it = croniter(expression, after.astimezone(tz), second_at_beginning=True)
    while True:
        yield it.get_next(datetime.datetime)


def fire_times(
    cron: str,
    cron_timezone: str | None,
    after: datetime.datetime,
    *,
    until: datetime.datetime | None = None,
    limit: int,
) -> list[datetime.datetime]:
    """The times a schedule fires strictly after ``after`` (and strictly before ``until``), at
    most ``limit`` of them, as aware datetimes in the schedule's time zone (UTC when it has
    none); this module's own cron reading (``cron_times``); for pages and commands.

    Raises ``DBOSException`` for a cron expression or time zone that cannot be read (a row
    written by hand or by another tool), so a page or command can show it instead of crashing.
    """
    tz = zone(cron_timezone)
    if timezone.is_naive(after):
        after = timezone.make_aware(after)
    found: list[datetime.datetime] = []
    try:
        for when in cron_times(cron, tz, after):
            if len(found) >= limit or (until is not None and when >= until):
                break
            found.append(when)
    except (ValueError, KeyError):  # croniter's errors are ValueErrors
        raise DBOSInvalidCronError(cron) from None
    return found


def next_fire_time(
    cron: str, cron_timezone: str | None, after: datetime.datetime | None = None
) -> datetime.datetime | None:
    """The schedule's next fire time after ``after`` (default: now); None when its cron
    expression or time zone cannot be read."""
    try:
        times = fire_times(cron, cron_timezone, after or timezone.now(), limit=1)
    except DBOSException:
        return None
    return times[0] if times else None


def firing_id(schedule_name: str, scheduled_time: datetime.datetime) -> str:
    """The workflow ID of a schedule's firing at ``scheduled_time``: the same instant gives the
    same ID whatever fires it (and whatever the schedule's time zone)."""
    return f"sched-{schedule_name}-{scheduled_time.astimezone(UTC).isoformat()}"


def trigger_id(schedule_name: str, now: datetime.datetime) -> str:
    return f"sched-{schedule_name}-trigger-{now.astimezone(UTC).isoformat()}"


# -- validation ------------------------------------------------------------------------------


def check_queue(queue_name: str | None, operation: str) -> None:
    """The queue a schedule fires onto must be declared here or have a ``dbos_queues`` row,
    and must not be partitioned (a firing has no partition key); raises
    ``DBOSQueueNotFoundError`` / ``DBOSInvalidArgumentError``."""
    from django_dbos.queues import INTERNAL_QUEUE_NAME

    if queue_name is None or queue_name == INTERNAL_QUEUE_NAME:
        return
    declared = registry.queues.get(queue_name)
    if declared is not None:
        partitioned = declared.partition_queue
    else:
        configs = QueueConfig.objects.using(dbos_settings().DATABASE)
        stored = configs.filter(name=queue_name).values_list("partition_queue", flat=True)
        if not stored:
            known = set(registry.queues) | set(configs.values_list("name", flat=True))
            raise DBOSQueueNotFoundError(queue_name, sorted(known - {INTERNAL_QUEUE_NAME}))
        partitioned = stored[0]
    if partitioned:
        raise DBOSInvalidArgumentError(
            "queue_name",
            queue_name,
            "a queue without partition_queue=True (a firing has no partition key)",
            operation=operation,
        )


# -- reads -----------------------------------------------------------------------------------


def schedule_rows() -> QuerySet[Schedule]:
    return Schedule.objects.using(dbos_settings().DATABASE)


def as_schedule(row: Schedule) -> WorkflowSchedule:
    return WorkflowSchedule(
        schedule_id=str(row.pk),
        schedule_name=row.schedule_name,
        workflow_name=row.workflow_name,
        workflow_class_name=None,
        schedule=row.schedule,
        status=row.status,
        context=serialization.deserialize(row.context) if row.context else None,
        last_fired_at=(
            from_ms(row.last_fired_at).isoformat() if row.last_fired_at is not None else None
        ),
        automatic_backfill=row.automatic_backfill,
        cron_timezone=row.cron_timezone,
        queue_name=row.queue_name,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def list_schedules(
    status: Sequence[str] | None = None,
    workflow_name: Sequence[str] | None = None,
    schedule_name_prefix: Sequence[str] | None = None,
) -> list[WorkflowSchedule]:
    """Matching every filter given (each: any of its values), ordered by name."""
    rows = schedule_rows()
    if status is not None:
        rows = rows.filter(status__in=list(status))
    if workflow_name is not None:
        rows = rows.filter(workflow_name__in=list(workflow_name))
    if schedule_name_prefix is not None:
        match = Q(pk__in=[])
        for prefix in schedule_name_prefix:
            match |= Q(schedule_name__startswith=prefix)
        rows = rows.filter(match)
    return [as_schedule(row) for row in rows.order_by("schedule_name")]


def get_schedule(schedule_name: str) -> WorkflowSchedule | None:
    row = schedule_rows().filter(schedule_name=schedule_name).first()
    return as_schedule(row) if row is not None else None


def get_row(schedule_name: str, operation: str) -> Schedule:
    row = schedule_rows().filter(schedule_name=schedule_name).first()
    if row is None:
        raise DBOSNonExistentScheduleError(schedule_name, operation)
    return row


# -- writes ----------------------------------------------------------------------------------


def create(values: ScheduleValues) -> None:
    """INSERT the schedule; ``DBOSScheduleExistsError`` if the name is taken (checked first,
    and a concurrent insert's unique violation is caught in a savepoint, never surfaced)."""
    rows = schedule_rows()
    if rows.filter(schedule_name=values.schedule_name).exists():
        raise DBOSScheduleExistsError(values.schedule_name)
    now = now_ms()
    try:
        with transaction.atomic(using=rows.db):
            rows.create(**values.columns(), created_at=now, updated_at=now)
    except IntegrityError:
        raise DBOSScheduleExistsError(values.schedule_name) from None


def set_status(schedule_name: str, status: ScheduleStatus, operation: str) -> None:
    """Pause or resume; a no-op when already in that status (so a resume of an active schedule
    does not restart its cursor). ``DBOSNonExistentScheduleError`` for an unknown name."""
    rows = schedule_rows().filter(schedule_name=schedule_name)
    changed = rows.exclude(status=status).update(status=status, updated_at=now_ms())
    if not changed and not rows.exists():
        raise DBOSNonExistentScheduleError(schedule_name, operation)


def delete(schedule_name: str) -> None:
    """Delete the schedule (a no-op for an unknown name, as in DBOS). Firings already
    enqueued still run."""
    schedule_rows().filter(schedule_name=schedule_name).delete()


def upsert(values: ScheduleValues) -> str:
    """Create, or update the definition in place: ``status`` and ``last_fired_at`` are kept, and
    ``updated_at`` moves only if something changed. Returns "created", "updated" or
    "unchanged"."""
    rows = schedule_rows()
    columns = values.columns()
    existing = rows.filter(schedule_name=values.schedule_name).first()
    if existing is None:
        now = now_ms()
        try:
            with transaction.atomic(using=rows.db):
                rows.create(**columns, created_at=now, updated_at=now)
            return "created"
        except IntegrityError:  # another process created it meanwhile: update that one
            existing = rows.get(schedule_name=values.schedule_name)
    changed = {k: v for k, v in columns.items() if getattr(existing, k) != v}
    if not changed:
        return "unchanged"
    rows.filter(pk=existing.pk).update(**changed, updated_at=now_ms())
    return "updated"


def apply(values: Sequence[ScheduleValues], delete_missing: bool) -> ScheduleChanges:
    """Make ``dbos_schedules`` match ``values`` in one transaction; with ``delete_missing``,
    schedules not listed (and not declared in code with ``@DBOS.scheduled``) are deleted."""
    changes = ScheduleChanges(created=[], updated=[], unchanged=[], deleted=[])
    rows = schedule_rows()
    with transaction.atomic(using=rows.db):
        for entry in values:
            changes[upsert(entry)].append(entry.schedule_name)  # type: ignore[literal-required]
        if delete_missing:
            keep = {entry.schedule_name for entry in values} | set(registry.schedules)
            doomed = sorted(
                rows.exclude(schedule_name__in=keep).values_list("schedule_name", flat=True)
            )
            rows.filter(schedule_name__in=doomed).delete()
            changes["deleted"] = doomed
    return changes


def store_declared() -> None:
    """Upsert the schedules declared in code (``@DBOS.scheduled``); a worker does this as its
    scheduler starts, as it stores its queues' configuration."""
    for definition in list(registry.schedules.values()):
        upsert(declared_values(definition))


def declared_values(definition: ScheduleDefinition) -> ScheduleValues:
    return ScheduleValues(
        schedule_name=definition.schedule_name,
        workflow_name=definition.workflow_name,
        schedule=definition.schedule,
        context=serialization.serialize(definition.context),
        cron_timezone=definition.cron_timezone,
        queue_name=definition.queue_name,
        automatic_backfill=definition.automatic_backfill,
    )


# -- firing ----------------------------------------------------------------------------------


def fire(row: Schedule, scheduled_time: datetime.datetime, workflow_id: str) -> str:
    """Enqueue the schedule's workflow with ``(scheduled_time, context)`` under
    ``workflow_id``; an ID that exists already is that firing (nothing new is written).

    Raises ``DBOSWorkflowFunctionNotFoundError`` / ``DBOSQueueNotFoundError`` when this process
    does not have the workflow or the queue."""
    from django_dbos.engine.queues import _enqueue
    from django_dbos.queues import internal_queue

    definition = registry.get_workflow(row.workflow_name)
    if row.queue_name is None:
        queue = internal_queue()
    else:
        found = registry.queues.get(row.queue_name)
        if found is None:
            raise DBOSQueueNotFoundError(row.queue_name, sorted(registry.queues))
        queue = found
    context = serialization.deserialize(row.context) if row.context else None
    options = StartOptions(workflow_id=workflow_id)
    return _enqueue(queue, definition, (scheduled_time, context), {}, options)


def advance_last_fired(row: Schedule, epoch_ms: int) -> None:
    """Move ``last_fired_at`` forward only (concurrent schedulers never move it back)."""
    schedule_rows().filter(pk=row.pk).filter(
        Q(last_fired_at__isnull=True) | Q(last_fired_at__lt=epoch_ms)
    ).update(last_fired_at=epoch_ms)


def trigger(schedule_name: str) -> str:
    """Fire now (whatever the cron and status); the workflow ID."""
    row = get_row(schedule_name, "trigger_schedule")
    now = datetime.datetime.now(UTC)
    return fire(row, now.astimezone(zone(row.cron_timezone)), trigger_id(schedule_name, now))


def backfill_times(
    row: Schedule, start: datetime.datetime, end: datetime.datetime, limit: int
) -> list[datetime.datetime]:
    """The schedule's times strictly between ``start`` and ``end`` (DBOS's window); at most
    ``limit`` + 1 (the caller reports a window too large)."""
    times: list[datetime.datetime] = []
    for when in cron_times(row.schedule, zone(row.cron_timezone), start):
        if when >= end or len(times) > limit:
            break
        times.append(when)
    return times


def backfill(row: Schedule, times: list[datetime.datetime]) -> list[str]:
    """Enqueue each time (those already fired are found, not repeated); their workflow IDs."""
    ids = [fire(row, when, firing_id(row.schedule_name, when)) for when in times]
    if times:
        advance_last_fired(row, to_ms(times[-1]))
    return ids


# -- firing by workflow name (DBOSClient) ------------------------------------------------------


def queue_by_name(queue_name: str | None) -> Queue | QueueConfig:
    """The queue a firing by name goes on (a ``Queue`` or a ``QueueConfig``): the internal
    queue for ``None``, a queue declared in this process, or one another process stored in
    ``dbos_queues``; raises ``DBOSQueueNotFoundError``. A client declares no queues."""
    from django_dbos.queues import INTERNAL_QUEUE_NAME, internal_queue

    if queue_name is None or queue_name == INTERNAL_QUEUE_NAME:
        return internal_queue()
    declared = registry.queues.get(queue_name)
    if declared is not None:
        return declared
    configs = QueueConfig.objects.using(dbos_settings().DATABASE)
    stored = configs.filter(name=queue_name).first()
    if stored is None:
        known = set(registry.queues) | set(configs.values_list("name", flat=True))
        raise DBOSQueueNotFoundError(queue_name, sorted(known - {INTERNAL_QUEUE_NAME}))
    return stored


def fire_by_name(row: Schedule, scheduled_time: datetime.datetime, workflow_id: str) -> str:
    """``fire`` for a process that has neither the workflow nor the queue declared (a
    ``DBOSClient``): the row ``DBOSClient.enqueue`` writes (``queues.enqueue_by_name``), with
    the same ``(scheduled_time, context)`` inputs and workflow ID a worker's firing has, so a
    firing is still written once whichever process writes it. A worker runs it."""
    from django_dbos.engine.queues import enqueue_by_name

    queue = queue_by_name(row.queue_name)
    context = serialization.deserialize(row.context) if row.context else None
    options = StartOptions(workflow_id=workflow_id)
    return enqueue_by_name(queue, row.workflow_name, (scheduled_time, context), {}, options)


def trigger_by_name(schedule_name: str) -> str:
    """``trigger`` by workflow name (``fire_by_name``); the workflow ID."""
    row = get_row(schedule_name, "trigger_schedule")
    now = datetime.datetime.now(UTC)
    when = now.astimezone(zone(row.cron_timezone))
    return fire_by_name(row, when, trigger_id(schedule_name, now))


def backfill_by_name(row: Schedule, times: list[datetime.datetime]) -> list[str]:
    """``backfill`` by workflow name (``fire_by_name``); the workflow IDs."""
    ids = [fire_by_name(row, when, firing_id(row.schedule_name, when)) for when in times]
    if times:
        advance_last_fired(row, to_ms(times[-1]))
    return ids

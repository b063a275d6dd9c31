"""Enqueueing workflows and claiming them: the two database sides of a queue.

Enqueue is one INSERT of an ENQUEUED (or DELAYED) status row, in the caller's transaction on
the system database if there is one (transactional enqueue). On PostgreSQL a trigger
(migration 0005) NOTIFYs ``dbos_workflow_enqueued`` when it commits; in this process the
``("enqueued", queue)`` key is signalled after commit. Workers claim rows with ``claim``: one
short transaction per queue and round, whatever the number of rows.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from django_dbos.conf import dbos_settings
from django_dbos.context import current_workflow, take_start_options
from django_dbos.engine import system_db, wakeups
from django_dbos.engine.executor import application_version
from django_dbos.engine.handles import WorkflowHandle, WorkflowHandleAsync
from django_dbos.engine.threads import in_event_loop, run_blocking, to_thread
from django_dbos.engine.workflows import prepare
from django_dbos.errors import DBOSInvalidArgumentError, DBOSNonExistentWorkflowError
from django_dbos.models import QueueConfig, WorkflowStatus, WorkflowStatusString, now_ms
from django_dbos.registry import WorkflowDefinition

if TYPE_CHECKING:
    from django_dbos.context import StartOptions
    from django_dbos.queues import Queue

S = WorkflowStatusString
STATUS_TABLE = system_db.STATUS_TABLE


def store_config(queue: Queue) -> None:
    """Upsert the queue's configuration row once per process (first enqueue, worker start)."""
    if queue.stored:
        return
    settings = queue.settings
    alias = dbos_settings().DATABASE
    QueueConfig.objects.using(alias).update_or_create(
        name=queue.name,
        defaults={
            "concurrency": settings.concurrency,
            "worker_concurrency": settings.worker_concurrency,
            "limiter_limit": settings.limit,
            "limiter_period_sec": settings.period,
            "priority_enabled": settings.priority_enabled,
            "partition_queue": settings.partition_queue,
            "partition_concurrency": settings.partition_concurrency,
            "partition_limiter_limit": settings.partition_limit,
            "partition_limiter_period_sec": settings.partition_period,
            "updated_at": now_ms(),
        },
    )
    transaction.on_commit(lambda: setattr(queue, "stored", True), using=alias)


def _queue_columns(
    queue: Queue | QueueConfig, options: StartOptions, version: str | None
) -> dict[str, Any]:
    """The row's queue columns (``version``: the application version unless the options name
    one); raises ``DBOSInvalidArgumentError`` before anything is written."""
    op = f"enqueue on queue {queue.name!r}"
    priority = options.priority or 0
    if priority and not queue.priority_enabled:
        raise DBOSInvalidArgumentError(
            "priority",
            priority,
            "unset: the queue was declared without priority_enabled=True",
            operation=op,
        )
    key = options.queue_partition_key
    if queue.partition_queue and key is None:
        raise DBOSInvalidArgumentError(
            "queue_partition_key",
            key,
            "set (SetEnqueueOptions(queue_partition_key=...)): the queue is partitioned",
            operation=op,
        )
    if key is not None and not queue.partition_queue:
        raise DBOSInvalidArgumentError(
            "queue_partition_key",
            key,
            "unset: the queue was declared without partition_queue=True",
            operation=op,
        )
    delay_ms = int((options.delay_seconds or 0) * 1000)
    return {
        "status": (S.DELAYED if delay_ms > 0 else S.ENQUEUED).value,
        "queue_name": queue.name,
        "queue_partition_key": key,
        "priority": priority,
        "deduplication_id": options.deduplication_id,
        "delay_until_epoch_ms": now_ms() + delay_ms if delay_ms > 0 else None,
        "application_version": options.app_version or version,
    }


def _enqueue(
    queue: Queue,
    definition: WorkflowDefinition,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: StartOptions,
) -> str:
    parent = current_workflow()
    if parent is not None and parent.in_step:
        parent = None
    columns = _queue_columns(queue, options, application_version())
    store_config(queue)
    prepared = prepare(definition, args, kwargs, parent, options, queued=columns)
    wakeups.signal_after_commit(("enqueued", queue.name))
    return prepared.workflow_id


def known_by_name_only(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a workflow enqueued by name is never run by the process enqueueing it")


def enqueue_by_name(
    queue: Queue | QueueConfig,
    workflow_name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: StartOptions,
) -> str:
    """``DBOSClient.enqueue``: the row ``Queue.enqueue`` writes, for a workflow known only by
    its name (it need not be importable here; an unknown name ends as ERROR at the worker).
    Never a child of a running workflow. Without ``options.app_version`` the row has no
    application version and the worker that claims it stamps its own (a client cannot know
    the workers' version). The caller has validated ``queue`` (declared or stored)."""
    columns = _queue_columns(queue, options, None)
    definition = WorkflowDefinition(
        name=workflow_name, func=known_by_name_only, is_async=False, max_recovery_attempts=None
    )
    prepared = prepare(definition, args, kwargs, None, options, queued=columns)
    wakeups.signal_after_commit(("enqueued", queue.name))
    return prepared.workflow_id


def enqueue(
    queue: Queue, definition: WorkflowDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> WorkflowHandle:
    """``Queue.enqueue``: the status row is written when this returns (or joins the caller's
    transaction); from inside a workflow it is a recorded child start (``{parent}-{n}``)."""
    if in_event_loop():
        return run_blocking(enqueue, queue, definition, args, kwargs)
    workflow_id = _enqueue(queue, definition, args, kwargs, take_start_options())
    return WorkflowHandle(workflow_id)


async def enqueue_async(
    queue: Queue, definition: WorkflowDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> WorkflowHandleAsync:
    options = take_start_options()
    workflow_id = await to_thread(_enqueue, queue, definition, args, kwargs, options)
    return WorkflowHandleAsync(workflow_id)


def set_delay(
    workflow_id: str, delay_seconds: float | None, delay_until_epoch_ms: int | None
) -> None:
    """``DBOS.set_workflow_delay``: move the delay of a DELAYED workflow (others: no change).
    Raises ``DBOSInvalidArgumentError`` unless exactly one valid bound is given, and
    ``DBOSNonExistentWorkflowError`` for an unknown ID."""
    op = "set_workflow_delay"
    if (delay_seconds is None) == (delay_until_epoch_ms is None):
        raise DBOSInvalidArgumentError(
            "delay_seconds",
            delay_seconds,
            "given, or delay_until_epoch_ms (exactly one)",
            operation=op,
        )
    if delay_seconds is not None:
        if (
            isinstance(delay_seconds, bool)
            or not isinstance(delay_seconds, int | float)
            or not math.isfinite(delay_seconds)
            or delay_seconds < 0
        ):
            raise DBOSInvalidArgumentError(
                "delay_seconds", delay_seconds, "a number of seconds, 0 or more", operation=op
            )
        until = now_ms() + int(delay_seconds * 1000)
    else:
        if (
            isinstance(delay_until_epoch_ms, bool)
            or not isinstance(delay_until_epoch_ms, int)
            or delay_until_epoch_ms < 0
        ):
            raise DBOSInvalidArgumentError(
                "delay_until_epoch_ms",
                delay_until_epoch_ms,
                "an epoch time in ms, 0 or more",
                operation=op,
            )
        until = delay_until_epoch_ms
    rows = WorkflowStatus.objects.using(dbos_settings().DATABASE).filter(workflow_uuid=workflow_id)
    queue_name = rows.values_list("queue_name", flat=True).first()
    if queue_name is None and not rows.exists():
        raise DBOSNonExistentWorkflowError(workflow_id)
    if rows.filter(status=S.DELAYED).update(delay_until_epoch_ms=until, updated_at=now_ms()):
        wakeups.signal_after_commit(("enqueued", str(queue_name)))


def requeue(workflow_ids: list[str], executor_id: str) -> int:
    """Put claimed workflows that did not start back on their queue (a failed round)."""
    if not workflow_ids:
        return 0
    return (
        WorkflowStatus.objects.using(dbos_settings().DATABASE)
        .filter(workflow_uuid__in=workflow_ids, status=S.PENDING, executor_id=executor_id)
        .update(status=S.ENQUEUED, executor_id=None, started_at_epoch_ms=None, updated_at=now_ms())
    )


# -- claiming ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Claimed:
    summary: system_db.WorkflowSummary
    partition_key: str | None


def _lock_clause(conn: BaseDatabaseWrapper) -> str:
    """How the candidate SELECT locks its rows: the one vendor difference of claiming.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent dispatchers each take different rows
    without waiting for one another (a queue with global limits is also serialized by an
    advisory lock, see ``_serialize_queue``). SQLite: nothing; the claim runs in an IMMEDIATE
    transaction (``transaction_mode``, checked by W002), which already holds the database's one
    write lock, so a plain SELECT then UPDATE cannot race another writer."""
    return " FOR UPDATE SKIP LOCKED" if conn.vendor == "postgresql" else ""


def _serialize_queue(conn: BaseDatabaseWrapper, queue_name: str) -> None:
    """Global limits (concurrency, limiter, partitions) count rows other dispatchers change:
    on PostgreSQL, one dispatcher at a time per queue counts and claims (a transaction-scoped
    advisory lock). SQLite's write lock already serializes."""
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"dbos:{queue_name}"])


_CLAIM_SET = (
    "SET status = %s, executor_id = %s, started_at_epoch_ms = %s, updated_at = %s, "
    "application_version = COALESCE(application_version, %s), "
    "workflow_deadline_epoch_ms = COALESCE(workflow_deadline_epoch_ms, %s + workflow_timeout_ms)"
)
# runnable rows of one queue, for this worker's version or none (a client's enqueue)
_RUNNABLE = (
    "queue_name = %s AND (application_version = %s OR application_version IS NULL) "
    "AND (status = %s OR (status = %s AND delay_until_epoch_ms <= %s))"
)
_RETURNING = f"RETURNING {', '.join(system_db.SUMMARY_COLUMNS)}, queue_partition_key"


def claim(queue: Queue, executor_id: str, budget: int) -> list[Claimed]:
    """Claim up to ``budget`` runnable workflows of ``queue`` for ``executor_id`` (PENDING, stamped
    ``started_at_epoch_ms``), honouring global concurrency, the limiter and partition limits,
    in priority then FIFO order.

    A queue without global or partition limits is claimed in one statement (an UPDATE of the
    rows a ``SKIP LOCKED`` subquery picks); one with them counts and claims in one short
    transaction, serialized per queue, because its counts must not change under it."""
    if budget <= 0:
        return []
    settings = queue.settings
    limited = (
        settings.concurrency is not None or settings.limit is not None or settings.partition_limits
    )
    conn = system_db.connection()
    if not limited:
        return _claim_unlimited(conn, queue.name, executor_id, budget)
    with transaction.atomic(using=conn.alias):
        _serialize_queue(conn, queue.name)
        # stamped after the lock is held: a claim that waited must not start in the past, or
        # the limiter's window would count it too early
        now = now_ms()
        with conn.cursor() as cursor:
            budget = _global_budget(cursor, queue, budget, now)
            if budget <= 0:
                return []
            chosen = _choose(cursor, conn, queue, budget, now)
            if not chosen:
                return []
            cursor.execute(
                f"UPDATE {STATUS_TABLE} {_CLAIM_SET} "
                f"WHERE workflow_uuid IN ({', '.join(['%s'] * len(chosen))}) "
                f"AND status IN (%s, %s) {_RETURNING}",
                [*_claim_params(executor_id, now), *chosen, S.ENQUEUED.value, S.DELAYED.value],
            )
            return _in_order(cursor.fetchall(), chosen)


def _claim_params(executor_id: str, now: int) -> list[Any]:
    return [S.PENDING.value, executor_id, now, now, application_version(), now]


def _claim_unlimited(
    conn: BaseDatabaseWrapper, queue_name: str, executor_id: str, budget: int
) -> list[Claimed]:
    """One round trip: nothing to count, so no transaction, and ``SKIP LOCKED`` lets concurrent
    dispatchers take different rows without waiting (SQLite's one writer needs no lock)."""
    now = now_ms()
    with conn.cursor() as cursor:
        cursor.execute(
            f"UPDATE {STATUS_TABLE} {_CLAIM_SET} WHERE workflow_uuid IN ("
            f"SELECT workflow_uuid FROM {STATUS_TABLE} WHERE {_RUNNABLE} "
            f"ORDER BY priority, created_at LIMIT %s{_lock_clause(conn)}) "
            f"AND status IN (%s, %s) {_RETURNING}, priority, created_at",
            [
                *_claim_params(executor_id, now),
                *_runnable_params(queue_name, now),
                budget,
                S.ENQUEUED.value,
                S.DELAYED.value,
            ],
        )
        rows = sorted(cursor.fetchall(), key=lambda row: (row[-2], row[-1]))
    return [_claimed(row) for row in rows]


def _runnable_params(queue_name: str, now: int) -> list[Any]:
    return [queue_name, application_version(), S.ENQUEUED.value, S.DELAYED.value, now]


def _global_budget(cursor: Any, queue: Queue, budget: int, now: int) -> int:
    """The budget left by the queue's global concurrency and rate limit."""
    settings = queue.settings
    if settings.concurrency is not None:
        cursor.execute(
            f"SELECT COUNT(*) FROM {STATUS_TABLE} WHERE queue_name = %s AND status = %s",
            [queue.name, S.PENDING.value],
        )
        budget = min(budget, settings.concurrency - cursor.fetchone()[0])
    if settings.limit is not None and settings.period is not None:
        cursor.execute(
            f"SELECT COUNT(*) FROM {STATUS_TABLE} "
            "WHERE queue_name = %s AND started_at_epoch_ms > %s",
            [queue.name, now - int(settings.period * 1000)],
        )
        budget = min(budget, settings.limit - cursor.fetchone()[0])
    return budget


def _per_partition(cursor: Any, queue_name: str, condition: str, value: Any) -> dict[Any, int]:
    cursor.execute(
        f"SELECT queue_partition_key, COUNT(*) FROM {STATUS_TABLE} "
        f"WHERE queue_name = %s AND {condition} GROUP BY queue_partition_key",
        [queue_name, value],
    )
    return dict(cursor.fetchall())


def _choose(
    cursor: Any, conn: BaseDatabaseWrapper, queue: Queue, budget: int, now: int
) -> list[str]:
    """The IDs to claim, in order: the first ``budget`` runnable rows whose partition (if the
    queue has per-partition limits) is under its concurrency and its rate limit."""
    settings = queue.settings
    running: dict[Any, int] = {}
    started: dict[Any, int] = {}
    if settings.partition_concurrency is not None:
        running = _per_partition(cursor, queue.name, "status = %s", S.PENDING.value)
    if settings.partition_limit is not None and settings.partition_period is not None:
        since = now - int(settings.partition_period * 1000)
        started = _per_partition(cursor, queue.name, "started_at_epoch_ms > %s", since)
    # partitions: look further than the budget so a few full partitions can't hide the others
    fetch = max(budget * 20, 200) if settings.partition_limits else budget
    cursor.execute(
        f"SELECT workflow_uuid, queue_partition_key FROM {STATUS_TABLE} WHERE {_RUNNABLE} "
        f"ORDER BY priority, created_at LIMIT %s{_lock_clause(conn)}",
        [*_runnable_params(queue.name, now), fetch],
    )
    chosen: list[str] = []
    for workflow_id, key in cursor.fetchall():
        if len(chosen) >= budget:
            break
        if settings.partition_concurrency is not None and (
            running.get(key, 0) >= settings.partition_concurrency
        ):
            continue
        if settings.partition_limit is not None and started.get(key, 0) >= settings.partition_limit:
            continue
        running[key] = running.get(key, 0) + 1
        started[key] = started.get(key, 0) + 1
        chosen.append(workflow_id)
    return chosen


def _claimed(row: tuple[Any, ...]) -> Claimed:
    columns = len(system_db.SUMMARY_COLUMNS)
    return Claimed(summary=system_db.WorkflowSummary(*row[:columns]), partition_key=row[columns])


def _in_order(rows: list[tuple[Any, ...]], chosen: list[str]) -> list[Claimed]:
    by_id = {row[0]: row for row in rows}
    return [_claimed(by_id[workflow_id]) for workflow_id in chosen if workflow_id in by_id]

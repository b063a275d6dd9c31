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
            "updated_at": now_ms(),
        },
    )
    transaction.on_commit(lambda: setattr(queue, "stored", True), using=alias)


def _queue_columns(queue: Queue, options: StartOptions) -> dict[str, Any]:
    """The row's queue columns; raises ``DBOSInvalidArgumentError`` before anything is written."""
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
        "application_version": options.app_version or application_version(),
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
    columns = _queue_columns(queue, options)
    store_config(queue)
    prepared = prepare(definition, args, kwargs, parent, options, queued=columns)
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


def claim(queue: Queue, executor_id: str, budget: int) -> list[Claimed]:
    """Claim up to ``budget`` runnable workflows of ``queue`` for ``executor_id`` (PENDING, stamped
    ``started_at_epoch_ms``), honouring global concurrency, the limiter and partition limits,
    in priority then FIFO order. One transaction of a few statements."""
    settings = queue.settings
    conn = system_db.connection()
    version = application_version()
    with transaction.atomic(using=conn.alias):
        global_limits = (
            settings.concurrency is not None
            or settings.limit is not None
            or settings.partition_concurrency is not None
        )
        if global_limits:
            _serialize_queue(conn, queue.name)
        # stamped after the locks are held: a claim that waited must not start in the past,
        # or the limiter's window would count it too early
        now = now_ms()
        with conn.cursor() as cursor:
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
            if budget <= 0:
                return []
            running: dict[str | None, int] = {}
            if settings.partition_concurrency is not None:
                cursor.execute(
                    f"SELECT queue_partition_key, COUNT(*) FROM {STATUS_TABLE} "
                    "WHERE queue_name = %s AND status = %s GROUP BY queue_partition_key",
                    [queue.name, S.PENDING.value],
                )
                running = dict(cursor.fetchall())
            # partitions: look further than the budget so one busy partition can't hide others
            fetch = budget if settings.partition_concurrency is None else max(budget * 20, 200)
            cursor.execute(
                f"SELECT workflow_uuid, queue_partition_key FROM {STATUS_TABLE} "
                "WHERE queue_name = %s AND (application_version = %s OR application_version IS NULL) "
                "AND (status = %s "
                "OR (status = %s AND delay_until_epoch_ms <= %s)) "
                f"ORDER BY priority, created_at LIMIT %s{_lock_clause(conn)}",
                [queue.name, version, S.ENQUEUED.value, S.DELAYED.value, now, fetch],
            )
            chosen: list[tuple[str, str | None]] = []
            for workflow_id, key in cursor.fetchall():
                if len(chosen) >= budget:
                    break
                if settings.partition_concurrency is not None:
                    if running.get(key, 0) >= settings.partition_concurrency:
                        continue
                    running[key] = running.get(key, 0) + 1
                chosen.append((workflow_id, key))
            if not chosen:
                return []
            ids = [workflow_id for workflow_id, _ in chosen]
            cursor.execute(
                f"UPDATE {STATUS_TABLE} SET status = %s, executor_id = %s, "
                "started_at_epoch_ms = %s, updated_at = %s, "
                "application_version = COALESCE(application_version, %s), "
                "workflow_deadline_epoch_ms = COALESCE(workflow_deadline_epoch_ms, "
                "%s + workflow_timeout_ms) "
                f"WHERE workflow_uuid IN ({', '.join(['%s'] * len(ids))}) "
                "AND status IN (%s, %s) "
                f"RETURNING {', '.join(system_db.SUMMARY_COLUMNS)}",
                [
                    S.PENDING.value,
                    executor_id,
                    now,
                    now,
                    version,
                    now,
                    *ids,
                    S.ENQUEUED.value,
                    S.DELAYED.value,
                ],
            )
            rows = {row[0]: system_db.WorkflowSummary(*row) for row in cursor.fetchall()}
    keys = dict(chosen)
    return [
        Claimed(summary=rows[workflow_id], partition_key=keys[workflow_id])
        for workflow_id in ids
        if workflow_id in rows
    ]

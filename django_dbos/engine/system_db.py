"""Every read and write of the workflow and step tables, with the hot path tuned by hand.

The hot path of a workflow with k steps is k+2 statements, each its own autocommit transaction
(one round trip): the start INSERT, one INSERT per step, the finish UPDATE. They are plain SQL on
Django's connection (so they show up in ``CaptureQueriesContext``) because the ORM cannot say
"insert if absent and tell me" or "insert this checkpoint only while the workflow is PENDING" in
one statement. Both SQLite (>= 3.35) and PostgreSQL accept the SQL below unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from django_dbos.conf import dbos_settings
from django_dbos.context import Checkpoint
from django_dbos.engine import statements
from django_dbos.errors import DBOSQueueDeduplicatedError
from django_dbos.models import (
    TERMINAL_STATUSES,
    Executor,
    WorkflowStatus,
    WorkflowStatusString,
    now_ms,
)

PENDING = WorkflowStatusString.PENDING.value
STATUS_TABLE = WorkflowStatus._meta.db_table
STEPS_TABLE = "dbos_operation_outputs"

_STATUS_COLUMNS = (
    "workflow_uuid",
    "status",
    "name",
    "class_name",
    "config_name",
    "inputs",
    "executor_id",
    "application_version",
    "recovery_attempts",
    "queue_name",
    "queue_partition_key",
    "priority",
    "deduplication_id",
    "workflow_timeout_ms",
    "workflow_deadline_epoch_ms",
    "started_at_epoch_ms",
    "delay_until_epoch_ms",
    "parent_workflow_id",
    "forked_from",
    "authenticated_user",
    "attributes",
    "created_at",
    "updated_at",
)
_INSERT_STATUS_SQL = (
    f"INSERT INTO {STATUS_TABLE} ({', '.join(_STATUS_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_STATUS_COLUMNS))}) "
    "ON CONFLICT (workflow_uuid) DO NOTHING RETURNING workflow_uuid"
)

# Enqueue: a conflict on the ID *or* on (queue_name, deduplication_id) inserts nothing (the
# caller then looks up which); an IntegrityError never reaches the user.
_ENQUEUE_SQL = (
    f"INSERT INTO {STATUS_TABLE} ({', '.join(_STATUS_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_STATUS_COLUMNS))}) "
    "ON CONFLICT DO NOTHING RETURNING workflow_uuid"
)

SUMMARY_COLUMNS = (
    "workflow_uuid",
    "status",
    "name",
    "inputs",
    "output",
    "error",
    "executor_id",
    "application_version",
    "recovery_attempts",
    "workflow_deadline_epoch_ms",
    "queue_name",
)

# The step checkpoint: written only while the workflow is still PENDING (a cancelled workflow
# records nothing more) and only once per function_id (a second execution loses the race).
_RECORD_STEP_SQL = (
    f"INSERT INTO {STEPS_TABLE} (workflow_uuid, function_id, function_name, output, error, "
    "child_workflow_id, started_at_epoch_ms, completed_at_epoch_ms) "
    "SELECT %s, %s, %s, %s, %s, %s, %s, %s "
    f"WHERE EXISTS (SELECT 1 FROM {STATUS_TABLE} WHERE workflow_uuid = %s AND status = %s) "
    "ON CONFLICT (workflow_uuid, function_id) DO NOTHING"
)

# PostgreSQL binds parameters on the server when the statement is prepared: values in a SELECT
# list need their types spelled out.
_RECORD_STEP_PG_SQL = (
    f"INSERT INTO {STEPS_TABLE} (workflow_uuid, function_id, function_name, output, error, "
    "child_workflow_id, started_at_epoch_ms, completed_at_epoch_ms) "
    "SELECT %s::varchar, %s::integer, %s::varchar, %s::text, %s::text, %s::varchar, "
    "%s::bigint, %s::bigint "
    f"WHERE EXISTS (SELECT 1 FROM {STATUS_TABLE} WHERE workflow_uuid = %s AND status = %s) "
    "ON CONFLICT (workflow_uuid, function_id) DO NOTHING"
)

# Only the execution that owns the workflow may end it: a zombie execution (its executor was
# taken for dead and the workflow adopted) finishes nothing.
_FINISH_SQL = (
    f"UPDATE {STATUS_TABLE} SET status = %s, output = %s, error = %s, updated_at = %s "
    "WHERE workflow_uuid = %s AND status = %s AND executor_id = %s"
)


def connection() -> BaseDatabaseWrapper:
    return connections[dbos_settings().DATABASE]


@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowSummary:
    """The columns of a status row the engine needs to decide what to do with a workflow."""

    workflow_id: str
    status: str
    name: str
    inputs: str | None
    output: str | None
    error: str | None
    executor_id: str | None
    application_version: str | None
    recovery_attempts: int
    deadline_epoch_ms: int | None
    queue_name: str | None


def insert_workflow(values: dict[str, Any]) -> bool:
    """INSERT the status row unless the ID exists; True when this call created it."""
    row = {column: None for column in _STATUS_COLUMNS}
    row.update(values)
    params = [row[column] for column in _STATUS_COLUMNS]
    return statements.execute(connection(), _INSERT_STATUS_SQL, params, fetch=True).row is not None


def enqueue_workflow(values: dict[str, Any]) -> bool:
    """INSERT an ENQUEUED (or DELAYED) row; True when created, False when the ID exists.

    Raises ``DBOSQueueDeduplicatedError`` when a live workflow (ENQUEUED, DELAYED, PENDING)
    holds the row's deduplication ID on its queue. A *finished* holder's ID is released here
    and the insert retried: DBOS clears the ID when a workflow ends, and doing it lazily keeps
    the finish UPDATE of every workflow one statement."""
    row: dict[str, Any] = {column: None for column in _STATUS_COLUMNS}
    row.update(values)
    params = [row[column] for column in _STATUS_COLUMNS]
    workflow_id: str = row["workflow_uuid"]
    queue_name: str = row["queue_name"]
    dedup_id: str | None = row["deduplication_id"]
    finished = [str(status) for status in TERMINAL_STATUSES]
    conn = connection()
    for _attempt in range(3):
        if statements.execute(conn, _ENQUEUE_SQL, params, fetch=True).row is not None:
            return True
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {STATUS_TABLE} WHERE workflow_uuid = %s", [workflow_id])
            if cursor.fetchone() is not None or dedup_id is None:
                return False
            cursor.execute(
                f"SELECT workflow_uuid, status FROM {STATUS_TABLE} "
                "WHERE queue_name = %s AND deduplication_id = %s",
                [queue_name, dedup_id],
            )
            holder = cursor.fetchone()
            if holder is not None and holder[1] not in finished:
                break
            if holder is not None:
                cursor.execute(
                    f"UPDATE {STATUS_TABLE} SET deduplication_id = NULL "
                    f"WHERE workflow_uuid = %s AND status IN ({', '.join(['%s'] * len(finished))})",
                    [holder[0], *finished],
                )
    raise DBOSQueueDeduplicatedError(workflow_id, queue_name, dedup_id or "")


def get_summary(workflow_id: str) -> WorkflowSummary | None:
    with connection().cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM {STATUS_TABLE} WHERE workflow_uuid = %s",
            [workflow_id],
        )
        row = cursor.fetchone()
    return WorkflowSummary(*row) if row else None


def record_operation(
    workflow_id: str,
    function_id: int,
    function_name: str,
    *,
    output: str | None = None,
    error: str | None = None,
    child_workflow_id: str | None = None,
    started_at_ms: int | None = None,
    using: BaseDatabaseWrapper | None = None,
) -> bool:
    """INSERT a checkpoint; False when the workflow is no longer PENDING or the slot is taken."""
    finished = now_ms()
    params = [
        workflow_id,
        function_id,
        function_name,
        output,
        error,
        child_workflow_id,
        started_at_ms if started_at_ms is not None else finished,
        finished,
        workflow_id,
        PENDING,
    ]
    result = statements.execute(
        using or connection(), _RECORD_STEP_SQL, params, pg_sql=_RECORD_STEP_PG_SQL
    )
    return result.rowcount == 1


def finish_workflow(
    workflow_id: str,
    status: str,
    executor_id: str,
    *,
    output: str | None = None,
    error: str | None = None,
) -> bool:
    """The one UPDATE that ends a workflow; False when it is no longer PENDING or no longer
    owned by ``executor_id``."""
    params = [status, output, error, now_ms(), workflow_id, PENDING, executor_id]
    return statements.execute(connection(), _FINISH_SQL, params).rowcount == 1


def load_checkpoints(workflow_id: str) -> dict[int, Checkpoint]:
    """All of a workflow's recorded operations in one indexed query (replay)."""
    with connection().cursor() as cursor:
        cursor.execute(
            "SELECT function_id, function_name, output, error, child_workflow_id "
            f"FROM {STEPS_TABLE} WHERE workflow_uuid = %s",
            [workflow_id],
        )
        return {row[0]: Checkpoint(*row) for row in cursor.fetchall()}


def load_checkpoints_of(workflow_ids: list[str]) -> dict[str, dict[int, Checkpoint]]:
    """The checkpoints of several workflows in one query (the dispatcher's claimed batch)."""
    found: dict[str, dict[int, Checkpoint]] = {}
    if not workflow_ids:
        return found
    with connection().cursor() as cursor:
        cursor.execute(
            "SELECT workflow_uuid, function_id, function_name, output, error, child_workflow_id "
            f"FROM {STEPS_TABLE} "
            f"WHERE workflow_uuid IN ({', '.join(['%s'] * len(workflow_ids))})",
            workflow_ids,
        )
        for workflow_id, *row in cursor.fetchall():
            found.setdefault(workflow_id, {})[row[0]] = Checkpoint(*row)
    return found


def statuses_of(workflow_ids: list[str]) -> dict[str, str]:
    return dict(
        WorkflowStatus.objects.using(dbos_settings().DATABASE)
        .filter(workflow_uuid__in=workflow_ids)
        .values_list("workflow_uuid", "status")
    )


def set_status(workflow_id: str, status: str, *, only_if: Iterable[str] = (), **extra: Any) -> int:
    """A guarded status change (ORM: off the hot path)."""
    rows = WorkflowStatus.objects.using(dbos_settings().DATABASE).filter(workflow_uuid=workflow_id)
    only = list(only_if)
    if only:
        rows = rows.filter(status__in=only)
    return rows.update(status=status, updated_at=now_ms(), **extra)


# -- executors and recovery ----------------------------------------------------------------


def register_executor(
    executor_id: str, hostname: str, pid: int, version: str, queues: list[str] | None = None
) -> None:
    """Write (or rewrite) this process's executor row. ``queues``: the queue names its
    dispatcher serves (None for a process that runs none), so the admin can tell which queues
    no live worker serves."""
    now = now_ms()
    Executor.objects.using(dbos_settings().DATABASE).update_or_create(
        executor_id=executor_id,
        defaults={
            "hostname": hostname,
            "pid": pid,
            "application_version": version,
            "started_at": now,
            "last_heartbeat": now,
            "queues": queues,
        },
    )


def heartbeat(executor_id: str) -> int:
    return (
        Executor.objects.using(dbos_settings().DATABASE)
        .filter(executor_id=executor_id)
        .update(last_heartbeat=now_ms())
    )


def retire_executor(executor_id: str) -> None:
    """Mark this executor dead at once, so live ones adopt what it leaves behind."""
    Executor.objects.using(dbos_settings().DATABASE).filter(executor_id=executor_id).update(
        last_heartbeat=0
    )


def executor_is_alive(executor_id: str | None, timeout_s: float) -> bool:
    if not executor_id:
        return False
    cutoff = now_ms() - int(timeout_s * 1000)
    return (
        Executor.objects.using(dbos_settings().DATABASE)
        .filter(executor_id=executor_id, last_heartbeat__gte=cutoff)
        .exists()
    )


def forget_dead_executors(timeout_s: float) -> int:
    """Delete executors that are dead and own no PENDING workflow (nothing left to adopt)."""
    cutoff = now_ms() - int(timeout_s * 1000)
    alias = dbos_settings().DATABASE
    busy = WorkflowStatus.objects.using(alias).pending().values("executor_id")
    deleted, _ = (
        Executor.objects.using(alias)
        .filter(last_heartbeat__lt=cutoff)
        .exclude(executor_id__in=busy)
        .delete()
    )
    return deleted


def orphaned_workflows(version: str, timeout_s: float, limit: int) -> list[tuple[str, str | None]]:
    """PENDING workflows of this version whose executor is dead: (workflow_id, executor_id)."""
    cutoff = now_ms() - int(timeout_s * 1000)
    alias = dbos_settings().DATABASE
    live = Executor.objects.using(alias).filter(last_heartbeat__gte=cutoff).values("executor_id")
    rows = (
        WorkflowStatus.objects.using(alias)
        .pending()
        .filter(application_version=version)
        .exclude(executor_id__in=live)
        .order_by("created_at")
        .values_list("workflow_uuid", "executor_id")[:limit]
    )
    return list(rows)


def own_pending_workflows(executor_id: str, version: str) -> list[str]:
    return list(
        WorkflowStatus.objects.using(dbos_settings().DATABASE)
        .pending()
        .for_executor(executor_id)
        .filter(application_version=version)
        .order_by("created_at")
        .values_list("workflow_uuid", flat=True)
    )


def claim_for_recovery(workflow_id: str, from_executor: str | None, to_executor: str) -> int | None:
    """Atomically move a PENDING workflow to ``to_executor``; its new recovery_attempts, or None
    when another executor won the race (or it is no longer PENDING)."""
    where = "executor_id IS NULL" if from_executor is None else "executor_id = %s"
    params: list[Any] = [to_executor, now_ms(), workflow_id, PENDING]
    if from_executor is not None:
        params.append(from_executor)
    with connection().cursor() as cursor:
        cursor.execute(
            f"UPDATE {STATUS_TABLE} SET executor_id = %s, "
            "recovery_attempts = recovery_attempts + 1, updated_at = %s "
            f"WHERE workflow_uuid = %s AND status = %s AND {where} "
            "RETURNING recovery_attempts",
            params,
        )
        row = cursor.fetchone()
    return int(row[0]) if row else None

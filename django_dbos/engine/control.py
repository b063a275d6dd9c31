"""Operating workflows: cancel, resume, delete, attributes (fork and retention have modules of
their own, built on the helpers here).

Every operation validates its arguments, then reads and writes in one short transaction on the
system database, so a mistake writes nothing and a crash never leaves half an operation. Trees
of workflows (a workflow and its descendants, by ``parent_workflow_id``) are read with one
recursive query, never one query per child. Resumed and forked workflows then run on this
process's pool, replaying their recorded checkpoints; ``enqueue_resumed`` (and fork's
``enqueue_fork``) put them on a queue instead, for a caller that runs nothing (``DBOSClient``).

Inside a workflow each operation is recorded as a step (``DBOS.cancelWorkflow``, ...), as in
DBOS: a replay neither repeats it nor forks a second workflow.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from django.db import models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from django_dbos import serialization
from django_dbos.context import check_attributes, current_workflow
from django_dbos.engine import steps, system_db, wakeups
from django_dbos.engine.executor import application_version as current_version
from django_dbos.engine.executor import get_executor
from django_dbos.engine.handles import WorkflowHandle
from django_dbos.engine.workflows import context_for_recovery, run_in_pool
from django_dbos.errors import (
    DBOSInvalidArgumentError,
    DBOSNonExistentWorkflowError,
    DBOSWorkflowConflictIDError,
)
from django_dbos.models import (
    TERMINAL_STATUSES,
    WorkflowStatus,
    WorkflowStatusString,
    now_ms,
)
from django_dbos.registry import WorkflowDefinition, registry
from django_dbos.signals import announce_finished

logger = logging.getLogger(__name__)
S = WorkflowStatusString
T = TypeVar("T")

# Not final yet: cancel stops these (a finished workflow's outcome is final).
ACTIVE_STATUSES = (S.PENDING.value, S.ENQUEUED.value, S.DELAYED.value)
# Resume puts these back to PENDING (ENQUEUED/DELAYED: started at once, past the queue).
RESUMABLE_STATUSES = (
    S.CANCELLED.value,
    S.ERROR.value,
    S.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value,
    S.ENQUEUED.value,
    S.DELAYED.value,
)
FINAL_STATUSES = tuple(sorted(status.value for status in TERMINAL_STATUSES))

STATUS = WorkflowStatus._meta.db_table


# -- errors (to move to errors.py) -------------------------------------------------------------


# -- validation --------------------------------------------------------------------------------


def check_workflow_id(value: Any, argument: str = "workflow_id") -> str:
    if not isinstance(value, str) or not value:
        raise DBOSInvalidArgumentError(argument, value, "a non-empty string")
    return value


def check_workflow_ids(values: Any) -> list[str]:
    """A list (or tuple) of IDs, duplicates dropped in order; a bare string is a mistake."""
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise DBOSInvalidArgumentError("workflow_ids", values, "a list of workflow ID strings")
    return list(dict.fromkeys(check_workflow_id(v, "workflow_ids[]") for v in values))


def check_count(value: Any, argument: str, minimum: int, maximum: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        limits = f"from {minimum} to {maximum}" if maximum else f"of at least {minimum}"
        raise DBOSInvalidArgumentError(argument, value, f"an integer {limits}")
    return value


def _check_flag(value: Any, argument: str) -> bool:
    if not isinstance(value, bool):
        raise DBOSInvalidArgumentError(argument, value, "True or False")
    return value


# -- shared helpers ----------------------------------------------------------------------------


def _conn() -> BaseDatabaseWrapper:
    return system_db.connection()


def _atomic() -> transaction.Atomic:
    return transaction.atomic(using=_conn().alias)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def _durably(name: str, fn: Callable[..., T], *args: Any) -> T:
    """Inside a workflow: run ``fn`` as a step named ``name`` (recorded once, replayed after);
    elsewhere: a plain call."""
    ctx = current_workflow()
    if ctx is None or ctx.in_step:
        return fn(*args)
    return steps.run_step(steps.StepConfig(name=name), fn, args, {})


def _tree(
    cursor: CursorWrapper,
    roots: list[str],
    *,
    child_status: str | None = None,
    parent_statuses: Sequence[str] = (),
) -> list[tuple[str, str, str]]:
    """``(workflow_id, status, name)`` of ``roots`` and all their descendants, deepest first,
    in one recursive query. With ``child_status``, only descendants in that status whose parent
    is in it too (or is a root in one of ``parent_statuses``)."""
    guard, params = "", []
    if child_status is not None:
        allowed = (child_status, *parent_statuses)
        guard = f"WHERE c.status = %s AND tree.status IN ({_marks(allowed)})"
        params = [child_status, *allowed]
    cursor.execute(
        f"WITH RECURSIVE tree(workflow_uuid, status, depth) AS ("
        f"SELECT workflow_uuid, status, 0 FROM {STATUS} WHERE workflow_uuid IN ({_marks(roots)}) "
        f"UNION SELECT c.workflow_uuid, c.status, tree.depth + 1 FROM {STATUS} c "
        f"JOIN tree ON c.parent_workflow_id = tree.workflow_uuid {guard}) "
        f"SELECT s.workflow_uuid, s.status, s.name FROM {STATUS} s "
        "JOIN tree ON tree.workflow_uuid = s.workflow_uuid ORDER BY tree.depth DESC",
        [*roots, *params],
    )
    # a root that is also another root's descendant comes twice: keep its deepest place
    rows: dict[str, tuple[str, str, str]] = {}
    for row in cursor.fetchall():
        rows.setdefault(row[0], (row[0], row[1], row[2]))
    return list(rows.values())


def _rows(cursor: CursorWrapper, ids: list[str]) -> list[tuple[str, str, str]]:
    cursor.execute(
        f"SELECT workflow_uuid, status, name FROM {STATUS} WHERE workflow_uuid IN ({_marks(ids)})",
        ids,
    )
    return [(row[0], row[1], row[2]) for row in cursor.fetchall()]


def _require_all(requested: Iterable[str], found: Iterable[str]) -> None:
    present = set(found)
    for workflow_id in requested:
        if workflow_id not in present:
            raise DBOSNonExistentWorkflowError(workflow_id)


def _after_commit(fn: Callable[[], Any]) -> None:
    transaction.on_commit(fn, using=_conn().alias)


def _stop_here(workflow_ids: list[str]) -> None:
    """Once committed: executions of these workflows in this process stop at their next durable
    operation (even mid-sleep), and local waiters on their results look again."""

    def stop() -> None:
        executor = get_executor()
        for workflow_id in workflow_ids:
            executor.stop_workflow(workflow_id, "cancelled")
            wakeups.signal(("done", workflow_id))

    _after_commit(stop)


# -- cancel ------------------------------------------------------------------------------------


def _cancel(workflow_ids: list[str]) -> list[str]:
    with _atomic(), _conn().cursor() as cursor:
        tree = _tree(cursor, workflow_ids)
        _require_all(workflow_ids, (row[0] for row in tree))
        targets = [row[0] for row in tree if row[1] in ACTIVE_STATUSES]
        if not targets:
            return []
        cursor.execute(
            f"UPDATE {STATUS} SET status = %s, deduplication_id = NULL, updated_at = %s "
            f"WHERE workflow_uuid IN ({_marks(targets)}) "
            f"AND status IN ({_marks(ACTIVE_STATUSES)}) RETURNING workflow_uuid, name",
            [S.CANCELLED.value, now_ms(), *targets, *ACTIVE_STATUSES],
        )
        cancelled = [(row[0], row[1]) for row in cursor.fetchall()]
        for workflow_id, name in cancelled:
            announce_finished(workflow_id, name, S.CANCELLED.value, None)
        _stop_here([workflow_id for workflow_id, _ in cancelled])
    if cancelled:
        logger.info("Cancelled workflow(s) %s", ", ".join(w for w, _ in cancelled))
    return [workflow_id for workflow_id, _ in cancelled]


def cancel_workflows(workflow_ids: Any) -> list[str]:
    """Cancel the workflows and all their descendants that are not final yet; the IDs that
    became CANCELLED. Unknown IDs raise ``DBOSNonExistentWorkflowError`` (nothing changes)."""
    ids = check_workflow_ids(workflow_ids)
    if not ids:
        return []
    return _durably("DBOS.cancelWorkflow", _cancel, ids)


# -- resume ------------------------------------------------------------------------------------


def _resume_sql(count: int) -> str:
    columns = ", ".join(system_db.SUMMARY_COLUMNS)
    return (
        f"UPDATE {STATUS} SET status = %s, executor_id = %s, application_version = %s, "
        "output = NULL, error = NULL, recovery_attempts = 0, queue_name = NULL, "
        "deduplication_id = NULL, started_at_epoch_ms = %s, updated_at = %s, "
        # a deadline that has passed starts again from now (none if the workflow had no
        # timeout of its own, only an inherited deadline); a future deadline stays
        "workflow_deadline_epoch_ms = CASE WHEN workflow_deadline_epoch_ms <= %s THEN "
        "(CASE WHEN workflow_timeout_ms IS NULL THEN NULL ELSE %s + workflow_timeout_ms END) "
        "ELSE workflow_deadline_epoch_ms END "
        f"WHERE workflow_uuid IN ({', '.join(['%s'] * count)}) "
        f"AND status IN ({_marks(RESUMABLE_STATUSES)}) RETURNING {columns}"
    )


def _resume(workflow_ids: list[str]) -> list[tuple[str, Future[Any] | None]]:
    executor = get_executor()
    executor.ensure_started()  # heartbeating before any row names us as its owner
    with _atomic(), _conn().cursor() as cursor:
        # a cancel cascades to descendants, so a resume brings back the cancelled ones
        tree = _tree(
            cursor,
            workflow_ids,
            child_status=S.CANCELLED.value,
            parent_statuses=RESUMABLE_STATUSES,
        )
        _require_all(workflow_ids, (row[0] for row in tree))
        targets = [row for row in tree if row[1] in RESUMABLE_STATUSES]
        definitions = {name: registry.get_workflow(name, wid) for wid, _, name in targets}
        resumed: list[system_db.WorkflowSummary] = []
        if targets:
            now = now_ms()
            ids = [row[0] for row in targets]
            owner = [S.PENDING.value, executor.executor_id, current_version()]
            params: list[Any] = [*owner, now, now, now, now, *ids, *RESUMABLE_STATUSES]
            cursor.execute(_resume_sql(len(ids)), params)
            resumed = [system_db.WorkflowSummary(*row) for row in cursor.fetchall()]
    if resumed:
        logger.info("Resumed workflow(s) %s", ", ".join(s.workflow_id for s in resumed))
    # deepest first: a resumed parent re-attaches to children already running again
    by_id = {summary.workflow_id: summary for summary in resumed}
    futures = {
        wid: _launch(definitions[name], by_id[wid]) for wid, _, name in targets if wid in by_id
    }
    return [(workflow_id, futures.get(workflow_id)) for workflow_id in workflow_ids]


def _launch(
    definition: WorkflowDefinition, summary: system_db.WorkflowSummary
) -> Future[Any] | None:
    """Run a workflow that is now PENDING under this executor on the pool, from its checkpoints.
    Inside the caller's transaction it starts once that commits (the handle then polls)."""
    executor = get_executor()
    previous = executor.active.get(summary.workflow_id)
    args, kwargs = serialization.deserialize_args(summary.inputs or "")

    def submit() -> Future[Any]:
        return executor.submit(_run_resumed, definition, summary, args, kwargs, previous)

    if _conn().in_atomic_block:
        _after_commit(submit)
        return None
    return submit()


def _run_resumed(
    definition: WorkflowDefinition,
    summary: system_db.WorkflowSummary,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    previous: Any,
) -> Any:
    """A pool thread's entry for resume and fork. When this process was still running the
    workflow (a cancelled step that had not returned yet), wait for that execution to end first
    so it cannot race this one; if it carried on and finished the workflow, run nothing."""
    executor = get_executor()
    workflow_id = summary.workflow_id
    if previous is not None:
        while executor.active.get(workflow_id) is previous:
            time.sleep(0.01)
        current = system_db.get_summary(workflow_id)
        if (
            current is None
            or current.status != S.PENDING
            or (current.executor_id != executor.executor_id)
        ):
            raise DBOSWorkflowConflictIDError(workflow_id)
    if not executor.reserve(workflow_id):
        raise DBOSWorkflowConflictIDError(workflow_id)  # re-attached by its parent meanwhile
    try:
        ctx = context_for_recovery(summary)
    except BaseException:
        executor.release(workflow_id)
        raise
    return run_in_pool(definition, ctx, args, kwargs, True)


def resume_workflows(workflow_ids: Any) -> list[WorkflowHandle]:
    """Put CANCELLED, ERROR, MAX_RECOVERY_ATTEMPTS_EXCEEDED (and ENQUEUED/DELAYED) workflows
    back to PENDING under this executor and run them here from their last checkpoint; handles in
    the order given. Other statuses are left alone (their handles are returned)."""
    ids = check_workflow_ids(workflow_ids)
    if not ids:
        return []
    ctx = current_workflow()
    if ctx is not None and not ctx.in_step:
        resumed = _durably("DBOS.resumeWorkflow", lambda: [w for w, _ in _resume(ids)])
        return [WorkflowHandle(workflow_id) for workflow_id in resumed]
    return [WorkflowHandle(workflow_id, future) for workflow_id, future in _resume(ids)]


def _requeue(workflow_ids: list[str], queue_name: str) -> list[str]:
    with _atomic(), _conn().cursor() as cursor:
        tree = _tree(
            cursor,
            workflow_ids,
            child_status=S.CANCELLED.value,
            parent_statuses=RESUMABLE_STATUSES,
        )
        _require_all(workflow_ids, (row[0] for row in tree))
        targets = [row[0] for row in tree if row[1] in RESUMABLE_STATUSES]
        if not targets:
            return []
        now = now_ms()
        cursor.execute(
            f"UPDATE {STATUS} SET status = %s, queue_name = %s, queue_partition_key = NULL, "
            "executor_id = NULL, output = NULL, error = NULL, recovery_attempts = 0, "
            "deduplication_id = NULL, started_at_epoch_ms = NULL, delay_until_epoch_ms = NULL, "
            # a deadline that has passed is dropped: the claim starts it again from the
            # workflow's own timeout; a future deadline stays
            "updated_at = %s, workflow_deadline_epoch_ms = CASE "
            "WHEN workflow_deadline_epoch_ms <= %s THEN NULL ELSE workflow_deadline_epoch_ms END "
            f"WHERE workflow_uuid IN ({_marks(targets)}) "
            f"AND status IN ({_marks(RESUMABLE_STATUSES)}) RETURNING workflow_uuid",
            [S.ENQUEUED.value, queue_name, now, now, *targets, *RESUMABLE_STATUSES],
        )
        requeued = [row[0] for row in cursor.fetchall()]
        if _conn().vendor == "postgresql":  # the enqueue trigger fires on INSERT only
            cursor.execute("SELECT pg_notify('dbos_workflow_enqueued', %s)", [queue_name])
        wakeups.signal_after_commit(("enqueued", queue_name))
    if requeued:
        logger.info("Re-enqueued workflow(s) %s on %s", ", ".join(requeued), queue_name)
    return requeued


def enqueue_resumed(workflow_ids: Any, queue_name: str) -> list[str]:
    """Resume by enqueueing, for callers that run nothing themselves (``DBOSClient``): the
    resumable workflows and their cancelled descendants become ENQUEUED on ``queue_name``,
    ownerless, keeping their checkpoints, inputs and application version, so a worker serving
    that queue claims them and replays them from their last checkpoint. A deadline that has
    passed is dropped (the claim restarts it from the workflow's own timeout). Other statuses
    are left alone. Returns the IDs given (duplicates dropped, in order); an unknown ID raises
    ``DBOSNonExistentWorkflowError`` and nothing changes. The caller checks that the queue
    exists and is not partitioned (a resumed row has no partition key)."""
    ids = check_workflow_ids(workflow_ids)
    if ids:
        _durably("DBOS.resumeWorkflow", _requeue, ids, queue_name)
    return ids


# -- delete ------------------------------------------------------------------------------------


def _dependent_tables() -> list[tuple[str, str]]:
    """(table, column) of every row that belongs to a workflow (ON DELETE CASCADE in the ORM):
    steps, messages, events, event history, streams, and whatever is added later."""
    tables: list[tuple[str, str]] = []
    for relation in WorkflowStatus._meta.related_objects:
        if relation.on_delete is models.CASCADE and (relation.one_to_many or relation.one_to_one):
            field = relation.field
            tables.append((relation.related_model._meta.db_table, str(field.column)))
    return tables


def delete_rows(cursor: CursorWrapper, workflow_ids: list[str]) -> None:
    """Delete these workflows and every row that belongs to them (inside the caller's
    transaction: a workflow goes whole or not at all)."""
    if not workflow_ids:
        return
    marks = _marks(workflow_ids)
    for table, column in _dependent_tables():
        cursor.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", workflow_ids)
    cursor.execute(f"DELETE FROM {STATUS} WHERE workflow_uuid IN ({marks})", workflow_ids)


def _delete(workflow_ids: list[str], delete_children: bool) -> list[str]:
    with _atomic(), _conn().cursor() as cursor:
        found = _tree(cursor, workflow_ids) if delete_children else _rows(cursor, workflow_ids)
        _require_all(workflow_ids, (row[0] for row in found))
        delete_rows(cursor, [row[0] for row in found])
        # a running one stops at its next durable operation (its checkpoints are refused anyway)
        _stop_here([row[0] for row in found if row[1] in ACTIVE_STATUSES])
    logger.info("Deleted workflow(s) %s", ", ".join(row[0] for row in found))
    return [row[0] for row in found]


def delete_workflows(workflow_ids: Any, delete_children: Any = False) -> list[str]:
    """Delete the workflows (and, with ``delete_children``, all their descendants) with all
    their rows, in one transaction, whatever their status; the IDs deleted."""
    ids = check_workflow_ids(workflow_ids)
    children = _check_flag(delete_children, "delete_children")
    if not ids:
        return []
    return _durably("DBOS.deleteWorkflow", _delete, ids, children)


# -- attributes --------------------------------------------------------------------------------


def _update_attributes(workflow_id: str, attributes: dict[str, Any] | None, merge: bool) -> None:
    alias = _conn().alias
    with _atomic():
        rows = WorkflowStatus.objects.using(alias).filter(workflow_uuid=workflow_id)
        stored = list(rows.select_for_update().values_list("attributes", flat=True))
        if not stored:
            raise DBOSNonExistentWorkflowError(workflow_id)
        current = json.loads(stored[0]) if stored[0] else {}
        new = {**current, **(attributes or {})} if merge else attributes
        # updated_at is left alone: on a finished workflow it is its completion time
        rows.update(attributes=json.dumps(new) if new else None)


def update_workflow_attributes(workflow_id: Any, attributes: Any, merge: Any = True) -> None:
    """Merge ``attributes`` into a workflow's stored attributes (``merge=False``: replace them;
    None clears them). Attributes are a flat dict of str keys to JSON scalars."""
    workflow_id = check_workflow_id(workflow_id)
    merge = _check_flag(merge, "merge")
    if attributes is None and merge:
        raise DBOSInvalidArgumentError("attributes", None, "a dict (None only with merge=False)")
    checked = check_attributes(attributes) if attributes is not None else None
    _durably("DBOS.updateWorkflowAttributes", _update_attributes, workflow_id, checked, merge)

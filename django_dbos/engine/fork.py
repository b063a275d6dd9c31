"""Forking: a new workflow with the same inputs whose history before ``start_step`` is copied
(checkpoints, event history and events, stream entries) in one transaction, then run on this
process's pool, or left for a worker of the requested application version; or, for a caller
that runs nothing itself (``DBOSClient``), enqueued on a queue for a worker (``enqueue_fork``).
"""

from __future__ import annotations

import json
import logging
import uuid
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from django_dbos.context import StartOptions, current_workflow
from django_dbos.engine import system_db, wakeups
from django_dbos.engine.control import (
    STATUS,
    S,
    _atomic,
    _conn,
    _durably,
    _launch,
    check_count,
    check_workflow_id,
)
from django_dbos.engine.executor import application_version as current_version
from django_dbos.engine.executor import get_executor
from django_dbos.engine.handles import WorkflowHandle
from django_dbos.engine.queues import _queue_columns
from django_dbos.errors import (
    DBOSInvalidArgumentError,
    DBOSInvalidStartStepError,
    DBOSNonExistentWorkflowError,
    DBOSWorkflowIDInUseError,
)
from django_dbos.models import (
    OperationOutput,
    StreamEntry,
    WorkflowEvent,
    WorkflowEventHistory,
    now_ms,
)
from django_dbos.registry import registry

if TYPE_CHECKING:
    from django_dbos.models import QueueConfig
    from django_dbos.queues import Queue

logger = logging.getLogger(__name__)


def _copy_sql(model: type[models.Model], conn: BaseDatabaseWrapper) -> str:
    """INSERT ... SELECT copying a workflow's rows of ``model`` with function_id < start_step
    to another workflow (every concrete column but the auto primary key)."""
    quote = conn.ops.quote_name
    table = quote(model._meta.db_table)
    columns = [
        str(field.column)
        for field in model._meta.concrete_fields
        if not (field.primary_key and isinstance(field, models.AutoField))
    ]
    selected = ["%s" if column == "workflow_uuid" else quote(column) for column in columns]
    return (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) "
        f"SELECT {', '.join(selected)} FROM {table} "
        "WHERE workflow_uuid = %s AND function_id < %s"
    )


def _rebuild_events_sql(conn: BaseDatabaseWrapper) -> str:
    """Each event key's value as of the fork point: its latest copied history entry."""
    quote = conn.ops.quote_name
    events = quote(WorkflowEvent._meta.db_table)
    history = quote(WorkflowEventHistory._meta.db_table)
    return (
        f"INSERT INTO {events} (workflow_uuid, {quote('key')}, value) "
        f"SELECT h.workflow_uuid, h.{quote('key')}, h.value FROM {history} h "
        "WHERE h.workflow_uuid = %s AND h.function_id = ("
        f"SELECT MAX(l.function_id) FROM {history} l "
        f"WHERE l.workflow_uuid = h.workflow_uuid AND l.{quote('key')} = h.{quote('key')})"
    )


def check_fork_arguments(
    workflow_id: Any, start_step: Any, version: Any
) -> tuple[str, int, str | None]:
    """``(workflow_id, start_step, application_version)`` checked, before anything is read or
    written (``DBOSInvalidArgumentError`` names the bad one)."""
    workflow_id = check_workflow_id(workflow_id)
    start_step = check_count(start_step, "start_step", 1)
    if version is not None and (not isinstance(version, str) or not version):
        raise DBOSInvalidArgumentError("application_version", version, "a non-empty string")
    return workflow_id, start_step, version


def _fork(
    source_id: str,
    start_step: int,
    version: str | None,
    options: StartOptions,
    queued: dict[str, Any] | None = None,
) -> tuple[str, Future[Any] | None]:
    """Write the fork (and run it here when it is for this version). With ``queued`` (a queue's
    columns, ``_queue_columns``) it is written ENQUEUED, ownerless, and this process neither
    runs it nor becomes an executor; its timeout then starts when a worker claims it."""
    fork_id = options.workflow_id or str(uuid.uuid4())
    if queued is None:
        version = version or current_version()
    runs_here = queued is None and version == current_version()
    executor = get_executor() if runs_here else None  # a queued fork never makes an executor
    if executor is not None:
        executor.ensure_started()
    conn = _conn()
    with _atomic(), conn.cursor() as cursor:
        cursor.execute(
            "SELECT name, inputs, authenticated_user, attributes, class_name, config_name, "
            f"(SELECT MAX(function_id) FROM {system_db.STEPS_TABLE} WHERE workflow_uuid = %s) "
            f"FROM {STATUS} WHERE workflow_uuid = %s",
            [source_id, source_id],
        )
        row = cursor.fetchone()
        if row is None:
            raise DBOSNonExistentWorkflowError(source_id)
        name, inputs, user, attributes, class_name, config_name, last_step = row
        if start_step > (last_step or 0) + 1:
            raise DBOSInvalidStartStepError(source_id, start_step, last_step or 0)
        definition = registry.get_workflow(name, source_id) if executor is not None else None
        if options.attributes:
            attributes = json.dumps({**json.loads(attributes or "{}"), **options.attributes})
        now = now_ms()
        timeout_ms = int(options.timeout_seconds * 1000) if options.timeout_seconds else None
        values = {
            "workflow_uuid": fork_id,
            "status": S.PENDING.value,
            "name": name,
            "class_name": class_name,
            "config_name": config_name,
            "inputs": inputs,
            # a fork for another version waits, ownerless, for a worker of that version
            "executor_id": executor.executor_id if executor is not None else None,
            "application_version": version,
            "recovery_attempts": 0,
            "priority": 0,
            "workflow_timeout_ms": timeout_ms,
            "workflow_deadline_epoch_ms": now + timeout_ms if timeout_ms else None,
            "started_at_epoch_ms": now,
            "forked_from": source_id,
            "authenticated_user": user,
            "attributes": attributes,
            "created_at": now,
            "updated_at": now,
        }
        if queued is not None:  # not started yet: no deadline, no start time
            values.update(workflow_deadline_epoch_ms=None, started_at_epoch_ms=None, **queued)
        if not system_db.insert_workflow(values):
            _check_existing_fork(cursor, fork_id, source_id)
            return fork_id, None
        if start_step > 1:
            for model in (OperationOutput, WorkflowEventHistory, StreamEntry):
                cursor.execute(_copy_sql(model, conn), [fork_id, source_id, start_step])
            cursor.execute(_rebuild_events_sql(conn), [fork_id])
    logger.info("Forked workflow %s at step %d as %s", source_id, start_step, fork_id)
    if definition is None or executor is None:
        return fork_id, None
    deadline = values["workflow_deadline_epoch_ms"]
    summary = system_db.WorkflowSummary(
        fork_id,
        S.PENDING,
        name,
        inputs,
        None,
        None,
        executor.executor_id,
        version,
        0,
        deadline,
        None,
    )
    return fork_id, _launch(definition, summary)


def _check_existing_fork(cursor: CursorWrapper, fork_id: str, source_id: str) -> None:
    """The chosen ID exists: the same fork asked for again is answered with it (nothing is
    written); any other workflow under that ID is an error."""
    cursor.execute(
        f"SELECT status, name, forked_from FROM {STATUS} WHERE workflow_uuid = %s", [fork_id]
    )
    row = cursor.fetchone()
    if row is None or row[2] != source_id:
        raise DBOSWorkflowIDInUseError(fork_id, row[0] if row else "deleted", row[1] if row else "")


def fork_workflow(
    workflow_id: Any, start_step: Any, application_version: Any, options: StartOptions
) -> WorkflowHandle:
    """Start a new workflow with the inputs of ``workflow_id`` whose checkpoints, event history
    and stream entries before ``start_step`` are copied; it runs here unless it is for another
    application version. Nothing is written when an argument is wrong."""
    source, step, version = check_fork_arguments(workflow_id, start_step, application_version)
    ctx = current_workflow()
    if ctx is not None and not ctx.in_step:
        fork_id = _durably("DBOS.forkWorkflow", lambda: _fork(source, step, version, options)[0])
        return WorkflowHandle(fork_id)
    fork_id, future = _fork(source, step, version, options)
    return WorkflowHandle(fork_id, future)


def enqueue_fork(
    workflow_id: Any,
    start_step: Any,
    application_version: Any,
    options: StartOptions,
    queue: Queue | QueueConfig,
) -> str:
    """Fork by enqueueing, for callers that run nothing themselves (``DBOSClient``): the fork is
    written ENQUEUED on ``queue`` (with ``options.queue_partition_key`` if it is partitioned),
    ownerless, for a worker of ``application_version`` (None: whichever worker claims it);
    ``options.timeout_seconds`` starts at the claim. Its ID is ``options.workflow_id`` or a
    uuid4; the same fork asked for again returns it. Returns the fork's ID. Nothing is written
    on bad input (``DBOSInvalidArgumentError``, ``DBOSInvalidStartStepError``,
    ``DBOSNonExistentWorkflowError``, ``DBOSWorkflowIDInUseError``)."""
    source, step, version = check_fork_arguments(workflow_id, start_step, application_version)
    columns = _queue_columns(queue, options, version)

    def fork() -> str:
        fork_id = _fork(source, step, version, options, queued=columns)[0]
        wakeups.signal_after_commit(("enqueued", queue.name))  # a worker in this process
        return fork_id

    return _durably("DBOS.forkWorkflow", fork)

"""Recovery: resume this executor's PENDING workflows and adopt those of dead executors.

Adoption is one guarded UPDATE (``executor_id`` still the dead one, status still PENDING), so
exactly one live executor wins each workflow. Every recovery counts in ``recovery_attempts``;
past the workflow's ``max_recovery_attempts`` it is dead-lettered instead of run again.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any

from django_dbos import serialization
from django_dbos.conf import dbos_settings
from django_dbos.context import WorkflowContext
from django_dbos.engine import system_db
from django_dbos.engine.executor import ProcessExecutor, application_version, get_executor
from django_dbos.engine.handles import WorkflowHandle
from django_dbos.engine.workflows import context_for_recovery, run_in_pool
from django_dbos.errors import (
    DBOSMaxRecoveryAttemptsExceededError,
    DBOSWorkflowFunctionNotFoundError,
)
from django_dbos.models import WorkflowStatusString
from django_dbos.registry import registry
from django_dbos.signals import announce_finished

logger = logging.getLogger(__name__)
S = WorkflowStatusString


def _claim(summary: system_db.WorkflowSummary, from_executor: str | None) -> WorkflowContext | None:
    """Reserve the workflow in this process, then claim it in the database. The context to run
    it with, holding the reservation; None (nothing reserved) if it is not ours to run."""
    executor = get_executor()
    if not executor.reserve(summary.workflow_id):
        return None  # already running (or about to) in this process
    try:
        ctx = _claim_reserved(executor, summary, from_executor)
    except BaseException:
        executor.release(summary.workflow_id)
        raise
    if ctx is None:
        executor.release(summary.workflow_id)
    return ctx


def _claim_reserved(
    executor: ProcessExecutor, summary: system_db.WorkflowSummary, from_executor: str | None
) -> WorkflowContext | None:
    executor.ensure_started()
    attempts = system_db.claim_for_recovery(
        summary.workflow_id, from_executor, executor.executor_id
    )
    if attempts is None:
        return None  # another executor won it, or it finished meanwhile
    definition = registry.workflows.get(summary.name)
    if definition is None:
        missing = DBOSWorkflowFunctionNotFoundError(summary.name, summary.workflow_id)
        logger.error("%s", missing)
        system_db.finish_workflow(
            summary.workflow_id,
            S.ERROR,
            executor.executor_id,
            error=serialization.serialize_exception(missing),
        )
        return None
    limit = definition.max_recovery_attempts
    if limit is None:
        limit = dbos_settings().MAX_RECOVERY_ATTEMPTS
    if attempts > limit:
        error = DBOSMaxRecoveryAttemptsExceededError(summary.workflow_id, limit)
        logger.error("%s", error)
        if system_db.set_status(
            summary.workflow_id, S.MAX_RECOVERY_ATTEMPTS_EXCEEDED, only_if=[S.PENDING]
        ):
            announce_finished(
                summary.workflow_id, summary.name, S.MAX_RECOVERY_ATTEMPTS_EXCEEDED, error
            )
        return None
    logger.info(
        "Recovering workflow %s (%s), attempt %d, from executor %s",
        summary.workflow_id,
        summary.name,
        attempts,
        from_executor,
        extra={"workflow_id": summary.workflow_id},
    )
    return context_for_recovery(summary)


def adopt_if_orphaned(summary: system_db.WorkflowSummary) -> WorkflowContext | None:
    """Claim a PENDING workflow that nobody runs (None if it is running or not ours to run):
    its executor is dead, or it is this process, which is not running it (it was interrupted,
    e.g. by a simulated crash)."""
    if summary.application_version != application_version():
        return None
    ours = summary.executor_id == get_executor().executor_id
    if not ours and system_db.executor_is_alive(
        summary.executor_id, dbos_settings().EXECUTOR_TIMEOUT
    ):
        return None
    return _claim(summary, summary.executor_id)


def _submit(summary: system_db.WorkflowSummary, ctx: WorkflowContext) -> Future[Any]:
    executor = get_executor()
    try:
        definition = registry.get_workflow(summary.name, summary.workflow_id)
        args, kwargs = serialization.deserialize_args(summary.inputs or "")
        return executor.submit(run_in_pool, definition, ctx, args, kwargs, True)
    except BaseException:
        executor.release(summary.workflow_id)
        raise


def recover_workflow(workflow_id: str, from_executor: str | None) -> WorkflowHandle | None:
    """Claim one PENDING workflow from ``from_executor`` and run it on the pool."""
    summary = system_db.get_summary(workflow_id)
    if summary is None or summary.status != S.PENDING:
        return None
    ctx = _claim(summary, from_executor)
    if ctx is None:
        return None
    return WorkflowHandle(workflow_id, _submit(summary, ctx))


def recover_own_pending(executor: ProcessExecutor | None = None) -> list[WorkflowHandle]:
    """Resume the PENDING workflows recorded under this executor's ID (a restart with a fixed
    ``--executor-id``, or a test simulating a crash)."""
    executor = executor or get_executor()
    handles = []
    for workflow_id in system_db.own_pending_workflows(executor.executor_id, application_version()):
        handle = recover_workflow(workflow_id, executor.executor_id)
        if handle is not None:
            handles.append(handle)
    return handles


def adopt_orphans(executor: ProcessExecutor | None = None) -> list[WorkflowHandle]:
    """Adopt PENDING workflows of dead executors, up to this process's free threads."""
    executor = executor or get_executor()
    slots = executor.free_slots
    if slots <= 0:
        return []
    handles = []
    orphans = system_db.orphaned_workflows(
        application_version(), dbos_settings().EXECUTOR_TIMEOUT, slots
    )
    for workflow_id, dead_executor in orphans:
        if dead_executor == executor.executor_id:
            continue  # ours: only recover_own_pending resumes those
        handle = recover_workflow(workflow_id, dead_executor)
        if handle is not None:
            handles.append(handle)
    if len(orphans) < slots:  # everything adoptable is adopted: the dead have nothing left
        system_db.forget_dead_executors(dbos_settings().EXECUTOR_TIMEOUT)
    return handles

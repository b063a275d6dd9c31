"""Handles to started workflows, and waiting for a workflow's outcome.

A handle knows a workflow ID and, when this process runs the workflow, the future of that run.
Waiting reads the status row; local finishes wake waiters at once, others are seen by polling
with backoff (LISTEN/NOTIFY wake-ups come with workflow communication).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any

from django.db import connections

from django_dbos import serialization
from django_dbos.engine import system_db, wakeups
from django_dbos.engine.records import WorkflowStatus
from django_dbos.engine.threads import to_thread
from django_dbos.errors import (
    DBOSAwaitedWorkflowCancelledError,
    DBOSMaxRecoveryAttemptsExceededError,
    DBOSNonExistentWorkflowError,
    DBOSWorkflowCancelledError,
    DBOSWorkflowConflictIDError,
    DBOSWorkflowInterrupted,
    TimeoutError,
)
from django_dbos.models import TERMINAL_STATUSES, WorkflowStatusString

S = WorkflowStatusString


def notify_finished(workflow_id: str) -> None:
    """Wake this process's waiters on ``workflow_id`` (they re-read its status: a finish still
    inside an uncommitted outer transaction only costs them another look)."""
    wakeups.signal(("done", workflow_id))


def outcome(summary: system_db.WorkflowSummary) -> Any:
    if summary.status == S.SUCCESS:
        return serialization.deserialize(summary.output)
    if summary.status == S.ERROR:
        raise serialization.deserialize_exception(summary.error or "")
    if summary.status == S.CANCELLED:
        raise DBOSAwaitedWorkflowCancelledError(summary.workflow_id)
    raise DBOSMaxRecoveryAttemptsExceededError(
        summary.workflow_id, max(0, summary.recovery_attempts - 1)
    )


def wait_for_result(workflow_id: str, timeout: float | None = None) -> Any:
    """Read the status row until the workflow is final, woken by its finish (this process, or
    NOTIFY on PostgreSQL) and polling with backoff otherwise."""
    backoff = wakeups.Backoff(wakeups.deadline_after(timeout))
    with wakeups.waiting_for(("done", workflow_id)) as woken:
        while True:
            summary = system_db.get_summary(workflow_id)
            if summary is None:
                raise DBOSNonExistentWorkflowError(workflow_id)
            if summary.status in TERMINAL_STATUSES:
                return outcome(summary)
            if backoff.expired():
                raise TimeoutError(workflow_id, timeout or 0)
            backoff.wait(woken)


def first_finished(workflow_ids: list[str], timeout: float | None = None) -> str:
    """The first of ``workflow_ids`` to reach a final status (one query per look)."""
    backoff = wakeups.Backoff(wakeups.deadline_after(timeout))
    with wakeups.waiting_for(*(("done", workflow_id) for workflow_id in workflow_ids)) as woken:
        while True:
            statuses = system_db.statuses_of(workflow_ids)
            missing = [w for w in workflow_ids if w not in statuses]
            if missing:
                raise DBOSNonExistentWorkflowError(missing[0])
            for workflow_id in workflow_ids:
                if statuses[workflow_id] in TERMINAL_STATUSES:
                    return workflow_id
            if backoff.expired():
                raise TimeoutError(workflow_ids[0], timeout or 0)
            backoff.wait(woken)


def _unfinished(exc: BaseException, workflow_id: str) -> bool:
    """The pool's execution stopped without a final status (shutdown, taken over elsewhere)."""
    if isinstance(exc, DBOSWorkflowCancelledError) and exc.workflow_id == workflow_id:
        return True
    return isinstance(exc, DBOSWorkflowInterrupted | DBOSWorkflowConflictIDError) or not (
        isinstance(exc, Exception)
    )


class WorkflowHandle:
    """A started workflow: ``get_result()`` waits for it, ``get_status()`` reads its row."""

    def __init__(self, workflow_id: str, future: Future[Any] | None = None) -> None:
        self.workflow_id = workflow_id
        self.future = future

    def get_workflow_id(self) -> str:
        return self.workflow_id

    def get_result(self, timeout: float | None = None) -> Any:
        started = time.monotonic()
        if self.future is not None:
            try:
                return self.future.result(timeout)
            except FutureTimeoutError:
                raise TimeoutError(self.workflow_id, timeout or 0) from None
            except BaseException as exc:
                if not _unfinished(exc, self.workflow_id):
                    raise
            if timeout is not None:
                timeout = max(0.0, timeout - (time.monotonic() - started))
        return wait_for_result(self.workflow_id, timeout)

    def get_status(self) -> WorkflowStatus:
        from django_dbos.engine.introspection import get_workflow_status

        status = get_workflow_status(self.workflow_id)
        if status is None:
            raise DBOSNonExistentWorkflowError(self.workflow_id)
        return status

    def __repr__(self) -> str:
        return f"<WorkflowHandle {self.workflow_id}>"


class WorkflowHandleAsync:
    """The async twin of ``WorkflowHandle``."""

    def __init__(self, workflow_id: str, future: Future[Any] | None = None) -> None:
        self.workflow_id = workflow_id
        self._sync = WorkflowHandle(workflow_id, future)

    def get_workflow_id(self) -> str:
        return self.workflow_id

    async def get_result(self, timeout: float | None = None) -> Any:
        # waiting must not hold a database thread: use a plain worker thread
        return await asyncio.to_thread(_closing(self._sync.get_result), timeout)

    async def get_status(self) -> WorkflowStatus:
        return await to_thread(self._sync.get_status)

    def __repr__(self) -> str:
        return f"<WorkflowHandleAsync {self.workflow_id}>"


def _closing(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a blocking call made on a throwaway thread so it closes its DB connections."""

    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        finally:
            connections.close_all()

    return call


def retrieve_workflow(workflow_id: str) -> WorkflowHandle:
    if system_db.get_summary(workflow_id) is None:
        raise DBOSNonExistentWorkflowError(workflow_id)
    return WorkflowHandle(workflow_id)

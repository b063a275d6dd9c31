"""Handles to started workflows, and waiting for a workflow's outcome.

A handle knows a workflow ID and, when this process runs the workflow, the future of that run.
Waiting reads the status row; local finishes wake waiters at once, others are seen by polling
with backoff (LISTEN/NOTIFY wake-ups come with workflow communication).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any

from django.db import connections

from django_dbos import serialization
from django_dbos.conf import dbos_settings
from django_dbos.engine import system_db
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

# Woken whenever a workflow of this process finishes, so local waiters need not poll.
_finished = threading.Condition()


def notify_finished() -> None:
    with _finished:
        _finished.notify_all()


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
    """Poll the status row (woken early by local finishes) until the workflow is final."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.002
    while True:
        summary = system_db.get_summary(workflow_id)
        if summary is None:
            raise DBOSNonExistentWorkflowError(workflow_id)
        if summary.status in TERMINAL_STATUSES:
            return outcome(summary)
        pause = min(delay, dbos_settings().POLL_INTERVAL)
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(workflow_id, timeout or 0)
            pause = min(pause, remaining)
        with _finished:
            _finished.wait(pause)
        delay *= 2


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

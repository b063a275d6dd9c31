"""The handles a ``DBOSClient`` returns (DBOS's ``WorkflowHandleClientPolling`` and
``WorkflowHandleClientAsyncPolling``): ``WorkflowHandle``s whose waits never start a thread.

An engine handle's ``get_result`` starts the process's LISTEN thread on PostgreSQL; a client's
polls instead (``wakeups.polling_only``), with the same backoff as on SQLite, because the
process is not the client's to start threads in. The async handle waits on a throwaway thread
that closes its database connection, not on the engine's shared async database threads.

Imported only once Django is set up (the engine's handles need the models).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import connections

from django_dbos.engine import wakeups
from django_dbos.engine.handles import WorkflowHandle, WorkflowHandleAsync
from django_dbos.engine.records import WorkflowStatus

R = TypeVar("R")


class WorkflowHandleClientPolling(WorkflowHandle):
    """A client's handle: ``get_result()`` polls the status row (never starts a thread)."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id)

    def get_result(self, timeout: float | None = None) -> Any:
        with wakeups.polling_only():
            return super().get_result(timeout)

    def __repr__(self) -> str:
        return f"<WorkflowHandleClientPolling {self.workflow_id}>"


class WorkflowHandleClientAsyncPolling(WorkflowHandleAsync):
    """The async twin of ``WorkflowHandleClientPolling``."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id)
        self._polling = WorkflowHandleClientPolling(workflow_id)

    async def get_result(self, timeout: float | None = None) -> Any:
        return await asyncio.to_thread(_closing(self._polling.get_result), timeout)

    async def get_status(self) -> WorkflowStatus:
        return await asyncio.to_thread(_closing(self._polling.get_status))

    def __repr__(self) -> str:
        return f"<WorkflowHandleClientAsyncPolling {self.workflow_id}>"


def _closing(fn: Callable[..., R]) -> Callable[..., R]:
    """``fn`` for a throwaway thread: it closes the thread's database connections when done."""

    def call(*args: Any) -> R:
        try:
            return fn(*args)
        finally:
            connections.close_all()

    return call

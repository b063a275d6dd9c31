"""This process's identity as an executor: its ID, heartbeat thread, thread pool and the
workflows it is running right now.

Nothing starts at import or in ``ready()``: the first workflow this process runs registers the
executor row and starts the heartbeat (web processes), or ``dbos_worker`` does so at start.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from django.db import connections

from django_dbos.conf import dbos_settings
from django_dbos.context import WorkflowContext
from django_dbos.engine import system_db
from django_dbos.engine.threads import WorkflowPool
from django_dbos.errors import DBOSWorkflowConflictIDError
from django_dbos.registry import registry

logger = logging.getLogger(__name__)
T = TypeVar("T")


def refresh_connections() -> None:
    """Close connections that broke, keep healthy ones: ``close_old_connections`` without the
    CONN_MAX_AGE=0 rule, because a pool thread reopening Postgres for every workflow would cost
    more than the workflow."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and conn.errors_occurred and not conn.is_usable():
            conn.close()
        elif conn.connection is not None and conn.errors_occurred:
            conn.errors_occurred = False
        if conn.in_atomic_block:  # a workflow left a transaction open: never reuse it
            conn.close()


def application_version() -> str:
    return dbos_settings().APPLICATION_VERSION or registry.code_version()


class ProcessExecutor:
    """One per process (see ``get_executor``)."""

    def __init__(self) -> None:
        configured = dbos_settings().EXECUTOR_ID
        self.executor_id: str = configured or (
            f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        self.explicit_id = bool(configured)
        self.threads = dbos_settings().WORKER_THREADS
        self._lock = threading.Lock()
        self._started = False
        self.registered = False
        self.served_queues: list[str] | None = None
        """The queues this process's dispatcher serves (``serve``); None in a process without
        one. Recorded on the executor row, so the admin shows queues no live worker serves."""
        self._pool: WorkflowPool | None = None
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self.active: dict[str, WorkflowContext] = {}
        self._reserved: set[str] = set()
        self.shutting_down = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0

    # -- lifecycle ------------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Register this executor and start heartbeating, once (before its first workflow, so
        that no live process's workflow is ever taken for an orphan)."""
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            self._register_outside_callers_transaction()
            self.registered = True
            self._heartbeat_thread = threading.Thread(
                target=self._heartbeat_loop, name="dbos-heartbeat", daemon=True
            )
            self._heartbeat_thread.start()
            self._started = True

    def serve(self, queue_names: list[str]) -> None:
        """Record the queues this process's dispatcher serves; call before ``ensure_started``
        (a worker), which writes them with the executor row. If the row is already written
        (this process ran a workflow first), it is written again with them."""
        with self._lock:
            self.served_queues = list(dict.fromkeys(queue_names))
            if self._started:
                self._register_outside_callers_transaction()

    def _register(self) -> None:
        system_db.register_executor(
            self.executor_id,
            socket.gethostname(),
            os.getpid(),
            application_version(),
            self.served_queues,
        )

    def _register_outside_callers_transaction(self) -> None:
        """The executor row must commit now, whatever the caller's transaction does (a view
        under ATOMIC_REQUESTS, a test): write it from a short-lived thread of its own.

        Not on SQLite inside a transaction: there the caller holds the one write lock, so the
        thread could never write; the row goes in with the caller's transaction instead (and
        the heartbeat puts it back if that transaction rolls back)."""
        caller = system_db.connection()
        if caller.vendor == "sqlite" and caller.in_atomic_block:
            self._register()
            return
        errors: list[BaseException] = []

        def register() -> None:
            try:
                self._register()
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)
            finally:
                connections.close_all()

        thread = threading.Thread(target=register, name="dbos-register-executor")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]

    def _heartbeat_loop(self) -> None:
        interval = dbos_settings().HEARTBEAT_INTERVAL
        try:
            while not self._heartbeat_stop.wait(interval):
                try:
                    self.stop_finished_elsewhere()
                    if system_db.heartbeat(self.executor_id) == 0:
                        # our row vanished (garbage-collected): put it back
                        self._register()
                except Exception:
                    logger.exception("Heartbeat of executor %s failed", self.executor_id)
                    refresh_connections()
        finally:
            connections.close_all()

    def stop(self, *, retire: bool = True, wait: bool = False) -> None:
        """Stop heartbeating (and let others adopt our leftovers at once when ``retire``); the
        pool's threads exit after their current workflow (``wait``: join them briefly)."""
        self._heartbeat_stop.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(timeout=5)
        if self._started and retire:
            try:
                system_db.retire_executor(self.executor_id)
            finally:
                connections.close_all()
        if self._pool is not None:
            self._pool.shutdown(wait=wait)
            self._pool = None
        self._started = False

    # -- running workflows -----------------------------------------------------------------

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn`` on the pool; threads keep their healthy connections between tasks."""
        with self._lock:
            if self._pool is None:
                self._pool = WorkflowPool(self.threads)
            self._in_flight += 1
        future: Future[T] = Future()
        self._pool.put(future, self._run_task, fn, args)
        return future

    def _run_task(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        refresh_connections()
        try:
            return fn(*args)
        finally:
            refresh_connections()
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()

    @property
    def free_slots(self) -> int:
        with self._lock:
            return max(0, self.threads - self._in_flight)

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._lock:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def reserve(self, workflow_id: str) -> bool:
        """Claim the right to run ``workflow_id`` in this process; False if an execution here
        already has it (running, or about to: submitted to the pool, not yet started). Every
        execution reserves before it starts, so two threads of one process never both run a
        workflow; the reservation ends with the execution (``untrack``) or ``release``."""
        with self._lock:
            if workflow_id in self.active or workflow_id in self._reserved:
                return False
            self._reserved.add(workflow_id)
            return True

    def release(self, workflow_id: str) -> None:
        """Give up a reservation that did not lead to an execution."""
        with self._lock:
            self._reserved.discard(workflow_id)
            self._idle.notify_all()

    def track(self, ctx: WorkflowContext) -> None:
        """The execution holding the reservation starts."""
        with self._lock:
            self._reserved.discard(ctx.workflow_id)
            running = self.active.get(ctx.workflow_id)
            if running is not None and running is not ctx:
                raise DBOSWorkflowConflictIDError(ctx.workflow_id)
            self.active[ctx.workflow_id] = ctx
            if self.shutting_down.is_set():
                ctx.request_stop("shutdown")

    def untrack(self, ctx: WorkflowContext) -> None:
        with self._lock:
            if self.active.get(ctx.workflow_id) is ctx:
                del self.active[ctx.workflow_id]
            self._idle.notify_all()

    def is_running_here(self, workflow_id: str) -> bool:
        with self._lock:
            return workflow_id in self.active or workflow_id in self._reserved

    def stop_workflow(self, workflow_id: str, reason: str) -> bool:
        """Ask a workflow running here to stop at its next durable operation."""
        with self._lock:
            ctx = self.active.get(workflow_id)
        if ctx is None:
            return False
        ctx.request_stop(reason)
        return True

    def stop_finished_elsewhere(self) -> None:
        """Workflows running here that another process cancelled (or ended) stop at their next
        durable operation, even while they sleep or wait: one query per heartbeat."""
        with self._lock:
            running = list(self.active)
        if not running:
            return
        for workflow_id, status in system_db.statuses_of(running).items():
            if status != system_db.PENDING:
                self.stop_workflow(workflow_id, "cancelled" if status == "CANCELLED" else "ended")

    def begin_shutdown(self) -> None:
        """Every running workflow stops at its next durable operation and stays PENDING."""
        with self._lock:
            self.shutting_down.set()
            for ctx in self.active.values():
                ctx.request_stop("shutdown")

    def wait_for_active(self, timeout: float) -> list[str]:
        """Wait until no workflow runs here; the IDs still running after ``timeout``."""
        with self._lock:
            self._idle.wait_for(lambda: not self.active and self._in_flight == 0, timeout)
            return sorted(self.active)


_executor: ProcessExecutor | None = None
_executor_lock = threading.Lock()


def get_executor() -> ProcessExecutor:
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ProcessExecutor()
    return _executor


def reset_executor(executor_id: str | None = None) -> ProcessExecutor:
    """Replace this process's executor (a worker taking a given ID; tests)."""
    global _executor
    with _executor_lock:
        if _executor is not None:
            _executor.stop(retire=False)
        _executor = ProcessExecutor()
        if executor_id:
            _executor.executor_id = executor_id
            _executor.explicit_id = True
    return _executor

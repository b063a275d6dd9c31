"""Thread pools, and blocking database work from async code.

Django refuses ORM calls in a thread that runs an event loop. Async workflows therefore await
their database work on a small pool of our own threads, which keep their connections between
calls and close them when the pool shuts down (``close_async_db_threads``). A *sync* step or
transaction called from an async workflow is still a blocking call by the user's choice: it runs
whole on a helper thread while the loop waits for it.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from django.db import connections

T = TypeVar("T")


def in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` now; off the event loop's thread if this thread runs one."""
    if not in_event_loop():
        return fn(*args)
    context = contextvars.copy_context()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = context.run(fn, *args)
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, name="dbos-blocking-call")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


_ASYNC_DB_THREADS = 4
_async_db_pool: WorkflowPool | None = None
_async_db_lock = threading.Lock()


def to_thread(fn: Callable[..., T], *args: Any) -> Awaitable[T]:
    """Await ``fn(*args)`` on a database thread, carrying the context variables along."""
    global _async_db_pool
    if _async_db_pool is None:
        with _async_db_lock:
            if _async_db_pool is None:
                _async_db_pool = WorkflowPool(_ASYNC_DB_THREADS, name="dbos-async-db")
    future: Future[T] = Future()
    _async_db_pool.put(future, contextvars.copy_context().run, fn, *args)
    return asyncio.wrap_future(future)


def close_async_db_threads() -> None:
    """Stop the async database threads; they close their connections (tests, shutdown)."""
    global _async_db_pool
    with _async_db_lock:
        pool, _async_db_pool = _async_db_pool, None
    if pool is not None:
        pool.shutdown(wait=True)


class WorkflowPool:
    """A fixed set of threads running submitted tasks.

    Not ``ThreadPoolExecutor``: its threads cannot run clean-up when they end, and ours must
    close their database connections (an open connection from a dead pool blocks ``DROP
    DATABASE`` and holds a Postgres backend)."""

    def __init__(self, size: int, name: str = "dbos-workflow") -> None:
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def put(self, future: Future[Any], fn: Callable[..., Any], *args: Any) -> None:
        self._tasks.put((future, fn, args))

    def shutdown(self, wait: bool = False) -> None:
        """Threads finish their current task, then exit (closing their connections)."""
        for _ in self._threads:
            self._tasks.put(None)
        if wait:
            for thread in self._threads:
                thread.join(timeout=5)

    def _work(self) -> None:
        try:
            while (task := self._tasks.get()) is not None:
                future, fn, args = task
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to whoever waits on the future
                    future.set_exception(exc)
        finally:
            connections.close_all()

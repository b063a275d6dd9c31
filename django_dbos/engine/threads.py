"""Running blocking database work from async code (and sync code called inside an event loop).

Django refuses ORM calls in a thread that runs an event loop. Async workflows therefore await
their database work on Django's own sync thread (``sync_to_async``, thread-sensitive, as the
async ORM does). A *sync* step or transaction called from an async workflow is still a blocking
call by the user's choice: it runs whole on a helper thread while the loop waits for it.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
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
    return outcome["value"]  # type: ignore[no-any-return]


def to_thread(fn: Callable[..., T], *args: Any) -> Awaitable[T]:
    """Await ``fn(*args)`` on Django's sync thread, carrying the context variables along."""
    return sync_to_async(fn, thread_sensitive=True)(*args)

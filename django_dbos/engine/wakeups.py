"""Wake-ups for code that waits on the database: ``recv``, ``get_event``, ``read_stream``,
``get_result`` and ``wait_first``.

A waiter registers interest in a key (``("msg", workflow_id, topic)``, ``("event", workflow_id,
key)``, ``("stream", workflow_id, key)``, ``("done", workflow_id)``, ``("enqueued", queue)``),
looks at the database, and sleeps until the key is signalled or a poll interval passes, then
looks again. Keys are signalled from two places:

- in this process, right after the change commits (``signal_after_commit``);
- on PostgreSQL, from other processes too: triggers installed by the migrations ``pg_notify`` on
  every message, event, stream entry and finished workflow, and one listener thread per process
  (its own connection, built from the same ``DATABASES`` entry) turns those into signals.

On SQLite other processes are seen by polling (with backoff up to ``POLL_INTERVAL``); polling
also backs up LISTEN/NOTIFY, so a lost notification only costs latency, never correctness.
That is also what a caller that must not start threads gets (``polling_only``: ``DBOSClient``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import connections, transaction

from django_dbos.conf import dbos_settings

logger = logging.getLogger(__name__)

Key = tuple[str, ...]
SEPARATOR = "\x1f"  # the payload separator the triggers use (chr(31))
CHANNELS = {
    "dbos_notifications": "msg",
    "dbos_events": "event",
    "dbos_streams": "stream",
    "dbos_workflow_finished": "done",
    "dbos_workflow_enqueued": "enqueued",  # payload: the queue name (the dispatcher waits)
}

_lock = threading.Lock()
_waiters: dict[Key, set[threading.Event]] = {}
_polling_only: ContextVar[bool] = ContextVar("django_dbos_polling_only", default=False)


def signal(key: Key) -> None:
    """Wake every local waiter on ``key``."""
    with _lock:
        events = list(_waiters.get(key, ()))
    for event in events:
        event.set()


def signal_after_commit(key: Key) -> None:
    """Wake local waiters once the current transaction on the system database commits."""
    transaction.on_commit(lambda: signal(key), using=dbos_settings().DATABASE)


@contextmanager
def waiting_for(*keys: Key) -> Iterator[threading.Event]:
    """Register before looking at the database, so a change between the look and the wait
    still wakes us (the Event stays set). One Event for all ``keys``. Starts this process's
    LISTEN thread (PostgreSQL) unless the caller is ``polling_only``."""
    event = threading.Event()
    with _lock:
        for key in keys:
            _waiters.setdefault(key, set()).add(event)
    if not _polling_only.get():
        listener.ensure_running()
    try:
        yield event
    finally:
        with _lock:
            for key in keys:
                waiters = _waiters.get(key)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del _waiters[key]


@contextmanager
def polling_only() -> Iterator[None]:
    """Waits begun inside this block never start the LISTEN thread: they see other processes'
    changes by polling with ``Backoff`` (up to ``POLL_INTERVAL``), as on SQLite. For callers
    that must not start threads in a process that is not theirs (``DBOSClient``). A context
    variable: it covers this thread and code run in a copy of its context (``asyncio.to_thread``,
    ``run_blocking``). A listener the process already runs still wakes these waits sooner."""
    token = _polling_only.set(True)
    try:
        yield
    finally:
        _polling_only.reset(token)


def is_polling_only() -> bool:
    """Whether waits begun here poll instead of starting the LISTEN thread."""
    return _polling_only.get()


class Backoff:
    """Poll intervals for a waiter: short at first, growing to ``POLL_INTERVAL``."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self._delay = 0.005

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def expired(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def wait(self, event: threading.Event, stop: threading.Event | None = None) -> None:
        pause = min(self._delay, dbos_settings().POLL_INTERVAL)
        remaining = self.remaining()
        if remaining is not None:
            pause = max(0.0, min(pause, remaining))
        if stop is not None and stop.is_set():
            return
        event.wait(pause)
        event.clear()
        self._delay *= 2


def deadline_after(timeout_seconds: float | None) -> float | None:
    return None if timeout_seconds is None else time.monotonic() + timeout_seconds


class _Listener:
    """One LISTEN connection per process (PostgreSQL only), started by the first waiter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        if connections[dbos_settings().DATABASE].vendor != "postgresql":
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="dbos-listener", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def _connect(self) -> Any:
        import psycopg

        params = dict(connections[dbos_settings().DATABASE].get_connection_params())
        params.pop("cursor_factory", None)
        params.pop("context", None)
        conn = psycopg.connect(**params, autocommit=True)
        for channel in CHANNELS:
            conn.execute(f"LISTEN {channel}")
        return conn

    def _run(self) -> None:
        retry = 0.1
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except Exception:
                logger.exception("LISTEN connection failed; retrying in %.1fs", retry)
                self._stop.wait(retry)
                retry = min(retry * 2, 5.0)
                continue
            retry = 0.1
            try:
                with conn:
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            kind = CHANNELS.get(notify.channel)
                            if kind is not None:
                                signal((kind, *notify.payload.split(SEPARATOR)))
            except Exception:
                if not self._stop.is_set():
                    logger.warning("LISTEN connection lost; reconnecting", exc_info=True)


listener = _Listener()

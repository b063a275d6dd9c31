"""The worker loop behind ``manage.py dbos_worker`` (and ``testing.running_worker``).

Start: register the executor, resume our own PENDING workflows, start the scheduler thread
(cron schedules, engine/scheduler.py; stopped before the grace period). Then, every recovery
interval, adopt the workflows of dead executors, and in between claim queued workflows (the
dispatcher) whenever one is enqueued, a slot frees up, or the queues' polling interval passes.
Stop (an Event, set by a signal handler or a test): every running workflow halts at its next
checkpoint and stays PENDING; after the grace period the stragglers are logged and the executor
is retired, so live workers adopt them at once.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import nullcontext
from typing import Any

from django.db import connections

from django_dbos.conf import dbos_settings
from django_dbos.engine import wakeups
from django_dbos.engine.dispatcher import Dispatcher, served_queues
from django_dbos.engine.executor import ProcessExecutor, refresh_connections
from django_dbos.engine.recovery import adopt_orphans, recover_own_pending
from django_dbos.engine.scheduler_loop import SchedulerThread

logger = logging.getLogger(__name__)


def run_worker(
    executor: ProcessExecutor,
    stop: threading.Event,
    *,
    burst: bool = False,
    grace_period: float | None = None,
    queues: list[str] | None = None,
    schedules: bool = True,
) -> list[str]:
    """Run until ``stop`` is set (or, with ``burst``, until no work is left). ``queues``: the
    queue names to serve (None: every declared queue). ``schedules``: also run the scheduler
    thread (never in burst mode). Returns the IDs of workflows still running when the grace
    period ran out."""
    settings = dbos_settings()
    dispatcher = Dispatcher(executor, served_queues(queues))
    executor.serve([queue.name for queue in dispatcher.queues])
    executor.ensure_started()
    scheduler = SchedulerThread().start() if schedules and not burst else None
    try:
        recovered = recover_own_pending(executor)
        if recovered:
            logger.info(
                "Resumed %d workflow(s) of executor %s", len(recovered), executor.executor_id
            )
        waiting = wakeups.waiting_for(*dispatcher.keys) if dispatcher.queues else nullcontext()
        with waiting as woken:
            next_recovery = 0.0
            while not stop.is_set():
                refresh_connections()
                adopted: list[Any] = []
                if time.monotonic() >= next_recovery:
                    adopted = _adopt(executor)
                    next_recovery = time.monotonic() + (
                        0.05 if burst else settings.recovery_interval
                    )
                if woken is not None:
                    woken.clear()
                claimed = _dispatch(dispatcher)
                if burst and not adopted and not claimed and executor.wait_idle(timeout=0.05):
                    # idle now; but what just finished may have enqueued more (a child on a
                    # queue): one more look before leaving
                    if not _dispatch(dispatcher):
                        break
                    continue
                if claimed and executor.free_slots > 0:
                    continue  # there may be more right away
                pause = next_recovery - time.monotonic()
                if dispatcher.queues:
                    idle = executor.free_slots > 0
                    wait = dispatcher.idle_interval() if idle else dispatcher.polling_interval
                    pause = min(pause, wait)
                _pause(stop, woken, pause)
    finally:
        if scheduler is not None:
            scheduler.stop()
        stragglers = shutdown(executor, grace_period)
    return stragglers


def _adopt(executor: ProcessExecutor) -> list[Any]:
    try:
        adopted = adopt_orphans(executor)
    except Exception:
        logger.exception("Scanning for orphaned workflows failed; retrying")
        connections.close_all()
        return []
    if adopted:
        logger.info("Adopted %d workflow(s) of dead executors", len(adopted))
    return adopted


def _dispatch(dispatcher: Dispatcher) -> int:
    if not dispatcher.queues:
        return 0
    try:
        return dispatcher.run_round()
    except Exception:
        logger.exception("Claiming queued workflows failed; retrying")
        connections.close_all()
        return 0


def _pause(stop: threading.Event, woken: threading.Event | None, seconds: float) -> None:
    """Sleep up to ``seconds``: until a wake-up, or ``stop`` (looked at every 0.1 s)."""
    deadline = time.monotonic() + max(0.0, seconds)
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if woken is None:
            if stop.wait(remaining):
                return
        elif woken.wait(min(remaining, 0.1)):
            return


def shutdown(executor: ProcessExecutor, grace_period: float | None = None) -> list[str]:
    grace = dbos_settings().SHUTDOWN_GRACE_PERIOD if grace_period is None else grace_period
    executor.begin_shutdown()
    started = time.monotonic()
    stragglers = executor.wait_for_active(grace)
    if stragglers:
        logger.warning(
            "%d workflow(s) still running after %.1fs; they stay PENDING and will be recovered: %s",
            len(stragglers),
            time.monotonic() - started,
            ", ".join(stragglers),
        )
    # With stragglers still inside user code, stay "alive" until this process is gone: they are
    # adopted once the heartbeat goes stale, never while they may still be writing.
    executor.stop(retire=not stragglers)
    connections.close_all()
    return stragglers

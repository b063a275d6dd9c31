"""The worker loop behind ``manage.py dbos_worker`` (and ``testing.running_worker``).

Start: register the executor, resume our own PENDING workflows. Then, every recovery interval,
adopt the workflows of dead executors. Stop (an Event, set by a signal handler or a test): every
running workflow halts at its next checkpoint and stays PENDING; after the grace period the
stragglers are logged and the executor is retired, so live workers adopt them at once.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import connections

from django_dbos.conf import dbos_settings
from django_dbos.engine.executor import ProcessExecutor, refresh_connections
from django_dbos.engine.recovery import adopt_orphans, recover_own_pending

logger = logging.getLogger(__name__)


def run_worker(
    executor: ProcessExecutor,
    stop: threading.Event,
    *,
    burst: bool = False,
    grace_period: float | None = None,
) -> list[str]:
    """Run until ``stop`` is set (or, with ``burst``, until no work is left). Returns the IDs
    of workflows still running when the grace period ran out."""
    settings = dbos_settings()
    executor.ensure_started()
    try:
        recovered = recover_own_pending(executor)
        if recovered:
            logger.info(
                "Resumed %d workflow(s) of executor %s", len(recovered), executor.executor_id
            )
        while not stop.is_set():
            refresh_connections()
            try:
                adopted = adopt_orphans(executor)
            except Exception:
                logger.exception("Scanning for orphaned workflows failed; retrying")
                adopted = []
                connections.close_all()
            if adopted:
                logger.info("Adopted %d workflow(s) of dead executors", len(adopted))
            if burst and not adopted and executor.wait_idle(timeout=0.05):
                break
            stop.wait(0.05 if burst else settings.recovery_interval)
    finally:
        stragglers = shutdown(executor, grace_period)
    return stragglers


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

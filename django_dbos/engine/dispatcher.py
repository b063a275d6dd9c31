"""The dispatcher: each round, claim what this worker may run from the queues it serves and
start it on the executor's pool.

Per queue and round: the budget is the pool's free slots, less what ``worker_concurrency``
leaves; ``claim`` (engine/queues.py) applies the global limits in the database. Claimed
workflows run like recovered ones (reserve, a context with their checkpoints, ``run_in_pool``),
so a worker that dies leaves them PENDING under its executor ID and recovery/adoption finishes
them. Between rounds the worker sleeps until an ``("enqueued", queue)`` wake-up, a freed slot,
or the queues' polling interval.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Any

from django.db import DatabaseError
from django.db.models import Min

from django_dbos import serialization
from django_dbos.conf import dbos_settings
from django_dbos.context import WorkflowContext
from django_dbos.engine import system_db, wakeups
from django_dbos.engine.executor import ProcessExecutor
from django_dbos.engine.queues import Claimed, claim, requeue, store_config
from django_dbos.engine.workflows import run_in_pool
from django_dbos.errors import DBOSConfigurationError, DBOSWorkflowFunctionNotFoundError
from django_dbos.models import WorkflowStatus, WorkflowStatusString, now_ms
from django_dbos.queues import (
    DEFAULT_POLLING_INTERVAL_SEC,
    INTERNAL_QUEUE_NAME,
    Queue,
    internal_queue,
)
from django_dbos.registry import registry

logger = logging.getLogger("django_dbos.worker")
S = WorkflowStatusString


def served_queues(names: list[str] | None) -> list[Queue]:
    """The declared queues named (all of them for None), plus the internal queue (schedule
    firings, debounced workflows), which every worker serves; raises
    ``DBOSConfigurationError`` for a name no ``Queue`` declares in this process."""
    internal = internal_queue()
    if names is None:
        return [registry.queues[name] for name in sorted(registry.queues)]
    unknown = sorted(set(names) - set(registry.queues))
    if unknown:
        declared = sorted(set(registry.queues) - {INTERNAL_QUEUE_NAME})
        raise DBOSConfigurationError(
            f"No queue is declared under the name(s) {', '.join(map(repr, unknown))}; declared: "
            f"{', '.join(map(repr, declared)) or 'none'}."
        )
    return [registry.queues[name] for name in dict.fromkeys(names)] + (
        [] if internal.name in names else [internal]
    )


class Dispatcher:
    def __init__(self, executor: ProcessExecutor, queues: list[Queue]) -> None:
        self.executor = executor
        self.queues = queues
        self._lock = threading.Lock()
        self.running: dict[str, set[str]] = {queue.name: set() for queue in queues}
        self.stored = False

    @property
    def keys(self) -> list[wakeups.Key]:
        return [("enqueued", queue.name) for queue in self.queues]

    @property
    def polling_interval(self) -> float:
        return min(
            (queue.polling_interval_sec for queue in self.queues),
            default=DEFAULT_POLLING_INTERVAL_SEC,
        )

    def idle_interval(self) -> float:
        """How long a worker with free threads may sleep without a wake-up: the queues'
        polling interval, or until the next delayed (e.g. debounced) row of a served queue
        falls due, if sooner. Nothing signals a delay running out, so without this a due row
        would wait for the next poll. Rows already due are left out: one the limits hold back
        must not make the worker spin. (A worker with no free thread sleeps until one frees
        up, and needs no query to know it.)"""
        interval = self.polling_interval
        now = now_ms()
        try:
            due = (
                WorkflowStatus.objects.using(dbos_settings().DATABASE)
                .filter(
                    queue_name__in=[queue.name for queue in self.queues],
                    status=S.DELAYED,
                    delay_until_epoch_ms__gt=now,
                )
                .aggregate(due=Min("delay_until_epoch_ms"))["due"]
            )
        except DatabaseError:
            return interval  # the next round reports (and recovers from) a lost connection
        return interval if due is None else min(interval, (due - now) / 1000)

    def run_round(self) -> int:
        """Claim and start what the limits allow; the number of workflows started."""
        if not self.stored:
            for queue in self.queues:
                store_config(queue)
            self.stored = True
        started = 0
        for queue in self.queues:
            budget = self.executor.free_slots
            if budget <= 0:
                break
            if queue.worker_concurrency is not None:
                with self._lock:
                    budget = min(budget, queue.worker_concurrency - len(self.running[queue.name]))
            if budget <= 0:
                continue
            claimed = claim(queue, self.executor.executor_id, budget)
            if claimed:
                try:
                    started += self._start(queue, claimed)
                except BaseException:
                    # claimed but never started here: back on the queue, not stuck PENDING
                    # under a live executor that will never run them
                    unstarted = [
                        c.summary.workflow_id
                        for c in claimed
                        if not self.executor.is_running_here(c.summary.workflow_id)
                    ]
                    requeue(unstarted, self.executor.executor_id)
                    raise
        return started

    def _start(self, queue: Queue, claimed: list[Claimed]) -> int:
        checkpoints = system_db.load_checkpoints_of([c.summary.workflow_id for c in claimed])
        started = 0
        for item in claimed:
            summary = item.summary
            definition = registry.workflows.get(summary.name)
            if definition is None:
                self._fail(
                    summary, DBOSWorkflowFunctionNotFoundError(summary.name, summary.workflow_id)
                )
                continue
            try:
                args, kwargs = serialization.deserialize_args(summary.inputs or "")
            except Exception as exc:
                self._fail(summary, exc)
                continue
            if not self.executor.reserve(summary.workflow_id):
                continue  # already running here (cannot happen for a row we just claimed)
            ctx = WorkflowContext(
                workflow_id=summary.workflow_id,
                name=summary.name,
                executor_id=self.executor.executor_id,
                application_version=summary.application_version or "",
                checkpoints=checkpoints.get(summary.workflow_id, {}),
                deadline_epoch_ms=summary.deadline_epoch_ms,
            )
            with self._lock:
                self.running[queue.name].add(summary.workflow_id)
            logger.info(
                "Started workflow %s (%s) from queue %s",
                summary.workflow_id,
                summary.name,
                queue.name,
                extra={"workflow_id": summary.workflow_id, "queue_name": queue.name},
            )
            began = time.monotonic()
            try:
                future = self.executor.submit(run_in_pool, definition, ctx, args, kwargs, False)
            except BaseException:
                self.executor.release(summary.workflow_id)
                self._done(queue, summary, began, None)
                raise
            future.add_done_callback(
                lambda done, s=summary, b=began: self._done(queue, s, b, done)  # type: ignore[misc]
            )
            started += 1
        return started

    def _fail(self, summary: system_db.WorkflowSummary, error: Exception) -> None:
        """A claimed workflow that cannot run here ends as ERROR (never a silent hang)."""
        logger.error("%s", error, extra={"workflow_id": summary.workflow_id})
        system_db.finish_workflow(
            summary.workflow_id,
            S.ERROR,
            self.executor.executor_id,
            error=serialization.serialize_exception(error),
        )

    def _done(
        self,
        queue: Queue,
        summary: system_db.WorkflowSummary,
        began: float,
        future: Future[Any] | None,
    ) -> None:
        with self._lock:
            self.running[queue.name].discard(summary.workflow_id)
        error = None if future is None or future.cancelled() else future.exception()
        logger.info(
            "Finished workflow %s (%s) from queue %s in %.3fs%s",
            summary.workflow_id,
            summary.name,
            queue.name,
            time.monotonic() - began,
            f": {type(error).__name__}" if error is not None else "",
            extra={"workflow_id": summary.workflow_id, "queue_name": queue.name},
        )
        wakeups.signal(("enqueued", queue.name))  # a slot is free: look again

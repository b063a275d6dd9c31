"""Queues and workflows for tests/test_queues.py (imported by it, not autodiscovered)."""

from __future__ import annotations

import threading
import time

from django_dbos import DBOS, Queue

fifo = Queue("tests.fifo", worker_concurrency=1)
prio = Queue("tests.prio", worker_concurrency=1, priority_enabled=True)
limited = Queue("tests.limited", concurrency=2, polling_interval_sec=0.05)
per_worker = Queue("tests.per_worker", worker_concurrency=3, polling_interval_sec=0.05)
rated = Queue("tests.rated", limiter={"limit": 3, "period": 0.5}, polling_interval_sec=0.02)
parts = Queue(
    "tests.parts", partition_queue=True, partition_concurrency=1, polling_interval_sec=0.05
)
plain = Queue("tests.plain", polling_interval_sec=0.05)
# each tenant (partition key) may start 2 workflows per 0.5 s, whatever the others do
part_rated = Queue(
    "tests.part_rated",
    partition_queue=True,
    partition_limiter={"limit": 2, "period": 0.5},
    polling_interval_sec=0.02,
)
process_queue = Queue("tests.process", polling_interval_sec=0.05)


class Tracker:
    """What ran, in which order, and how many ran at once (per queue or per partition)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.order: list[str] = []
        self.starts: list[float] = []
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def reset(self) -> None:
        with self.lock:
            self.order.clear()
            self.starts.clear()
            self.running.clear()
            self.peak.clear()

    def enter(self, label: str, group: str) -> None:
        with self.lock:
            self.order.append(label)
            self.starts.append(time.monotonic())
            self.running[group] = self.running.get(group, 0) + 1
            self.peak[group] = max(self.peak.get(group, 0), self.running[group])

    def leave(self, group: str) -> None:
        with self.lock:
            self.running[group] -= 1


tracker = Tracker()


@DBOS.workflow(name="tests.queues.record")
def record(label: str, group: str = "all", seconds: float = 0.0) -> str:
    tracker.enter(label, group)
    try:
        if seconds:
            time.sleep(seconds)
    finally:
        tracker.leave(group)
    return label


@DBOS.step(name="tests.queues.a_step")
def a_step(label: str) -> str:
    tracker.enter(f"step-{label}", "steps")
    tracker.leave("steps")
    return label


@DBOS.workflow(name="tests.queues.enqueuer")
def enqueuer(label: str) -> str:
    a_step(label)
    handle = plain.enqueue(record, f"child-{label}")
    return handle.workflow_id


@DBOS.workflow(name="tests.queues.double")
def double(x: int) -> int:
    return 2 * x

"""Queues and workflows for tests/test_queue_processes.py.

Imported by that test module and by the worker processes it starts (their boot script imports
this module before running ``dbos_worker``, as tests/test_queues.py does), so both sides declare
the same queues and register the same workflows. Not autodiscovered.

Every workflow records what its body did in ``tests.models.Run`` rows (committed by the step
itself), keyed by workflow ID: counting them shows how often a body ran, and the timed step
stores the wall-clock interval (microseconds) it ran in, which lies inside the interval the
workflow was PENDING, so overlapping intervals are workflows the queue let run at once.
"""

from __future__ import annotations

import time

from django_dbos import DBOS, Queue
from tests.models import Run

global_two = Queue("tests.pq.global_two", concurrency=2, polling_interval_sec=0.05)
global_two_one_each = Queue(
    "tests.pq.global_two_one_each",
    concurrency=2,
    worker_concurrency=1,
    polling_interval_sec=0.05,
)
one_per_worker = Queue("tests.pq.one_per_worker", worker_concurrency=1, polling_interval_sec=0.05)
rated = Queue("tests.pq.rated", limiter={"limit": 5, "period": 1.0}, polling_interval_sec=0.02)
killable = Queue("tests.pq.killable", worker_concurrency=4, polling_interval_sec=0.05)
partitioned = Queue(
    "tests.pq.partitioned",
    partition_queue=True,
    partition_concurrency=1,
    polling_interval_sec=0.02,
)

INTERVAL = "interval"


def now_us() -> int:
    return time.time_ns() // 1000


@DBOS.step(name="tests.pq.timed_step")
def timed_step(workflow_id: str, seconds: float) -> None:
    start = now_us()
    if seconds:
        time.sleep(seconds)
    end = now_us()
    Run.objects.create(key=workflow_id, step=f"{INTERVAL} {start} {end}")


@DBOS.workflow(name="tests.pq.timed")
def timed(seconds: float) -> str:
    """One step that records the interval it ran in."""
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None
    timed_step(workflow_id, seconds)
    return workflow_id


@DBOS.step(name="tests.pq.mark")
def mark(workflow_id: str, label: str) -> str:
    Run.objects.create(key=workflow_id, step=label)
    return label


@DBOS.workflow(name="tests.pq.sleeper")
def sleeper(seconds: float) -> str:
    """Step ``a`` (function 1), a durable sleep (function 2), step ``b`` (function 3)."""
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None
    mark(workflow_id, "a")
    DBOS.sleep(seconds)
    mark(workflow_id, "b")
    return workflow_id

"""The django_dbos workflows and queues the ``queue`` benchmark uses (imported after
``django.setup()``), and the worker subprocess of its cross-process latency figure.

``dbos_queue.py`` defines the same workflows for the dbos package, body for body:

- ``one_step``: one no-op step (the drained workflow, and the one enqueued when timing enqueue);
- ``stamp``: returns ``time.time_ns()`` taken as the body starts, then runs one no-op step.
  The wall clock (not ``perf_counter``) so the figure also works across processes.

``worker_main`` (started by ``queue.py`` as ``python -c ...``) runs ``testing.running_worker`` on
one queue in its own process (a real second process: only PostgreSQL's NOTIFY can wake it),
prints ``ready`` on stdout once started, and stops when its stdin closes.
"""

from __future__ import annotations

import time

from django_dbos import DBOS, Queue

#: queue names (their rows are deleted after the run)
ENQUEUE_QUEUE = "bench-queue-enqueue"  # no worker serves it: enqueue alone is timed
DRAIN_QUEUE = "bench-queue-drain"
LATENCY_QUEUE = "bench-queue-latency"
LATENCY_REMOTE_QUEUE = "bench-queue-latency-remote"
QUEUE_NAMES = (ENQUEUE_QUEUE, DRAIN_QUEUE, LATENCY_QUEUE, LATENCY_REMOTE_QUEUE)

enqueue_queue = Queue(ENQUEUE_QUEUE)
drain_queue = Queue(DRAIN_QUEUE)
latency_queue = Queue(LATENCY_QUEUE)
latency_remote_queue = Queue(LATENCY_REMOTE_QUEUE)


@DBOS.step(name="bench.queue.noop")
def noop_step() -> None:
    return None


@DBOS.workflow(name="bench.queue.one_step")
def one_step() -> int:
    noop_step()
    return 1


@DBOS.workflow(name="bench.queue.stamp")
def stamp() -> int:
    started = time.time_ns()
    noop_step()
    return started


def worker_main(queue_name: str, threads: int) -> None:
    import logging
    import sys

    from django_dbos.testing import running_worker

    logging.getLogger("django_dbos.worker").setLevel(logging.WARNING)  # a line per workflow

    with running_worker(queues=[queue_name], threads=threads):
        print("ready", flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin

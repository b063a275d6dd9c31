"""The dbos package's side of the ``queue`` benchmark, run in its own process.

``queue.py`` starts ``python -m benchmarks.dbos_queue ...`` so that DBOS never shares a process
with Django. It defines the workflows of ``queue_workflows.py`` for the dbos package, body for
body, times them with the same helpers (``queue.time_enqueues_with_floor``, ``wait_drained``,
``time_latency``) and the same counts, and prints one JSON object as the last line of stdout.
Nothing here imports Django.

DBOS runs with its defaults (its executor's thread pool, its queue polling of 1 s), except that
this process listens only to the drain and latency queues (``DBOS.listen_queues``), so the
enqueue figure times enqueueing alone. Its queues are registered with ``DBOS.register_queue``
(dbos 3.4); a registered queue is picked up by DBOS's queue manager thread within a second.

Options, launch and clean-up are ``dbos_common.py``'s (no network: see there).
"""

from __future__ import annotations

import gc
import json
import threading
import time
from importlib.metadata import version
from typing import Any

import psycopg
from dbos import DBOS, SetWorkflowID

from benchmarks import dbos_common
from benchmarks.common import RawInsert, conninfo, fresh_id, progress
from benchmarks.queue import time_enqueues_with_floor, time_latency, wait_drained

ENQUEUE_QUEUE = "bench-queue-enqueue"  # not listened to: enqueue alone is timed
DRAIN_QUEUE = "bench-queue-drain"
LATENCY_QUEUE = "bench-queue-latency"  # default polling (1 s)
LATENCY_FAST_QUEUE = "bench-queue-latency-fast"  # polling_interval_sec=0.01
LISTENED = [DRAIN_QUEUE, LATENCY_QUEUE, LATENCY_FAST_QUEUE]
QUEUES = (ENQUEUE_QUEUE, *LISTENED)  # deleted after the run
STATUS_TABLE = "dbos.workflow_status"


@DBOS.step(name="bench.queue.noop")
def noop_step() -> None:
    return None


@DBOS.workflow(name="bench.queue.one_step")
def one_step() -> int:
    noop_step()
    return 1


#: workflow ID -> (an Event set when its body starts, the body's time.time_ns()). DBOS's
#: ``handle.get_result()`` polls the database about once a second, so the benchmark waits on
#: this in-process record instead (the figure itself is the same: body start - t0).
STARTED: dict[str, list[Any]] = {}


@DBOS.workflow(name="bench.queue.stamp")
def stamp() -> int:
    started = time.time_ns()
    record = STARTED.get(str(DBOS.workflow_id))
    if record is not None:
        record[1] = started
        record[0].set()
    noop_step()
    return started


def wait_for_queue_thread(name: str, timeout: float = 10.0) -> float:
    """The wall-clock time at which DBOS's worker thread for queue ``name`` exists (its queue
    manager starts one within a second of the queue's registration)."""
    deadline = time.monotonic() + timeout
    thread_name = f"queue-worker-{name}"
    while time.monotonic() < deadline:
        if any(t.name == thread_name for t in threading.enumerate()):
            return time.time()
        time.sleep(0.001)
    raise RuntimeError(f"DBOS never started a worker thread for queue {name}")


def main(argv: list[str] | None = None) -> None:
    parser = dbos_common.argument_parser(__doc__)
    parser.add_argument("--counts", required=True, help="JSON, as queue.QUICK / queue.FULL")
    parser.add_argument("--settle-ms", type=float, required=True)
    args = parser.parse_args(argv)
    counts = json.loads(args.counts)
    url = args.system_database_url
    params = conninfo(url)

    dbos_common.launch(url, listen_queues=LISTENED)
    dbos_common.delete_rows(url)  # a previous run interrupted before its clean-up
    dbos_common.delete_queues(QUEUES)
    progress(f"dbos {version('dbos')}: launched")
    try:
        figures = measure(params, counts, args.settle_ms)
    finally:
        dbos_common.shutdown(url, args.keep_rows, QUEUES)
    dbos_common.emit(figures)


def measure(params: dict[str, Any], counts: dict[str, Any], settle_ms: float) -> dict[str, Any]:
    enqueue_queue = DBOS.register_queue(ENQUEUE_QUEUE)

    def enqueue_one(workflow_id: str) -> None:
        with SetWorkflowID(workflow_id):
            enqueue_queue.enqueue(one_step)

    warmup, count = counts["enqueue"]
    progress(f"dbos: enqueue, {warmup} warm-up + {count} timed, against the floor")
    raw = RawInsert(params)  # the same floor as django_dbos's, in alternating blocks
    try:
        enqueue = time_enqueues_with_floor(enqueue_one, raw, warmup, count)
    finally:
        raw.close()
    progress(f"dbos: {enqueue['per_s']} enqueues/s, {enqueue['vs_floor']} of the floor")

    # The drain batch is enqueued on the (unserved) enqueue queue, then moved to the drain
    # queue in one UPDATE before that queue is registered: DBOS's Queue.enqueue needs a
    # registered queue, and a registered, listened-to queue would start draining at once.
    drain_count = counts["drain"]
    progress(f"dbos: drain {drain_count} workflows, one process, DBOS defaults")
    batch = [fresh_id() for _ in range(drain_count)]
    for workflow_id in batch:
        enqueue_one(workflow_id)
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(
            f"UPDATE {STATUS_TABLE} SET queue_name = %s WHERE workflow_uuid = ANY(%s)",
            [DRAIN_QUEUE, batch],
        )
    gc.collect()
    DBOS.register_queue(DRAIN_QUEUE)
    began = wait_for_queue_thread(DRAIN_QUEUE)  # the worker for this queue starts here
    drain = wait_drained(params, STATUS_TABLE, DRAIN_QUEUE, drain_count, began)
    progress(f"dbos: drained at {drain['per_s']}/s ({drain['seconds']} s)")

    def stamp_on(queue: Any):
        def call(workflow_id: str) -> int:
            record = STARTED[workflow_id] = [threading.Event(), 0]
            try:
                with SetWorkflowID(workflow_id):
                    queue.enqueue(stamp)
                if not record[0].wait(30):
                    raise RuntimeError(f"{workflow_id} never started")
                return record[1]
            finally:
                STARTED.pop(workflow_id, None)

        return call

    latency_queue = DBOS.register_queue(LATENCY_QUEUE)
    fast_queue = DBOS.register_queue(LATENCY_FAST_QUEUE, polling_interval_sec=0.01)
    wait_for_queue_thread(LATENCY_QUEUE)
    wait_for_queue_thread(LATENCY_FAST_QUEUE)
    warmup, count = counts["latency"]
    slow = counts["slow_latency"]
    progress(f"dbos: enqueue->start, default polling ({slow} samples)")
    # jitter over a whole polling period: back-to-back samples would otherwise phase-lock
    # with the poll (each enqueue landing just after one) and all measure ~1 s
    latency = time_latency(stamp_on(latency_queue), 1, slow, settle_ms, jitter_ms=1000)
    progress(f"dbos: enqueue->start {latency['median_ms']} ms (1 s polling)")
    fast = time_latency(stamp_on(fast_queue), warmup, count, settle_ms)
    progress(f"dbos: enqueue->start {fast['median_ms']} ms (polling_interval_sec=0.01)")
    return {"enqueue": enqueue, "drain": drain, "latency": latency, "latency_fast": fast}


if __name__ == "__main__":
    main()

"""``queue``: enqueue throughput, drain throughput of one worker, and enqueue->start latency of
an idle worker, beside the dbos package, on the same PostgreSQL in the same run.

Figures: ``enqueue_per_s`` (one thread, each enqueue its own transaction); ``drain_per_s``
(``drain_workflows`` queued one-step workflows drained by one in-process worker,
``testing.running_worker(queues=[...], threads=...)``, from the worker's start to the last
workflow's SUCCESS); ``enqueue_to_start_ms`` (median, enqueue in this process to the workflow
body starting in an idle worker in **another** process, woken by LISTEN/NOTIFY), and the same
for the dbos package (``dbos_*``), timed by ``dbos_queue.py`` in a subprocess. See
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg

from benchmarks.common import (
    REPO_ROOT,
    BenchmarkError,
    RawInsert,
    add_dbos_arguments,
    conninfo,
    delete_django_rows,
    describe,
    fresh_id,
    progress,
    run_dbos,
    setup_django,
    sibling_url,
    suite_database,
)

DBOS_SYSTEM_DATABASE = "dbos_bench_queue_sys"
THREADS = 8  # the worker's threads (WORKER_THREADS' default)
SETTLE_MS = 50.0
DRAIN_TIMEOUT_S = 300.0
TARGET_RATIO = 2.0  # drain and enqueue at least 2x the dbos package's
TARGET_LATENCY_MS = 10.0
FLOOR_ROUNDS = 4  # enqueue blocks alternating with raw INSERT+COMMIT blocks

#: enqueue (warm-up, timed), drain workflows, latency (warm-up, timed), dbos default-poll latency
#: samples (each waits for its 1 s poll)
QUICK = {"enqueue": (20, 300), "drain": 300, "latency": (10, 50), "slow_latency": 8}
FULL = {"enqueue": (50, 2000), "drain": 1000, "latency": (20, 200), "slow_latency": 20}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dbos_arguments(parser, DBOS_SYSTEM_DATABASE)
    parser.add_argument(
        "--threads", type=int, default=THREADS, help=f"worker threads (default {THREADS})"
    )


# -- shared with dbos_queue.py (nothing here imports Django or dbos) -------------------------


def time_enqueues(enqueue: Callable[[str], Any], warmup: int, count: int) -> dict[str, Any]:
    """``warmup`` untimed then ``count`` timed back-to-back enqueues on fresh IDs, one thread."""
    for _ in range(warmup):
        enqueue(fresh_id())
    gc.collect()
    ids = [fresh_id() for _ in range(count)]
    samples: list[int] = []
    clock = time.perf_counter_ns
    began = clock()
    for workflow_id in ids:
        started = clock()
        enqueue(workflow_id)
        samples.append(clock() - started)
    elapsed = (clock() - began) / 1e9
    return {"per_s": round(count / elapsed, 1), "detail": describe(samples)}


def time_enqueues_with_floor(
    enqueue: Callable[[str], Any], raw: Callable[[str], Any], warmup: int, count: int
) -> dict[str, Any]:
    """Enqueue throughput measured in ``FLOOR_ROUNDS`` blocks alternating with blocks of a raw
    one-row INSERT + COMMIT on the same database (the floor), so that both see the same
    machine load: ``per_s`` over all enqueue blocks, ``floor_per_s`` over all raw blocks, and
    ``vs_floor`` = per_s / floor_per_s, the load-independent figure the two libraries are
    compared by (the dbos run happens minutes apart from ours, under whatever else the
    machine is doing then)."""
    block = max(count // FLOOR_ROUNDS, 1)
    enqueue_runs, raw_runs = [], []
    for round_no in range(FLOOR_ROUNDS):
        enqueue_runs.append(time_enqueues(enqueue, warmup if round_no == 0 else 0, block))
        raw_runs.append(time_enqueues(raw, warmup if round_no == 0 else 0, block))

    def rate(runs: list[dict[str, Any]]) -> float:
        seconds = sum(block / run["per_s"] for run in runs)
        return round(block * len(runs) / seconds, 1)

    per_s, floor_per_s = rate(enqueue_runs), rate(raw_runs)
    return {
        "per_s": per_s,
        "floor_per_s": floor_per_s,
        "vs_floor": round(per_s / floor_per_s, 3),
        "rounds": FLOOR_ROUNDS,
        "detail": [run["detail"] for run in enqueue_runs],
        "floor_detail": [run["detail"] for run in raw_runs],
    }


def wait_drained(
    params: dict[str, Any], table: str, queue_name: str, count: int, began_epoch: float
) -> dict[str, Any]:
    """Wait until ``count`` workflows of ``queue_name`` are SUCCESS (a cheap COUNT every 10 ms
    on a connection of its own), then read the first claim and last finish from the rows."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    with psycopg.connect(**params, autocommit=True) as conn:
        while True:
            done, failed = conn.execute(
                f"SELECT COUNT(*) FILTER (WHERE status = 'SUCCESS'), "
                f"COUNT(*) FILTER (WHERE status IN ('ERROR', 'CANCELLED', "
                f"'MAX_RECOVERY_ATTEMPTS_EXCEEDED')) FROM {table} WHERE queue_name = %s",
                [queue_name],
            ).fetchone()
            if failed:
                raise BenchmarkError(f"{failed} drained workflow(s) of {queue_name} failed")
            if done >= count:
                break
            if time.monotonic() > deadline:
                raise BenchmarkError(f"only {done}/{count} of {queue_name} done in time")
            time.sleep(0.01)
        first_start, last_done = conn.execute(
            f"SELECT MIN(started_at_epoch_ms), MAX(updated_at) FROM {table} "
            "WHERE queue_name = %s AND status = 'SUCCESS'",
            [queue_name],
        ).fetchone()
    total_s = last_done / 1000 - began_epoch
    steady_s = (last_done - first_start) / 1000
    return {
        "per_s": round(count / total_s, 1),
        "seconds": round(total_s, 3),
        "first_claim_after_s": round(first_start / 1000 - began_epoch, 3),
        "steady_per_s": round(count / steady_s, 1) if steady_s > 0 else None,
        "workflows": count,
    }


def time_latency(
    enqueue_stamp: Callable[[str], int],
    warmup: int,
    count: int,
    settle_ms: float,
    jitter_ms: float = 10.0,
) -> dict[str, Any]:
    """Enqueue->body start, ns by the wall clock: ``enqueue_stamp(id)`` enqueues a ``stamp``
    workflow and returns the body's ``time.time_ns()``; t0 is taken just before the enqueue.
    A settle pause plus up to ``jitter_ms`` first, so the worker is idle and, for a polling
    worker, the enqueue falls at a random point of its polling period."""
    samples: list[int] = []
    for round_no in range(warmup + count):
        time.sleep((settle_ms + random.uniform(0, jitter_ms)) / 1000)
        workflow_id = fresh_id()
        began = time.time_ns()
        started = enqueue_stamp(workflow_id)
        if round_no >= warmup:
            samples.append(started - began)
    return {"median_ms": round(statistics.median(samples) / 1e6, 3), "detail": describe(samples)}


# -- the suite ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    url = suite_database(args.no_dbos)
    counts = QUICK if args.quick else FULL
    settings = setup_django()
    logging.getLogger("django_dbos.worker").setLevel(logging.WARNING)  # a line per workflow
    try:
        ours = measure_ours(url, counts, args.threads)
    finally:
        if not args.keep_rows:
            delete_rows()
    theirs = None
    if not args.no_dbos:
        theirs = measure_dbos(sibling_url(url, args.dbos_system_database), counts, args.keep_rows)
    return summarize(ours, theirs, counts, args.threads, settings)


def measure_ours(url: str, counts: dict[str, Any], threads: int) -> dict[str, Any]:
    from django.db import connection

    from benchmarks import queue_workflows as qw
    from django_dbos import SetWorkflowID
    from django_dbos.engine.system_db import STATUS_TABLE
    from django_dbos.testing import running_worker

    params = conninfo(url, connection.settings_dict["NAME"])
    delete_rows()  # a previous run interrupted before its clean-up

    def enqueue_one(workflow_id: str) -> None:
        with SetWorkflowID(workflow_id):
            qw.enqueue_queue.enqueue(qw.one_step)

    warmup, count = counts["enqueue"]
    progress(f"django_dbos: enqueue, {warmup} warm-up + {count} timed, against the floor")
    raw = RawInsert(params)  # the floor: a one-row INSERT + COMMIT, same loop and counts
    try:
        enqueue = time_enqueues_with_floor(enqueue_one, raw, warmup, count)
    finally:
        raw.close()
    progress(
        f"django_dbos: {enqueue['per_s']} enqueues/s, {enqueue['floor_per_s']} raw "
        f"INSERT+COMMIT/s (the floor): {enqueue['vs_floor']} of the floor"
    )

    drain_count = counts["drain"]
    progress(f"django_dbos: drain {drain_count} workflows, one worker, {threads} threads")
    for _ in range(drain_count):
        with SetWorkflowID(fresh_id()):
            qw.drain_queue.enqueue(qw.one_step)
    gc.collect()
    began = time.time()
    with running_worker(queues=[qw.DRAIN_QUEUE], threads=threads):
        drain = wait_drained(params, STATUS_TABLE, qw.DRAIN_QUEUE, drain_count, began)
    progress(f"django_dbos: drained at {drain['per_s']}/s ({drain['seconds']} s)")

    def stamp_on(queue: Any) -> Callable[[str], int]:
        def call(workflow_id: str) -> int:
            with SetWorkflowID(workflow_id):
                handle = queue.enqueue(qw.stamp)
            return handle.get_result(timeout=30)

        return call

    warmup, count = counts["latency"]
    progress(f"django_dbos: enqueue->start, worker in another process ({warmup} + {count})")
    with worker_process(qw.LATENCY_REMOTE_QUEUE, threads):
        remote = time_latency(stamp_on(qw.latency_remote_queue), warmup, count, SETTLE_MS)
    progress(f"django_dbos: enqueue->start {remote['median_ms']} ms (other process)")
    with running_worker(queues=[qw.LATENCY_QUEUE], threads=threads):
        time.sleep(0.2)
        local = time_latency(stamp_on(qw.latency_queue), warmup, count, SETTLE_MS)
    progress(f"django_dbos: enqueue->start {local['median_ms']} ms (same process)")
    return {
        "enqueue": enqueue,
        "drain": drain,
        "latency": remote,
        "latency_local": local,
    }


class worker_process:
    """``queue_workflows.worker_main`` in a subprocess: a real second process on the queue."""

    def __init__(self, queue_name: str, threads: int) -> None:
        self.command = [
            sys.executable,
            "-c",
            "import django; django.setup(); from benchmarks import queue_workflows as w; "
            f"w.worker_main({queue_name!r}, {threads})",
        ]

    def __enter__(self) -> worker_process:
        self.proc = subprocess.Popen(
            self.command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if line.strip() != "ready":
            self.proc.kill()
            raise BenchmarkError("the worker subprocess did not start; see stderr")
        time.sleep(0.5)  # its LISTEN connection is being opened
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def delete_rows() -> None:
    """Delete the workflows this benchmark created (IDs ``bench-*``), their checkpoints and
    the benchmark's queue rows."""
    from django.db import connection

    from benchmarks import queue_workflows as qw

    delete_django_rows()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM dbos_queues WHERE name = ANY(%s)", [list(qw.QUEUE_NAMES)])
    for queue in (qw.enqueue_queue, qw.drain_queue, qw.latency_queue, qw.latency_remote_queue):
        queue.stored = False


# -- the dbos package --------------------------------------------------------------------------


def measure_dbos(system_url: str, counts: dict[str, Any], keep_rows: bool) -> dict[str, Any]:
    options = ["--counts", json.dumps(counts), "--settle-ms", repr(SETTLE_MS)]
    return run_dbos("benchmarks.dbos_queue", system_url, options, keep_rows, timeout=900)


# -- the result --------------------------------------------------------------------------------


def summarize(
    ours: dict[str, Any],
    theirs: dict[str, Any] | None,
    counts: dict[str, Any],
    threads: int,
    settings: dict[str, Any],
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "enqueue_per_s": ours["enqueue"]["per_s"],
        "drain_per_s": ours["drain"]["per_s"],
        "enqueue_to_start_ms": ours["latency"]["median_ms"],
        "dbos_enqueue_per_s": None,
        "dbos_drain_per_s": None,
        "dbos_enqueue_to_start_ms": None,
        "dbos_enqueue_to_start_fast_poll_ms": None,
        "meets_targets": None,
        "enqueue_vs_dbos": None,
        "drain_vs_dbos": None,
        "enqueue_to_start_same_process_ms": ours["latency_local"]["median_ms"],
        "raw_insert_commit_per_s": ours["enqueue"]["floor_per_s"],
        "enqueue_vs_floor": ours["enqueue"]["vs_floor"],
        "dbos_enqueue_vs_floor": None,
        "enqueue_vs_dbos_same_load": None,
        "drain_steady_per_s": ours["drain"]["steady_per_s"],
        "dbos_drain_steady_per_s": None,
        "drain_worker": f"in-process testing.running_worker, threads={threads}",
        "latency_worker": "other process (testing.running_worker), LISTEN/NOTIFY",
        "enqueue_iterations": counts["enqueue"][1],
        "drain_workflows": counts["drain"],
        "latency_iterations": counts["latency"][1],
        "dbos_latency_iterations": None,
        "dbos_fast_poll_latency_iterations": None,
        **settings,
        "cpu_count": os.cpu_count(),
        "detail": {"django_dbos": ours},
    }
    latency_ok = result["enqueue_to_start_ms"] <= TARGET_LATENCY_MS
    if theirs is None:
        result["meets_targets"] = None if latency_ok else False
        return result
    result.update(
        {
            "dbos_enqueue_per_s": theirs["enqueue"]["per_s"],
            "dbos_drain_per_s": theirs["drain"]["per_s"],
            "dbos_enqueue_to_start_ms": theirs["latency"]["median_ms"],
            "dbos_enqueue_to_start_fast_poll_ms": theirs["latency_fast"]["median_ms"],
            "enqueue_vs_dbos": round(result["enqueue_per_s"] / theirs["enqueue"]["per_s"], 2),
            "dbos_enqueue_vs_floor": theirs["enqueue"]["vs_floor"],
            "enqueue_vs_dbos_same_load": round(
                ours["enqueue"]["vs_floor"] / theirs["enqueue"]["vs_floor"], 2
            ),
            "drain_vs_dbos": round(result["drain_per_s"] / theirs["drain"]["per_s"], 2),
            "dbos_drain_steady_per_s": theirs["drain"]["steady_per_s"],
            "dbos_latency_iterations": theirs["latency"]["detail"]["n"],
            "dbos_fast_poll_latency_iterations": theirs["latency_fast"]["detail"]["n"],
            "dbos_version": theirs["dbos_version"],
        }
    )
    # enqueue is judged on the load-independent ratio (see time_enqueues_with_floor); the
    # plain per-second ratio is reported beside it
    result["meets_targets"] = (
        result["enqueue_vs_dbos_same_load"] >= TARGET_RATIO
        and result["drain_vs_dbos"] >= TARGET_RATIO
        and latency_ok
    )
    result["detail"]["dbos"] = theirs
    return result

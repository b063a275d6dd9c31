"""``comm``: how long a message and an event take to reach a waiter that is already blocked,
beside the dbos package, on the same PostgreSQL in the same run.

Figures (medians, ms): ``send_to_recv_ms`` (from just before ``DBOS.send`` in the main thread
to ``DBOS.recv`` returning in a started workflow that was blocked in it) and
``set_to_get_event_ms`` (from just before ``DBOS.set_event`` in a workflow to ``DBOS.get_event``
returning in a thread that was blocked in it); the same for the dbos package (``dbos_*``), timed
by ``dbos_comm.py`` in a subprocess with this module's loop. See ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import gc
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from benchmarks.common import (
    BenchmarkError,
    add_dbos_arguments,
    delete_django_rows,
    describe,
    fresh_id,
    median_ms,
    progress,
    run_dbos,
    setup_django,
    sibling_url,
    suite_database,
)

DBOS_SYSTEM_DATABASE = "dbos_bench_comm_sys"
SETTLE_MS = 50.0

#: (warm-up rounds, timed rounds); a round is one send->recv and one set_event->get_event
QUICK = (10, 100)
FULL = (20, 300)

FIGURES = ("send_to_recv", "set_to_get_event", "send_call", "set_event_call")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dbos_arguments(parser, DBOS_SYSTEM_DATABASE)
    parser.add_argument(
        "--settle-ms",
        type=float,
        default=SETTLE_MS,
        help=f"pause between the waiter being about to wait and the write (default {SETTLE_MS:g})",
    )


# -- the loop, shared with dbos_comm.py (nothing here imports Django or dbos) -----------------


@dataclass(frozen=True)
class Side:
    """One implementation under test: its ``DBOS`` class, ``SetWorkflowID``, the two workflows
    of ``comm_workflows.py`` (or their dbos twins) and their ``READY`` / ``GATES`` dicts."""

    dbos: Any
    set_workflow_id: Callable[[str], Any]
    receiver: Callable[[], Any]
    setter: Callable[[], Any]
    ready: dict[str, threading.Event]
    gates: dict[str, threading.Event]
    topic: str
    message: str
    key: str
    value: str
    wait_seconds: float
    #: run on the reader thread when the loop ends (Django: close its connection)
    reader_cleanup: Callable[[], None] | None = None


def send_to_recv_once(side: Side, settle: float) -> tuple[int, int]:
    """(send->recv returned, the send call alone), in ns, for one fresh receiver workflow."""
    workflow_id = fresh_id()
    ready = side.ready[workflow_id] = threading.Event()
    try:
        with side.set_workflow_id(workflow_id):
            handle = side.dbos.start_workflow(side.receiver)
        if not ready.wait(side.wait_seconds):
            raise BenchmarkError(f"receiver {workflow_id} never reached recv")
        time.sleep(settle)  # it is now waiting in recv (its first look found nothing)
        started = time.perf_counter_ns()
        side.dbos.send(workflow_id, side.message, side.topic)
        sent = time.perf_counter_ns()
        received_at, message = handle.get_result()
    finally:
        side.ready.pop(workflow_id, None)
    if message != side.message:
        raise BenchmarkError(f"receiver {workflow_id} got {message!r}, not {side.message!r}")
    return received_at - started, sent - started


def set_to_get_once(side: Side, reader: ThreadPoolExecutor, settle: float) -> tuple[int, int]:
    """(set_event->get_event returned, the set_event call alone), in ns, for one fresh setter
    workflow read by the (long-lived) reader thread."""
    workflow_id = fresh_id()
    gate = side.gates[workflow_id] = threading.Event()
    calling = threading.Event()

    def read() -> tuple[int, Any]:
        calling.set()
        value = side.dbos.get_event(workflow_id, side.key, timeout_seconds=side.wait_seconds)
        return time.perf_counter_ns(), value

    try:
        with side.set_workflow_id(workflow_id):
            handle = side.dbos.start_workflow(side.setter)
        pending = reader.submit(read)
        if not calling.wait(side.wait_seconds):
            raise BenchmarkError("the reader thread never called get_event")
        time.sleep(settle)  # the reader is now waiting in get_event (its first look found nothing)
        gate.set()
        got_at, value = pending.result(side.wait_seconds * 2)
        set_started, set_done = handle.get_result()
    finally:
        gate.set()
        side.gates.pop(workflow_id, None)
    if value != side.value or not set_started:
        raise BenchmarkError(f"get_event on {workflow_id} returned {value!r}, not {side.value!r}")
    return got_at - set_started, set_done - set_started


def measure(side: Side, warmup: int, rounds: int, settle: float, label: str) -> dict[str, Any]:
    """``warmup`` untimed rounds, then ``rounds`` timed ones; each round is one send->recv
    then one set_event->get_event, each on a fresh workflow. Medians in ms, plus ``detail``."""
    samples: dict[str, list[int]] = {name: [] for name in FIGURES}
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-comm-reader")
    try:
        for round_no in range(warmup + rounds):
            if round_no == warmup:
                gc.collect()
            recv_ns, send_ns = send_to_recv_once(side, settle)
            event_ns, set_ns = set_to_get_once(side, reader, settle)
            if round_no >= warmup:
                samples["send_to_recv"].append(recv_ns)
                samples["send_call"].append(send_ns)
                samples["set_to_get_event"].append(event_ns)
                samples["set_event_call"].append(set_ns)
            if (round_no + 1) % 100 == 0:
                progress(f"{label}: {round_no + 1}/{warmup + rounds} rounds")
    finally:
        if side.reader_cleanup is not None:
            reader.submit(side.reader_cleanup).result()
        reader.shutdown(wait=True)
    figures: dict[str, Any] = {f"{name}_ms": median_ms(samples[name]) for name in FIGURES}
    figures["detail"] = {name: describe(samples[name]) for name in FIGURES}
    return figures


# -- the suite ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    url = suite_database(args.no_dbos)
    warmup, rounds = QUICK if args.quick else FULL
    settle = args.settle_ms / 1000
    settings = setup_django()

    progress(f"django_dbos: {warmup} warm-up + {rounds} timed rounds (send->recv, set->get)")
    try:
        ours = measure(django_side(), warmup, rounds, settle, "django_dbos")
    finally:
        if not args.keep_rows:
            delete_rows()
    report("django_dbos", ours)

    theirs = None
    if not args.no_dbos:
        theirs = measure_dbos(
            sibling_url(url, args.dbos_system_database),
            warmup,
            rounds,
            args.settle_ms,
            args.keep_rows,
        )
        report("dbos", theirs)
    return summarize(ours, theirs, settings, warmup, rounds, args.settle_ms)


def report(label: str, figures: dict[str, Any]) -> None:
    progress(
        "{label}: send->recv {send_to_recv_ms:.3f} ms (send call {send_call_ms:.3f} ms), "
        "set_event->get_event {set_to_get_event_ms:.3f} ms (set_event call "
        "{set_event_call_ms:.3f} ms)".format(label=label, **figures)
    )


def django_side() -> Side:
    from django.db import connections

    from benchmarks import comm_workflows as cw
    from django_dbos import DBOS, SetWorkflowID

    return Side(
        dbos=DBOS,
        set_workflow_id=SetWorkflowID,
        receiver=cw.receiver,
        setter=cw.setter,
        ready=cw.READY,
        gates=cw.GATES,
        topic=cw.TOPIC,
        message=cw.MESSAGE,
        key=cw.KEY,
        value=cw.VALUE,
        wait_seconds=cw.WAIT_SECONDS,
        reader_cleanup=connections.close_all,
    )


def delete_rows() -> None:
    """Delete the workflows this benchmark created (IDs ``bench-*``) and everything of theirs."""
    delete_django_rows(
        [
            ("dbos_workflow_events_history", "workflow_uuid"),
            ("dbos_workflow_events", "workflow_uuid"),
            ("dbos_notifications", "destination_uuid"),
        ]
    )


def measure_dbos(
    system_url: str, warmup: int, rounds: int, settle_ms: float, keep_rows: bool
) -> dict[str, Any]:
    options = ["--rounds", str(rounds), "--warmup", str(warmup), "--settle-ms", repr(settle_ms)]
    return run_dbos("benchmarks.dbos_comm", system_url, options, keep_rows, timeout=900)


def summarize(
    ours: dict[str, Any],
    theirs: dict[str, Any] | None,
    settings: dict[str, Any],
    warmup: int,
    rounds: int,
    settle_ms: float,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "send_to_recv_ms": ours["send_to_recv_ms"],
        "set_to_get_event_ms": ours["set_to_get_event_ms"],
        "dbos_send_to_recv_ms": None,
        "dbos_set_to_get_event_ms": None,
        "beats_dbos": None,
        "send_call_ms": ours["send_call_ms"],
        "set_event_call_ms": ours["set_event_call_ms"],
        "dbos_send_call_ms": None,
        "dbos_set_event_call_ms": None,
        "warmup_rounds": warmup,
        "iterations": rounds,
        "dbos_iterations": None,
        "settle_ms": settle_ms,
        **settings,
        "cpu_count": os.cpu_count(),
        "detail": {"django_dbos": ours["detail"]},
    }
    if theirs is not None:
        for name in FIGURES:
            result[f"dbos_{name}_ms"] = theirs[f"{name}_ms"]
        result["dbos_iterations"] = theirs["detail"]["send_to_recv"]["n"]
        result["dbos_version"] = theirs["dbos_version"]
        result["beats_dbos"] = (
            ours["send_to_recv_ms"] < theirs["send_to_recv_ms"]
            and ours["set_to_get_event_ms"] < theirs["set_to_get_event_ms"]
        )
        result["detail"]["dbos"] = theirs["detail"]
    return result

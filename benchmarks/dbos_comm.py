"""The dbos package's side of the ``comm`` benchmark, run in its own process.

``comm.py`` starts ``python -m benchmarks.dbos_comm ...`` so that DBOS (its background threads,
its LISTEN connection, its own system database) never shares a process with Django. It defines
the workflows of ``comm_workflows.py`` for the dbos package, body for body, times them with the
same loop (``comm.measure``) and the same counts, and prints one JSON object as the last line of
stdout. Nothing here imports Django.

Nothing reaches the network: no conductor key, OTLP off, and ``comm.py`` strips ``DBOS_*`` /
``DBOS__*`` / ``OTEL_*`` variables from this process's environment.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from importlib.metadata import version

import psycopg
from dbos import DBOS, SetWorkflowID

from benchmarks.comm import Side, measure
from benchmarks.common import ID_PREFIX, conninfo, ensure_database, progress

TOPIC = "bench"
MESSAGE = "ping"
KEY = "bench"
VALUE = "pong"
WAIT_SECONDS = 30.0

READY: dict[str, threading.Event] = {}
GATES: dict[str, threading.Event] = {}


@DBOS.workflow(name="bench.comm.receiver")
def receiver() -> list:
    READY[str(DBOS.workflow_id)].set()
    message = DBOS.recv(TOPIC, timeout_seconds=WAIT_SECONDS)
    received_at = time.perf_counter_ns()
    return [received_at, message]


@DBOS.workflow(name="bench.comm.setter")
def setter() -> list:
    if not GATES[str(DBOS.workflow_id)].wait(WAIT_SECONDS):
        return [0, 0]
    started = time.perf_counter_ns()
    DBOS.set_event(KEY, VALUE)
    return [started, time.perf_counter_ns()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system-database-url", required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--settle-ms", type=float, required=True)
    parser.add_argument("--keep-rows", action="store_true")
    args = parser.parse_args(argv)

    if ensure_database(args.system_database_url):
        progress("dbos: created its system database")
    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS(
        config={
            "name": "django-dbos-bench",
            "system_database_url": args.system_database_url,
            "enable_otlp": False,
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    progress(
        f"dbos {version('dbos')}: launched; {args.warmup} warm-up + {args.rounds} timed rounds "
        "(send->recv, set->get)"
    )
    side = Side(
        dbos=DBOS,
        set_workflow_id=SetWorkflowID,
        receiver=receiver,
        setter=setter,
        ready=READY,
        gates=GATES,
        topic=TOPIC,
        message=MESSAGE,
        key=KEY,
        value=VALUE,
        wait_seconds=WAIT_SECONDS,
    )
    try:
        figures = measure(side, args.warmup, args.rounds, args.settle_ms / 1000, "dbos")
    finally:
        if not args.keep_rows:
            _delete_rows(args.system_database_url)
        DBOS.destroy()
    print(json.dumps({"dbos_version": version("dbos"), **figures}), flush=True)


def _delete_rows(url: str) -> None:
    """Delete this run's workflows (their steps, events and messages go with them: ON DELETE
    CASCADE)."""
    with psycopg.connect(**conninfo(url), autocommit=True) as conn:
        conn.execute(
            "DELETE FROM dbos.workflow_status WHERE workflow_uuid LIKE %s", [ID_PREFIX + "%"]
        )


if __name__ == "__main__":
    main()

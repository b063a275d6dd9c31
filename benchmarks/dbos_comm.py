"""The dbos package's side of the ``comm`` benchmark, run in its own process.

``comm.py`` starts ``python -m benchmarks.dbos_comm ...`` so that DBOS (its background threads,
its LISTEN connection, its own system database) never shares a process with Django. It defines
the workflows of ``comm_workflows.py`` for the dbos package, body for body, times them with the
same loop (``comm.measure``) and the same counts, and prints one JSON object as the last line of
stdout. Nothing here imports Django.

Options, launch and clean-up are ``dbos_common.py``'s (no network: see there).
"""

from __future__ import annotations

import threading
import time
from importlib.metadata import version

from dbos import DBOS, SetWorkflowID

from benchmarks import dbos_common
from benchmarks.comm import Side, measure
from benchmarks.common import progress

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
    parser = dbos_common.argument_parser(__doc__)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--settle-ms", type=float, required=True)
    args = parser.parse_args(argv)

    dbos_common.launch(args.system_database_url)
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
        dbos_common.shutdown(args.system_database_url, args.keep_rows)
    dbos_common.emit(figures)


if __name__ == "__main__":
    main()

"""The dbos package's side of the ``core`` benchmark, run in its own process.

``core.py`` starts ``python -m benchmarks.dbos_core ...`` so that DBOS (its background threads,
its SQLAlchemy pool, its own system database) never shares a process with Django. It times the
same workflows, with the same loop (``common.interleaved``) and the same raw INSERT baseline, and
prints one JSON object as the last line of stdout. Nothing here imports Django.

Options, launch and clean-up are ``dbos_common.py``'s (no network: see there).
"""

from __future__ import annotations

import threading
import time
from importlib.metadata import version

from dbos import DBOS, SetWorkflowID

from benchmarks import dbos_common
from benchmarks.common import (
    RawInsert,
    conninfo,
    fresh_id,
    inline,
    progress,
    time_workflows,
    workflow_figures,
)

STEPS = 10
STEP_CALL_NS: list[int] = []


@DBOS.step(name="bench.noop")
def noop_step() -> None:
    return None


@DBOS.workflow(name="bench.wf0")
def workflow_0_steps() -> int:
    return 0


@DBOS.workflow(name="bench.wf10")
def workflow_10_steps() -> int:
    clock = time.perf_counter_ns
    for _ in range(STEPS):
        started = clock()
        noop_step()
        STEP_CALL_NS.append(clock() - started)
    return STEPS


def _inline(workflow):
    return inline(SetWorkflowID, workflow)


def count_statements() -> int:
    """Sanity check, outside the timed loop: the SQL statements a fresh 10-step workflow sends
    from this thread (SQLAlchemy's own BEGIN/COMMIT are not statements it executes)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    caller = threading.get_ident()
    seen: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany) -> None:
        if threading.get_ident() == caller:
            seen.append(statement)

    _inline(workflow_0_steps)(fresh_id())  # first call: anything once-per-process happens here
    event.listen(Engine, "before_cursor_execute", listener)
    try:
        _inline(workflow_10_steps)(fresh_id())
    finally:
        event.remove(Engine, "before_cursor_execute", listener)
    STEP_CALL_NS.clear()
    return len(seen)


def main(argv: list[str] | None = None) -> None:
    parser = dbos_common.argument_parser(__doc__)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--raw-per-round", type=int, required=True)
    args = parser.parse_args(argv)

    dbos_common.launch(args.system_database_url)
    progress(f"dbos {version('dbos')}: launched; timing {args.rounds} rounds")

    statements = count_statements()
    progress(f"dbos: a 10-step workflow issues {statements} SQL statements (BEGIN/COMMIT aside)")
    raw = RawInsert(conninfo(args.system_database_url))
    try:
        samples = time_workflows(
            raw,
            _inline(workflow_0_steps),
            _inline(workflow_10_steps),
            STEP_CALL_NS,
            args.warmup,
            args.rounds,
            args.raw_per_round,
        )
    finally:
        raw.close()
        dbos_common.shutdown(args.system_database_url, args.keep_rows)

    figures = workflow_figures(samples, STEP_CALL_NS, STEPS)
    dbos_common.emit({**figures, "statements_per_workflow_10_steps": statements})


if __name__ == "__main__":
    main()

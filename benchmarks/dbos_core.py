"""The dbos package's side of the ``core`` benchmark, run in its own process.

``core.py`` starts ``python -m benchmarks.dbos_core ...`` so that DBOS (its background threads,
its SQLAlchemy pool, its own system database) never shares a process with Django. It times the
same workflows, with the same loop (``common.interleaved``) and the same raw INSERT baseline, and
prints one JSON object as the last line of stdout. Nothing here imports Django.

Nothing reaches the network: no conductor key, OTLP off, and ``core.py`` strips ``DBOS_*`` /
``DBOS__*`` / ``OTEL_*`` variables from this process's environment.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import statistics
import threading
import time
from importlib.metadata import version

import psycopg
from dbos import DBOS, SetWorkflowID

from benchmarks.common import (
    ID_PREFIX,
    Case,
    RawInsert,
    conninfo,
    describe,
    ensure_database,
    fresh_id,
    interleaved,
    median_ms,
    ms,
    progress,
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
    def call(workflow_id: str) -> None:
        with SetWorkflowID(workflow_id):
            workflow()

    return call


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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system-database-url", required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--raw-per-round", type=int, required=True)
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
    progress(f"dbos {version('dbos')}: launched; timing {args.rounds} rounds")

    statements = count_statements()
    progress(f"dbos: a 10-step workflow issues {statements} SQL statements (BEGIN/COMMIT aside)")
    raw = RawInsert(conninfo(args.system_database_url))
    cases = [
        Case("raw", raw, repeats=args.raw_per_round),
        Case("wf0", _inline(workflow_0_steps)),
        Case("wf10", _inline(workflow_10_steps)),
    ]
    try:
        interleaved(cases, rounds=0, warmup=args.warmup)
        STEP_CALL_NS.clear()
        gc.collect()
        samples = interleaved(cases, rounds=args.rounds, warmup=0)
    finally:
        raw.close()
        if not args.keep_rows:
            _delete_rows(args.system_database_url)
        DBOS.destroy()

    wf0 = statistics.median(samples["wf0"])
    wf10 = statistics.median(samples["wf10"])
    result = {
        "dbos_version": version("dbos"),
        "raw_insert_commit_ms": median_ms(samples["raw"]),
        "workflow_0_steps_ms": round(ms(wf0), 4),
        "workflow_10_steps_ms": round(ms(wf10), 4),
        "step_overhead_ms": round(ms(wf10 - wf0) / STEPS, 4),
        "step_call_ms": median_ms(STEP_CALL_NS),
        "statements_per_workflow_10_steps": statements,
        "detail": {
            "raw_insert_commit": describe(samples["raw"]),
            "workflow_0_steps": describe(samples["wf0"]),
            "workflow_10_steps": describe(samples["wf10"]),
            "step_call": describe(STEP_CALL_NS),
        },
    }
    print(json.dumps(result), flush=True)


def _delete_rows(url: str) -> None:
    """Delete this run's workflows (their steps go with them: ON DELETE CASCADE)."""
    with psycopg.connect(**conninfo(url), autocommit=True) as conn:
        conn.execute(
            "DELETE FROM dbos.workflow_status WHERE workflow_uuid LIKE %s", [ID_PREFIX + "%"]
        )


if __name__ == "__main__":
    main()

"""``core --profile``: where a django_dbos step's time goes.

Three views, none of them part of the headline figures:

1. **DB call vs Python** — Django's ``execute_wrapper`` times each ``cursor.execute`` (psycopg's
   client-side binding + the round trip + the server's work); the rest of a workflow's time is
   Python in django_dbos and Django around it. Reported per workflow and per step.
2. **SQL replay** — the engine's exact hot-path statements sent with psycopg alone, configured as
   Django configures it (``ClientCursor``, no prepared statements), beside the raw INSERT on the
   same connection: the database-side price of the schema and of the SQL, with no Python layers.
3. **cProfile** of the ten-step workflows: own time grouped by package, and the top functions.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.common import (
    Case,
    RawInsert,
    conninfo,
    fresh_id,
    interleaved,
    median_ms,
    ms,
    progress,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def profile(bw, url: str, workflows: int = 200, replay_rounds: int = 500) -> dict[str, Any]:
    from benchmarks.core import inline

    progress(f"profile: DB call vs Python over {workflows} workflows of each kind")
    split = db_vs_python(bw, inline, workflows)
    progress(f"profile: SQL replay with psycopg alone ({replay_rounds} rounds)")
    replay = sql_replay(url, replay_rounds)
    progress(f"profile: cProfile of {workflows} ten-step workflows")
    profiled = cprofile(bw, inline, workflows)
    bw.STEP_CALL_NS.clear()
    return {"db_vs_python": split, "sql_replay": replay, "cprofile": profiled}


# -- 1. DB call vs Python ----------------------------------------------------------------------


class _ExecuteTimer:
    def __init__(self) -> None:
        self.ns = 0
        self.calls = 0

    def __call__(self, execute, sql_text, params, many, context):
        started = time.perf_counter_ns()
        try:
            return execute(sql_text, params, many, context)
        finally:
            self.ns += time.perf_counter_ns() - started
            self.calls += 1


def db_vs_python(bw, inline, workflows: int) -> dict[str, Any]:
    from django.db import connection

    per_kind: dict[str, dict[str, list[int]]] = {}
    for kind, workflow in (("wf0", bw.workflow_0_steps), ("wf10", bw.workflow_10_steps)):
        call = inline(workflow)
        totals, in_db, statements = [], [], []
        for _ in range(workflows):
            timer = _ExecuteTimer()
            workflow_id = fresh_id()
            with connection.execute_wrapper(timer):
                started = time.perf_counter_ns()
                call(workflow_id)
                totals.append(time.perf_counter_ns() - started)
            in_db.append(timer.ns)
            statements.append(timer.calls)
        per_kind[kind] = {"total": totals, "db": in_db, "statements": statements}

    def med(kind: str, key: str) -> float:
        return statistics.median(per_kind[kind][key])

    report: dict[str, Any] = {}
    for kind in ("wf0", "wf10"):
        total, db = med(kind, "total"), med(kind, "db")
        report[kind] = {
            "total_ms": round(ms(total), 4),
            "in_execute_ms": round(ms(db), 4),
            "python_ms": round(ms(total - db), 4),
            "statements": int(med(kind, "statements")),
        }
    steps = bw.STEPS
    per_step_total = (med("wf10", "total") - med("wf0", "total")) / steps
    per_step_db = (med("wf10", "db") - med("wf0", "db")) / steps
    report["per_step"] = {
        "total_ms": round(ms(per_step_total), 4),
        "in_execute_ms": round(ms(per_step_db), 4),
        "python_ms": round(ms(per_step_total - per_step_db), 4),
    }
    progress(
        "profile: per step {total_ms:.3f} ms = {in_execute_ms:.3f} in cursor.execute "
        "+ {python_ms:.3f} Python around it".format(**report["per_step"])
    )
    return report


# -- 2. SQL replay -----------------------------------------------------------------------------


def sql_replay(url: str, rounds: int) -> dict[str, Any]:
    """The hot path's statements with psycopg alone, each timed as one autocommit round trip.

    Per round: a fresh PENDING status row (the engine's start INSERT), the raw INSERT, the
    engine's step INSERT (guarded: ``INSERT ... SELECT ... WHERE EXISTS(status row PENDING) ON
    CONFLICT DO NOTHING``) sent as Django sends it and sent as a server-side prepared statement
    (the same statement, planned once per connection), a plain ``INSERT ... VALUES`` into the
    step table, and the finish UPDATE. The gaps between them price the SQL's parts.
    """
    from django.db import connection

    from django_dbos.engine import system_db
    from django_dbos.models import now_ms

    params = conninfo(url, connection.settings_dict["NAME"])
    # As Django's psycopg backend connects: client-side binding, never prepared.
    raw = RawInsert(params, prepare_threshold=None, cursor_factory=psycopg.ClientCursor)
    conn = raw.conn  # the raw INSERT and every Django-like statement on this one connection
    prepared = psycopg.connect(**params, autocommit=True, prepare_threshold=0)
    columns = system_db._STATUS_COLUMNS
    plain_step = (
        f"INSERT INTO {system_db.STEPS_TABLE} (workflow_uuid, function_id, function_name, output, "
        "error, child_workflow_id, started_at_epoch_ms, completed_at_epoch_ms) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    )
    state: dict[str, str] = {}

    def start(workflow_id: str) -> None:
        state["id"] = workflow_id
        now = now_ms()
        row = dict.fromkeys(columns)
        row.update(
            workflow_uuid=workflow_id,
            status="PENDING",
            name="bench.replay",
            inputs='{"args":[],"kwargs":{}}',
            executor_id="bench-replay",
            application_version="bench",
            recovery_attempts=0,
            priority=0,
            started_at_epoch_ms=now,
            created_at=now,
            updated_at=now,
        )
        conn.execute(system_db._INSERT_STATUS_SQL, [row[c] for c in columns]).fetchone()

    def step(on: psycopg.Connection, function_id: int, guarded: bool = True):
        def run(_: str) -> None:
            now = now_ms()
            values = [state["id"], function_id, "bench.noop", "null", None, None, now, now]
            if guarded:
                on.execute(system_db._RECORD_STEP_PG_SQL, [*values, state["id"], "PENDING"])
            else:
                on.execute(plain_step, values)

        return run

    def finish(_: str) -> None:
        conn.execute(
            system_db._FINISH_SQL,
            ["SUCCESS", "10", None, now_ms(), state["id"], "PENDING", "bench-replay"],
        )

    cases = [
        Case("start_insert", start),
        Case("raw_insert_same_conn", raw),
        Case("step_insert_engine_sql", step(conn, 1)),
        Case("step_insert_engine_sql_prepared", step(prepared, 2)),
        Case("step_insert_plain_values", step(conn, 3, guarded=False)),
        Case("finish_update", finish),
    ]
    try:
        samples = interleaved(cases, rounds=rounds, warmup=50)
    finally:
        raw.close()
        prepared.close()
    report: dict[str, Any] = {name: median_ms(values) for name, values in samples.items()}
    base = report["raw_insert_same_conn"]
    for name in list(report):
        if name.startswith("step_insert"):
            report[f"{name}_vs_raw"] = round(report[name] / base, 3)
    progress(
        "profile: psycopg alone: raw {raw_insert_same_conn:.3f} ms; engine step INSERT "
        "{step_insert_engine_sql:.3f} ms (prepared: {step_insert_engine_sql_prepared:.3f} ms); "
        "plain VALUES step INSERT {step_insert_plain_values:.3f} ms; start INSERT "
        "{start_insert:.3f} ms; finish UPDATE {finish_update:.3f} ms".format(**report)
    )
    return report


# -- 3. cProfile -------------------------------------------------------------------------------

_BUCKETS = (
    ("psycopg (binding, socket wait)", ("psycopg",)),
    ("django_dbos", ("django_dbos",)),
    ("django.db (cursor wrappers, connection)", ("django/db",)),
    ("django.dispatch (signals)", ("django/dispatch",)),
    ("benchmark loop", ("benchmarks/",)),
)


def _bucket(filename: str, function: str) -> str:
    where = f"{filename} {function}"
    for label, needles in _BUCKETS:
        if any(needle in where for needle in needles):
            return label
    return "other (stdlib, builtins)"


def cprofile(bw, inline, workflows: int) -> dict[str, Any]:
    call = inline(bw.workflow_10_steps)
    ids = [fresh_id() for _ in range(workflows)]
    profiler = cProfile.Profile()
    started = time.perf_counter_ns()
    profiler.enable()
    for workflow_id in ids:
        call(workflow_id)
    profiler.disable()
    wall = time.perf_counter_ns() - started
    stats = pstats.Stats(profiler)
    by_bucket: dict[str, float] = defaultdict(float)
    rows = []
    for (filename, line, function), (_cc, ncalls, tottime, cumtime, _) in stats.stats.items():
        by_bucket[_bucket(filename, function)] += tottime
        rows.append((tottime, cumtime, ncalls, f"{_short(filename)}:{line}({function})"))
    rows.sort(reverse=True)
    per_workflow_us = 1e6 / workflows
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    progress("profile: cProfile, top 25 by own time:\n" + text.getvalue())
    return {
        "workflows": workflows,
        "wall_ms_per_workflow_under_profiler": round(ms(wall) / workflows, 4),
        "own_time_us_per_workflow_by_package": {
            label: round(seconds * per_workflow_us, 1)
            for label, seconds in sorted(by_bucket.items(), key=lambda kv: -kv[1])
        },
        "top_functions_by_own_time": [
            {
                "function": name,
                "calls_per_workflow": round(ncalls / workflows, 1),
                "own_us_per_workflow": round(tottime * per_workflow_us, 1),
                "cumulative_us_per_workflow": round(cumtime * per_workflow_us, 1),
            }
            for tottime, cumtime, ncalls, name in rows[:15]
        ],
    }


def _short(filename: str) -> str:
    for marker in ("site-packages/", f"{REPO_ROOT}/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename

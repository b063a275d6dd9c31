"""``core``: the cost of a step checkpoint and of a short workflow, beside a raw INSERT+COMMIT
and beside the dbos package, on the same PostgreSQL in the same run.

Figures (medians, ms): ``raw_insert_commit_ms``; ``workflow_0_steps_ms`` and
``workflow_10_steps_ms`` (a direct, inline call on a fresh workflow ID); ``step_overhead_ms`` =
(wf10 - wf0) / 10; ``step_call_ms`` (each step call timed from inside the workflow); and the same
for the dbos package (``dbos_*``), timed by ``dbos_core.py`` in a subprocess. See
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from benchmarks import common
from benchmarks.common import (
    RawInsert,
    add_dbos_arguments,
    conninfo,
    delete_django_rows,
    fresh_id,
    progress,
    run_dbos,
    setup_django,
    sibling_url,
    suite_database,
    time_workflows,
    workflow_figures,
)

STEP_TARGET = 1.3  # DESIGN.md §8: step checkpoint <= 1.3x a raw one-row INSERT+COMMIT
DBOS_SYSTEM_DATABASE = "dbos_bench_sys"

#: (warm-up rounds, timed rounds, raw INSERTs per round)
QUICK = (50, 300, 4)
FULL = (100, 2000, 4)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dbos_arguments(parser, DBOS_SYSTEM_DATABASE)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile 200 ten-step workflows (cProfile, DB vs Python time, SQL replay)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    url = suite_database(args.no_dbos)
    warmup, rounds, raw_per_round = QUICK if args.quick else FULL
    settings = setup_django()
    from benchmarks import bench_workflows as bw

    statements = count_statements(bw)
    progress(f"django_dbos: a 10-step workflow issues {statements} SQL statements")

    progress(
        f"django_dbos: {warmup} warm-up + {rounds} timed rounds (raw x{raw_per_round}, wf0, wf10)"
    )
    ours = measure_ours(bw, url, warmup, rounds, raw_per_round)
    report("django_dbos", ours)

    profile = None
    if args.profile:
        from benchmarks import core_profile

        profile = core_profile.profile(bw, url, workflows=200)

    if not args.keep_rows:
        delete_rows()

    theirs = None
    if not args.no_dbos:
        theirs = measure_dbos(
            sibling_url(url, args.dbos_system_database),
            warmup,
            rounds,
            raw_per_round,
            args.keep_rows,
        )
        report("dbos", theirs)
    return summarize(ours, theirs, statements, settings, warmup, rounds, raw_per_round, profile)


def report(label: str, figures: dict[str, Any]) -> None:
    progress(
        "{label}: raw INSERT {raw_insert_commit_ms:.3f} ms, wf0 {workflow_0_steps_ms:.3f} ms, "
        "wf10 {workflow_10_steps_ms:.3f} ms, step overhead {step_overhead_ms:.3f} ms, "
        "step call {step_call_ms:.3f} ms".format(label=label, **figures)
    )


# -- Django side -------------------------------------------------------------------------------


def inline(workflow):
    """A direct call of ``workflow`` under a given (fresh) ID: it runs inline, durably."""
    from django_dbos import SetWorkflowID

    return common.inline(SetWorkflowID, workflow)


def count_statements(bw) -> int:
    """Sanity check, outside the timed loop: the SQL a fresh 10-step workflow sends."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    inline(bw.workflow_0_steps)(fresh_id())  # registers the executor (once per process)
    with CaptureQueriesContext(connection) as captured:
        inline(bw.workflow_10_steps)(fresh_id())
    bw.STEP_CALL_NS.clear()
    return len(captured.captured_queries)


def measure_ours(bw, url: str, warmup: int, rounds: int, raw_per_round: int) -> dict[str, Any]:
    from django.db import connection

    raw = RawInsert(conninfo(url, connection.settings_dict["NAME"]))
    try:
        samples = time_workflows(
            raw,
            inline(bw.workflow_0_steps),
            inline(bw.workflow_10_steps),
            bw.STEP_CALL_NS,
            warmup,
            rounds,
            raw_per_round,
        )
    finally:
        raw.close()
    step_calls = list(bw.STEP_CALL_NS)
    bw.STEP_CALL_NS.clear()
    return workflow_figures(samples, step_calls, bw.STEPS)


def delete_rows() -> None:
    """Delete the workflows this benchmark created (IDs ``bench-*``) and their checkpoints."""
    delete_django_rows()


# -- the dbos package --------------------------------------------------------------------------


def measure_dbos(
    system_url: str, warmup: int, rounds: int, raw_per_round: int, keep_rows: bool
) -> dict[str, Any]:
    options = ["--rounds", str(rounds), "--warmup", str(warmup)]
    options += ["--raw-per-round", str(raw_per_round)]
    return run_dbos("benchmarks.dbos_core", system_url, options, keep_rows, timeout=600)


# -- the result --------------------------------------------------------------------------------


def summarize(
    ours: dict[str, Any],
    theirs: dict[str, Any] | None,
    statements: int,
    settings: dict[str, Any],
    warmup: int,
    rounds: int,
    raw_per_round: int,
    profile: dict[str, Any] | None,
) -> dict[str, Any]:
    ratio = ours["step_overhead_ms"] / ours["raw_insert_commit_ms"]
    result: dict[str, Any] = {
        "raw_insert_commit_ms": ours["raw_insert_commit_ms"],
        "step_overhead_ms": ours["step_overhead_ms"],
        "step_call_ms": ours["step_call_ms"],
        "workflow_0_steps_ms": ours["workflow_0_steps_ms"],
        "workflow_10_steps_ms": ours["workflow_10_steps_ms"],
        "step_overhead_vs_raw": round(ratio, 3),
        "step_call_vs_raw": round(ours["step_call_ms"] / ours["raw_insert_commit_ms"], 3),
        "step_target_ratio": STEP_TARGET,
        "meets_step_target": ratio <= STEP_TARGET,
        "dbos_raw_insert_commit_ms": None,
        "dbos_step_overhead_ms": None,
        "dbos_step_call_ms": None,
        "dbos_workflow_0_steps_ms": None,
        "dbos_workflow_10_steps_ms": None,
        "beats_dbos": None,
        "statements_per_workflow_10_steps": statements,
        "warmup_rounds": warmup,
        "iterations": rounds,
        "raw_insert_iterations": rounds * raw_per_round,
        "step_call_samples": ours["detail"]["step_call"]["n"],
        **settings,
        "cpu_count": os.cpu_count(),
        "detail": {"django_dbos": ours["detail"]},
    }
    if theirs is not None:
        for key in (
            "raw_insert_commit_ms",
            "step_overhead_ms",
            "step_call_ms",
            "workflow_0_steps_ms",
            "workflow_10_steps_ms",
        ):
            result[f"dbos_{key}"] = theirs[key]
        result["dbos_version"] = theirs["dbos_version"]
        result["dbos_statements_per_workflow_10_steps"] = theirs["statements_per_workflow_10_steps"]
        result["beats_dbos"] = (
            ours["workflow_0_steps_ms"] < theirs["workflow_0_steps_ms"]
            and ours["workflow_10_steps_ms"] < theirs["workflow_10_steps_ms"]
        )
        result["detail"]["dbos"] = theirs["detail"]
    if profile is not None:
        result["profile"] = profile
    return result

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
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import (
    ID_PREFIX,
    BenchmarkError,
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
    require_postgres_url,
    sibling_url,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
STEP_TARGET = 1.3  # DESIGN.md §8: step checkpoint <= 1.3x a raw one-row INSERT+COMMIT
DBOS_SYSTEM_DATABASE = "dbos_bench_sys"

#: (warm-up rounds, timed rounds, raw INSERTs per round)
QUICK = (50, 300, 4)
FULL = (100, 2000, 4)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-dbos", action="store_true", help="skip the dbos package (its figures are null)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile 200 ten-step workflows (cProfile, DB vs Python time, SQL replay)",
    )
    parser.add_argument(
        "--keep-rows",
        action="store_true",
        help="keep the benchmark's workflow rows (by default rows with IDs bench-* are deleted)",
    )
    parser.add_argument(
        "--dbos-system-database",
        default=DBOS_SYSTEM_DATABASE,
        help="database (same server as DATABASE_URL) for the dbos package's system tables",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    url = require_postgres_url()
    if not args.no_dbos and importlib.util.find_spec("dbos") is None:
        raise BenchmarkError(
            "the dbos package is not installed: pip install -e '.[bench]' (or pass --no-dbos)"
        )
    warmup, rounds, raw_per_round = QUICK if args.quick else FULL
    if ensure_database(url):
        progress(f"created database {conninfo(url)['dbname']}")
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


def setup_django() -> dict[str, Any]:
    """testproject.settings on DATABASE_URL, schema migrated; DEBUG off unless set explicitly
    (DEBUG=True logs every query through Django's debug cursor: not what production runs)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    os.environ.setdefault("DEBUG", "False")
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    if connection.vendor != "postgresql":
        raise BenchmarkError(f"DATABASE_URL resolved to {connection.vendor}, not PostgreSQL.")
    progress("migrating the schema (if needed)")
    call_command("migrate", verbosity=0)
    return {
        "django_debug": settings.DEBUG,
        "django_version": django.get_version(),
        "postgres_version": connection.pg_version,
    }


def inline(workflow):
    """A direct call of ``workflow`` under a given (fresh) ID: it runs inline, durably."""
    from django_dbos import SetWorkflowID

    def call(workflow_id: str) -> None:
        with SetWorkflowID(workflow_id):
            workflow()

    return call


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
    cases = [
        Case("raw", raw, repeats=raw_per_round),
        Case("wf0", inline(bw.workflow_0_steps)),
        Case("wf10", inline(bw.workflow_10_steps)),
    ]
    try:
        interleaved(cases, rounds=0, warmup=warmup)
        bw.STEP_CALL_NS.clear()
        gc.collect()
        samples = interleaved(cases, rounds=rounds, warmup=0)
    finally:
        raw.close()
    wf0 = statistics.median(samples["wf0"])
    wf10 = statistics.median(samples["wf10"])
    step_calls = list(bw.STEP_CALL_NS)
    bw.STEP_CALL_NS.clear()
    return {
        "raw_insert_commit_ms": median_ms(samples["raw"]),
        "workflow_0_steps_ms": round(ms(wf0), 4),
        "workflow_10_steps_ms": round(ms(wf10), 4),
        "step_overhead_ms": round(ms(wf10 - wf0) / bw.STEPS, 4),
        "step_call_ms": median_ms(step_calls),
        "detail": {
            "raw_insert_commit": describe(samples["raw"]),
            "workflow_0_steps": describe(samples["wf0"]),
            "workflow_10_steps": describe(samples["wf10"]),
            "step_call": describe(step_calls),
        },
    }


def delete_rows() -> None:
    """Delete the workflows this benchmark created (IDs ``bench-*``) and their checkpoints."""
    from django.db import connection

    from django_dbos.engine.system_db import STATUS_TABLE, STEPS_TABLE

    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {STEPS_TABLE} WHERE workflow_uuid LIKE %s", [ID_PREFIX + "%"])
        cursor.execute(f"DELETE FROM {STATUS_TABLE} WHERE workflow_uuid LIKE %s", [ID_PREFIX + "%"])


# -- the dbos package --------------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    """This environment minus anything that could point DBOS at the cloud or a collector."""
    drop = ("DBOS_", "DBOS__", "OTEL_", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def measure_dbos(
    system_url: str, warmup: int, rounds: int, raw_per_round: int, keep_rows: bool
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.dbos_core",
        "--system-database-url",
        system_url,
        "--rounds",
        str(rounds),
        "--warmup",
        str(warmup),
        "--raw-per-round",
        str(raw_per_round),
    ]
    if keep_rows:
        command.append("--keep-rows")
    progress(f"dbos: starting a subprocess (system database {system_url.rsplit('/', 1)[-1]})")
    done = subprocess.run(  # stderr passes through: its progress lines and any traceback
        command, cwd=REPO_ROOT, env=_clean_env(), stdout=subprocess.PIPE, text=True, timeout=600
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise BenchmarkError(f"the dbos subprocess failed (exit {done.returncode}); see stderr")
    return json.loads(lines[-1])


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

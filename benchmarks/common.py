"""Helpers shared by the benchmark suites and by the ``dbos`` subprocess.

Nothing here imports Django or django_dbos at module level (only ``setup_django`` and
``delete_django_rows`` do, when called): ``dbos_core.py`` (the DBOS package's side, run in its
own process) uses the same timing loop and the same raw INSERT baseline as the Django side, so
both are measured the same way. The dbos subprocesses' own shared code is in ``dbos_common.py``.
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
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

#: Every workflow ID a benchmark creates starts with this, so its rows can be found and deleted.
ID_PREFIX = "bench-"
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "postgis", "psql"}

#: Seconds since the epoch when the run began; the dbos subprocess inherits it, so its progress
#: lines count from the same start.
STARTED_AT = float(os.environ.setdefault("BENCH_STARTED_AT", repr(time.time())))


class BenchmarkError(Exception):
    """A problem the user must fix (missing DATABASE_URL, unreachable server, ...)."""


def progress(message: str) -> None:
    """One human-readable progress line on stderr (stdout is kept for the JSON result)."""
    print(f"[{time.time() - STARTED_AT:6.1f}s] {message}", file=sys.stderr, flush=True)


def fresh_id() -> str:
    return f"{ID_PREFIX}{uuid.uuid4()}"


# -- statistics --------------------------------------------------------------------------------


def ms(ns: float) -> float:
    return ns / 1e6


def median_ms(samples_ns: Sequence[float]) -> float:
    return round(ms(statistics.median(samples_ns)), 4)


def describe(samples_ns: Sequence[float]) -> dict[str, float]:
    """Median and spread of one figure, in ms."""
    ordered = sorted(samples_ns)
    n = len(ordered)
    return {
        "median_ms": round(ms(statistics.median(ordered)), 4),
        "p10_ms": round(ms(ordered[int(0.10 * (n - 1))]), 4),
        "p90_ms": round(ms(ordered[int(0.90 * (n - 1))]), 4),
        "n": n,
    }


# -- the timing loop ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """One thing to time: ``fn(fresh_id)`` runs once per repeat, each with a new ID."""

    name: str
    fn: Callable[[str], Any]
    repeats: int = 1


def interleaved(cases: Sequence[Case], rounds: int, warmup: int) -> dict[str, list[int]]:
    """Time every case in every round, cases in a fixed order, after ``warmup`` untimed rounds.

    Interleaving (rather than all of A, then all of B) means slow drift of the machine or the
    database (autovacuum, checkpoints, another process) hits every figure alike. IDs are made
    before the clock starts; the clock covers exactly one call. Samples are nanoseconds.
    """
    samples: dict[str, list[int]] = {case.name: [] for case in cases}
    clock = time.perf_counter_ns
    for round_no in range(warmup + rounds):
        timed = round_no >= warmup
        for case in cases:
            for _ in range(case.repeats):
                workflow_id = fresh_id()
                started = clock()
                case.fn(workflow_id)
                elapsed = clock() - started
                if timed:
                    samples[case.name].append(elapsed)
    return samples


# -- PostgreSQL --------------------------------------------------------------------------------


def require_postgres_url(env_var: str = "DATABASE_URL") -> str:
    url = os.environ.get(env_var, "").strip()
    if not url:
        raise BenchmarkError(
            f"{env_var} is not set. The benchmarks need PostgreSQL, e.g.\n"
            f"  {env_var}=postgres://postgres@127.0.0.1:5432/django_dbos_bench "
            "python benchmarks/run.py core --json"
        )
    scheme = urlsplit(url).scheme.split("+")[0].lower()
    if scheme not in POSTGRES_SCHEMES:
        raise BenchmarkError(
            f"{env_var} must point at PostgreSQL (postgres://...), not {scheme or url!r}: the "
            "figures are compared with the dbos package, which runs on PostgreSQL."
        )
    return url


def conninfo(url: str, dbname: str | None = None) -> dict[str, Any]:
    """psycopg.connect() keyword arguments for a postgres:// URL (optionally another database)."""
    parts = urlsplit(url)
    params: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": parts.port or 5432,
        "dbname": dbname or unquote(parts.path.lstrip("/")) or "postgres",
    }
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.password:
        params["password"] = unquote(parts.password)
    return params


def sibling_url(url: str, dbname: str) -> str:
    """The same server and credentials as ``url``, database ``dbname``, as a postgresql:// URL."""
    return f"postgresql://{urlsplit(url).netloc}/{dbname}"


def ensure_database(url: str, dbname: str | None = None) -> bool:
    """CREATE DATABASE when it is missing; True when this call created it."""
    params = conninfo(url, dbname)
    target = params["dbname"]
    try:
        with psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [target]
            ).fetchone()
            if exists:
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
            return True
    except psycopg.OperationalError as exc:
        raise BenchmarkError(
            f"Cannot reach PostgreSQL at {params['host']}:{params['port']} as "
            f"{params.get('user', '(default user)')}: {exc}".strip()
        ) from exc


class RawInsert:
    """The baseline: a one-row INSERT + COMMIT with psycopg directly.

    An autocommit connection with psycopg's defaults, so one ``execute`` is one round trip
    and one commit (one WAL flush), exactly like each statement of a workflow's hot path. The
    table is a regular (WAL-logged) table made for the purpose and dropped by ``close()``.
    """

    def __init__(self, params: dict[str, Any], **connect_options: Any) -> None:
        self.table = f"dbos_bench_raw_insert_{os.getpid()}"
        self.conn = psycopg.connect(**params, **connect_options, autocommit=True)
        self.conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id bigserial PRIMARY KEY, payload text NOT NULL)"
            ).format(sql.Identifier(self.table))
        )
        self._insert = sql.SQL("INSERT INTO {} (payload) VALUES (%s)").format(
            sql.Identifier(self.table)
        )

    def __call__(self, payload: str) -> None:
        self.conn.execute(self._insert, [payload])

    def close(self) -> None:
        self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.table)))
        self.conn.close()


# -- the suites' side: Django, the dbos subprocess ---------------------------------------------
# (Django is imported inside the functions that need it, never by the dbos subprocess.)

REPO_ROOT = Path(__file__).resolve().parent.parent


def suite_database(no_dbos: bool) -> str:
    """DATABASE_URL, checked; the dbos package present unless ``no_dbos``; the database made."""
    url = require_postgres_url()
    if not no_dbos and importlib.util.find_spec("dbos") is None:
        raise BenchmarkError(
            "the dbos package is not installed: pip install -e '.[bench]' (or pass --no-dbos)"
        )
    if ensure_database(url):
        progress(f"created database {conninfo(url)['dbname']}")
    return url


def add_dbos_arguments(parser: argparse.ArgumentParser, system_database: str) -> None:
    """The options every suite takes: ``--no-dbos``, ``--keep-rows``, ``--dbos-system-database``
    (default ``system_database``)."""
    parser.add_argument(
        "--no-dbos", action="store_true", help="skip the dbos package (its figures are null)"
    )
    parser.add_argument(
        "--keep-rows",
        action="store_true",
        help="keep the benchmark's workflow rows (by default rows with IDs bench-* are deleted)",
    )
    parser.add_argument(
        "--dbos-system-database",
        default=system_database,
        help="database (same server as DATABASE_URL) for the dbos package's system tables",
    )


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


def delete_django_rows(before: Sequence[tuple[str, str]] = ()) -> None:
    """Delete django_dbos rows of the benchmark's workflows (IDs ``bench-*``): first each
    ``(table, id column)`` of ``before``, then the steps, then the status rows."""
    from django.db import connection

    from django_dbos.engine.system_db import STATUS_TABLE, STEPS_TABLE

    tables = [*before, (STEPS_TABLE, "workflow_uuid"), (STATUS_TABLE, "workflow_uuid")]
    with connection.cursor() as cursor:
        for table, column in tables:
            cursor.execute(f"DELETE FROM {table} WHERE {column} LIKE %s", [ID_PREFIX + "%"])


def clean_env() -> dict[str, str]:
    """This environment minus anything that could point DBOS at the cloud or a collector."""
    drop = ("DBOS_", "DBOS__", "OTEL_", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def run_dbos(
    module: str, system_url: str, options: list[str], keep_rows: bool, timeout: float
) -> dict[str, Any]:
    """``python -m benchmarks.<module> --system-database-url URL <options> [--keep-rows]`` in a
    clean environment; its stderr passes through, the last line of its stdout is the result."""
    command = [sys.executable, "-m", module, "--system-database-url", system_url, *options]
    if keep_rows:
        command.append("--keep-rows")
    progress(f"dbos: starting a subprocess (system database {system_url.rsplit('/', 1)[-1]})")
    done = subprocess.run(  # stderr passes through: its progress lines and any traceback
        command, cwd=REPO_ROOT, env=clean_env(), stdout=subprocess.PIPE, text=True, timeout=timeout
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise BenchmarkError(f"the dbos subprocess failed (exit {done.returncode}); see stderr")
    return json.loads(lines[-1])


# -- core: the workflow loop both sides run ----------------------------------------------------


def inline(set_workflow_id: Callable[[str], Any], workflow: Callable[[], Any]):
    """A direct call of ``workflow`` under a given (fresh) ID: it runs inline, durably."""

    def call(workflow_id: str) -> None:
        with set_workflow_id(workflow_id):
            workflow()

    return call


def time_workflows(
    raw: RawInsert,
    wf0: Callable[[str], Any],
    wf10: Callable[[str], Any],
    step_call_ns: list[int],
    warmup: int,
    rounds: int,
    raw_per_round: int,
) -> dict[str, list[int]]:
    """``core``'s loop: ``warmup`` untimed then ``rounds`` timed rounds of (raw x
    ``raw_per_round``, wf0, wf10); ``step_call_ns`` is cleared after the warm-up."""
    cases = [
        Case("raw", raw, repeats=raw_per_round),
        Case("wf0", wf0),
        Case("wf10", wf10),
    ]
    interleaved(cases, rounds=0, warmup=warmup)
    step_call_ns.clear()
    gc.collect()
    return interleaved(cases, rounds=rounds, warmup=0)


def workflow_figures(
    samples: dict[str, list[int]], step_calls: Sequence[int], steps: int
) -> dict[str, Any]:
    """``core``'s figures from ``time_workflows``'s samples and the step-call samples."""
    wf0 = statistics.median(samples["wf0"])
    wf10 = statistics.median(samples["wf10"])
    return {
        "raw_insert_commit_ms": median_ms(samples["raw"]),
        "workflow_0_steps_ms": round(ms(wf0), 4),
        "workflow_10_steps_ms": round(ms(wf10), 4),
        "step_overhead_ms": round(ms(wf10 - wf0) / steps, 4),
        "step_call_ms": median_ms(step_calls),
        "detail": {
            "raw_insert_commit": describe(samples["raw"]),
            "workflow_0_steps": describe(samples["wf0"]),
            "workflow_10_steps": describe(samples["wf10"]),
            "step_call": describe(step_calls),
        },
    }

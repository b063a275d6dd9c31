"""Helpers shared by the benchmark suites and by the ``dbos`` subprocess.

Nothing here imports Django or django_dbos: ``dbos_core.py`` (the DBOS package's side, run in its
own process) uses the same timing loop and the same raw INSERT baseline as the Django side, so
both are measured the same way.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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

"""Running the hot-path statements: the one place where SQLite and PostgreSQL differ for them.

A step's whole cost is one round trip, so on PostgreSQL the statements that run for every
workflow and step (start INSERT, checkpoint INSERT, finish UPDATE) are *prepared* once per
connection and then only executed: the server skips parsing and planning them, which is a
large share of a one-row write. Django's own cursors bind parameters on the client and never
prepare (Django disables prepared statements to keep transaction-mode poolers working), so these
statements go through a psycopg cursor on the same connection, inside the same transaction,
with Django's error wrapping and query logging (``CaptureQueriesContext`` still sees them).
``DBOS["PREPARED_STATEMENTS"] = False`` turns this off, e.g. behind PgBouncer < 1.21.

On SQLite (and when preparing is off) they run through Django's ordinary cursor.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from django_dbos.conf import dbos_settings

# Never auto-prepare other queries on the connection; only ours ask for it explicitly.
_ONLY_WHEN_ASKED = 2**31 - 1


class Result:
    """What the callers need of a finished statement."""

    __slots__ = ("row", "rowcount")

    def __init__(self, rowcount: int, row: tuple[Any, ...] | None) -> None:
        self.rowcount = rowcount
        self.row = row


def execute(
    conn: BaseDatabaseWrapper,
    sql: str,
    params: Sequence[Any],
    *,
    pg_sql: str | None = None,
    fetch: bool = False,
) -> Result:
    """Run one hot-path statement. ``pg_sql`` is the PostgreSQL text when it needs casts that
    client-side binding did not (server-side parameters in a SELECT list have no type)."""
    if conn.vendor == "postgresql" and dbos_settings().PREPARED_STATEMENTS:
        return _execute_prepared(conn, pg_sql or sql, params, fetch)
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return Result(cursor.rowcount, cursor.fetchone() if fetch else None)


def _execute_prepared(
    conn: BaseDatabaseWrapper, sql: str, params: Sequence[Any], fetch: bool
) -> Result:
    import psycopg

    conn.ensure_connection()
    conn.validate_no_broken_transaction()
    raw = conn.connection
    if raw.prepare_threshold is None:
        raw.prepare_threshold = _ONLY_WHEN_ASKED
    started = time.monotonic()
    with conn.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        cursor.execute(sql, params, prepare=True)
        result = Result(cursor.rowcount, cursor.fetchone() if fetch else None)
    if conn.queries_logged:
        conn.queries_log.append(
            {"sql": f"{sql} -- {list(params)!r}", "time": f"{time.monotonic() - started:.3f}"}
        )
    return result

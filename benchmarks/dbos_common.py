"""Shared by the dbos package's subprocesses (``dbos_core.py``, ``dbos_comm.py``,
``dbos_queue.py``): their common options, DBOS's configuration and launch, the result line and
the clean-up of the rows a run leaves in the dbos system database. Nothing here imports Django.

Nothing reaches the network: no conductor key, OTLP off, and the suites strip ``DBOS_*`` /
``DBOS__*`` / ``OTEL_*`` variables from the subprocess's environment (``common.clean_env``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from collections.abc import Iterable, Sequence
from importlib.metadata import version
from typing import Any

import psycopg
from dbos import DBOS

from benchmarks.common import ID_PREFIX, conninfo, ensure_database, progress

#: Tables of the dbos system database that hold a run's rows, keyed by ``workflow_uuid``. dbos 3.4
#: keeps steps, inputs and outputs in tables of their own, not deleted with the status row (no
#: ON DELETE CASCADE), so each is cleaned explicitly; events, event history, streams and
#: notifications do cascade from ``workflow_status``.
ROW_TABLES = ("operation_outputs", "workflow_input", "workflow_output", "workflow_status")
#: Seconds ``shutdown`` lets workflows still running finish (DBOS checks once a second).
COMPLETION_TIMEOUT_S = 10


def argument_parser(description: str | None) -> argparse.ArgumentParser:
    """The options every dbos subprocess takes: ``--system-database-url``, ``--keep-rows``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--system-database-url", required=True)
    parser.add_argument("--keep-rows", action="store_true")
    return parser


def launch(url: str, listen_queues: Sequence[str] | None = None) -> None:
    """Create the system database if missing, configure DBOS (no OTLP, WARNING logs) and launch
    it; with ``listen_queues``, this process serves only those queues."""
    if ensure_database(url):
        progress("dbos: created its system database")
    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS(
        config={
            "name": "django-dbos-bench",
            "system_database_url": url,
            "enable_otlp": False,
            "log_level": "WARNING",
        }
    )
    if listen_queues is not None:
        DBOS.listen_queues(list(listen_queues))
    DBOS.launch()


def delete_rows(url: str) -> None:
    """Delete this run's workflows: status, steps, inputs, outputs (what cascades goes with
    them)."""
    with psycopg.connect(**conninfo(url), autocommit=True) as conn:
        for table in ROW_TABLES:
            exists = conn.execute("SELECT to_regclass(%s)", [f"dbos.{table}"]).fetchone()[0]
            if exists is not None:
                conn.execute(
                    f"DELETE FROM dbos.{table} WHERE workflow_uuid LIKE %s", [ID_PREFIX + "%"]
                )


def delete_queues(names: Iterable[str]) -> None:
    """``DBOS.delete_queue`` each of ``names`` (DBOS must be launched); missing ones are fine."""
    for name in names:
        with contextlib.suppress(Exception):  # not registered (yet)
            DBOS.delete_queue(name)


def shutdown(url: str, keep_rows: bool, queues: Iterable[str] = ()) -> None:
    """The end of every dbos subprocess, measured or not: unless ``keep_rows``, delete the
    ``queues``; destroy DBOS, waiting (up to ``COMPLETION_TIMEOUT_S``) for workflows still
    running (a step finishing after the last sample would otherwise write a row after the
    clean-up); then, unless ``keep_rows``, delete the run's rows."""
    if not keep_rows:
        delete_queues(queues)
    DBOS.destroy(workflow_completion_timeout_sec=COMPLETION_TIMEOUT_S)
    if not keep_rows:
        delete_rows(url)


def emit(figures: dict[str, Any]) -> None:
    """The result: one JSON object, with ``dbos_version``, as the last line of stdout."""
    print(json.dumps({"dbos_version": version("dbos"), **figures}), flush=True)

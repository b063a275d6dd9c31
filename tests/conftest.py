"""Shared fixtures: a fresh executor per test, database helpers, worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection, connections

from django_dbos.context import StartOptions, _next_start
from django_dbos.engine import wakeups
from django_dbos.engine.executor import ProcessExecutor, get_executor, reset_executor
from django_dbos.engine.threads import close_async_db_threads
from django_dbos.models import Executor
from django_dbos.registry import registry

REPO = Path(__file__).resolve().parent.parent

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL)"
)


@pytest.fixture(scope="session", autouse=True)
def _listener_closed_before_the_test_database_goes(django_db_setup):
    """The LISTEN connection (PostgreSQL) must be gone before the test database is dropped."""
    yield
    wakeups.listener.stop()


@pytest.fixture(autouse=True)
def executor(django_db_blocker) -> Iterator[ProcessExecutor]:
    """Each test gets its own executor (ID, pool, heartbeat), stopped afterwards."""
    _next_start.set(StartOptions())
    fresh = reset_executor()
    yield fresh
    current = get_executor()
    for used in {fresh, current}:
        used.stop(retire=False, wait=True)
    # the test database is emptied after each test: no queue's configuration row is stored now
    for queue in registry.queues.values():
        queue.stored = False
    close_async_db_threads()
    registered = [e.executor_id for e in {fresh, current} if e.registered]
    # On SQLite the row went in with the test's own transaction (and is rolled back with it).
    if registered and connection.vendor == "postgresql":
        with django_db_blocker.unblock():
            _forget_executors(registered)


def _forget_executors(executor_ids: list[str]) -> None:
    """Executor rows are committed outside the test's transaction (as in production, outside
    the request's): delete this test's row the same way so tests don't see each other's."""

    def delete() -> None:
        try:
            Executor.objects.filter(executor_id__in=executor_ids).delete()
        finally:
            connections.close_all()

    thread = threading.Thread(target=delete)
    thread.start()
    thread.join()


@pytest.fixture
def fast_heartbeat(settings):
    """Heartbeats every 0.1 s; executors silent for 1 s are dead."""
    settings.DBOS = {**settings.DBOS, "HEARTBEAT_INTERVAL": 0.1, "EXECUTOR_TIMEOUT": 1.0}
    return settings.DBOS


def worker_env(**extra: str) -> dict[str, str]:
    """The environment for a worker subprocess that must use this test's database."""
    env = dict(os.environ)
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        env["SQLITE_PATH"] = str(db["NAME"])
        env.pop("DATABASE_URL", None)
    else:
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def start_worker(*args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "dbos_worker", *args],
        env=worker_env(**env),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

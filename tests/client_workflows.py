"""Queues and workflows for tests/test_client.py (imported by it, not autodiscovered).

The client never imports this module's functions: it names them by their registered names.
"""

from __future__ import annotations

import os
import threading

from django.db import connection

from django_dbos import DBOS, EnqueueOptions, Queue
from django_dbos.engine.queues import store_config

QUEUE = "tests.client"
client_queue = Queue(QUEUE, polling_interval_sec=0.05)
prio_queue = Queue("tests.client_prio", priority_enabled=True, polling_interval_sec=0.05)
parts_queue = Queue("tests.client_parts", partition_queue=True, polling_interval_sec=0.05)
QUEUES = [client_queue, prio_queue, parts_queue]
GREET = "tests.client.greet"


def store_queues() -> None:
    """The test database is emptied between tests: store this module's queue rows again (what
    a client looks queues up in). tests/conftest.py forgets every queue's ``stored`` mark after
    each test."""
    calls.clear()
    for queue in QUEUES:
        queue.stored = False
        store_config(queue)


def options(**extra) -> EnqueueOptions:
    return EnqueueOptions(workflow_name=GREET, queue_name=QUEUE, **extra)


def database_url() -> str:
    """The test database as a URL (what a process without the project would be given)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{os.path.abspath(db['NAME'])}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


_lock = threading.Lock()
calls: dict[str, int] = {}


def count(label: str) -> None:
    with _lock:
        calls[label] = calls.get(label, 0) + 1


@DBOS.workflow(name="tests.client.greet")
def greet(name: str, punctuation: str = "!") -> str:
    DBOS.set_event("greeted", name)
    return f"hello {name}{punctuation}"


@DBOS.workflow(name="tests.client.collect")
def collect(n: int) -> list[str]:
    """Waits for ``n`` messages on topic ``"in"``."""
    return [DBOS.recv("in", timeout_seconds=30) for _ in range(n)]


@DBOS.workflow(name="tests.client.stream")
def stream(n: int) -> int:
    for i in range(n):
        DBOS.write_stream("numbers", i)
    DBOS.close_stream("numbers")
    return n


@DBOS.step(name="tests.client.first")
def first(label: str) -> str:
    count(f"first-{label}")
    return label


@DBOS.step(name="tests.client.second")
def second(label: str) -> str:
    count(f"second-{label}")
    return label.upper()


@DBOS.workflow(name="tests.client.two_steps")
def two_steps(label: str) -> str:
    """Step 1, a wait for a ``go`` message (function 2), step 3."""
    first(label)
    DBOS.recv("go", timeout_seconds=30)
    return second(label)


@DBOS.workflow(name="tests.client.straight")
def straight(label: str) -> str:
    first(label)
    return second(label)

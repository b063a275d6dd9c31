"""Queues and workflows for tests/test_sql_enqueue.py (imported by it, not autodiscovered)."""

from __future__ import annotations

from typing import Any

from django_dbos import DBOS, Queue

sql_queue = Queue("tests.sqlenq.queue", polling_interval_sec=0.05)
sql_prio = Queue("tests.sqlenq.prio", priority_enabled=True, polling_interval_sec=0.05)
sql_parts = Queue("tests.sqlenq.parts", partition_queue=True, polling_interval_sec=0.05)
# polls once a minute: only the enqueue NOTIFY can wake its idle worker in time
sql_notify = Queue("tests.sqlenq.notify", polling_interval_sec=60)


@DBOS.workflow(name="tests.sqlenq.echo")
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Returns what it was called with, so a test sees the decoded inputs."""
    return {"args": list(args), "kwargs": kwargs}


@DBOS.workflow(name="tests.sqlenq.greet")
def greet(name: str, punctuation: str = ".") -> str:
    return f"hello {name}{punctuation}"

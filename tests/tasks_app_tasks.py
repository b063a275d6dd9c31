"""``@task`` functions the Tasks-backend tests enqueue (imported by tests/test_tasks_backend.py).

They are written as a user would write them, against ``django.tasks`` (Django 6) or the
``django-tasks`` backport (Django 5.2), and call ``@DBOS.step``s like any workflow code.
"""

from __future__ import annotations

import threading
from typing import Any

from django_dbos import DBOS, Queue

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task

# Per-process counters the tests inspect (how often a body really ran), and the run order.
calls: dict[str, int] = {}
order: list[str] = []
lock = threading.Lock()
gate = threading.Event()

# The DBOS queue a test maps a Django queue to by name (OPTIONS["queues"] = {...: "<name>"}).
declared_for_tasks = Queue("tests.tasks.declared", priority_enabled=True, polling_interval_sec=0.1)


def bump(key: str) -> int:
    with lock:
        calls[key] = calls.get(key, 0) + 1
        return calls[key]


@task
def add(a: int, b: int) -> int:
    return a + b


@DBOS.step()
def count_step(name: str) -> str:
    bump(name)
    return name.upper()


@task()
def two_steps(prefix: str) -> list[str]:
    return [count_step(f"{prefix}-one"), count_step(f"{prefix}-two")]


@task
def fails(message: str) -> None:
    raise ValueError(message)


@task
def returns_a_set() -> Any:
    return {1, 2}


@DBOS.step()
async def async_step(x: int) -> int:
    bump("async_step")
    return x * 10


@task
async def async_task(x: int) -> int:
    return await async_step(x) + 1


@task(takes_context=True)
def with_context(context: Any, label: str) -> dict[str, Any]:
    result = context.task_result
    return {
        "label": label,
        "id": result.id,
        "status": str(result.status),
        "attempt": context.attempt,
        "worker_ids": result.worker_ids,
    }


@task(queue_name="tasks.serial")
def record_order(label: str) -> str:
    with lock:
        order.append(label)
    return label


@task(queue_name="tasks.plain")
def on_plain_queue() -> str:
    return "plain"


@task
def wait_for_gate() -> str:
    gate.wait(30)
    DBOS.sleep(0)  # a durable operation: where a cancel takes effect
    return "opened"

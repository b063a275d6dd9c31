"""Workflows and debouncers for tests/test_debouncer.py (imported by it, not autodiscovered)."""

from __future__ import annotations

import threading

from django_dbos import DBOS, DBOSQueueDeduplicatedError, Debouncer, Queue

fast = Queue("tests.debounce_fast", polling_interval_sec=0.05)
partitioned = Queue("tests.debounce_parts", partition_queue=True)

runs: list[tuple[str, object]] = []
runs_lock = threading.Lock()
release = threading.Event()  # wait_then_echo blocks on it


@DBOS.workflow(name="tests.debounce.echo")
def echo(value: object) -> object:
    with runs_lock:
        runs.append(("echo", value))
    return value


@DBOS.workflow(name="tests.debounce.other")
def other(value: object) -> object:
    with runs_lock:
        runs.append(("other", value))
    return value


@DBOS.workflow(name="tests.debounce.wait_then_echo")
def wait_then_echo(value: object) -> object:
    release.wait(30)
    with runs_lock:
        runs.append(("wait", value))
    return value


@DBOS.workflow(name="tests.debounce.async_echo")
async def async_echo(value: object) -> object:
    with runs_lock:
        runs.append(("async", value))
    return value


echo_debouncer = Debouncer.create(echo, queue=fast)
other_debouncer = Debouncer.create(other, queue=fast)
waiting_debouncer = Debouncer.create(wait_then_echo, queue=fast)
async_debouncer = Debouncer.create_async(async_echo, queue=fast)
capped_debouncer = Debouncer.create(echo, debounce_timeout_sec=1.0, queue=fast)
internal_debouncer = Debouncer.create(echo)


@DBOS.step(name="tests.debounce.noop")
def noop() -> None:
    return None


@DBOS.workflow(name="tests.debounce.caller")
def caller(key: str, value: object) -> str:
    """Debounces from inside a workflow, between two steps."""
    noop()
    handle = echo_debouncer.debounce(key, 3600, value)
    noop()
    return handle.workflow_id


@DBOS.step(name="tests.debounce.debounce_in_step")
def debounce_in_step(key: str, value: object) -> str:
    return echo_debouncer.debounce(key, 3600, value).workflow_id


@DBOS.workflow(name="tests.debounce.step_caller")
def step_caller(key: str, value: object) -> str:
    return debounce_in_step(key, value)


@DBOS.workflow(name="tests.debounce.guarded_caller")
def guarded_caller(key: str) -> str:
    """Debounces and carries on when the key is held by a workflow of another name."""
    try:
        result = echo_debouncer.debounce(key, 3600, "g").workflow_id
    except DBOSQueueDeduplicatedError:
        result = "conflict"
    noop()
    return result


@DBOS.workflow(name="tests.debounce.async_caller")
async def async_caller(key: str, value: object) -> str:
    handle = await async_debouncer.debounce_async(key, 3600, value)
    return handle.workflow_id

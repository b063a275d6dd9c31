"""Workflows the tests run (a ``workflows`` module: autodiscovered like a user's app would be)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from decimal import Decimal

from django_dbos import DBOS
from tests.models import Ledger, Run

# Per-process counters the tests inspect (how often a body really ran).
calls: dict[str, int] = {}
calls_lock = threading.Lock()
gate = threading.Event()


def bump(key: str) -> int:
    with calls_lock:
        calls[key] = calls.get(key, 0) + 1
        return calls[key]


@dataclasses.dataclass
class Receipt:
    order: str
    total: Decimal


@DBOS.step(name="tests.add_one")
def add_one(x: int) -> int:
    bump("add_one")
    return x + 1


@DBOS.step(name="tests.record_run")
def record_run(key: str, step: str) -> str:
    Run.objects.create(key=key, step=step)
    return step


@DBOS.workflow(name="tests.plain")
def plain_workflow(x: int) -> int:
    bump("plain_workflow")
    return add_one(add_one(x))


@DBOS.workflow(name="tests.k_steps")
def k_steps(k: int) -> int:
    total = 0
    for _ in range(k):
        total = add_one(total)
    return total


@DBOS.workflow(name="tests.receipt")
def receipt_workflow(order: str) -> Receipt:
    return Receipt(order=order, total=Decimal("12.50"))


class OrderRejected(Exception):
    pass


@DBOS.workflow(name="tests.failing")
def failing_workflow(reason: str) -> None:
    bump("failing_workflow")
    add_one(1)
    raise OrderRejected(reason)


@DBOS.transaction(name="tests.credit")
def credit(key: str, amount: int) -> int:
    Ledger.objects.create(key=key, amount=amount)
    return Ledger.objects.filter(key=key).count()


@DBOS.transaction(name="tests.credit_then_fail")
def credit_then_fail(key: str) -> None:
    Ledger.objects.create(key=key, amount=1)
    raise OrderRejected("after the write")


@DBOS.workflow(name="tests.ledger")
def ledger_workflow(key: str) -> list:
    first = record_run(key, "before")
    count = credit(key, 10)
    after = record_run(key, "after")
    return [first, count, after]


@DBOS.workflow(name="tests.ledger_failure")
def ledger_failure_workflow(key: str) -> str:
    try:
        credit_then_fail(key)
    except OrderRejected as exc:
        return f"caught: {exc}"
    return "not raised"


@DBOS.workflow(name="tests.sleepy")
def sleepy_workflow(seconds: float) -> str:
    DBOS.sleep(seconds)
    return add_one_str("woke")


@DBOS.step(name="tests.add_one_str")
def add_one_str(s: str) -> str:
    return s + "!"


@DBOS.workflow(name="tests.parent")
def parent_workflow(x: int) -> list:
    child = plain_workflow(x)
    handle = DBOS.start_workflow(plain_workflow, x + 10)
    return [child, handle.get_result(), handle.workflow_id, DBOS.workflow_id]


@DBOS.workflow(name="tests.waits_for_gate")
def gated_workflow() -> str:
    record_run("gated", "first")
    gate.wait(10)
    return record_run("gated", "second")


@DBOS.step(
    name="tests.flaky",
    retries_allowed=True,
    max_attempts=3,
    interval_seconds=0.01,
    backoff_rate=2.0,
)
def flaky_step(key: str, failures: int) -> str:
    attempt = bump(f"flaky:{key}")
    if attempt <= failures:
        raise ConnectionError(f"attempt {attempt} failed")
    return f"ok after {attempt}"


@DBOS.workflow(name="tests.flaky_workflow")
def flaky_workflow(key: str, failures: int) -> str:
    return flaky_step(key, failures)


@DBOS.step(name="tests.outer_step")
def outer_step() -> list:
    # a step called from a step is a plain call: one checkpoint for both
    return [add_one(1), DBOS.step_id]


@DBOS.workflow(name="tests.nested_steps")
def nested_steps_workflow() -> list:
    return outer_step()


@DBOS.step(name="tests.async_double")
async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    bump("async_double")
    return 2 * x


@DBOS.workflow(name="tests.async_workflow")
async def async_workflow(x: int) -> list:
    doubled = await async_double(x)
    await DBOS.sleep_async(0.01)
    plus = add_one(doubled)  # a sync step inside an async workflow
    return [doubled, plus, DBOS.workflow_id]


@DBOS.workflow(name="tests.unserializable_result")
def unserializable_result_workflow() -> object:
    return object()


# -- communication ---------------------------------------------------------------------------


@DBOS.workflow(name="tests.receiver")
def receiver_workflow(topic: str | None, count: int, timeout: float = 10) -> list:
    return [DBOS.recv(topic, timeout_seconds=timeout) for _ in range(count)]


@DBOS.workflow(name="tests.sender")
def sender_workflow(destination: str, messages: list) -> int:
    for message in messages:
        DBOS.send(destination, message, topic="orders")
    return len(messages)


@DBOS.workflow(name="tests.publisher")
def publisher_workflow(values: list, then_wait: bool = False) -> str:
    for n, value in enumerate(values):
        DBOS.set_event("progress", value)
        DBOS.set_event(f"step-{n}", value)
    if then_wait:
        DBOS.recv("go", timeout_seconds=10)
    return "published"


@DBOS.workflow(name="tests.event_waiter")
def event_waiter_workflow(target: str, key: str, timeout: float) -> object:
    return DBOS.get_event(target, key, timeout_seconds=timeout)


@DBOS.workflow(name="tests.event_reader")
def event_reader_workflow(target: str) -> list:
    return [DBOS.get_event(target, "progress", timeout_seconds=5), DBOS.get_all_events(target)]


@DBOS.step(name="tests.stream_from_step")
def stream_from_step(values: list) -> int:
    bump("stream_from_step")
    for value in values:
        DBOS.write_stream("numbers", value)
    return len(values)


@DBOS.workflow(name="tests.streamer")
def streamer_workflow(values: list, pause: float = 0.0, close: bool = True) -> int:
    for value in values:
        DBOS.write_stream("numbers", value)
        if pause:
            DBOS.sleep(pause)
    if close:
        DBOS.close_stream("numbers")
    return len(values)


@DBOS.workflow(name="tests.step_streamer")
def step_streamer_workflow(values: list) -> int:
    count = stream_from_step(values)
    DBOS.close_stream("numbers")
    return count


@DBOS.workflow(name="tests.first_of")
def first_of_workflow(delays: list) -> str:
    handles = [DBOS.start_workflow(sleepy_workflow, delay) for delay in delays]
    return DBOS.wait_first(handles).workflow_id

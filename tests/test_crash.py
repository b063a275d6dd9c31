"""kill -9 a real dbos_worker at random checkpoints of the demo order workflow, restart, check.

After every kill the workflow completes; each step that had completed before the kill ran
exactly once; the stock reservation (a transaction) happened exactly once; the durable sleep
was not restarted from zero.
"""

from __future__ import annotations

import random
import signal
import time

import pytest

from django_dbos import serialization
from django_dbos.engine import system_db
from django_dbos.models import OperationOutput, WorkflowStatus, now_ms
from testproject.orders.models import Order, Product, StepLog
from tests.conftest import start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

VERSION = "crash-test"
SLEEP_S = 2.0
# function_ids of the order workflow: 1 validate, 2 reserve, 3 charge, 4 sleep, 5 ship
STEP_LOG_NAMES = {1: "validate", 3: "charge", 5: "ship"}


@pytest.fixture
def crash_settings(settings):
    settings.DBOS = {
        **settings.DBOS,
        "APPLICATION_VERSION": VERSION,
        "HEARTBEAT_INTERVAL": 0.2,
        "EXECUTOR_TIMEOUT": 1.5,
    }


def enqueue_for(executor_id: str, order_id: int) -> str:
    """A PENDING order workflow owned by ``executor_id`` (as if that process had started it)."""
    workflow_id = f"order-{order_id}"
    now = now_ms()
    system_db.insert_workflow(
        {
            "workflow_uuid": workflow_id,
            "status": "PENDING",
            "name": "testproject.orders.workflows.order_workflow",
            "inputs": serialization.serialize_args((order_id, SLEEP_S), {}),
            "executor_id": executor_id,
            "application_version": VERSION,
            "recovery_attempts": 0,
            "priority": 0,
            "created_at": now,
            "updated_at": now,
        }
    )
    return workflow_id


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def worker_env() -> dict[str, str]:
    return {
        "DBOS_APPLICATION_VERSION": VERSION,
        "DBOS_HEARTBEAT_INTERVAL": "0.2",
        "DBOS_EXECUTOR_TIMEOUT": "1.5",
        "DBOS_LOG_LEVEL": "WARNING",
    }


def checkpoints(workflow_id: str) -> set[int]:
    return set(
        OperationOutput.objects.filter(workflow_id=workflow_id).values_list(
            "function_id", flat=True
        )
    )


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_kill_9_at_a_checkpoint_then_restart(kill_at, crash_settings):
    rng = random.Random(kill_at)
    product = Product.objects.create(sku=f"SKU{kill_at}", name="Widget", price=3, stock=10)
    order = Order.objects.create(product=product, quantity=2)
    executor_id = f"crash-worker-{kill_at}"
    workflow_id = enqueue_for(executor_id, order.pk)

    first = start_worker("--executor-id", executor_id, **worker_env())
    try:
        wait_for(lambda: kill_at in checkpoints(workflow_id), 30, f"checkpoint {kill_at}")
        time.sleep(rng.uniform(0, 0.05))  # land anywhere shortly after the checkpoint
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    done_before_kill = checkpoints(workflow_id)
    assert WorkflowStatus.objects.get(pk=workflow_id).status == "PENDING"
    sleep_row = OperationOutput.objects.filter(workflow_id=workflow_id, function_id=4).first()
    wake_ms_before = int(sleep_row.output) if sleep_row else None

    # Even kill points restart under the same ID (taken over at once); odd ones start a fresh
    # worker that adopts the dead executor's workflow once its heartbeat goes stale.
    restart_args = ["--executor-id", executor_id] if kill_at % 2 == 0 else []
    second = start_worker(*restart_args, **worker_env())
    try:
        wait_for(
            lambda: WorkflowStatus.objects.filter(pk=workflow_id, recovery_attempts=2).exists(),
            30,
            "the restarted worker to claim the workflow",
        )
        claimed_ms = now_ms()
        row = wait_for(
            lambda: WorkflowStatus.objects.filter(pk=workflow_id, status="SUCCESS").first(),
            30,
            "SUCCESS",
        )
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=30)
        assert second.returncode == 0, out
        assert "stopped cleanly" in out
    finally:
        if second.poll() is None:
            second.kill()
    assert row.recovery_attempts == 2  # the first worker resumed it too

    logs = list(StepLog.objects.filter(order=order).values_list("step", flat=True))
    for function_id, name in STEP_LOG_NAMES.items():
        expected = 1 if function_id in done_before_kill else None
        count = logs.count(name)
        if expected == 1:
            assert count == 1, f"{name} completed before the kill but ran {count} times"
        else:
            assert count >= 1, f"{name} never ran"
    product.refresh_from_db()
    assert product.stock == 8  # the reservation transaction: exactly once
    order.refresh_from_db()
    assert order.status == Order.Status.SHIPPED
    assert sorted(checkpoints(workflow_id)) == [1, 2, 3, 4, 5]

    sleep_row = OperationOutput.objects.get(workflow_id=workflow_id, function_id=4)
    ship_row = OperationOutput.objects.get(workflow_id=workflow_id, function_id=5)
    if wake_ms_before is not None:
        # the sleep was recorded before the kill: the same wake-up time, and after the restart
        # shipping waited only for what was left of it, not a full SLEEP_S from the claim
        assert int(sleep_row.output) == wake_ms_before
        assert ship_row.started_at_epoch_ms >= wake_ms_before
        assert ship_row.started_at_epoch_ms <= max(wake_ms_before, claimed_ms) + 1000

"""The dbos_worker command: arguments, graceful stop on SIGTERM, burst mode."""

from __future__ import annotations

import signal
import time

import pytest
from django.core.management import CommandError, call_command

from django_dbos import serialization
from django_dbos.engine import system_db
from django_dbos.models import Executor, OperationOutput, WorkflowStatus, now_ms
from tests.conftest import start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

VERSION = "worker-test"
ENV = {"DBOS_APPLICATION_VERSION": VERSION, "DBOS_LOG_LEVEL": "INFO"}


def pending_sleeper(workflow_id: str, executor_id: str, seconds: float) -> None:
    now = now_ms()
    system_db.insert_workflow(
        {
            "workflow_uuid": workflow_id,
            "status": "PENDING",
            "name": "tests.sleepy",
            "inputs": serialization.serialize_args((seconds,), {}),
            "executor_id": executor_id,
            "application_version": VERSION,
            "recovery_attempts": 0,
            "priority": 0,
            "created_at": now,
            "updated_at": now,
        }
    )


def wait_for(predicate, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_sigterm_stops_at_the_next_checkpoint_and_hands_the_workflow_back():
    pending_sleeper("long-sleep", "worker-a", 30)
    worker = start_worker("--executor-id", "worker-a", "--grace-period", "5", **ENV)
    try:
        wait_for(lambda: OperationOutput.objects.filter(workflow_id="long-sleep").exists())
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, out
    assert time.monotonic() - started < 5  # the durable sleep woke for the shutdown
    assert "stopped cleanly" in out
    # not failed, not finished: PENDING, to be resumed; and the executor is retired at once
    assert WorkflowStatus.objects.get(pk="long-sleep").status == "PENDING"
    assert Executor.objects.get(executor_id="worker-a").last_heartbeat == 0


def test_burst_mode_finishes_pending_work_and_exits():
    pending_sleeper("short-sleep", "worker-b", 0.2)
    worker = start_worker("--executor-id", "worker-b", "--burst", **ENV)
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, out
    row = WorkflowStatus.objects.get(pk="short-sleep")
    assert row.status == "SUCCESS"
    assert "Resumed 1 workflow(s)" in out


def test_bad_arguments_are_command_errors():
    with pytest.raises(CommandError, match="--threads"):
        call_command("dbos_worker", "--threads", "0")
    with pytest.raises(CommandError, match="--grace-period"):
        call_command("dbos_worker", "--grace-period", "soon")
    with pytest.raises(CommandError, match="executor-id"):
        call_command("dbos_worker", "--executor-id", " ")

"""Running workflows: inline calls, IDs and idempotency, handles, children, errors, async."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import pytest

from django_dbos import (
    DBOS,
    DBOSConfigurationError,
    DBOSConflictingWorkflowError,
    DBOSNonExistentWorkflowError,
    DBOSSerializationError,
    SetWorkflowID,
    WorkflowStatusString,
)
from django_dbos.errors import TimeoutError as DBOSTimeoutError
from django_dbos.models import OperationOutput, WorkflowStatus
from django_dbos.registry import registry
from tests import workflows as wf
from tests.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _reset_calls():
    wf.calls.clear()
    wf.gate.clear()


def test_direct_call_runs_and_records_every_step():
    with SetWorkflowID("wf-direct"):
        assert wf.plain_workflow(1) == 3
    row = WorkflowStatus.objects.get(pk="wf-direct")
    assert row.status == WorkflowStatusString.SUCCESS
    assert row.name == "tests.plain"
    steps = list(
        OperationOutput.objects.filter(workflow_id="wf-direct")
        .order_by("function_id")
        .values_list("function_id", "function_name", "output")
    )
    assert steps == [(1, "tests.add_one", "2"), (2, "tests.add_one", "3")]


def test_same_id_returns_recorded_result_without_running_again():
    with SetWorkflowID("wf-once"):
        first = wf.plain_workflow(5)
    with SetWorkflowID("wf-once"):
        second = wf.plain_workflow(5)
    assert first == second == 7
    assert wf.calls == {"plain_workflow": 1, "add_one": 2}


def test_same_id_reraises_recorded_error_without_running_again():
    for _ in range(2):
        with SetWorkflowID("wf-fails"), pytest.raises(wf.OrderRejected, match="no stock"):
            wf.failing_workflow("no stock")
    assert wf.calls["failing_workflow"] == 1
    row = WorkflowStatus.objects.get(pk="wf-fails")
    assert row.status == WorkflowStatusString.ERROR
    assert "no stock" in row.error


def test_same_id_under_another_workflow_name_is_a_conflict():
    with SetWorkflowID("wf-taken"):
        wf.plain_workflow(1)
    with SetWorkflowID("wf-taken"), pytest.raises(DBOSConflictingWorkflowError) as raised:
        wf.receipt_workflow("x")
    assert raised.value.existing_name == "tests.plain"
    assert raised.value.requested_name == "tests.receipt"
    assert "wf-taken" in str(raised.value)


def test_workflow_ids_are_generated_when_not_set():
    wf.plain_workflow(1)
    wf.plain_workflow(1)
    assert WorkflowStatus.objects.filter(name="tests.plain").count() == 2


def test_set_workflow_id_applies_to_the_next_workflow_only():
    with SetWorkflowID("wf-first"):
        wf.plain_workflow(1)
        wf.plain_workflow(2)
    ids = set(WorkflowStatus.objects.values_list("workflow_uuid", flat=True))
    assert "wf-first" in ids and len(ids) == 2


def test_rich_return_values_round_trip():
    with SetWorkflowID("wf-receipt"):
        first = wf.receipt_workflow("A1")
    with SetWorkflowID("wf-receipt"):
        again = wf.receipt_workflow("A1")
    assert first == again == wf.Receipt(order="A1", total=Decimal("12.50"))
    assert isinstance(again, wf.Receipt)


def test_unserializable_argument_fails_before_anything_is_written():
    with pytest.raises(DBOSSerializationError, match=r"_thread.lock.*args\[0\]") as raised:
        wf.plain_workflow(threading.Lock())
    assert "lock" in raised.value.type_name.lower()
    assert not WorkflowStatus.objects.exists()
    assert wf.calls == {}


def test_unserializable_result_is_recorded_as_an_error():
    with SetWorkflowID("wf-bad-result"), pytest.raises(DBOSSerializationError):
        wf.unserializable_result_workflow()
    row = WorkflowStatus.objects.get(pk="wf-bad-result")
    assert row.status == WorkflowStatusString.ERROR
    assert row.output is None


def test_status_value_object_has_dbos_field_names():
    with SetWorkflowID("wf-status"):
        wf.plain_workflow(1)
    status = DBOS.get_workflow_status("wf-status")
    assert status.workflow_id == "wf-status"
    assert status.status == "SUCCESS"
    assert status.name == "tests.plain"
    assert status.input == {"args": (1,), "kwargs": {}}
    assert status.output == 3
    assert status.created_at <= status.updated_at
    assert status.app_version
    assert DBOS.get_workflow_status("nope") is None


def test_list_workflow_steps_of_unknown_workflow_raises():
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.list_workflow_steps("nope")
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.retrieve_workflow("nope")


def test_child_workflows_get_deterministic_ids_and_are_recorded_in_the_parent(transactional_db):
    with SetWorkflowID("parent-1"):
        result = wf.parent_workflow(1)
    assert result == [3, 13, "parent-1-2", "parent-1"]
    children = WorkflowStatus.objects.filter(parent_workflow_id="parent-1")
    assert sorted(children.values_list("workflow_uuid", flat=True)) == ["parent-1-1", "parent-1-2"]
    recorded = dict(
        OperationOutput.objects.filter(workflow_id="parent-1").values_list(
            "function_id", "child_workflow_id"
        )
    )
    assert recorded[1] == "parent-1-1" and recorded[2] == "parent-1-2"


@pytest.mark.django_db(transaction=True)
def test_start_workflow_returns_a_handle_at_once():
    wf.gate.clear()
    with SetWorkflowID("wf-bg"):
        handle = DBOS.start_workflow(wf.gated_workflow)
    assert handle.workflow_id == "wf-bg"
    # the row is committed before start_workflow returns
    assert WorkflowStatus.objects.get(pk="wf-bg").status == "PENDING"
    with pytest.raises(DBOSTimeoutError):
        handle.get_result(timeout=0.2)
    with pytest.raises(TimeoutError):  # also the builtin
        DBOS.retrieve_workflow("wf-bg").get_result(timeout=0.1)
    assert handle.get_status().status == "PENDING"
    wf.gate.set()
    assert handle.get_result(timeout=10) == "second"
    assert DBOS.retrieve_workflow("wf-bg").get_result() == "second"
    assert handle.get_status().status == "SUCCESS"


@pytest.mark.django_db(transaction=True)
def test_a_second_caller_waits_for_the_running_workflow_instead_of_running_it_again():
    with SetWorkflowID("wf-shared"):
        handle = DBOS.start_workflow(wf.gated_workflow)
    outcome = {}

    def second_caller():
        with SetWorkflowID("wf-shared"):
            outcome["value"] = wf.gated_workflow()

    caller = threading.Thread(target=second_caller)
    caller.start()
    caller.join(0.3)
    assert caller.is_alive()  # waiting, not running the body a second time
    wf.gate.set()
    caller.join(10)
    assert outcome["value"] == handle.get_result(timeout=10) == "second"
    assert Run.objects.filter(key="gated").count() == 2  # first + second, once each


@pytest.mark.django_db(transaction=True)
def test_async_workflow_with_async_and_sync_steps():
    async def main():
        with SetWorkflowID("wf-async"):
            return await wf.async_workflow(4)

    assert asyncio.run(main()) == [8, 9, "wf-async"]
    steps = [s.function_name for s in DBOS.list_workflow_steps("wf-async")]
    assert steps == ["tests.async_double", "DBOS.sleep", "tests.add_one"]

    async def again():
        with SetWorkflowID("wf-async"):
            return await wf.async_workflow(4)

    assert asyncio.run(again()) == [8, 9, "wf-async"]
    assert wf.calls["async_double"] == 1


@pytest.mark.django_db(transaction=True)
def test_start_workflow_async():
    async def main():
        with SetWorkflowID("wf-async-bg"):
            handle = await DBOS.start_workflow_async(wf.async_workflow, 2)
        status = await handle.get_status()
        return await handle.get_result(timeout=10), status.workflow_id

    assert asyncio.run(main()) == ([4, 5, "wf-async-bg"], "wf-async-bg")


def test_start_workflow_of_an_undecorated_function_is_a_clear_error():
    from django_dbos import DBOSException

    with pytest.raises(DBOSException, match="not a workflow"):
        DBOS.start_workflow(len, [1])


def test_recovery_reattaches_to_the_recorded_child_instead_of_starting_another(
    transactional_db,
):
    from django_dbos.testing import recover_workflow, simulate_crash

    with SetWorkflowID("parent-crash"), simulate_crash(after_step=1):
        wf.parent_workflow(5)  # records the inline child's start, then "crashes" before it runs
    [child] = WorkflowStatus.objects.filter(parent_workflow_id="parent-crash")
    assert (child.workflow_uuid, child.status) == ("parent-crash-1", "PENDING")
    assert "plain_workflow" not in wf.calls
    assert recover_workflow("parent-crash") == [7, 17, "parent-crash-2", "parent-crash"]
    children = WorkflowStatus.objects.filter(parent_workflow_id="parent-crash")
    assert sorted(children.values_list("workflow_uuid", flat=True)) == [
        "parent-crash-1",
        "parent-crash-2",
    ]
    assert wf.calls["plain_workflow"] == 2  # the re-attached child and the second, once each
    with SetWorkflowID("parent-crash"):  # and a replay re-attaches to both, running nothing
        assert wf.parent_workflow(5) == [7, 17, "parent-crash-2", "parent-crash"]
    assert wf.calls["plain_workflow"] == 2


def test_decorating_a_workflow_again_returns_it_unchanged():
    def body(x: int) -> int:
        return x + 1

    first = DBOS.workflow(name="tests.decorated_twice")(body)
    try:
        assert DBOS.workflow()(first) is first
        assert DBOS.workflow(name="tests.decorated_twice")(first) is first
        with pytest.raises(DBOSConfigurationError, match=r"tests\.decorated_twice"):
            DBOS.workflow(name="tests.another_name")(first)
        assert "tests.another_name" not in registry.workflows
        assert first(1) == 2  # one workflow, not a workflow inside a workflow
        assert WorkflowStatus.objects.filter(name="tests.decorated_twice").count() == 1
        assert not WorkflowStatus.objects.filter(parent_workflow_id__isnull=False).exists()
    finally:
        registry.workflows.pop("tests.decorated_twice", None)

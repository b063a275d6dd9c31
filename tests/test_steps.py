"""Steps: checkpoints, retries with backoff, nesting, run_step, determinism, durable sleep."""

from __future__ import annotations

import time

import pytest

from django_dbos import (
    DBOS,
    DBOSConfigurationError,
    DBOSException,
    DBOSMaxStepRetriesExceeded,
    DBOSUnexpectedStepError,
    SetWorkflowID,
)
from django_dbos.models import OperationOutput
from django_dbos.testing import recover_workflow, simulate_crash
from tests import workflows as wf

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _reset_calls():
    wf.calls.clear()


def test_a_step_outside_a_workflow_is_an_ordinary_call():
    assert wf.add_one(41) == 42
    assert not OperationOutput.objects.exists()


def test_retries_with_backoff_until_success():
    started = time.monotonic()
    with SetWorkflowID("wf-flaky"):
        assert wf.flaky_workflow("a", 2) == "ok after 3"
    assert time.monotonic() - started >= 0.03  # waited 0.01 then 0.02
    assert wf.calls["flaky:a"] == 3
    step = OperationOutput.objects.get(workflow_id="wf-flaky")
    assert step.error is None and step.output == '"ok after 3"'


def test_retries_exhausted_raise_max_step_retries_and_record_it():
    with SetWorkflowID("wf-flaky-out"), pytest.raises(DBOSMaxStepRetriesExceeded) as raised:
        wf.flaky_workflow("b", 5)
    assert wf.calls["flaky:b"] == 3
    assert raised.value.step_name == "tests.flaky"
    assert "attempt 3 failed" in str(raised.value)
    # replay re-raises the recorded error without retrying
    with SetWorkflowID("wf-flaky-out"), pytest.raises(DBOSMaxStepRetriesExceeded):
        wf.flaky_workflow("b", 5)
    assert wf.calls["flaky:b"] == 3


def test_a_step_called_from_a_step_is_a_plain_call():
    with SetWorkflowID("wf-nested"):
        assert wf.nested_steps_workflow() == [2, 1]
    names = list(OperationOutput.objects.values_list("function_name", flat=True))
    assert names == ["tests.outer_step"]


def test_run_step_checkpoints_an_undecorated_callable():
    @DBOS.workflow(name="tests.run_step_inline")
    def inline():
        return DBOS.run_step({"name": "pick"}, lambda a, b: a * b, 6, b=7)

    with SetWorkflowID("wf-run-step"):
        assert inline() == 42
    step = OperationOutput.objects.get(workflow_id="wf-run-step")
    assert (step.function_name, step.output) == ("pick", "42")


def test_bad_step_options_are_configuration_errors():
    with pytest.raises(DBOSConfigurationError, match="max_attempts"):
        DBOS.step(retries_allowed=True, max_attempts=0)(lambda: None)
    with pytest.raises(DBOSConfigurationError, match="backoff_rate"):
        DBOS.step(backoff_rate=0.5)(lambda: None)
    with pytest.raises(DBOSConfigurationError, match="interval_seconds"):
        DBOS.run_step({"interval_seconds": -1}, print)


def test_replay_with_a_different_step_raises_unexpected_step_error():
    @DBOS.workflow(name="tests.changing")
    def changing(version: int):
        if version == 1:
            wf.add_one(1)
        else:
            wf.add_one_str("x")
        wf.add_one(2)

    with simulate_crash(after_step=1), SetWorkflowID("wf-changed"):
        changing(1)
    from django_dbos.engine import system_db

    # the code changed under the same recorded input: replay must refuse
    system_db.set_status("wf-changed", "PENDING")
    from django_dbos.models import WorkflowStatus

    WorkflowStatus.objects.filter(pk="wf-changed").update(inputs='{"args": [2], "kwargs": {}}')
    with pytest.raises(DBOSUnexpectedStepError) as raised:
        recover_workflow("wf-changed")
    assert raised.value.expected_name == "tests.add_one_str"
    assert raised.value.recorded_name == "tests.add_one"
    assert "tests.add_one_str" in str(raised.value) and "tests.add_one" in str(raised.value)


def test_durable_sleep_records_the_wake_up_time_once():
    with simulate_crash(after_step=1), SetWorkflowID("wf-sleep"):
        wf.sleepy_workflow(0.6)
    recorded = OperationOutput.objects.get(workflow_id="wf-sleep", function_id=1)
    assert recorded.function_name == "DBOS.sleep"
    wake_ms = int(recorded.output)
    time.sleep(0.3)
    started = time.monotonic()
    assert recover_workflow("wf-sleep") == "woke!"
    slept = time.monotonic() - started
    assert slept < 0.45  # only the remainder (~0.3 s), not the full 0.6 s
    assert time.time() * 1000 >= wake_ms
    recorded.refresh_from_db()
    assert int(recorded.output) == wake_ms


def test_sleep_rejects_negative_seconds():
    with pytest.raises(DBOSException, match="0 or more seconds"):
        DBOS.sleep(-1)


def test_step_id_and_workflow_id_are_visible_inside():
    @DBOS.step(name="tests.ids_step")
    def ids_step():
        return [DBOS.workflow_id, DBOS.step_id]

    @DBOS.workflow(name="tests.ids")
    def ids():
        return [DBOS.step_id, *ids_step(), *ids_step()]

    with SetWorkflowID("wf-ids"):
        assert ids() == [None, "wf-ids", 1, "wf-ids", 2]
    assert DBOS.workflow_id is None


def test_decorators_without_parentheses_and_unknown_options_are_clear_errors():
    with pytest.raises(DBOSConfigurationError, match=r"@DBOS.workflow\(\) with parentheses"):
        DBOS.workflow(lambda: None)
    with pytest.raises(DBOSConfigurationError, match=r"@DBOS.step\(\) with parentheses"):
        DBOS.step(lambda: None)
    with pytest.raises(DBOSConfigurationError, match=r"@DBOS.transaction\(\) with parentheses"):
        DBOS.transaction(lambda: None)
    with pytest.raises(DBOSConfigurationError, match=r"unknown option.*retries"):
        DBOS.run_step({"retries": 3}, print)

"""Application versions and patching: runs of old code replay the old path after a deploy of
patched code; new runs take the new path; deprecate_patch retires the patch."""

from __future__ import annotations

import asyncio

import pytest

from django_dbos import (
    DBOS,
    DBOSException,
    DBOSNotInWorkflowError,
    DBOSUnexpectedStepError,
    SetWorkflowID,
)
from django_dbos.engine.executor import application_version
from django_dbos.models import OperationOutput, WorkflowStatus
from django_dbos.testing import recover_workflow, simulate_crash
from tests import control_workflows as cw

pytestmark = pytest.mark.django_db

MARKER = "DBOS.patch-use-new-step"


@pytest.fixture(autouse=True)
def deployed_code():
    cw.code["version"] = 1
    yield cw.code
    cw.code["version"] = 1


def steps(workflow_id: str) -> list[str]:
    return [
        name.removeprefix("tests.control.")
        for name in OperationOutput.objects.filter(workflow_id=workflow_id)
        .order_by("function_id")
        .values_list("function_name", flat=True)
    ]


def run_on_old_code(workflow_id: str, after_step: int) -> None:
    """Version 1 runs and its process dies after step ``after_step``."""
    with simulate_crash(after_step=after_step), SetWorkflowID(workflow_id):
        cw.patched_workflow(workflow_id)
    assert WorkflowStatus.objects.get(pk=workflow_id).status == "PENDING"


def test_every_workflow_records_the_application_version():
    with SetWorkflowID("versioned"):
        cw.four_steps("versioned")
    recorded = WorkflowStatus.objects.get(pk="versioned").application_version
    snapshot = DBOS.get_workflow_status("versioned")
    assert snapshot is not None
    assert recorded == application_version() == snapshot.app_version


def test_an_old_run_replays_the_old_path_after_a_patched_deploy():
    run_on_old_code("old-run", after_step=2)  # a, old_step recorded
    cw.code["version"] = 2
    assert recover_workflow("old-run") == ["a", "old", "c"]
    assert steps("old-run") == ["mark", "old_step", "mark"]  # no marker in its history
    assert cw.runs("old-run", "old") == 1  # replayed, not run again
    assert cw.runs("old-run", "new") == 0


def test_a_new_run_takes_the_new_path_and_records_the_patch():
    cw.code["version"] = 2
    with SetWorkflowID("new-run"):
        assert cw.patched_workflow("new-run") == ["a", "new", "c"]
    assert steps("new-run") == ["mark", MARKER, "new_step", "mark"]


def test_an_old_run_that_had_not_reached_the_patch_takes_the_new_path():
    run_on_old_code("early-run", after_step=1)  # only a recorded: nothing to contradict
    cw.code["version"] = 2
    assert recover_workflow("early-run") == ["a", "new", "c"]
    assert steps("early-run") == ["mark", MARKER, "new_step", "mark"]


def test_a_patched_run_replays_its_patch_after_a_crash():
    cw.code["version"] = 2
    with simulate_crash(after_step=3), SetWorkflowID("patched-run"):
        cw.patched_workflow("patched-run")
    assert recover_workflow("patched-run") == ["a", "new", "c"]
    assert steps("patched-run") == ["mark", MARKER, "new_step", "mark"]
    assert cw.runs("patched-run", "new") == 1


def test_deprecate_patch_steps_over_recorded_markers_and_records_none():
    cw.code["version"] = 2
    with simulate_crash(after_step=3), SetWorkflowID("v2-run"):
        cw.patched_workflow("v2-run")
    cw.code["version"] = 3
    assert recover_workflow("v2-run") == ["a", "new", "c"]
    assert steps("v2-run") == ["mark", MARKER, "new_step", "mark"]
    assert cw.runs("v2-run", "new") == 1
    with SetWorkflowID("v3-run"):
        assert cw.patched_workflow("v3-run") == ["a", "new", "c"]
    assert steps("v3-run") == ["mark", "new_step", "mark"]


def test_without_a_patch_an_old_run_cannot_replay():
    run_on_old_code("unpatched", after_step=2)
    cw.code["version"] = 4
    with pytest.raises(DBOSUnexpectedStepError, match="old_step"):
        recover_workflow("unpatched")


@pytest.mark.django_db(transaction=True)  # async workflows use database threads
def test_async_patch():
    with simulate_crash(after_step=2), SetWorkflowID("async-patch"):
        asyncio.run(cw.patched_async_workflow("async-patch"))
    assert steps("async-patch") == ["DBOS.patch-async-patch", "mark"]
    assert recover_workflow("async-patch") == [True, True, "after"]
    assert cw.runs("async-patch", "after") == 1


def test_patch_only_inside_a_workflow_with_a_name():
    with pytest.raises(DBOSNotInWorkflowError):
        DBOS.patch("x")
    with pytest.raises(DBOSNotInWorkflowError):
        DBOS.deprecate_patch("x")
    with pytest.raises(DBOSNotInWorkflowError):
        asyncio.run(DBOS.patch_async("x"))
    with pytest.raises(DBOSNotInWorkflowError):  # a step is not the workflow
        cw.patch_in_step_workflow()


@pytest.mark.parametrize("name", ["", None, 3, "x" * 300])
def test_bad_patch_names_are_refused(name):
    with pytest.raises(DBOSException, match="patch name"):
        cw.patch_named(name)

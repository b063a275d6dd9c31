"""SetWorkflowTimeout: a deadline recorded with the workflow; past it, the workflow is cancelled."""

from __future__ import annotations

import time

import pytest

from django_dbos import (
    DBOS,
    DBOSAwaitedWorkflowCancelledError,
    DBOSException,
    SetWorkflowID,
    SetWorkflowTimeout,
)
from django_dbos.models import WorkflowStatus
from tests import workflows as wf

pytestmark = pytest.mark.django_db


def test_a_workflow_past_its_deadline_is_cancelled_and_wakes_from_sleep():
    started = time.monotonic()
    # the caller gets an ordinary exception (a cancel inside the workflow is a BaseException)
    with (
        SetWorkflowID("to-1"),
        SetWorkflowTimeout(0.3),
        pytest.raises(DBOSAwaitedWorkflowCancelledError),
    ):
        wf.sleepy_workflow(5)
    assert time.monotonic() - started < 2
    row = WorkflowStatus.objects.get(pk="to-1")
    assert row.status == "CANCELLED"
    assert row.workflow_timeout_ms == 300
    assert row.workflow_deadline_epoch_ms == row.created_at + 300
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        DBOS.retrieve_workflow("to-1").get_result()


@pytest.mark.django_db(transaction=True)  # one child runs on the pool: committed data
def test_children_inherit_the_parents_deadline():
    with SetWorkflowID("to-parent"), SetWorkflowTimeout(30):
        wf.parent_workflow(1)
    parent = WorkflowStatus.objects.get(pk="to-parent")
    child = WorkflowStatus.objects.get(pk="to-parent-1")
    assert child.workflow_deadline_epoch_ms == parent.workflow_deadline_epoch_ms


@pytest.mark.parametrize("bad", [0, -1, "5", True])
def test_bad_timeouts_are_refused(bad):
    with pytest.raises(DBOSException, match="positive number of seconds"):
        SetWorkflowTimeout(bad)


def test_the_deadline_survives_a_crash_and_recovery():
    from django_dbos.testing import recover_workflow, simulate_crash

    with SetWorkflowID("to-crash"), SetWorkflowTimeout(0.4), simulate_crash(after_step=1):
        wf.k_steps(3)
    time.sleep(0.5)  # the deadline passes while the workflow is down
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        recover_workflow("to-crash")
    assert WorkflowStatus.objects.get(pk="to-crash").status == "CANCELLED"

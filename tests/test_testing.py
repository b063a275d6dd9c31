"""django_dbos.testing: the helpers users test their own workflows with."""

from __future__ import annotations

import pytest
from django.test import TestCase

from django_dbos import DBOSException, SetWorkflowID
from django_dbos.models import Executor, WorkflowStatus
from django_dbos.testing import (  # the fixture, as a project's conftest.py would load it
    DBOSTestCaseMixin,
    dbos_executor,  # noqa: F401
    recover_workflow,
    running_worker,
    simulate_crash,
    workflow_step_names,
)
from tests import workflows as wf
from tests.models import Ledger


class OrderWorkflowTests(DBOSTestCaseMixin, TestCase):
    """The TestCase flavour: inline runs and recovery inside the test's transaction."""

    def test_crash_after_the_transaction_then_recover(self):
        with simulate_crash(after_step=2) as crash, SetWorkflowID("tc-1"):
            wf.ledger_workflow("tc")
        self.assertEqual(crash.crashed_workflow_id, "tc-1")
        self.assertWorkflowSteps("tc-1", ["record_run", "credit"])
        self.assertEqual(recover_workflow("tc-1"), ["before", 1, "after"])
        self.assertWorkflowSteps("tc-1", ["record_run", "credit", "record_run"])
        self.assertEqual(Ledger.objects.filter(key="tc").count(), 1)


@pytest.mark.django_db
def test_simulate_crash_leaves_the_workflow_pending_with_its_checkpoints():
    with simulate_crash(after_step=1), SetWorkflowID("sim-1"):
        wf.k_steps(3)
    assert WorkflowStatus.objects.get(pk="sim-1").status == "PENDING"
    assert workflow_step_names("sim-1") == ["add_one"]
    assert recover_workflow("sim-1") == 3


def test_simulate_crash_validates_its_argument():
    with pytest.raises(DBOSException, match="step number"):
        simulate_crash(after_step=0)


def test_a_real_error_is_not_swallowed_by_simulate_crash(db):
    with pytest.raises(wf.OrderRejected), simulate_crash(after_step=5):
        wf.failing_workflow("real")


@pytest.mark.django_db(transaction=True)
def test_running_worker_adopts_a_dead_executors_workflow(settings, executor):
    settings.DBOS = {**settings.DBOS, "HEARTBEAT_INTERVAL": 0.05, "EXECUTOR_TIMEOUT": 0.5}
    with simulate_crash(after_step=1), SetWorkflowID("rw-1"):
        wf.k_steps(2)
    Executor.objects.filter(executor_id=executor.executor_id).update(last_heartbeat=0)
    with running_worker(threads=2) as worker:
        from django_dbos import DBOS

        assert DBOS.retrieve_workflow("rw-1").get_result(timeout=10) == 2
    row = WorkflowStatus.objects.get(pk="rw-1")
    assert row.executor_id == worker.executor_id


def test_dbos_executor_fixture_gives_a_fresh_executor(dbos_executor, executor):  # noqa: F811
    assert dbos_executor is not executor
    assert dbos_executor.executor_id != executor.executor_id

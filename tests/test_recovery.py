"""Recovery: resume our own PENDING workflows, adopt dead executors' (one winner), dead-letter."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from django_dbos import (
    DBOS,
    DBOSMaxRecoveryAttemptsExceededError,
    DBOSWorkflowFunctionNotFoundError,
    SetWorkflowID,
)
from django_dbos.engine import system_db
from django_dbos.engine.executor import reset_executor
from django_dbos.engine.recovery import adopt_orphans, recover_own_pending
from django_dbos.models import Executor, WorkflowStatus
from django_dbos.serialization import deserialize_exception
from django_dbos.testing import recover_workflow, simulate_crash
from tests import workflows as wf
from tests.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def crashed_workflow(workflow_id: str, after_step: int = 1) -> str:
    with simulate_crash(after_step=after_step), SetWorkflowID(workflow_id):
        wf.ledger_workflow(workflow_id)
    assert WorkflowStatus.objects.get(pk=workflow_id).status == "PENDING"
    return workflow_id


def kill_executor(executor_id: str) -> None:
    """Its heartbeat stops: as far as the database can tell, the process died."""
    Executor.objects.filter(executor_id=executor_id).update(last_heartbeat=0)


def test_a_dead_executors_workflow_is_adopted_and_finishes_from_its_checkpoint(executor):
    crashed_workflow("adopt-1")
    kill_executor(executor.executor_id)
    survivor = reset_executor()
    handles = adopt_orphans(survivor)
    assert [h.workflow_id for h in handles] == ["adopt-1"]
    assert handles[0].get_result(timeout=10) == ["before", 1, "after"]
    row = WorkflowStatus.objects.get(pk="adopt-1")
    assert (row.status, row.executor_id, row.recovery_attempts) == (
        "SUCCESS",
        survivor.executor_id,
        1,
    )
    assert Run.objects.filter(key="adopt-1", step="before").count() == 1  # not re-run


def test_a_live_executors_workflows_are_left_alone(executor):
    crashed_workflow("alive-1")
    other = reset_executor()
    other.ensure_started()
    assert adopt_orphans(other) == []
    assert WorkflowStatus.objects.get(pk="alive-1").executor_id == executor.executor_id


def test_exactly_one_executor_wins_a_race_to_adopt(executor):
    crashed_workflow("race-1")
    kill_executor(executor.executor_id)
    winners = []
    barrier = threading.Barrier(4)

    def contender(n: int) -> None:
        try:
            barrier.wait(5)
            claimed = system_db.claim_for_recovery("race-1", executor.executor_id, f"rival-{n}")
            if claimed is not None:
                winners.append(n)
        finally:
            connection.close()

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(winners) == 1
    assert WorkflowStatus.objects.get(pk="race-1").executor_id == f"rival-{winners[0]}"


def test_a_fixed_executor_id_resumes_its_own_pending_workflows_at_once(executor):
    crashed_workflow("own-1", after_step=2)
    restarted = reset_executor(executor.executor_id)  # same ID, heartbeat still fresh
    handles = recover_own_pending(restarted)
    assert [h.workflow_id for h in handles] == ["own-1"]
    assert handles[0].get_result(timeout=10) == ["before", 1, "after"]


def test_past_max_recovery_attempts_the_workflow_is_dead_lettered(executor, settings):
    settings.DBOS = {**settings.DBOS, "MAX_RECOVERY_ATTEMPTS": 2}
    crashed_workflow("dead-letter")
    WorkflowStatus.objects.filter(pk="dead-letter").update(recovery_attempts=2)
    kill_executor(executor.executor_id)
    assert adopt_orphans(reset_executor()) == []
    row = WorkflowStatus.objects.get(pk="dead-letter")
    assert row.status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED"
    with pytest.raises(DBOSMaxRecoveryAttemptsExceededError):
        DBOS.retrieve_workflow("dead-letter").get_result()


def test_a_workflow_whose_name_is_not_registered_ends_as_error(executor):
    crashed_workflow("renamed")
    WorkflowStatus.objects.filter(pk="renamed").update(name="tests.no_longer_exists")
    kill_executor(executor.executor_id)
    assert adopt_orphans(reset_executor()) == []
    row = WorkflowStatus.objects.get(pk="renamed")
    assert row.status == "ERROR"
    error = deserialize_exception(row.error)
    assert isinstance(error, DBOSWorkflowFunctionNotFoundError)
    assert "tests.no_longer_exists" in str(error)


def test_workflows_of_another_application_version_are_not_adopted(executor):
    crashed_workflow("old-version")
    WorkflowStatus.objects.filter(pk="old-version").update(application_version="v-old")
    kill_executor(executor.executor_id)
    assert adopt_orphans(reset_executor()) == []
    assert WorkflowStatus.objects.get(pk="old-version").status == "PENDING"


def test_calling_an_orphaned_workflow_again_adopts_it_inline(executor):
    crashed_workflow("orphan-call")
    kill_executor(executor.executor_id)
    reset_executor()
    with SetWorkflowID("orphan-call"):
        assert wf.ledger_workflow("orphan-call") == ["before", 1, "after"]
    assert WorkflowStatus.objects.get(pk="orphan-call").recovery_attempts == 1


def test_recover_workflow_helper_replays_in_this_thread(executor):
    crashed_workflow("helper-1", after_step=3)
    assert recover_workflow("helper-1") == ["before", 1, "after"]
    assert recover_workflow("helper-1") == ["before", 1, "after"]  # already finished


def test_dead_executors_with_nothing_left_are_forgotten(executor):
    crashed_workflow("forget-1")
    kill_executor(executor.executor_id)
    Executor.objects.create(executor_id="long-gone", hostname="h", pid=1, last_heartbeat=0)
    survivor = reset_executor()
    [handle] = adopt_orphans(survivor)
    handle.get_result(timeout=10)
    adopt_orphans(survivor)
    remaining = set(Executor.objects.values_list("executor_id", flat=True))
    assert "long-gone" not in remaining
    assert survivor.executor_id in remaining


def test_a_dead_executor_that_still_owns_pending_work_is_kept(executor, settings):
    crashed_workflow("keep-1")
    WorkflowStatus.objects.filter(pk="keep-1").update(application_version="another-version")
    kill_executor(executor.executor_id)
    adopt_orphans(reset_executor())
    assert Executor.objects.filter(executor_id=executor.executor_id).exists()


def test_calling_again_after_a_crash_in_this_process_resumes_it(executor):
    crashed_workflow("same-process", after_step=1)
    with SetWorkflowID("same-process"):
        assert wf.ledger_workflow("same-process") == ["before", 1, "after"]
    assert Run.objects.filter(key="same-process", step="before").count() == 1


def test_an_async_orphan_called_again_is_adopted_from_async_code(executor):
    import asyncio

    wf.calls.clear()
    with simulate_crash(after_step=1), SetWorkflowID("async-orphan"):
        asyncio.run(wf.async_workflow(3))
    kill_executor(executor.executor_id)
    reset_executor()

    async def again():
        with SetWorkflowID("async-orphan"):
            return await wf.async_workflow(3)

    assert asyncio.run(again()) == [6, 7, "async-orphan"]
    assert wf.calls["async_double"] == 1


def test_a_zombie_execution_cannot_finish_a_workflow_it_no_longer_owns(executor):
    from django_dbos.engine import system_db as sdb

    crashed_workflow("zombie")
    WorkflowStatus.objects.filter(pk="zombie").update(executor_id="the-adopter")
    assert not sdb.finish_workflow("zombie", "SUCCESS", executor.executor_id, output="1")
    assert WorkflowStatus.objects.get(pk="zombie").status == "PENDING"


def test_a_workflow_submitted_to_the_pool_but_not_yet_started_is_not_adopted_twice(executor):
    """The window between start_workflow's INSERT and the pool thread starting the body: a
    second caller must wait, not take the workflow over as if nobody ran it."""
    release = threading.Event()
    real_submit = executor.submit

    def slow_submit(fn, *args):
        def later(*inner):
            release.wait(5)  # the pool thread is slow to pick the task up
            return fn(*inner)

        return real_submit(later, *args)

    executor.submit = slow_submit  # type: ignore[method-assign]
    with SetWorkflowID("not-yet-started"):
        handle = DBOS.start_workflow(wf.k_steps, 2)
    outcome = {}

    def second_caller():
        try:
            with SetWorkflowID("not-yet-started"):
                outcome["value"] = wf.k_steps(2)
        finally:
            connection.close()

    caller = threading.Thread(target=second_caller)
    caller.start()
    caller.join(0.3)
    assert caller.is_alive()  # waiting for the reserved execution, not running it itself
    release.set()
    caller.join(10)
    assert outcome["value"] == handle.get_result(timeout=10) == 2
    assert WorkflowStatus.objects.get(pk="not-yet-started").recovery_attempts == 0

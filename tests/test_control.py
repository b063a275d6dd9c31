"""Operating workflows: cancel (cascading, in this process and another), resume, fork, delete,
attributes; bad input writes nothing; a handful of queries per operation."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_dbos import (
    DBOS,
    DBOSAwaitedWorkflowCancelledError,
    DBOSException,
    DBOSInvalidArgumentError,
    DBOSInvalidStartStepError,
    DBOSNonExistentWorkflowError,
    DBOSWorkflowFunctionNotFoundError,
    DBOSWorkflowIDInUseError,
    SetWorkflowID,
    SetWorkflowTimeout,
    serialization,
)
from django_dbos.context import SetWorkflowAttributes
from django_dbos.engine import system_db
from django_dbos.engine.executor import application_version, reset_executor
from django_dbos.engine.recovery import adopt_orphans
from django_dbos.models import (
    Notification,
    OperationOutput,
    StreamEntry,
    WorkflowEvent,
    WorkflowEventHistory,
    WorkflowStatus,
    now_ms,
)
from django_dbos.signals import workflow_finished
from django_dbos.testing import recover_workflow, simulate_crash
from tests import control_workflows as cw
from tests.conftest import REPO, worker_env

pytestmark = pytest.mark.django_db


def wait_for(predicate: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def checkpoint(workflow_id: str, function_id: int) -> bool:
    return OperationOutput.objects.filter(workflow_id=workflow_id, function_id=function_id).exists()


def status(workflow_id: str) -> str:
    return WorkflowStatus.objects.get(pk=workflow_id).status


def statements(queries: CaptureQueriesContext) -> list[str]:
    """The statements that did work (transaction bookkeeping left out)."""
    skip = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "BEGIN", "COMMIT")
    return [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(skip)]


def crashed(workflow_id: str, after_step: int, fn: Callable[..., Any], *args: Any) -> str:
    with simulate_crash(after_step=after_step), SetWorkflowID(workflow_id):
        fn(*args)
    assert status(workflow_id) == "PENDING"
    return workflow_id


def add_rows(workflow_id: str) -> None:
    """One row in every table that belongs to a workflow."""
    OperationOutput.objects.create(workflow_id=workflow_id, function_id=99, function_name="x")
    Notification.objects.create(destination_id=workflow_id, message="m", message_uuid=workflow_id)
    WorkflowEvent.objects.create(workflow_id=workflow_id, key="k", value="v")
    WorkflowEventHistory.objects.create(workflow_id=workflow_id, function_id=99, key="k", value="v")
    StreamEntry.objects.create(workflow_id=workflow_id, key="s", offset=0, value="v")


def row_counts(workflow_id: str) -> list[int]:
    return [
        WorkflowStatus.objects.filter(pk=workflow_id).count(),
        OperationOutput.objects.filter(workflow_id=workflow_id).count(),
        Notification.objects.filter(destination_id=workflow_id).count(),
        WorkflowEvent.objects.filter(workflow_id=workflow_id).count(),
        WorkflowEventHistory.objects.filter(workflow_id=workflow_id).count(),
        StreamEntry.objects.filter(workflow_id=workflow_id).count(),
    ]


def attributes_of(workflow_id: str) -> Any:
    snapshot = DBOS.get_workflow_status(workflow_id)
    assert snapshot is not None
    return snapshot.attributes


def make_workflow(workflow_id: str, state: str = "SUCCESS", **extra: Any) -> str:
    now = now_ms()
    values = {
        "workflow_uuid": workflow_id,
        "status": state,
        "name": "tests.control.four_steps",
        "inputs": serialization.serialize_args((workflow_id,), {}),
        "recovery_attempts": 0,
        "priority": 0,
        "application_version": application_version(),
        "created_at": now,
        "updated_at": now,
    }
    values.update(extra)
    assert system_db.insert_workflow(values)
    return workflow_id


# -- cancel ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_sleeping_workflow_promptly_and_its_next_step_never_runs(executor):
    with SetWorkflowID("cancel-sleep"):
        handle = DBOS.start_workflow(cw.sleeper, "cancel-sleep", 30)
    wait_for(lambda: checkpoint("cancel-sleep", 2), what="the sleep checkpoint")
    started = time.monotonic()
    DBOS.cancel_workflow("cancel-sleep")
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        handle.get_result(timeout=5)
    assert time.monotonic() - started < 2
    wait_for(lambda: not executor.is_running_here("cancel-sleep"), 2, "the execution to end")
    assert status("cancel-sleep") == "CANCELLED"
    assert cw.runs("cancel-sleep", "before") == 1
    assert cw.runs("cancel-sleep", "after") == 0
    assert not checkpoint("cancel-sleep", 3)


@pytest.mark.django_db(transaction=True)
def test_a_running_step_finishes_but_its_successor_does_not_start(executor):
    cw.released["slow"] = released = threading.Event()
    with SetWorkflowID("slow"):
        handle = DBOS.start_workflow(cw.slow_step_workflow, "slow")
    wait_for(lambda: (ctx := executor.active.get("slow")) is not None and ctx.in_step)
    DBOS.cancel_workflow("slow")
    released.set()
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        handle.get_result(timeout=5)
    assert cw.runs("slow", "slow-done") == 1  # the step in flight finished
    assert cw.runs("slow", "next") == 0  # its successor never started
    assert not checkpoint("slow", 1)  # a cancelled workflow records nothing more
    assert status("slow") == "CANCELLED"


@pytest.mark.django_db(transaction=True)
def test_cancel_cascades_to_all_descendants_in_a_couple_of_queries(executor):
    with SetWorkflowID("tree"):
        root = DBOS.start_workflow(cw.tree_root, "tree", 30)
    tree = ["tree", "tree-1", "tree-1-1"]
    wait_for(lambda: checkpoint("tree", 2) and checkpoint("tree-1-1", 2), what="all asleep")
    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        DBOS.cancel_workflow("tree")
    assert len(statements(queries)) == 2  # read the tree, update it
    assert [status(w) for w in tree] == ["CANCELLED"] * 3
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        root.get_result(timeout=5)
    wait_for(lambda: not executor.active, 5, "every execution to stop")
    assert time.monotonic() - started < 2  # at once, not at the next heartbeat
    assert cw.runs("tree", "root-after") == 0
    assert cw.runs("tree-leaf", "after") == 0


def test_cancelling_a_finished_workflow_changes_nothing():
    with SetWorkflowID("done"):
        cw.four_steps("done")
    before = WorkflowStatus.objects.get(pk="done")
    DBOS.cancel_workflows(["done"])
    after = WorkflowStatus.objects.get(pk="done")
    assert (after.status, after.updated_at) == ("SUCCESS", before.updated_at)


def test_cancel_of_a_queued_workflow_frees_its_deduplication_id(
    django_capture_on_commit_callbacks,
):
    make_workflow("queued", "ENQUEUED", queue_name="q", deduplication_id="d-1")
    seen: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        seen.append(kwargs)

    workflow_finished.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            DBOS.cancel_workflow("queued")
    finally:
        workflow_finished.disconnect(receiver)
    row = WorkflowStatus.objects.get(pk="queued")
    assert (row.status, row.deduplication_id, row.queue_name) == ("CANCELLED", None, "q")
    assert [(s["workflow_id"], s["status"]) for s in seen] == [("queued", "CANCELLED")]


def test_cancel_with_an_unknown_id_changes_nothing():
    crashed("known", 1, cw.four_steps, "known")
    with pytest.raises(DBOSNonExistentWorkflowError, match="'missing'"):
        DBOS.cancel_workflows(["known", "missing"])
    assert status("known") == "PENDING"


@pytest.mark.parametrize(
    "call",
    [
        lambda: DBOS.cancel_workflow(None),  # type: ignore[arg-type]
        lambda: DBOS.cancel_workflow(""),
        lambda: DBOS.cancel_workflows("known"),
        lambda: DBOS.cancel_workflows([1]),  # type: ignore[list-item]
        lambda: DBOS.resume_workflow(42),  # type: ignore[arg-type]
        lambda: DBOS.resume_workflows(None),  # type: ignore[arg-type]
        lambda: DBOS.delete_workflow(["known"]),  # type: ignore[arg-type]
        lambda: DBOS.delete_workflow("known", delete_children="yes"),  # type: ignore[arg-type]
        lambda: DBOS.update_workflow_attributes(7, {}),  # type: ignore[arg-type]
    ],
)
def test_wrong_argument_types_are_clear_errors_and_change_nothing(call):
    crashed("known", 1, cw.four_steps, "known")
    with pytest.raises(DBOSInvalidArgumentError, match=r" must be .+, not "):
        call()
    assert row_counts("known")[:2] == [1, 1]
    assert status("known") == "PENDING"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_cancel_reaches_a_workflow_running_in_another_process(settings):
    version = "control-remote"
    settings.DBOS = {**settings.DBOS, "APPLICATION_VERSION": version}
    make_workflow(
        "remote",
        "PENDING",
        name="tests.control.sleeper",
        inputs=serialization.serialize_args(("remote", 3.0), {}),
        executor_id="control-worker",
        application_version=version,
    )
    # a dbos_worker that also imports this test's workflows (only tests/workflows.py is
    # autodiscovered); it resumes its executor's PENDING workflow at start
    boot = (
        "import sys, django; django.setup(); import tests.control_workflows; "
        "from django.core.management import call_command; "
        "call_command('dbos_worker', *sys.argv[1:])"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", boot, "--executor-id", "control-worker"],
        env=worker_env(
            DJANGO_SETTINGS_MODULE="testproject.settings",
            DBOS_APPLICATION_VERSION=version,
            DBOS_HEARTBEAT_INTERVAL="0.2",
            DBOS_LOG_LEVEL="WARNING",
        ),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: checkpoint("remote", 2), 30, "the worker to reach the sleep")
        asleep_at = time.monotonic()
        DBOS.cancel_workflow("remote")
        # Had the worker not stopped it (its heartbeat sees CANCELLED and wakes the sleep),
        # the next step's body would run when the 3 s sleep ends, before its checkpoint is
        # refused. It never does.
        time.sleep(max(0.0, 4.5 - (time.monotonic() - asleep_at)))
        assert cw.runs("remote", "after") == 0
        assert status("remote") == "CANCELLED"
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            output, _ = worker.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
    assert worker.returncode == 0, output
    assert cw.runs("remote", "before") == 1


# -- resume ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_resume_after_cancel_continues_from_the_last_checkpoint(executor):
    with SetWorkflowID("resume-1"):
        handle = DBOS.start_workflow(cw.sleeper, "resume-1", 2.0)
    wait_for(lambda: checkpoint("resume-1", 2), what="the sleep checkpoint")
    DBOS.cancel_workflow("resume-1")
    with pytest.raises(DBOSAwaitedWorkflowCancelledError):
        handle.get_result(timeout=5)
    with CaptureQueriesContext(connection) as queries:
        resumed = DBOS.resume_workflow("resume-1")
    assert len(statements(queries)) == 2  # read (with cancelled descendants), update
    assert resumed.get_result(timeout=10) == "done"
    assert cw.runs("resume-1", "before") == 1  # replayed, not run again
    assert cw.runs("resume-1", "after") == 1
    row = WorkflowStatus.objects.get(pk="resume-1")
    assert (row.status, row.executor_id, row.recovery_attempts) == (
        "SUCCESS",
        executor.executor_id,
        0,
    )


@pytest.mark.django_db(transaction=True)
def test_resuming_a_cancelled_tree_resumes_its_cancelled_descendants(executor):
    with SetWorkflowID("rtree"):
        DBOS.start_workflow(cw.tree_root, "rtree", 2.0)
    wait_for(lambda: checkpoint("rtree", 2) and checkpoint("rtree-1-1", 2), what="all asleep")
    DBOS.cancel_workflow("rtree")
    wait_for(lambda: not executor.active, 5, "every execution to stop")
    handle = DBOS.resume_workflow("rtree")
    assert handle.get_result(timeout=15) == ["root-after", "done"]
    assert [status(w) for w in ["rtree", "rtree-1", "rtree-1-1"]] == ["SUCCESS"] * 3
    assert cw.runs("rtree-leaf", "before") == 1
    assert cw.runs("rtree-leaf", "after") == 1


@pytest.mark.django_db(transaction=True)
def test_resume_an_error_workflow_runs_only_what_is_missing():
    cw.failing.add("err-1")
    with SetWorkflowID("err-1"), pytest.raises(RuntimeError):
        cw.fails_after_a_step("err-1")
    assert status("err-1") == "ERROR"
    cw.failing.discard("err-1")
    assert DBOS.resume_workflow("err-1").get_result(timeout=10) == "second"
    row = WorkflowStatus.objects.get(pk="err-1")
    assert (row.status, row.error) == ("SUCCESS", None)
    assert cw.runs("err-1", "first") == 1


@pytest.mark.django_db(transaction=True)
def test_resume_replays_a_recorded_step_error():
    cw.failing.add("step-err")
    with SetWorkflowID("step-err"), pytest.raises(RuntimeError):
        cw.step_error_workflow("step-err")
    cw.failing.discard("step-err")
    with pytest.raises(RuntimeError, match="step of step-err failed"):
        DBOS.resume_workflow("step-err").get_result(timeout=10)
    assert cw.runs("step-err", "failing-step") == 1  # the recorded error is its outcome
    assert status("step-err") == "ERROR"


@pytest.mark.django_db(transaction=True)
def test_resume_a_dead_lettered_workflow_resets_its_recovery_attempts():
    make_workflow("dead", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", recovery_attempts=101)
    assert DBOS.resume_workflow("dead").get_result(timeout=10) == [1, 2, 3, 4]
    row = WorkflowStatus.objects.get(pk="dead")
    assert (row.status, row.recovery_attempts) == ("SUCCESS", 0)


@pytest.mark.django_db(transaction=True)
def test_resume_an_enqueued_workflow_starts_it_at_once_past_its_queue():
    make_workflow("waiting", "ENQUEUED", queue_name="nobody-serves-this")
    assert DBOS.resume_workflow("waiting").get_result(timeout=10) == [1, 2, 3, 4]
    assert WorkflowStatus.objects.get(pk="waiting").queue_name is None


@pytest.mark.django_db(transaction=True)
def test_resume_restarts_a_deadline_that_has_passed():
    with (
        SetWorkflowID("late"),
        SetWorkflowTimeout(0.5),
        pytest.raises(DBOSAwaitedWorkflowCancelledError),
    ):
        cw.sleeper("late", 0.7)
    old = WorkflowStatus.objects.get(pk="late")
    assert old.status == "CANCELLED"
    handle = DBOS.resume_workflow("late")
    new = WorkflowStatus.objects.get(pk="late")
    assert old.workflow_deadline_epoch_ms is not None
    assert (new.workflow_deadline_epoch_ms or 0) > old.workflow_deadline_epoch_ms
    assert handle.get_result(timeout=10) == "done"


def test_resume_of_finished_or_running_workflows_returns_handles_and_runs_nothing():
    with SetWorkflowID("fine"):
        cw.four_steps("fine")
    crashed("busy", 1, cw.four_steps, "busy")
    handles = DBOS.resume_workflows(["fine", "busy"])
    assert [h.workflow_id for h in handles] == ["fine", "busy"]
    assert handles[0].get_result() == [1, 2, 3, 4]
    busy = WorkflowStatus.objects.get(pk="busy")
    assert (busy.status, busy.recovery_attempts) == ("PENDING", 0)
    assert cw.runs("fine") == 4 and cw.runs("busy") == 1


def test_resume_refuses_unknown_ids_and_unregistered_workflows_and_changes_nothing():
    make_workflow("stray", "ERROR", name="not.registered.anywhere")
    make_workflow("failed", "ERROR")
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.resume_workflows(["failed", "missing"])
    with pytest.raises(DBOSWorkflowFunctionNotFoundError):
        DBOS.resume_workflows(["failed", "stray"])
    assert [status("stray"), status("failed")] == ["ERROR", "ERROR"]


# -- fork --------------------------------------------------------------------------------------


def forkable(workflow_id: str) -> str:
    """A finished four-step workflow with events and stream entries written at steps 1-3."""
    with SetWorkflowID(workflow_id), SetWorkflowAttributes({"tenant": "acme"}):
        cw.four_steps(workflow_id)
    for function_id, key, value in [(1, "k", "1"), (2, "j", "2"), (3, "k", "3")]:
        WorkflowEventHistory.objects.create(
            workflow_id=workflow_id, function_id=function_id, key=key, value=value
        )
    WorkflowEvent.objects.create(workflow_id=workflow_id, key="k", value="3")
    WorkflowEvent.objects.create(workflow_id=workflow_id, key="j", value="2")
    for offset, function_id in [(0, 1), (1, 3)]:
        StreamEntry.objects.create(
            workflow_id=workflow_id,
            key="s",
            offset=offset,
            value=str(offset),
            function_id=function_id,
        )
    return workflow_id


@pytest.mark.django_db(transaction=True)
def test_fork_copies_what_came_before_start_step_and_reruns_the_rest():
    forkable("orig")
    with CaptureQueriesContext(connection) as queries, SetWorkflowID("orig-fork"):
        handle = DBOS.fork_workflow("orig", 3)
    assert len(statements(queries)) <= 6  # read, insert, copy steps/history/streams, events
    assert handle.workflow_id == "orig-fork"
    assert handle.get_result(timeout=10) == [1, 2, 3, 4]
    assert [cw.runs("orig", str(n)) for n in range(1, 5)] == [1, 1, 2, 2]
    fork = WorkflowStatus.objects.get(pk="orig-fork")
    assert (fork.status, fork.forked_from, fork.name) == (
        "SUCCESS",
        "orig",
        "tests.control.four_steps",
    )
    assert fork.inputs == WorkflowStatus.objects.get(pk="orig").inputs
    assert fork.attributes == '{"tenant": "acme"}'
    assert list(
        WorkflowEventHistory.objects.filter(workflow_id="orig-fork")
        .order_by("function_id")
        .values_list("function_id", "key", "value")
    ) == [(1, "k", "1"), (2, "j", "2")]
    events = dict(WorkflowEvent.objects.filter(workflow_id="orig-fork").values_list("key", "value"))
    assert events == {"k": "1", "j": "2"}  # as of the fork point
    assert list(
        StreamEntry.objects.filter(workflow_id="orig-fork").values_list("offset", "value")
    ) == [(0, "0")]


@pytest.mark.django_db(transaction=True)
def test_fork_at_step_one_reruns_everything_and_past_the_last_step_reruns_nothing():
    forkable("orig2")
    assert DBOS.fork_workflow("orig2", 1).get_result(timeout=10) == [1, 2, 3, 4]
    assert cw.runs("orig2") == 8
    assert DBOS.fork_workflow("orig2", 5).get_result(timeout=10) == [1, 2, 3, 4]
    assert cw.runs("orig2") == 8


@pytest.mark.parametrize("start_step", [0, -1, "2", True, 1.5, None])
def test_fork_refuses_a_bad_start_step_and_writes_nothing(start_step):
    forkable("orig3")
    before = WorkflowStatus.objects.count()
    with pytest.raises(DBOSInvalidArgumentError, match="start_step"):
        DBOS.fork_workflow("orig3", start_step)
    assert WorkflowStatus.objects.count() == before


def test_fork_past_the_last_step_plus_one_names_the_valid_range():
    forkable("orig4")
    before = [WorkflowStatus.objects.count(), OperationOutput.objects.count()]
    with pytest.raises(DBOSInvalidStartStepError, match="from 1 to 5"):
        DBOS.fork_workflow("orig4", 6)
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.fork_workflow("no-such-workflow", 1)
    with pytest.raises(DBOSInvalidArgumentError, match="application_version"):
        DBOS.fork_workflow("orig4", 1, application_version="")
    assert [WorkflowStatus.objects.count(), OperationOutput.objects.count()] == before


@pytest.mark.django_db(transaction=True)
def test_fork_under_a_taken_id_is_refused_and_the_same_fork_again_is_idempotent():
    forkable("orig5")
    forkable("other")
    with SetWorkflowID("other"), pytest.raises(DBOSWorkflowIDInUseError):
        DBOS.fork_workflow("orig5", 2)
    with SetWorkflowID("orig5-again"):
        first = DBOS.fork_workflow("orig5", 2)
    first.get_result(timeout=10)
    with SetWorkflowID("orig5-again"):
        second = DBOS.fork_workflow("orig5", 2)
    assert second.get_result(timeout=10) == [1, 2, 3, 4]
    assert WorkflowStatus.objects.filter(forked_from="orig5").count() == 1
    assert cw.runs("orig5") == 7


@pytest.mark.django_db(transaction=True)
def test_a_fork_for_another_version_waits_for_a_worker_of_that_version(settings):
    forkable("orig6")
    handle = DBOS.fork_workflow("orig6", 2, application_version="v-next")
    row = WorkflowStatus.objects.get(pk=handle.workflow_id)
    assert (row.status, row.executor_id, row.application_version) == ("PENDING", None, "v-next")
    assert OperationOutput.objects.filter(workflow_id=handle.workflow_id).count() == 1
    assert cw.runs("orig6") == 4  # nothing ran here
    settings.DBOS = {**settings.DBOS, "APPLICATION_VERSION": "v-next"}  # a v-next worker
    adopted = adopt_orphans(reset_executor())
    assert [h.workflow_id for h in adopted] == [handle.workflow_id]
    assert adopted[0].get_result(timeout=10) == [1, 2, 3, 4]
    assert cw.runs("orig6") == 7  # steps 2-4 ran again, step 1 was copied


# -- delete ------------------------------------------------------------------------------------


def family(prefix: str) -> list[str]:
    """parent -> child -> grandchild, each with a row in every table."""
    ids = [prefix, f"{prefix}-1", f"{prefix}-1-1"]
    parent = None
    for workflow_id in ids:
        make_workflow(workflow_id, parent_workflow_id=parent)
        add_rows(workflow_id)
        parent = workflow_id
    return ids


def test_delete_removes_every_row_of_the_workflow_but_not_its_children():
    ids = family("del")
    DBOS.delete_workflow("del")
    assert row_counts("del") == [0] * 6
    assert [row_counts(w) for w in ids[1:]] == [[1] * 6, [1] * 6]


def test_delete_with_children_removes_the_whole_tree_in_one_transaction():
    ids = family("delc")
    family("bystander")
    with CaptureQueriesContext(connection) as queries:
        DBOS.delete_workflows(["delc"], delete_children=True)
    # one read of the tree, one DELETE per table: independent of the tree's size
    assert len(statements(queries)) == 7
    assert [row_counts(w) for w in ids] == [[0] * 6] * 3
    assert row_counts("bystander-1-1") == [1] * 6


def test_delete_with_an_unknown_id_deletes_nothing():
    family("keep")
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.delete_workflows(["keep", "missing"])
    assert row_counts("keep") == [1] * 6


@pytest.mark.django_db(transaction=True)
def test_deleting_a_running_workflow_stops_it(executor):
    with SetWorkflowID("doomed"):
        handle = DBOS.start_workflow(cw.sleeper, "doomed", 30)
    wait_for(lambda: checkpoint("doomed", 2), what="the sleep checkpoint")
    DBOS.delete_workflow("doomed")
    with pytest.raises(DBOSNonExistentWorkflowError):
        handle.get_result(timeout=5)
    wait_for(lambda: not executor.is_running_here("doomed"), 2, "the execution to stop")
    assert row_counts("doomed") == [0] * 6
    assert cw.runs("doomed", "after") == 0


# -- attributes --------------------------------------------------------------------------------


def test_attributes_are_stored_at_start_and_merged_by_update():
    with SetWorkflowID("attrs"), SetWorkflowAttributes({"tenant": "acme", "tier": 1}):
        cw.four_steps("attrs")
    updated_at = WorkflowStatus.objects.get(pk="attrs").updated_at
    DBOS.update_workflow_attributes("attrs", {"tier": 2, "region": "eu"})
    assert attributes_of("attrs") == {
        "tenant": "acme",
        "tier": 2,
        "region": "eu",
    }
    assert WorkflowStatus.objects.get(pk="attrs").updated_at == updated_at  # completion time
    DBOS.update_workflow_attributes("attrs", {"only": True}, merge=False)
    assert attributes_of("attrs") == {"only": True}
    DBOS.update_workflow_attributes("attrs", None, merge=False)
    assert attributes_of("attrs") is None


@pytest.mark.parametrize(
    ("workflow_id", "attributes", "error"),
    [
        ("missing", {"a": 1}, DBOSNonExistentWorkflowError),
        ("attrs", {"a": [1]}, DBOSException),
        ("attrs", {1: "a"}, DBOSException),
        ("attrs", "a=1", DBOSException),
        ("attrs", None, DBOSInvalidArgumentError),
    ],
)
def test_bad_attribute_updates_are_refused_and_change_nothing(workflow_id, attributes, error):
    with SetWorkflowID("attrs"), SetWorkflowAttributes({"tenant": "acme"}):
        cw.four_steps("attrs")
    with pytest.raises(error):
        DBOS.update_workflow_attributes(workflow_id, attributes)
    assert attributes_of("attrs") == {"tenant": "acme"}


# -- inside a workflow, and async twins ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_operations_inside_a_workflow_are_steps_and_are_not_repeated_by_recovery():
    with SetWorkflowID("target"):
        cw.four_steps("target")
    crashed("operator", 1, cw.operator_workflow, "target")
    fork_id = OperationOutput.objects.get(workflow_id="operator", function_id=1).output
    assert recover_workflow("operator")[0] == serialization.deserialize(fork_id)
    assert WorkflowStatus.objects.filter(forked_from="target").count() == 1
    names = list(
        OperationOutput.objects.filter(workflow_id="operator")
        .order_by("function_id")
        .values_list("function_name", flat=True)
    )
    assert names == ["DBOS.forkWorkflow", "DBOS.updateWorkflowAttributes", "tests.control.mark"]
    assert attributes_of("target") == {"seen_by": "operator"}


@pytest.mark.django_db(transaction=True)
def test_async_twins():
    crashed("a-cancel", 1, cw.four_steps, "a-cancel")
    forkable("a-orig")

    async def main() -> list[Any]:
        await DBOS.cancel_workflow_async("a-cancel")
        resumed = await DBOS.resume_workflow_async("a-cancel")
        with SetWorkflowID("a-fork"):
            forked = await DBOS.fork_workflow_async("a-orig", 4)
        await DBOS.update_workflow_attributes_async("a-orig", {"x": "y"})
        results = [await resumed.get_result(), await forked.get_result(), forked.workflow_id]
        await DBOS.delete_workflows_async(["a-orig"])
        return results

    assert asyncio.run(main()) == [[1, 2, 3, 4], [1, 2, 3, 4], "a-fork"]
    assert row_counts("a-orig") == [0] * 6
    assert WorkflowStatus.objects.get(pk="a-fork").forked_from == "a-orig"

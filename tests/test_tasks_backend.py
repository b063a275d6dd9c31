"""The Django Tasks backend: ``@task`` functions enqueued through ``DBOSTaskBackend`` run as
durable ``django_dbos.tasks.run_task`` workflows on DBOS queues, and ``TaskResult`` is read
back from the workflow's status."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_dbos import (
    DBOS,
    DBOSConfigurationError,
    DBOSInvalidArgumentError,
    DBOSQueueNotFoundError,
    SetWorkflowID,
)
from django_dbos.models import WorkflowStatus
from django_dbos.tasks import DBOSTaskBackend
from django_dbos.tasks.apps import check_task_backends
from django_dbos.tasks.compat import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskResultStatus,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from django_dbos.tasks.results import RUN_TASK
from django_dbos.tasks.workflows import run_task
from django_dbos.testing import recover_workflow, running_worker, simulate_crash
from tests import tasks_app_tasks as tt
from tests.conftest import start_worker

pytestmark = pytest.mark.django_db(transaction=True)

TASK_QUEUES = ["tasks.default", "tasks.serial", "tasks.plain", "tests.tasks.declared"]


@pytest.fixture(autouse=True)
def _fresh_counters():
    tt.calls.clear()
    tt.order.clear()
    tt.gate.clear()
    yield
    tt.gate.set()


def finish(result, timeout=30):
    """Wait for the task's workflow, then refresh the TaskResult from the database."""
    with contextlib.suppress(Exception):  # failures are asserted through the TaskResult
        DBOS.retrieve_workflow(result.id).get_result(timeout=timeout)
    result.refresh()
    return result


def test_enqueue_writes_a_queued_workflow_and_a_worker_runs_it():
    result = tt.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    assert result.args == [2, 3] and result.kwargs == {}
    assert result.backend == "default" and result.task is tt.add
    assert result.enqueued_at is not None and result.started_at is None
    assert result.worker_ids == [] and not result.is_finished
    row = WorkflowStatus.objects.get(workflow_uuid=result.id)
    assert (row.name, row.status, row.queue_name) == (RUN_TASK, "ENQUEUED", "tasks.default")
    assert row.priority == 101  # Django's 0 on DBOS's scale (lower runs first)
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value

    with running_worker(queues=TASK_QUEUES) as executor:
        finish(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.worker_ids == [executor.executor_id] and result.attempts == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert timezone.is_aware(result.finished_at)
    assert result.errors == []
    fetched = tt.add.get_result(result.id)
    assert (fetched.status, fetched.return_value) == (TaskResultStatus.SUCCESSFUL, 5)


def test_steps_called_by_a_task_are_checkpointed():
    result = tt.two_steps.enqueue("cp")
    with running_worker(queues=TASK_QUEUES):
        finish(result)
    assert result.return_value == ["CP-ONE", "CP-TWO"]
    names = [step.function_name for step in DBOS.list_workflow_steps(result.id)]
    assert names == ["tests.tasks_app_tasks.count_step"] * 2


def test_a_crashed_task_resumes_after_its_last_step():
    """Run the task's workflow inline, crash it after its first step, recover it: the step
    that completed does not run again, and the result counts two attempts."""
    options = {"backend": "default", "queue_name": "default", "priority": 0, "run_after": None}
    with simulate_crash(after_step=1), SetWorkflowID("task-crash"):
        run_task("tests.tasks_app_tasks.two_steps", ["rc"], {}, options)
    assert tt.calls == {"rc-one": 1}
    assert task_backends["default"].get_result("task-crash").status == TaskResultStatus.RUNNING
    assert recover_workflow("task-crash") == ["RC-ONE", "RC-TWO"]
    assert tt.calls == {"rc-one": 1, "rc-two": 1}
    result = tt.two_steps.get_result("task-crash")
    assert result.status == TaskResultStatus.SUCCESSFUL and result.attempts == 2


def test_a_failing_task_is_failed_with_its_exception_and_traceback():
    result = tt.fails.enqueue("boom")
    with running_worker(queues=TASK_QUEUES):
        finish(result)
    assert result.status == TaskResultStatus.FAILED and result.is_finished
    [error] = result.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert "ValueError: boom" in error.traceback and "def fails" not in error.traceback
    assert "in fails" in error.traceback  # the task function's frame
    with pytest.raises(ValueError, match="failed"):
        _ = result.return_value
    assert WorkflowStatus.objects.get(workflow_uuid=result.id).status == "ERROR"


def test_a_return_value_that_is_not_json_fails_the_task():
    result = tt.returns_a_set.enqueue()
    with running_worker(queues=TASK_QUEUES):
        finish(result)
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.TypeError"


def test_async_task_and_its_async_step():
    result = tt.async_task.enqueue(4)
    with running_worker(queues=TASK_QUEUES):
        finish(result)
    assert result.return_value == 41
    assert tt.calls == {"async_step": 1}
    assert [s.function_name for s in DBOS.list_workflow_steps(result.id)] == [
        "tests.tasks_app_tasks.async_step"
    ]


def test_takes_context_gets_the_running_task_result():
    result = tt.with_context.enqueue(label="ctx")
    assert result.kwargs == {"label": "ctx"}
    with running_worker(queues=TASK_QUEUES) as executor:
        finish(result)
    assert result.return_value == {
        "label": "ctx",
        "id": result.id,
        "status": "RUNNING",
        "attempt": 1,
        "worker_ids": [executor.executor_id],
    }


def test_priority_runs_higher_django_priorities_first():
    results = [
        tt.record_order.using(priority=priority).enqueue(label)
        for label, priority in [("zero", 0), ("fifty", 50), ("low", -50), ("top", 100)]
    ]
    assert [WorkflowStatus.objects.get(workflow_uuid=r.id).priority for r in results] == [
        101,
        51,
        151,
        1,
    ]
    with running_worker(queues=["tasks.serial"]):
        for result in results:
            finish(result)
    assert tt.order == ["top", "fifty", "zero", "low"]


def test_run_after_delays_the_task():
    later = timezone.now() + dt.timedelta(hours=1)
    result = tt.add.using(run_after=later).enqueue(1, 1)
    row = WorkflowStatus.objects.get(workflow_uuid=result.id)
    assert row.status == "DELAYED"
    assert row.delay_until_epoch_ms >= (later.timestamp() - 5) * 1000
    assert result.status == TaskResultStatus.READY
    assert result.task.run_after == later
    assert tt.add.get_result(result.id).task.run_after == later
    DBOS.set_workflow_delay(result.id, delay_seconds=0)
    with running_worker(queues=TASK_QUEUES):
        finish(result)
    assert result.return_value == 2


def test_enqueue_joins_the_callers_transaction():
    seen = []

    def on_enqueued(sender, task_result, **kwargs):
        seen.append(task_result.id)

    task_enqueued.connect(on_enqueued)
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            rolled_back = tt.add.enqueue(1, 2)
            assert WorkflowStatus.objects.filter(workflow_uuid=rolled_back.id).exists()
            raise RuntimeError("roll back")
        with transaction.atomic():
            kept = tt.add.enqueue(3, 4)
            assert seen == []  # announced when the row is committed
    finally:
        task_enqueued.disconnect(on_enqueued)
    assert seen == [kept.id]
    with pytest.raises(TaskResultDoesNotExist):
        tt.add.get_result(rolled_back.id)
    assert tt.add.get_result(kept.id).status == TaskResultStatus.READY


def test_set_workflow_id_makes_enqueue_idempotent():
    with SetWorkflowID("task-once"):
        first = tt.add.enqueue(1, 2)
    with SetWorkflowID("task-once"):
        second = tt.add.enqueue(1, 2)
    assert first.id == second.id == "task-once"
    with SetWorkflowID("task-twice"):
        taken = tt.add.enqueue(1, 2)
        fresh = tt.add.enqueue(1, 2)  # like Queue.enqueue, the first start takes the ID
    assert taken.id == "task-twice" != fresh.id
    assert WorkflowStatus.objects.filter(workflow_uuid="task-once").count() == 1


def test_started_and_finished_signals():
    events = []

    def record(signal_name):
        def receiver(sender, task_result, **kwargs):
            events.append((signal_name, sender, task_result.id, str(task_result.status)))

        return receiver

    started, finished = record("started"), record("finished")
    task_started.connect(started)
    task_finished.connect(finished)
    try:
        result = tt.add.enqueue(5, 5)
        with running_worker(queues=TASK_QUEUES):
            finish(result)
    finally:
        task_started.disconnect(started)
        task_finished.disconnect(finished)
    assert events == [
        ("started", DBOSTaskBackend, result.id, "RUNNING"),
        ("finished", DBOSTaskBackend, result.id, "SUCCESSFUL"),
    ]


def test_a_cancelled_task_is_failed():
    result = tt.wait_for_gate.enqueue()
    DBOS.cancel_workflow(result.id)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "django_dbos.errors.DBOSWorkflowCancelledError"
    assert result.worker_ids == []


def test_get_result_of_unknown_ids_and_of_other_workflows():
    backend = task_backends["default"]
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result("no-such-task")
    handle = DBOS.start_workflow(run_task_like_workflow)
    handle.get_result(timeout=30)
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(handle.workflow_id)  # a workflow, but not a task


@DBOS.workflow(name="tests.tasks.not_a_task")
def run_task_like_workflow() -> str:
    return "plain workflow"


def test_get_result_checks_the_task():
    from django_dbos.tasks.compat import TaskResult

    result = tt.add.enqueue(1, 1)
    assert isinstance(result, TaskResult)
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        tt.fails.get_result(result.id)


def test_async_enqueue_and_get_result():
    async def go():
        with SetWorkflowID("async-task"):
            result = await tt.add.aenqueue(20, 22)
            again = await tt.add.aenqueue(20, 22)  # the ID was taken by the first enqueue
        fetched = await tt.add.aget_result(result.id)
        return result, again, fetched

    result, again, fetched = asyncio.run(go())
    assert result.id == fetched.id == "async-task" != again.id
    assert fetched.status == TaskResultStatus.READY
    with running_worker(queues=TASK_QUEUES):
        finish(result)
    assert result.return_value == 42


# -- validation: nothing is written for bad input -----------------------------------------------


def test_bad_enqueues_raise_before_writing():
    before = WorkflowStatus.objects.count()
    with pytest.raises(InvalidTask, match="priority_enabled"):
        tt.on_plain_queue.using(priority=5)
    with pytest.raises(InvalidTask, match="not valid for backend"):
        tt.add.using(queue_name="nowhere")
    with pytest.raises(InvalidTask, match="aware"):
        tt.add.using(run_after=dt.datetime(2030, 1, 1))
    with pytest.raises(InvalidTask, match="whole number"):
        tt.add.using(priority=101)
    with pytest.raises(DBOSInvalidArgumentError, match="JSON"):
        tt.add.enqueue(object(), 1)
    assert WorkflowStatus.objects.count() == before
    assert tt.on_plain_queue.enqueue().status == TaskResultStatus.READY
    assert WorkflowStatus.objects.get(workflow_uuid__isnull=False, queue_name="tasks.plain")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"QUEUES": "default"}, "must be a list of queue names"),
        ({"OPTIONS": {"queue": {}}}, "unknown key"),
        ({"OPTIONS": []}, "must be a dict"),
        ({"OPTIONS": {"queues": {"elsewhere": {}}}}, "not in TASKS"),
        ({"OPTIONS": {"queues": {"default": {"partition_queue": True}}}}, "partitioned"),
        ({"OPTIONS": {"queues": {"default": {"concurrency": 0}}}}, "concurrency"),
        ({"OPTIONS": {"queues": {"default": 5}}}, "Queue arguments"),
    ],
)
def test_backend_options_are_validated_at_construction(params, message):
    with pytest.raises(DBOSConfigurationError, match=message):
        DBOSTaskBackend("bad", {"BACKEND": "django_dbos.tasks.DBOSTaskBackend", **params})


def test_a_django_queue_mapped_to_a_declared_queue():
    backend = DBOSTaskBackend(
        "mapped",
        {"OPTIONS": {"queues": {"default": "tests.tasks.declared"}}},
    )
    assert backend.queue_for("default") is tt.declared_for_tasks
    lost = DBOSTaskBackend("lost", {"OPTIONS": {"queues": {"default": "tests.tasks.lost"}}})
    with pytest.raises(DBOSQueueNotFoundError, match=r"'tests\.tasks\.lost'"):
        lost.queue_for("default")


def test_checks_report_bad_task_settings():
    bad = {
        "default": {"BACKEND": "django_dbos.tasks.DBOSTaskBackend", "OPTIONS": {"nope": 1}},
        "unmapped": {
            "BACKEND": "django_dbos.tasks.DBOSTaskBackend",
            "OPTIONS": {"queues": {"default": "not-declared"}},
        },
        "other": {"BACKEND": "no.such.Backend"},
    }
    with override_settings(TASKS=bad):
        messages = check_task_backends()
    assert [(m.id, m.obj) for m in messages] == [
        ("django_dbos_tasks.E001", "default"),
        ("django_dbos_tasks.E002", "unmapped"),
    ]
    assert "unknown key" in messages[0].msg and "not-declared" in messages[1].msg
    assert check_task_backends() == []


def test_the_backend_needs_its_app_installed(settings):
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "django_dbos.tasks"]
    with pytest.raises(DBOSConfigurationError, match="INSTALLED_APPS"):
        DBOSTaskBackend("default", {})


def test_supports_flags():
    backend = task_backends["default"]
    assert backend.supports_defer and backend.supports_async_task
    assert backend.supports_get_result and backend.supports_priority


# -- a real worker process ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_worker_process_runs_enqueued_tasks(settings, executor):
    """``manage.py dbos_worker`` knows the task workflow and the tasks' queues from the app's
    start-up alone (nothing in the worker imports the test's task module beforehand)."""
    version = "tasks-worker-test"
    settings.DBOS = {**settings.DBOS, "APPLICATION_VERSION": version}
    ok = tt.two_steps.enqueue("proc")
    failing = tt.fails.enqueue("in a process")
    worker = start_worker(
        "--queue", "tasks.default", "--burst", "--no-schedules", DBOS_APPLICATION_VERSION=version
    )
    try:
        out, _ = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, out
    ok.refresh()
    failing.refresh()
    assert ok.status == TaskResultStatus.SUCCESSFUL, out
    assert ok.return_value == ["PROC-ONE", "PROC-TWO"]
    assert len(ok.worker_ids) == 1 and ok.worker_ids != [executor.executor_id]
    assert failing.status == TaskResultStatus.FAILED
    assert "ValueError: in a process" in failing.errors[0].traceback
    assert tt.calls == {}  # the steps ran in the worker process, not here

"""Queues: enqueue, flow control (concurrency, limiter, priority, partitions), deduplication,
delays, transactional enqueue, and the dispatcher in a worker."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import pytest
from django.core.checks import Error
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_dbos import (
    DBOS,
    DBOSConfigurationError,
    DBOSException,
    DBOSInvalidArgumentError,
    DBOSNonExistentWorkflowError,
    DBOSQueueDeduplicatedError,
    Queue,
    SetEnqueueOptions,
    SetWorkflowID,
    serialization,
)
from django_dbos.checks import check_workflow_modules
from django_dbos.engine import system_db
from django_dbos.engine.dispatcher import Dispatcher
from django_dbos.engine.executor import application_version
from django_dbos.engine.queues import store_config
from django_dbos.models import QueueConfig, WorkflowStatus, now_ms
from django_dbos.registry import registry
from django_dbos.testing import recover_workflow, running_worker, simulate_crash
from tests import queue_workflows as qw
from tests.conftest import REPO, postgres_only, worker_env
from tests.models import Ledger

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_tracker():
    qw.tracker.reset()


def results(handles, timeout=30):
    return [handle.get_result(timeout=timeout) for handle in handles]


def test_fifo_order():
    handles = [qw.fifo.enqueue(qw.record, f"w{i}") for i in range(5)]
    assert {h.get_status().status for h in handles} == {"ENQUEUED"}
    with running_worker(queues=["tests.fifo"]):
        assert results(handles) == [f"w{i}" for i in range(5)]
    assert qw.tracker.order == [f"w{i}" for i in range(5)]
    assert all(h.get_status().queue_name == "tests.fifo" for h in handles)


def test_priority_then_fifo():
    handles = []
    for label, priority in [("a", 3), ("b", 1), ("c", 2), ("d", 1), ("e", 0)]:
        with SetEnqueueOptions(priority=priority):
            handles.append(qw.prio.enqueue(qw.record, label))
    with running_worker(queues=["tests.prio"]):
        results(handles)
    assert qw.tracker.order == ["e", "b", "d", "c", "a"]


def test_global_concurrency_is_never_exceeded():
    handles = [qw.limited.enqueue(qw.record, f"w{i}", "limited", 0.1) for i in range(8)]
    with running_worker(queues=["tests.limited"], threads=8):
        results(handles)
    assert qw.tracker.peak["limited"] == 2


def test_worker_concurrency():
    handles = [qw.per_worker.enqueue(qw.record, f"w{i}", "per", 0.1) for i in range(9)]
    with running_worker(queues=["tests.per_worker"], threads=8):
        results(handles)
    assert qw.tracker.peak["per"] == 3


def test_limiter_caps_starts_in_every_window():
    handles = [qw.rated.enqueue(qw.record, f"w{i}") for i in range(9)]
    with running_worker(queues=["tests.rated"]):
        results(handles)
    starts = sorted(
        WorkflowStatus.objects.filter(queue_name="tests.rated").values_list(
            "started_at_epoch_ms", flat=True
        )
    )
    assert len(starts) == 9
    # any 4 consecutive starts span at least one period: no window holds more than 3
    assert all(starts[i + 3] - starts[i] >= 500 for i in range(len(starts) - 3))


def test_partition_concurrency_one_per_key():
    handles = []
    for i in range(9):
        key = "abc"[i % 3]
        with SetEnqueueOptions(queue_partition_key=key):
            handles.append(qw.parts.enqueue(qw.record, f"{key}{i}", key, 0.05))
    with running_worker(queues=["tests.parts"], threads=8):
        results(handles)
    assert qw.tracker.peak == {"a": 1, "b": 1, "c": 1}
    assert {h.get_status().queue_partition_key for h in handles} == {"a", "b", "c"}


def test_partition_limiter_caps_each_key_on_its_own():
    handles = []
    for i in range(6):
        for key in "ab":
            with SetEnqueueOptions(queue_partition_key=key):
                handles.append(qw.part_rated.enqueue(qw.record, f"{key}{i}"))
    with running_worker(queues=["tests.part_rated"]):
        results(handles)
    starts: dict[str, list[int]] = {"a": [], "b": []}
    rows = WorkflowStatus.objects.filter(queue_name="tests.part_rated")
    for key, started in rows.values_list("queue_partition_key", "started_at_epoch_ms"):
        starts[key].append(started)
    for key, times in starts.items():
        times.sort()
        assert len(times) == 6
        # any 3 consecutive starts of one key span at least a period: never 3 in one window
        assert all(times[i + 2] - times[i] >= 500 for i in range(len(times) - 2)), key
    # per key, not per queue: b's first two did not wait for a's window to pass
    assert sorted(starts["b"])[1] - sorted(starts["a"])[0] < 500
    config = QueueConfig.objects.get(name="tests.part_rated")
    assert (config.partition_limiter_limit, config.partition_limiter_period_sec) == (2, 0.5)
    assert qw.part_rated.partition_limiter == {"limit": 2, "period": 0.5}


def test_deduplication_raises_and_writes_nothing():
    with SetEnqueueOptions(deduplication_id="order-1"):
        first = qw.plain.enqueue(qw.double, 1)
    with SetEnqueueOptions(deduplication_id="order-1"), pytest.raises(DBOSQueueDeduplicatedError):
        qw.plain.enqueue(qw.double, 2)
    assert WorkflowStatus.objects.filter(queue_name="tests.plain").count() == 1
    # another queue, or no dedup ID, is not a duplicate
    with SetEnqueueOptions(deduplication_id="order-1"):
        qw.fifo.enqueue(qw.double, 3)
    with running_worker(queues=["tests.plain"]):
        assert first.get_result(timeout=30) == 2
    # once the holder finished, the ID is free again
    with SetEnqueueOptions(deduplication_id="order-1"):
        again = qw.plain.enqueue(qw.double, 4)
    assert again.get_status().status == "ENQUEUED"


def test_delayed_enqueue_starts_after_the_delay():
    with SetEnqueueOptions(delay_seconds=0.6):
        handle = qw.plain.enqueue(qw.double, 21)
    assert handle.get_status().status == "DELAYED"
    with running_worker(queues=["tests.plain"]):
        assert handle.get_result(timeout=30) == 42
    row = WorkflowStatus.objects.get(workflow_uuid=handle.workflow_id)
    # the delay is counted from the enqueue call (created_at is stamped a moment later)
    assert 550 <= row.delay_until_epoch_ms - row.created_at <= 600
    assert row.started_at_epoch_ms >= row.delay_until_epoch_ms


def test_set_workflow_delay():
    with SetEnqueueOptions(delay_seconds=3600):
        handle = qw.plain.enqueue(qw.double, 4)
    running = qw.plain.enqueue(qw.double, 5)
    with running_worker(queues=["tests.plain"]):
        assert running.get_result(timeout=30) == 10
        assert handle.get_status().status == "DELAYED"
        DBOS.set_workflow_delay(handle.workflow_id, 0)
        assert handle.get_result(timeout=30) == 8
    with pytest.raises(DBOSInvalidArgumentError, match="exactly one"):
        DBOS.set_workflow_delay(handle.workflow_id)
    with pytest.raises(DBOSInvalidArgumentError, match="delay_seconds"):
        DBOS.set_workflow_delay(handle.workflow_id, -1)
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.set_workflow_delay("no-such-workflow", delay_until_epoch_ms=0)


def test_an_idle_worker_wakes_on_enqueue():
    slow = Queue("tests.slow_poll", polling_interval_sec=30)
    try:
        with running_worker(queues=["tests.slow_poll"]):
            time.sleep(0.3)  # the worker is idle, waiting up to 30 s
            started = time.monotonic()
            assert slow.enqueue(qw.double, 6).get_result(timeout=10) == 12
            assert time.monotonic() - started < 5
    finally:
        registry.queues.pop("tests.slow_poll", None)


@postgres_only
def test_enqueue_notifies_on_postgres():
    import psycopg

    params = dict(connection.get_connection_params())
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute("LISTEN dbos_workflow_enqueued")
        with transaction.atomic():
            qw.plain.enqueue(qw.double, 1)
            assert list(listener.notifies(timeout=0.2)) == []  # not before commit
        payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert payloads == ["tests.plain"]


def test_enqueue_in_a_workflow_is_recorded_and_not_repeated():
    with SetWorkflowID("parent-q"), simulate_crash(after_step=2):
        qw.enqueuer("x")
    children = WorkflowStatus.objects.filter(parent_workflow_id="parent-q")
    assert list(children.values_list("workflow_uuid", "status")) == [("parent-q-2", "ENQUEUED")]
    assert recover_workflow("parent-q") == "parent-q-2"  # replays the enqueue
    assert children.count() == 1
    assert qw.tracker.order == ["step-x"]  # the step did not run again either
    with running_worker(queues=["tests.plain"]):
        assert DBOS.retrieve_workflow("parent-q-2").get_result(timeout=30) == "child-x"


def test_transactional_enqueue_commits_and_rolls_back_with_the_caller():
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        Ledger.objects.create(key="rolled-back")
        with SetWorkflowID("tx-rolled-back"):
            qw.plain.enqueue(qw.double, 1)
        raise Boom
    assert not WorkflowStatus.objects.filter(workflow_uuid="tx-rolled-back").exists()
    assert not Ledger.objects.exists()

    with transaction.atomic():
        Ledger.objects.create(key="committed")
        with SetWorkflowID("tx-committed"):
            handle = qw.plain.enqueue(qw.double, 2)
    assert Ledger.objects.filter(key="committed").exists()
    with running_worker(queues=["tests.plain"]):
        assert handle.get_result(timeout=30) == 4


def test_unknown_workflow_name_ends_as_error():
    now = now_ms()
    WorkflowStatus.objects.create(
        workflow_uuid="unknown-1",
        status="ENQUEUED",
        name="tests.queues.nowhere",
        inputs=serialization.serialize_args((), {}),
        queue_name="tests.plain",
        application_version=application_version(),
        created_at=now,
        updated_at=now,
    )
    with (
        running_worker(queues=["tests.plain"]),
        pytest.raises(DBOSException, match=r"tests\.queues\.nowhere"),
    ):
        DBOS.retrieve_workflow("unknown-1").get_result(timeout=30)
    assert WorkflowStatus.objects.get(workflow_uuid="unknown-1").status == "ERROR"


def test_list_queued_workflows_shows_enqueued_rows():
    handle = qw.plain.enqueue(qw.double, 1)
    queued = DBOS.list_queued_workflows(queue_name="tests.plain")
    assert [(w.workflow_id, w.status) for w in queued] == [(handle.workflow_id, "ENQUEUED")]


def test_enqueue_async():
    async def go():
        handle = await qw.plain.enqueue_async(qw.double, 5)
        return handle.workflow_id

    workflow_id = asyncio.run(go())
    with running_worker(queues=["tests.plain"]):
        assert DBOS.retrieve_workflow(workflow_id).get_result(timeout=30) == 10


def test_queue_config_is_stored_lazily():
    lazy = Queue("tests.lazy", concurrency=3, limiter={"limit": 2, "period": 1.5})
    try:
        assert not QueueConfig.objects.filter(name="tests.lazy").exists()
        lazy.enqueue(qw.double, 1)
        config = QueueConfig.objects.get(name="tests.lazy")
        assert (config.concurrency, config.limiter_limit, config.limiter_period_sec) == (3, 2, 1.5)
    finally:
        registry.queues.pop("tests.lazy", None)


def test_a_queue_declared_twice_with_other_settings_fails_the_check(monkeypatch):
    monkeypatch.setattr(registry, "duplicates", [])
    Queue("tests.fifo", concurrency=5)  # tests.fifo has worker_concurrency=1
    messages = check_workflow_modules()
    assert len(messages) == 1
    assert isinstance(messages[0], Error)
    assert messages[0].id == "django_dbos.E004"
    assert "queues are registered under the name 'tests.fifo'" in messages[0].msg
    assert registry.queues["tests.fifo"] is qw.fifo
    # the same settings again is not a conflict
    monkeypatch.setattr(registry, "duplicates", [])
    Queue("tests.fifo", worker_concurrency=1)
    assert check_workflow_modules() == []


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": "2"}, "concurrency"),
        ({"worker_concurrency": -1}, "worker_concurrency"),
        ({"concurrency": 1, "worker_concurrency": 2}, "worker_concurrency"),
        ({"limiter": {"limit": 5}}, "limiter"),
        ({"limiter": {"limit": 0, "period": 1}}, "limit"),
        ({"limiter": {"limit": 1, "period": 0}}, "period"),
        ({"partition_concurrency": 1}, "partition_queue"),
        ({"partition_limiter": {"limit": 1, "period": 1}}, "partition_queue"),
        ({"partition_queue": True, "partition_limiter": {"limit": 1}}, "partition_limiter"),
        ({"partition_queue": True, "partition_limiter": {"limit": 1, "period": -1}}, "period"),
        ({"polling_interval_sec": 0}, "polling_interval_sec"),
        ({"priority_enabled": "yes"}, "priority_enabled"),
    ],
)
def test_bad_queue_arguments(kwargs, names):
    with pytest.raises(DBOSConfigurationError, match=names):
        Queue("tests.bad", **kwargs)
    assert "tests.bad" not in registry.queues


def test_bad_enqueue_options_write_nothing():
    with pytest.raises(DBOSInvalidArgumentError, match="priority"):
        SetEnqueueOptions(priority=-1)
    with pytest.raises(DBOSInvalidArgumentError, match="priority"):
        SetEnqueueOptions(priority=2**31)
    with pytest.raises(DBOSInvalidArgumentError, match="delay_seconds"):
        SetEnqueueOptions(delay_seconds=-1)
    with SetEnqueueOptions(priority=1), pytest.raises(DBOSInvalidArgumentError, match="priority"):
        qw.plain.enqueue(qw.double, 1)  # not priority_enabled
    with pytest.raises(DBOSInvalidArgumentError, match="queue_partition_key"):
        qw.parts.enqueue(qw.double, 1)  # partitioned: needs a key
    with (
        SetEnqueueOptions(queue_partition_key="a"),
        pytest.raises(DBOSInvalidArgumentError, match="queue_partition_key"),
    ):
        qw.plain.enqueue(qw.double, 1)
    with pytest.raises(DBOSException, match="not a workflow"):
        qw.plain.enqueue(len, "x")
    assert not WorkflowStatus.objects.exists()


def test_unknown_queue_name_for_the_worker():
    with pytest.raises(CommandError, match="nope"):
        call_command("dbos_worker", "--queue", "nope")
    with pytest.raises(DBOSConfigurationError, match="nope"), running_worker(queues=["nope"]):
        pass


def test_the_dispatcher_uses_a_handful_of_queries_per_round(executor):
    handles = [qw.limited.enqueue(qw.double, i) for i in range(6)]
    handles += [qw.plain.enqueue(qw.double, i) for i in range(6, 12)]
    executor.ensure_started()
    dispatcher = Dispatcher(executor, [qw.limited, qw.plain])
    for queue in dispatcher.queues:
        store_config(queue)
    dispatcher.stored = True
    with CaptureQueriesContext(connection) as queries:
        started = dispatcher.run_round()
    assert started == 8  # 2 of the concurrency-2 queue, all 6 of the other
    claims = [q["sql"] for q in queries if "UPDATE dbos_workflow_status" in q["sql"]]
    assert len(claims) == 2  # one claiming UPDATE per queue, not per row
    # the unlimited queue: one statement in all (its UPDATE picks the rows itself) and the
    # checkpoint load; the limited one: BEGIN (SQLite), lock, count, SELECT, UPDATE, loads
    plain_claim = [sql for sql in claims if "SKIP LOCKED" in sql or "ORDER BY" in sql]
    assert len(plain_claim) == 1
    assert len(queries) <= 10, [q["sql"] for q in queries]
    with running_worker(queues=["tests.limited", "tests.plain"]):
        assert results(handles) == [2 * i for i in range(12)]


def test_a_worker_process_drains_its_queue(settings):
    version = "queues-process-test"
    settings.DBOS = {**settings.DBOS, "APPLICATION_VERSION": version}
    handles = [qw.process_queue.enqueue(qw.double, i) for i in range(5)]
    other = qw.plain.enqueue(qw.double, 100)  # not served by that worker
    boot = (
        "import sys, django; django.setup(); import tests.queue_workflows; "
        "from django.core.management import call_command; "
        "call_command('dbos_worker', *sys.argv[1:])"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", boot, "--queue", "tests.process"],
        env=worker_env(
            DJANGO_SETTINGS_MODULE="testproject.settings",
            DBOS_APPLICATION_VERSION=version,
            DBOS_LOG_LEVEL="INFO",
        ),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert results(handles, timeout=60) == [0, 2, 4, 6, 8]
        time.sleep(0.3)
        assert other.get_status().status == "ENQUEUED"
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert "queues: tests.process" in output
    assert output.count("Started workflow") == 5, output
    assert output.count("Finished workflow") == 5, output


def test_a_failed_round_puts_its_claims_back(executor, monkeypatch):
    handles = [qw.plain.enqueue(qw.double, i) for i in range(3)]
    executor.ensure_started()
    dispatcher = Dispatcher(executor, [qw.plain])

    def broken(workflow_ids):
        raise RuntimeError("lost connection")

    monkeypatch.setattr(system_db, "load_checkpoints_of", broken)
    with pytest.raises(RuntimeError):
        dispatcher.run_round()
    assert {h.get_status().status for h in handles} == {"ENQUEUED"}
    monkeypatch.undo()
    with running_worker(queues=["tests.plain"]):
        assert results(handles) == [0, 2, 4]


def test_burst_worker_also_runs_what_its_last_workflow_enqueued():
    # the child is enqueued by the parent's last operation: when the parent finishes the
    # worker is idle, and must look at the queue once more before leaving
    parent = qw.plain.enqueue(qw.enqueuer, "last")
    call_command("dbos_worker", "--burst", "--queue", "tests.plain", "--no-schedules")
    child_id = parent.get_result(timeout=5)
    assert WorkflowStatus.objects.get(pk=child_id).status == "SUCCESS"

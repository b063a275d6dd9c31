"""DBOSClient: enqueue by name (validated before anything is written), messages, events,
streams, listings, cancel/resume/fork through a queue, async twins, waits that start no thread.
How a client finds its database, and a process with no Django project: test_client_setup.py."""

from __future__ import annotations

import asyncio
import inspect
import json
import pickle
import threading

import pytest
from django.db import transaction

from django_dbos import (
    DBOS,
    DBOSClient,
    DBOSConflictingWorkflowError,
    DBOSException,
    DBOSInvalidArgumentError,
    DBOSInvalidStartStepError,
    DBOSNonExistentWorkflowError,
    DBOSQueueDeduplicatedError,
    DBOSQueueNotFoundError,
    DBOSSerializationError,
    DBOSStreamTimeoutError,
    DBOSWorkflowFunctionNotFoundError,
    SetWorkflowID,
)
from django_dbos.client_handles import (
    WorkflowHandleClientAsyncPolling,
    WorkflowHandleClientPolling,
)
from django_dbos.engine import wakeups
from django_dbos.engine.executor import application_version
from django_dbos.models import Executor, OperationOutput, QueueConfig, WorkflowStatus
from django_dbos.queues import INTERNAL_QUEUE_NAME
from django_dbos.testing import running_worker
from tests import client_workflows as cwf
from tests.conftest import postgres_only

pytestmark = pytest.mark.django_db(transaction=True)

GREET = "tests.client.greet"


@pytest.fixture(autouse=True)
def _queues_stored():
    cwf.store_queues()


def serving():
    """A worker in this process serving this module's queues (and the internal one)."""
    return running_worker(queues=[queue.name for queue in cwf.QUEUES])


@pytest.fixture
def client():
    with DBOSClient() as c:
        yield c


options = cwf.options
database_url = cwf.database_url


# -- enqueue -----------------------------------------------------------------------------------


def test_enqueue_by_name_writes_the_row_queue_enqueue_writes_and_a_worker_runs_it(client):
    handle = client.enqueue(options(workflow_id="c-1"), "ada", punctuation="?")
    row = WorkflowStatus.objects.get(pk="c-1")
    assert (row.status, row.name, row.queue_name, row.executor_id) == (
        "ENQUEUED",
        GREET,
        cwf.QUEUE,
        None,
    )
    assert row.application_version is None  # the worker that claims it stamps its own
    assert handle.get_status().input == {"args": ("ada",), "kwargs": {"punctuation": "?"}}
    with serving():
        assert handle.get_result(timeout=30) == "hello ada?"
    row.refresh_from_db()
    assert (row.status, row.application_version) == ("SUCCESS", application_version())
    assert client.get_event("c-1", "greeted", timeout_seconds=5) == "ada"
    assert client.retrieve_workflow("c-1").get_result(timeout=1) == "hello ada?"


def test_an_unknown_workflow_name_ends_as_error_at_the_worker(client):
    handle = client.enqueue(
        {"workflow_name": "tests.client.nowhere", "queue_name": cwf.QUEUE}, 1, 2
    )
    with (
        serving(),
        pytest.raises(DBOSWorkflowFunctionNotFoundError, match=r"tests\.client\.nowhere"),
    ):
        handle.get_result(timeout=30)
    status = client.get_workflow_status(handle.workflow_id)
    assert status is not None and status.status == "ERROR"
    assert "tests.client.nowhere" in str(status.error)


def test_an_undeclared_queue_is_an_error_at_enqueue_and_writes_nothing(client):
    QueueConfig.objects.create(name="tests.client_elsewhere")
    with pytest.raises(DBOSQueueNotFoundError, match=r"'tests\.nope'") as raised:
        client.enqueue({"workflow_name": GREET, "queue_name": "tests.nope"}, "x")
    assert "tests.client_elsewhere" in raised.value.known
    assert INTERNAL_QUEUE_NAME not in raised.value.known
    copy = pickle.loads(pickle.dumps(raised.value))
    assert (type(copy), str(copy), copy.queue_name) == (
        DBOSQueueNotFoundError,
        str(raised.value),
        "tests.nope",
    )
    assert not WorkflowStatus.objects.exists()


def test_a_queue_only_another_process_declared_is_found_in_dbos_queues(client):
    QueueConfig.objects.create(name="tests.remote", priority_enabled=True)
    handle = client.enqueue(
        {"workflow_name": "remote.job", "queue_name": "tests.remote", "priority": 3}, 1
    )
    row = WorkflowStatus.objects.get(pk=handle.workflow_id)
    assert (row.queue_name, row.priority, row.name) == ("tests.remote", 3, "remote.job")
    with pytest.raises(DBOSInvalidArgumentError, match="queue_partition_key"):
        client.enqueue(
            {
                "workflow_name": "remote.job",
                "queue_name": "tests.remote",
                "queue_partition_key": "a",
            }
        )
    assert WorkflowStatus.objects.count() == 1


def test_options_are_stored_as_set_enqueue_options_would(client):
    client.enqueue(
        options(
            workflow_id="c-opts",
            app_version="v-elsewhere",
            workflow_timeout=5,
            deduplication_id="d-1",
            delay_seconds=60,
            authenticated_user="alice",
            attributes={"tenant": "acme"},
        ),
        "bob",
    )
    row = WorkflowStatus.objects.get(pk="c-opts")
    assert row.status == "DELAYED" and row.delay_until_epoch_ms is not None
    assert (row.application_version, row.workflow_timeout_ms, row.deduplication_id) == (
        "v-elsewhere",
        5000,
        "d-1",
    )
    assert (row.authenticated_user, json.loads(row.attributes)) == ("alice", {"tenant": "acme"})
    assert row.workflow_deadline_epoch_ms is None  # the timeout starts when a worker claims it
    client.enqueue({"workflow_name": GREET, "queue_name": "tests.client_prio", "priority": 7}, "x")
    client.enqueue(
        {"workflow_name": GREET, "queue_name": "tests.client_parts", "queue_partition_key": "t1"}
    )
    assert set(WorkflowStatus.objects.values_list("priority", "queue_partition_key")) == {
        (0, None),
        (7, None),
        (0, "t1"),
    }


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"workflow_name": GREET}, "queue_name"),
        ({"queue_name": cwf.QUEUE}, "workflow_name"),
        ({"workflow_name": "", "queue_name": cwf.QUEUE}, "workflow_name"),
        (options(priority=-1), "priority"),
        (options(priority=True), "priority"),
        (options(delay_seconds=-1), "delay_seconds"),
        (options(workflow_timeout=0), "workflow_timeout"),
        (options(workflow_timeout=float("nan")), "workflow_timeout"),
        (options(workflow_id="x" * 256), "workflow_id"),
        ({**options(), "shard_key": "s"}, "shard_key"),
        (["not", "a", "dict"], "options"),
        ({"workflow_name": GREET, "queue_name": "tests.client_parts"}, "queue_partition_key"),
        (options(priority=1), "priority_enabled"),
    ],
)
def test_bad_options_are_named_and_write_nothing(client, bad, match):
    with pytest.raises(DBOSInvalidArgumentError, match=match):
        client.enqueue(bad, "x")
    assert not WorkflowStatus.objects.exists()


def test_bad_attributes_and_unserializable_arguments_write_nothing(client):
    with pytest.raises(DBOSException, match="attribute"):
        client.enqueue(options(attributes={"k": object()}), "x")
    with pytest.raises(DBOSSerializationError):
        client.enqueue(options(), object())
    assert not WorkflowStatus.objects.exists()


def test_an_existing_id_returns_that_workflow_and_another_name_conflicts(client):
    first = client.enqueue(options(workflow_id="c-same"), "a")
    again = client.enqueue(options(workflow_id="c-same"), "b")
    assert again.workflow_id == first.workflow_id
    assert client.get_workflow_status("c-same").input == {"args": ("a",), "kwargs": {}}
    with pytest.raises(DBOSConflictingWorkflowError):
        client.enqueue({"workflow_name": "other", "queue_name": cwf.QUEUE, "workflow_id": "c-same"})
    client.enqueue(options(deduplication_id="once"), "a")
    with pytest.raises(DBOSQueueDeduplicatedError):
        client.enqueue(options(deduplication_id="once"), "b")
    assert WorkflowStatus.objects.count() == 2


def test_enqueue_joins_the_callers_transaction(client):
    with transaction.atomic():
        client.enqueue(options(workflow_id="c-kept"), "a")
    with pytest.raises(RuntimeError), transaction.atomic():
        client.enqueue(options(workflow_id="c-rolled-back"), "a")
        raise RuntimeError("roll back")
    assert list(WorkflowStatus.objects.values_list("workflow_uuid", flat=True)) == ["c-kept"]


def test_inside_a_workflow_a_client_call_is_not_recorded(client):
    @DBOS.workflow(name="tests.client.calls_a_client")
    def calls_a_client() -> str:
        return client.enqueue(options(), "inner").workflow_id

    with SetWorkflowID("c-outer"):
        inner_id = calls_a_client()
    inner = WorkflowStatus.objects.get(pk=inner_id)
    assert inner.parent_workflow_id is None and inner_id != "c-outer-1"
    assert not OperationOutput.objects.filter(workflow_id="c-outer").exists()


# -- messages, events, streams, listings --------------------------------------------------------


def test_send_get_event_read_stream_and_listings(client):
    collector = client.enqueue(
        {"workflow_name": "tests.client.collect", "queue_name": cwf.QUEUE}, 2
    )
    streamer = client.enqueue({"workflow_name": "tests.client.stream", "queue_name": cwf.QUEUE}, 3)
    client.send(collector.workflow_id, "one", "in")
    client.send(collector.workflow_id, "two", "in", idempotency_key="k-2")
    client.send(collector.workflow_id, "two again", "in", idempotency_key="k-2")  # a no-op
    with pytest.raises(DBOSNonExistentWorkflowError):
        client.send("c-nobody", "lost", "in")
    queued = client.list_queued_workflows(queue_name=cwf.QUEUE)
    assert {w.workflow_id for w in queued} == {collector.workflow_id, streamer.workflow_id}
    with serving():
        assert list(client.read_stream(streamer.workflow_id, "numbers", timeout_seconds=30)) == [
            0,
            1,
            2,
        ]
        assert collector.get_result(timeout=30) == ["one", "two"]
        winner = client.wait_first([collector, streamer], timeout_seconds=30)
        assert winner.workflow_id in {collector.workflow_id, streamer.workflow_id}
    assert client.read_stream_offset(streamer.workflow_id, "numbers", 1) == 1
    assert client.list_queued_workflows(queue_name=cwf.QUEUE) == []
    done = client.list_workflows(name="tests.client.stream", status="SUCCESS")
    assert [w.workflow_id for w in done] == [streamer.workflow_id]
    steps = client.list_workflow_steps(collector.workflow_id)
    assert [s.function_name for s in steps] == ["DBOS.recv", "DBOS.recv"]
    with pytest.raises(DBOSInvalidArgumentError, match="status"):
        client.list_workflows(status="FINISHED")
    assert client.get_workflow_status("c-nobody") is None
    with pytest.raises(DBOSNonExistentWorkflowError):
        client.retrieve_workflow("c-nobody")


# -- cancel, resume, fork ----------------------------------------------------------------------


def test_cancel_then_resume_runs_on_a_worker_from_the_last_checkpoint(client):
    handle = client.enqueue(
        {"workflow_name": "tests.client.two_steps", "queue_name": cwf.QUEUE}, "r"
    )
    with serving():
        wait_until(lambda: OperationOutput.objects.filter(workflow_id=handle.workflow_id).exists())
        client.cancel_workflow(handle.workflow_id)
        assert client.get_workflow_status(handle.workflow_id).status == "CANCELLED"
    resumed = client.resume_workflow(handle.workflow_id)
    row = WorkflowStatus.objects.get(pk=handle.workflow_id)
    assert (row.status, row.queue_name, row.executor_id) == ("ENQUEUED", INTERNAL_QUEUE_NAME, None)
    with serving() as worker:
        client.send(handle.workflow_id, "now", "go")
        assert resumed.get_result(timeout=30) == "R"
        assert WorkflowStatus.objects.get(pk=handle.workflow_id).executor_id == worker.executor_id
    assert cwf.calls == {"first-r": 1, "second-r": 1}  # step 1 replayed, not run again
    assert not Executor.objects.filter(executor_id__isnull=True).exists()


def test_resume_of_an_unknown_id_or_onto_an_unknown_queue_changes_nothing(client):
    handle = client.enqueue(options(workflow_id="c-res"), "a")
    client.cancel_workflow("c-res")
    with pytest.raises(DBOSNonExistentWorkflowError):
        client.resume_workflows(["c-res", "c-nobody"])
    with pytest.raises(DBOSQueueNotFoundError):
        client.resume_workflow("c-res", queue_name="tests.nope")
    assert handle.get_status().status == "CANCELLED"
    with pytest.raises(DBOSInvalidArgumentError):
        client.resume_workflows("c-res")  # a bare string, not a list
    assert client.resume_workflows([]) == []


def test_fork_enqueues_a_copy_that_reruns_from_start_step(client):
    original = client.enqueue(
        {"workflow_name": "tests.client.straight", "queue_name": cwf.QUEUE}, "f"
    )
    with serving():
        assert original.get_result(timeout=30) == "F"
        with SetWorkflowID("c-fork"):
            fork = client.fork_workflow(original.workflow_id, 2)
        assert fork.workflow_id == "c-fork"
        row = WorkflowStatus.objects.get(pk="c-fork")
        assert (row.forked_from, row.inputs) == (
            original.workflow_id,
            WorkflowStatus.objects.get(pk=original.workflow_id).inputs,
        )
        assert fork.get_result(timeout=30) == "F"
    assert cwf.calls == {"first-f": 1, "second-f": 2}
    assert OperationOutput.objects.filter(workflow_id="c-fork").count() == 2
    with pytest.raises(DBOSInvalidStartStepError):
        client.fork_workflow(original.workflow_id, 9)
    with pytest.raises(DBOSInvalidArgumentError, match="queue_partition_key"):
        client.fork_workflow(original.workflow_id, 1, queue_name="tests.client_parts")
    with pytest.raises(DBOSInvalidArgumentError, match="timeout_seconds"):
        client.fork_workflow(original.workflow_id, 1, timeout_seconds=-1)
    assert WorkflowStatus.objects.count() == 2


def test_delete_and_set_delay(client):
    client.enqueue(options(workflow_id="c-delayed", delay_seconds=3600), "a")
    client.set_workflow_delay("c-delayed", delay_until_epoch_ms=5)
    assert WorkflowStatus.objects.get(pk="c-delayed").delay_until_epoch_ms == 5
    client.delete_workflow("c-delayed")
    assert not WorkflowStatus.objects.exists()


# -- async twins --------------------------------------------------------------------------------


def test_async_twins(client):
    async def go():
        handle = await client.enqueue_async(options(workflow_id="c-async"), "eve")
        streamer = await client.enqueue_async(
            {"workflow_name": "tests.client.stream", "queue_name": cwf.QUEUE}, 2
        )
        await client.send_async("c-async", "ignored", "nobody-reads")
        result = await handle.get_result(timeout=30)
        event = await client.get_event_async("c-async", "greeted", 5)
        values = [v async for v in client.read_stream_async(streamer.workflow_id, "numbers")]
        status = await client.get_workflow_status_async("c-async")
        assert client.get_workflow_status("c-async") == status  # sync, off the loop's thread
        retrieved = await client.retrieve_workflow_async("c-async")
        await streamer.get_result(timeout=30)
        listed = await client.list_workflows_async(queue_name=cwf.QUEUE, status="SUCCESS")
        return len(listed), result, event, values, status.status, retrieved.workflow_id

    with serving():
        assert asyncio.run(go()) == (2, "hello eve!", "eve", [0, 1], "SUCCESS", "c-async")


def test_every_method_has_an_async_twin_with_the_same_parameters():
    public = [name for name in vars(DBOSClient) if not name.startswith("_")]
    sync = [name for name in public if not name.endswith("_async")]
    for name in set(sync) - {"destroy", "close"}:
        twin = getattr(DBOSClient, f"{name}_async", None)
        assert twin is not None, name
        assert inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin), name
        sync_params = list(inspect.signature(getattr(DBOSClient, name)).parameters)
        assert list(inspect.signature(twin).parameters) == sync_params, name


# -- no threads: a client's waits poll -----------------------------------------------------------


def client_waits(client, workflow_id: str) -> None:
    """Every kind of client wait, on a workflow nobody runs (each one times out)."""
    handle = client.retrieve_workflow(workflow_id)
    assert isinstance(handle, WorkflowHandleClientPolling)
    with pytest.raises(TimeoutError):
        handle.get_result(timeout=0.1)
    with pytest.raises(TimeoutError):
        client.wait_first([handle], timeout_seconds=0.1)
    assert client.get_event(workflow_id, "greeted", timeout_seconds=0.1) is None
    with pytest.raises(DBOSStreamTimeoutError):
        list(client.read_stream(workflow_id, "numbers", timeout_seconds=0.1))
    with pytest.raises(DBOSStreamTimeoutError):
        client.read_stream_offset(workflow_id, "numbers", 0, timeout_seconds=0.1)

    async def go() -> str:
        waiting = await client.retrieve_workflow_async(workflow_id)
        assert isinstance(waiting, WorkflowHandleClientAsyncPolling)
        with pytest.raises(TimeoutError):
            await waiting.get_result(timeout=0.1)
        assert await client.get_event_async(workflow_id, "greeted", 0.1) is None
        with pytest.raises(DBOSStreamTimeoutError):
            _ = [v async for v in client.read_stream_async(workflow_id, "k", timeout_seconds=0.1)]
        return (await waiting.get_status()).status

    assert asyncio.run(go()) == "ENQUEUED"


def test_a_clients_waits_never_ask_for_the_listen_thread(client, monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(wakeups.listener, "ensure_running", lambda: asked.append("listener"))
    client.enqueue(options(workflow_id="c-polls"), "p")
    client_waits(client, "c-polls")
    assert asked == []
    with pytest.raises(TimeoutError):  # the engine's own waits do ask (what the client skips)
        DBOS.retrieve_workflow("c-polls").get_result(timeout=0.1)
    assert asked == ["listener"]


@postgres_only
def test_a_client_starts_no_thread_on_postgres(client):
    wakeups.listener.stop()  # as in a process that has not waited on anything yet
    before = set(threading.enumerate())
    client.enqueue(options(workflow_id="c-quiet"), "q")  # no worker: it stays ENQUEUED
    client_waits(client, "c-quiet")
    assert set(threading.enumerate()) <= before
    with pytest.raises(TimeoutError):  # an engine wait here starts the LISTEN thread
        DBOS.retrieve_workflow("c-quiet").get_result(timeout=0.1)
    assert "dbos-listener" in {t.name for t in set(threading.enumerate()) - before}


def wait_until(predicate, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)

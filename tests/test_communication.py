"""Messages, events, streams and wait_first: exactly once, in order, across crashes."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections, transaction

from django_dbos import (
    DBOS,
    DBOSException,
    DBOSNonExistentWorkflowError,
    DBOSNotInWorkflowError,
    DBOSSerializationError,
    DBOSStreamTimeoutError,
    SendMessage,
    SetWorkflowID,
    serialization,
)
from django_dbos.engine import system_db
from django_dbos.engine.executor import application_version
from django_dbos.models import (
    Notification,
    OperationOutput,
    StreamEntry,
    WorkflowEventHistory,
    now_ms,
)
from django_dbos.testing import recover_workflow, simulate_crash
from tests import workflows as wf
from tests.conftest import postgres_only

pytestmark = pytest.mark.django_db(transaction=True)


def started(workflow, *args, workflow_id: str):
    with SetWorkflowID(workflow_id):
        return DBOS.start_workflow(workflow, *args)


def in_thread(fn, *args):
    """Run ``fn`` on another thread (closing its connection) and return a way to join it."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()

    def join(timeout: float = 10):
        thread.join(timeout)
        assert not thread.is_alive(), "still running"
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return join


# -- messages ----------------------------------------------------------------------------------


def test_messages_sent_before_the_receiver_runs_wait_for_it_in_order_per_topic():
    with SetWorkflowID("rx-1"), simulate_crash(after_step=1):
        wf.receiver_workflow("a", 3, 0.1)  # records a first recv (timed out), then "crashes"
    DBOS.send("rx-1", "first", topic="a")
    DBOS.send("rx-1", "other topic", topic="b")
    DBOS.send("rx-1", "second", topic="a")
    assert recover_workflow("rx-1") == [None, "first", "second"]
    remaining = list(Notification.objects.values_list("topic", "message"))
    assert remaining == [("b", '"other topic"')]


def test_a_message_is_received_exactly_once_even_across_a_crash():
    with SetWorkflowID("rx-crash"), simulate_crash(after_step=1):
        wf.receiver_workflow(None, 2, 0.1)
    DBOS.send("rx-crash", {"n": 1})
    with SetWorkflowID("rx-crash-2"), simulate_crash(after_step=1):
        wf.receiver_workflow(None, 1, 0.1)
    # rx-crash's first recv timed out before the send: it gets the message on recovery
    assert recover_workflow("rx-crash") == [None, {"n": 1}]
    assert not Notification.objects.exists()
    steps = OperationOutput.objects.filter(workflow_id="rx-crash").order_by("function_id")
    # each recv takes two IDs (DBOS's numbering): its outcome, then its timeout's wake-up time,
    # recorded only by a recv that had to wait
    assert [(s.function_id, s.function_name) for s in steps] == [
        (1, "DBOS.recv"),
        (2, "DBOS.sleep"),
        (3, "DBOS.recv"),
    ]
    assert [s.output for s in steps if s.function_name == "DBOS.recv"] == ["null", '{"n":1}']
    assert recover_workflow("rx-crash") == [None, {"n": 1}]  # replay: the same, nothing new


def test_recv_replays_the_recorded_message_after_a_crash():
    with SetWorkflowID("rx-replay"):
        handle = DBOS.start_workflow(wf.receiver_workflow, "t", 2, 10)
    DBOS.send("rx-replay", "one", topic="t")
    DBOS.send("rx-replay", "two", topic="t")
    assert handle.get_result(timeout=10) == ["one", "two"]
    with SetWorkflowID("rx-replay"):
        assert wf.receiver_workflow("t", 2, 10) == ["one", "two"]


def test_a_blocked_receiver_wakes_as_soon_as_the_message_is_sent():
    handle = started(wf.receiver_workflow, None, 1, 30, workflow_id="rx-wait")
    time.sleep(0.3)  # the workflow is now waiting in recv
    sent = time.monotonic()
    DBOS.send("rx-wait", "wake up")
    assert handle.get_result(timeout=10) == ["wake up"]
    assert time.monotonic() - sent < 2  # woken, not found by a 30 s timeout


def test_recv_times_out_with_none_and_records_it():
    started_at = time.monotonic()
    with SetWorkflowID("rx-timeout"):
        assert wf.receiver_workflow(None, 1, 0.2) == [None]
    assert 0.2 <= time.monotonic() - started_at < 2
    rows = OperationOutput.objects.filter(workflow_id="rx-timeout").order_by("function_id")
    assert [row.function_name for row in rows] == ["DBOS.recv", "DBOS.sleep"]
    assert rows[0].output == "null"


def crashed_while_waiting(workflow_id: str, name: str, inputs: tuple, waited_ms: int) -> None:
    """The rows a process leaves when it dies ``waited_ms`` after its workflow's first wait
    (a recv or get_event, function_id 1) began: PENDING, and the wait's wake-up time (its
    timeout counted from then) recorded at function_id 2; the wait itself not."""
    now = now_ms()
    system_db.insert_workflow(
        {
            "workflow_uuid": workflow_id,
            "status": "PENDING",
            "name": name,
            "inputs": serialization.serialize_args(inputs, {}),
            "executor_id": "a-dead-process",
            "application_version": application_version(),
            "recovery_attempts": 0,
            "priority": 0,
            "created_at": now - waited_ms,
            "updated_at": now - waited_ms,
        }
    )
    timeout_ms = int(inputs[-1] * 1000)
    wake_ms = now - waited_ms + timeout_ms
    system_db.record_operation(
        workflow_id, 2, "DBOS.sleep", output=serialization.serialize(wake_ms)
    )


def test_a_recovered_recv_waits_only_for_what_was_left_of_its_timeout():
    # it had waited 29.5 s of its 30 before the crash: recovery waits ~0.5 s, not 30 again
    crashed_while_waiting("rx-durable", "tests.receiver", (None, 1, 30), waited_ms=29_500)
    began = time.monotonic()
    assert recover_workflow("rx-durable") == [None]
    assert time.monotonic() - began < 10
    recv = OperationOutput.objects.get(workflow_id="rx-durable", function_id=1)
    assert (recv.function_name, recv.output) == ("DBOS.recv", "null")


def test_a_recovered_recv_still_gets_a_message_sent_within_what_was_left():
    crashed_while_waiting("rx-durable-2", "tests.receiver", (None, 1, 30), waited_ms=25_000)
    DBOS.send("rx-durable-2", "just in time")
    assert recover_workflow("rx-durable-2") == ["just in time"]


def test_a_recovered_get_event_waits_only_for_what_was_left_of_its_timeout():
    inputs = ("no-such-publisher", "progress", 30)
    crashed_while_waiting("ev-durable", "tests.event_waiter", inputs, waited_ms=29_500)
    began = time.monotonic()
    assert recover_workflow("ev-durable") is None
    assert time.monotonic() - began < 10
    names = OperationOutput.objects.filter(workflow_id="ev-durable").order_by("function_id")
    assert [row.function_name for row in names] == ["DBOS.getEvent", "DBOS.sleep"]


def test_send_from_a_workflow_is_durable_and_sent_once():
    with SetWorkflowID("rx-target"), simulate_crash(after_step=1):
        wf.receiver_workflow("orders", 1, 0.05)
    with SetWorkflowID("tx-sender"), simulate_crash(after_step=1):
        wf.sender_workflow("rx-target", ["a", "b"])
    assert Notification.objects.count() == 1
    assert recover_workflow("tx-sender") == 2
    assert recover_workflow("tx-sender") == 2
    assert list(Notification.objects.order_by("id").values_list("message", flat=True)) == [
        '"a"',
        '"b"',
    ]


def test_send_to_an_unknown_workflow_is_an_error_and_writes_nothing():
    with pytest.raises(DBOSNonExistentWorkflowError, match="nobody"):
        DBOS.send("nobody", "hello")
    assert not Notification.objects.exists()


def test_unserializable_messages_and_bad_arguments_are_refused_before_writing():
    with SetWorkflowID("rx-bad"):
        wf.receiver_workflow(None, 1, 0)
    with pytest.raises(DBOSSerializationError):
        DBOS.send("rx-bad", threading.Lock())
    with pytest.raises(DBOSException, match="topic"):
        DBOS.send("rx-bad", "x", topic=42)
    with pytest.raises(DBOSException, match="destination_id"):
        DBOS.send("", "x")
    with pytest.raises(DBOSException, match="timeout_seconds"):
        DBOS.get_event("rx-bad", "k", timeout_seconds=-1)
    assert not Notification.objects.exists()


def test_recv_outside_a_workflow_is_an_error():
    with pytest.raises(DBOSNotInWorkflowError, match=r"DBOS.recv"):
        DBOS.recv()
    with pytest.raises(DBOSNotInWorkflowError, match=r"DBOS.set_event"):
        DBOS.set_event("k", 1)


def test_send_joins_the_callers_transaction():
    with SetWorkflowID("rx-atomic"):
        wf.receiver_workflow(None, 1, 0)
    with pytest.raises(RuntimeError), transaction.atomic():
        DBOS.send("rx-atomic", "rolled back")
        raise RuntimeError
    assert not Notification.objects.exists()
    with transaction.atomic():
        DBOS.send("rx-atomic", "committed")
    assert Notification.objects.count() == 1


def test_idempotency_key_sends_once_and_send_bulk_is_all_or_nothing():
    with SetWorkflowID("rx-bulk"):
        wf.receiver_workflow(None, 1, 0)
    DBOS.send("rx-bulk", "once", idempotency_key="key-1")
    DBOS.send("rx-bulk", "once", idempotency_key="key-1")
    assert Notification.objects.count() == 1
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.send_bulk([SendMessage("rx-bulk", "x"), SendMessage("missing", "y")])
    assert Notification.objects.count() == 1
    DBOS.send_bulk([SendMessage("rx-bulk", n, topic="t") for n in range(3)])
    assert Notification.objects.filter(topic="t").count() == 3


# -- events ------------------------------------------------------------------------------------


def test_events_are_readable_from_anywhere_with_history_by_step():
    with SetWorkflowID("ev-1"):
        assert wf.publisher_workflow(["started", "done"]) == "published"
    assert DBOS.get_event("ev-1", "progress", timeout_seconds=0) == "done"
    assert DBOS.get_event("ev-1", "missing", timeout_seconds=0) is None
    assert DBOS.get_all_events("ev-1") == {
        "progress": "done",
        "step-0": "started",
        "step-1": "done",
    }
    history = list(
        WorkflowEventHistory.objects.filter(workflow_id="ev-1", key="progress")
        .order_by("function_id")
        .values_list("function_id", "value")
    )
    assert history == [(1, '"started"'), (3, '"done"')]


def test_get_event_waits_until_the_event_is_set():
    join = in_thread(DBOS.get_event, "ev-wait", "progress", 10)
    time.sleep(0.2)
    handle = started(wf.publisher_workflow, ["ready"], workflow_id="ev-wait")
    assert join() == "ready"
    handle.get_result(timeout=10)


def test_get_event_inside_a_workflow_is_recorded_and_replayed():
    with SetWorkflowID("ev-src"):
        wf.publisher_workflow(["v1"])
    with SetWorkflowID("ev-reader"):
        first = wf.event_reader_workflow("ev-src")
    with SetWorkflowID("ev-src-2"):
        wf.publisher_workflow(["v2"])
    with SetWorkflowID("ev-reader"):
        assert (
            wf.event_reader_workflow("ev-src")
            == first
            == ["v1", {"progress": "v1", "step-0": "v1"}]
        )


# -- streams -----------------------------------------------------------------------------------


def test_a_stream_is_read_in_order_until_closed():
    with SetWorkflowID("st-1"):
        wf.streamer_workflow([1, 2, 3])
    assert list(DBOS.read_stream("st-1", "numbers")) == [1, 2, 3]
    assert list(DBOS.read_stream("st-1", "numbers", offset=1)) == [2, 3]
    assert DBOS.read_stream_offset("st-1", "numbers", 2) == 3
    with pytest.raises(DBOSStreamTimeoutError, match="ended"):
        DBOS.read_stream_offset("st-1", "numbers", 5)


def test_a_stream_is_read_in_real_time_while_it_is_written():
    handle = started(wf.streamer_workflow, [10, 20, 30], 0.2, workflow_id="st-live")
    seen = []
    first_at = None
    for value in DBOS.read_stream("st-live", "numbers", timeout_seconds=10):
        seen.append(value)
        first_at = first_at or time.monotonic()
    assert seen == [10, 20, 30]
    assert handle.get_result(timeout=10) == 3


def test_a_stream_ends_with_its_workflow_even_unclosed():
    with SetWorkflowID("st-open"):
        wf.streamer_workflow(["x"], 0, False)
    assert list(DBOS.read_stream("st-open", "numbers", timeout_seconds=5)) == ["x"]


def test_stream_writes_are_exactly_once_across_a_crash_and_a_rerun_step():
    with SetWorkflowID("st-crash"), simulate_crash(after_step=2):
        wf.streamer_workflow([1, 2, 3])
    assert recover_workflow("st-crash") == 3
    assert list(DBOS.read_stream("st-crash", "numbers")) == [1, 2, 3]
    # a step that wrote, crashed before its checkpoint, and ran again writes nothing twice
    wf.calls.clear()
    with SetWorkflowID("st-step"):
        assert wf.step_streamer_workflow([7, 8]) == 2
    OperationOutput.objects.filter(workflow_id="st-step").delete()  # as if the crash came first
    from django_dbos.models import WorkflowStatus

    WorkflowStatus.objects.filter(pk="st-step").update(status="PENDING")
    assert recover_workflow("st-step") == 2
    assert wf.calls["stream_from_step"] == 2  # the step really ran twice ...
    assert list(DBOS.read_stream("st-step", "numbers")) == [7, 8]  # ... its writes landed once
    assert StreamEntry.objects.filter(workflow_id="st-step").count() == 3  # 7, 8, close


def test_a_stream_reader_times_out_when_nothing_comes():
    handle = started(wf.receiver_workflow, None, 1, 30, workflow_id="st-silent")
    with pytest.raises(DBOSStreamTimeoutError, match="timed out"):
        list(DBOS.read_stream("st-silent", "numbers", timeout_seconds=0.2))
    DBOS.send("st-silent", "done")
    handle.get_result(timeout=10)


def test_stream_writes_outside_a_workflow_are_errors():
    with pytest.raises(DBOSNotInWorkflowError):
        DBOS.write_stream("k", 1)
    with pytest.raises(DBOSException, match="offset"):
        list(DBOS.read_stream("x", "k", offset=-1))


# -- wait_first --------------------------------------------------------------------------------


def test_wait_first_returns_the_first_workflow_to_finish_and_records_it():
    with SetWorkflowID("wf-first"):
        assert wf.first_of_workflow([2.0, 0.1]) == "wf-first-2"
    with SetWorkflowID("wf-first"):
        assert wf.first_of_workflow([2.0, 0.1]) == "wf-first-2"
    assert (
        OperationOutput.objects.get(workflow_id="wf-first", function_name="DBOS.waitFirst").output
        == '"wf-first-2"'
    )
    DBOS.retrieve_workflow("wf-first-1").get_result(timeout=10)
    with pytest.raises(DBOSException, match="at least one"):
        DBOS.wait_first([])


# -- wake-ups across processes (LISTEN/NOTIFY) -------------------------------------------------


def send_from_another_process(destination: str, message: str) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO, worker_env

    code = (
        "import django; django.setup(); from django_dbos import DBOS; "
        f"DBOS.send({destination!r}, {message!r})"
    )
    env = worker_env(DJANGO_SETTINGS_MODULE="testproject.settings")
    subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True, timeout=60)


@postgres_only
def test_a_message_from_another_process_wakes_the_receiver_through_notify(settings):
    settings.DBOS = {**settings.DBOS, "POLL_INTERVAL": 30}  # polling alone would take 30 s
    handle = started(wf.receiver_workflow, None, 1, 60, workflow_id="rx-notify")
    time.sleep(0.5)  # blocked in recv, its backoff already long
    sent = time.monotonic()
    send_from_another_process("rx-notify", "over the wire")
    assert handle.get_result(timeout=20) == ["over the wire"]
    assert time.monotonic() - sent < 10

"""Debouncer: one run per burst with the last call's arguments, the period and timeout bounds,
new windows after a claim, SetWorkflowID, calls inside workflows (replay), validation, and the
races (concurrent first calls, a debounce against a claim)."""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection, connections, transaction

from django_dbos import (
    DBOS,
    DBOSException,
    DBOSInvalidArgumentError,
    DBOSQueueDeduplicatedError,
    DBOSSerializationError,
    DBOSWorkflowFunctionNotFoundError,
    Debouncer,
    SetEnqueueOptions,
    SetWorkflowAttributes,
    SetWorkflowID,
    SetWorkflowTimeout,
    WorkflowHandleAsync,
    serialization,
)
from django_dbos.context import take_start_options
from django_dbos.engine.debouncer import DEBOUNCE_NAME, marker
from django_dbos.engine.dispatcher import Dispatcher
from django_dbos.engine.executor import get_executor
from django_dbos.models import WorkflowStatus, now_ms
from django_dbos.queues import INTERNAL_QUEUE_NAME
from django_dbos.testing import (
    recover_workflow,
    running_worker,
    simulate_crash,
    workflow_step_names,
)
from tests import debounce_workflows as dw
from tests.conftest import REPO, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

FAST = "tests.debounce_fast"


@pytest.fixture(autouse=True)
def _fresh():
    with dw.runs_lock:
        dw.runs.clear()
    dw.release.clear()
    yield
    dw.release.set()


def row(workflow_id: str) -> WorkflowStatus:
    return WorkflowStatus.objects.get(workflow_uuid=workflow_id)


def in_thread(fn, *args):
    """Run ``fn`` on another thread (its own connection); its result, or raise its error."""
    outcome: dict[str, object] = {}

    def target():
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


# -- a burst becomes one run ---------------------------------------------------------------


def test_a_burst_runs_once_with_the_last_arguments():
    handles = [dw.echo_debouncer.debounce("k", 0.3, i) for i in range(5)]
    assert len({h.workflow_id for h in handles}) == 1
    stored = row(handles[0].workflow_id)
    assert stored.status == "DELAYED"
    assert stored.queue_name == FAST
    assert stored.deduplication_id == marker("tests.debounce.echo", "k")
    assert WorkflowStatus.objects.filter(name="tests.debounce.echo").count() == 1
    with running_worker(queues=[FAST]):
        assert handles[-1].get_result(timeout=30) == 4
    assert dw.runs == [("echo", 4)]
    assert row(handles[0].workflow_id).status == "SUCCESS"


def test_each_call_moves_the_start_to_period_after_it():
    before = now_ms()
    first = dw.echo_debouncer.debounce("k", 10, "a")
    created = row(first.workflow_id).created_at
    assert before + 10_000 <= row(first.workflow_id).delay_until_epoch_ms <= now_ms() + 10_000
    before = now_ms()
    dw.echo_debouncer.debounce("k", 20, "b")
    after = row(first.workflow_id)
    assert before + 20_000 <= after.delay_until_epoch_ms <= now_ms() + 20_000
    assert after.created_at == created  # the window started with its first call
    # a shorter period moves the start earlier: the last call decides
    dw.echo_debouncer.debounce("k", 5, "c")
    assert row(first.workflow_id).delay_until_epoch_ms <= now_ms() + 5_000


def test_the_timeout_caps_the_start_at_the_first_call_plus_timeout():
    first = dw.capped_debouncer.debounce("k", 30, "a")
    stored = row(first.workflow_id)
    assert stored.delay_until_epoch_ms <= stored.created_at + 1000 + 5  # min(period, timeout)
    for value in ("b", "c"):
        assert dw.capped_debouncer.debounce("k", 30, value).workflow_id == first.workflow_id
        assert row(first.workflow_id).delay_until_epoch_ms == stored.created_at + 1000


def test_calls_keep_coming_but_the_timeout_starts_the_workflow():
    """Debouncing every 50 ms with a 30 s period: only the 1 s timeout can start it, and the
    calls after the claim open a second window."""
    ids: list[str] = []
    with running_worker(queues=[FAST]):
        first = dw.capped_debouncer.debounce("k", 30, 0)
        n = 0
        while row(first.workflow_id).status == "DELAYED":
            n += 1
            ids.append(dw.capped_debouncer.debounce("k", 30, n).workflow_id)
            time.sleep(0.05)
        ids.append(dw.capped_debouncer.debounce("k", 30, "late").workflow_id)
        assert first.get_result(timeout=30) in range(n + 1)
    later = [workflow_id for workflow_id in ids if workflow_id != first.workflow_id]
    assert later, "a call after the claim must open a new window"
    assert len(set(later)) == 1
    assert row(later[0]).status == "DELAYED"


def test_keys_and_workflows_have_separate_windows():
    a = dw.echo_debouncer.debounce("a", 3600, 1)
    b = dw.echo_debouncer.debounce("b", 3600, 2)
    c = dw.other_debouncer.debounce("a", 3600, 3)
    assert len({a.workflow_id, b.workflow_id, c.workflow_id}) == 3


def test_default_queue_is_the_internal_queue():
    handle = dw.internal_debouncer.debounce("k", 3600, 1)
    assert row(handle.workflow_id).queue_name == INTERNAL_QUEUE_NAME
    assert dw.internal_debouncer.queue.name == INTERNAL_QUEUE_NAME


def test_debounce_async():
    async def burst():
        return [await dw.async_debouncer.debounce_async("k", 0.2, i) for i in range(3)]

    handles = asyncio.run(burst())
    assert all(isinstance(h, WorkflowHandleAsync) for h in handles)
    assert len({h.workflow_id for h in handles}) == 1
    with running_worker(queues=[FAST]):
        assert asyncio.run(handles[0].get_result(timeout=30)) == 2
    assert dw.runs == [("async", 2)]


def test_sync_debounce_from_an_event_loop():
    async def call():
        return dw.echo_debouncer.debounce("k", 3600, "x")

    handle = asyncio.run(call())
    assert row(handle.workflow_id).status == "DELAYED"


# -- windows over time ---------------------------------------------------------------------


def test_a_call_after_the_run_opens_a_new_window():
    first = dw.echo_debouncer.debounce("k", 0.1, "a")
    with running_worker(queues=[FAST]):
        assert first.get_result(timeout=30) == "a"
        second = dw.echo_debouncer.debounce("k", 0.1, "b")
        assert second.workflow_id != first.workflow_id
        assert second.get_result(timeout=30) == "b"
    assert row(first.workflow_id).deduplication_id is None  # released for the second window
    assert dw.runs == [("echo", "a"), ("echo", "b")]


def test_a_call_while_the_claimed_workflow_runs_opens_a_new_window():
    first = dw.waiting_debouncer.debounce("k", 0.1, "a")
    with running_worker(queues=[FAST]):
        deadline = time.monotonic() + 30
        while row(first.workflow_id).status != "PENDING":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = dw.waiting_debouncer.debounce("k", 0.1, "b")
        assert second.workflow_id != first.workflow_id
        assert row(first.workflow_id).inputs != row(second.workflow_id).inputs
        dw.release.set()
        assert first.get_result(timeout=30) == "a"
        assert second.get_result(timeout=30) == "b"


def test_a_cancelled_window_gives_its_key_up():
    first = dw.echo_debouncer.debounce("k", 3600, "a")
    DBOS.cancel_workflow(first.workflow_id)
    second = dw.echo_debouncer.debounce("k", 3600, "b")
    assert second.workflow_id != first.workflow_id
    assert row(second.workflow_id).status == "DELAYED"


def test_the_dispatcher_wakes_when_a_delay_falls_due():
    dispatcher = Dispatcher(get_executor(), [dw.internal_debouncer.queue])
    assert dispatcher.idle_interval() == dispatcher.polling_interval == 1.0
    dw.internal_debouncer.debounce("k", 0.4, 1)
    assert 0 < dispatcher.idle_interval() <= 0.4
    assert dispatcher.polling_interval == 1.0


# -- options -------------------------------------------------------------------------------


def test_set_workflow_id_names_a_new_window_only():
    with SetWorkflowID("debounced-1"):
        first = dw.echo_debouncer.debounce("k", 3600, "a")
    assert first.workflow_id == "debounced-1"
    with SetWorkflowID("debounced-2"):
        again = dw.echo_debouncer.debounce("k", 3600, "b")
        assert take_start_options().workflow_id is None  # consumed, not left armed
    assert again.workflow_id == "debounced-1"
    assert not WorkflowStatus.objects.filter(workflow_uuid="debounced-2").exists()


def test_workflow_timeout_applies_to_the_window():
    with SetWorkflowTimeout(5):
        handle = dw.echo_debouncer.debounce("k", 3600, "a")
    assert row(handle.workflow_id).workflow_timeout_ms == 5000


def test_enqueue_options_are_refused_before_anything_is_written():
    for options in (
        SetEnqueueOptions(deduplication_id="mine"),
        SetEnqueueOptions(delay_seconds=3),
        SetEnqueueOptions(priority=1),
        SetEnqueueOptions(queue_partition_key="p"),
    ):
        with options, pytest.raises(DBOSInvalidArgumentError, match="SetEnqueueOptions"):
            dw.echo_debouncer.debounce("k", 1, "a")
    assert not WorkflowStatus.objects.exists()


def test_the_call_joins_the_callers_transaction():
    with transaction.atomic():
        handle = dw.echo_debouncer.debounce("k", 3600, "a")
        transaction.set_rollback(True)
    assert not WorkflowStatus.objects.filter(workflow_uuid=handle.workflow_id).exists()


# -- inside workflows ----------------------------------------------------------------------


def test_inside_a_workflow_the_call_is_recorded_and_replayed():
    with SetWorkflowID("parent-1"), simulate_crash(after_step=2):
        dw.caller("k", "a")
    steps = workflow_step_names("parent-1")
    assert steps == ["noop", "debounce"]  # short names
    window = WorkflowStatus.objects.get(name="tests.debounce.echo")
    assert window.parent_workflow_id is None  # shared by every caller: nobody's child
    before = (window.inputs, window.delay_until_epoch_ms, window.updated_at)
    assert recover_workflow("parent-1") == window.workflow_uuid  # replayed, not called again
    after = row(window.workflow_uuid)
    assert (after.inputs, after.delay_until_epoch_ms, after.updated_at) == before
    assert workflow_step_names("parent-1") == ["noop", "debounce", "noop"]
    step = DBOS.list_workflow_steps("parent-1")[1]
    assert step.function_name == DEBOUNCE_NAME
    assert step.child_workflow_id == window.workflow_uuid


def test_workflows_calling_the_same_key_share_the_window():
    with SetWorkflowID("parent-a"):
        first = dw.caller("k", "a")
    with SetWorkflowID("parent-b"):
        second = dw.caller("k", "b")
    assert first == second
    assert serialization.deserialize_args(row(first).inputs) == (("b",), {})


def test_inside_a_workflow_a_conflict_is_recorded_too():
    """Whether the key is held depends on the database, not the arguments: a replay must see
    the same outcome even after the holder is gone."""
    with SetEnqueueOptions(deduplication_id=marker("tests.debounce.echo", "k")):
        foreign = dw.fast.enqueue(dw.other, "x")
    with SetWorkflowID("guarded-1"), simulate_crash(after_step=1):
        dw.guarded_caller("k")
    WorkflowStatus.objects.filter(workflow_uuid=foreign.workflow_id).delete()
    assert recover_workflow("guarded-1") == "conflict"
    assert not WorkflowStatus.objects.filter(name="tests.debounce.echo").exists()
    assert DBOS.list_workflow_steps("guarded-1")[0].error is not None


def test_inside_an_async_workflow():
    with SetWorkflowID("async-parent"):
        first = asyncio.run(dw.async_caller("k", "a"))
    with SetWorkflowID("async-parent"):  # the same workflow again: its recorded result
        assert asyncio.run(dw.async_caller("k", "b")) == first
    assert workflow_step_names("async-parent") == ["debounce"]
    assert serialization.deserialize_args(row(first).inputs) == (("a",), {})


def test_inside_a_step_it_is_part_of_the_step():
    with SetWorkflowID("parent-s"):
        window_id = dw.step_caller("k", "a")
    assert workflow_step_names("parent-s") == ["debounce_in_step"]
    assert row(window_id).status == "DELAYED"


def test_concurrent_first_calls_with_the_same_workflow_id():
    """Both calls name the new window "same-id"; the one that waited must still leave its
    arguments in the window (its INSERT finds the ID taken, then it extends)."""
    holding = threading.Event()

    def open_and_hold():
        with transaction.atomic():
            with SetWorkflowID("same-id"):
                dw.echo_debouncer.debounce("k", 3600, "a")
            holding.set()
            time.sleep(0.5)

    opener, outcome = in_thread(open_and_hold)
    assert holding.wait(10)
    with SetWorkflowID("same-id"):
        handle = dw.echo_debouncer.debounce("k", 3600, "b")
    opener.join(10)
    assert "error" not in outcome
    assert handle.workflow_id == "same-id"
    assert WorkflowStatus.objects.count() == 1
    assert serialization.deserialize_args(row("same-id").inputs) == (("b",), {})


def test_attributes_apply_to_the_window():
    with SetWorkflowAttributes({"tenant": "acme"}):
        handle = dw.echo_debouncer.debounce("k", 3600, "a")
    assert DBOS.get_workflow_status(handle.workflow_id).attributes == {"tenant": "acme"}


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, 1, b"k", ("k",)])
def test_a_key_must_be_a_str(key):
    with pytest.raises(DBOSInvalidArgumentError, match="debounce_key"):
        dw.echo_debouncer.debounce(key, 1, "a")
    assert not WorkflowStatus.objects.exists()


def test_a_key_too_long_for_the_marker():
    with pytest.raises(DBOSInvalidArgumentError, match="at most"):
        dw.echo_debouncer.debounce("k" * 250, 1, "a")


@pytest.mark.parametrize("period", [0, -1, math.nan, math.inf, True, "5", None])
def test_a_period_must_be_a_positive_number(period):
    with pytest.raises(DBOSInvalidArgumentError, match="debounce_period_sec"):
        dw.echo_debouncer.debounce("k", period, "a")
    assert not WorkflowStatus.objects.exists()


@pytest.mark.parametrize("timeout", [0, -2, math.nan, False, "1"])
def test_a_timeout_must_be_a_positive_number(timeout):
    with pytest.raises(DBOSInvalidArgumentError, match="debounce_timeout_sec"):
        Debouncer.create(dw.echo, debounce_timeout_sec=timeout)


def test_bad_queues():
    with pytest.raises(DBOSInvalidArgumentError, match="partition_queue"):
        Debouncer.create(dw.echo, queue=dw.partitioned)
    with pytest.raises(DBOSInvalidArgumentError, match="queue"):
        Debouncer.create(dw.echo, queue=42)  # type: ignore[arg-type]
    by_name = Debouncer.create(dw.echo, queue="no.such.queue")
    with pytest.raises(DBOSInvalidArgumentError, match="declared"):
        by_name.debounce("k", 1, "a")
    assert Debouncer.create(dw.echo, queue=FAST).queue is dw.fast


def test_only_registered_workflows():
    def plain(x):
        return x

    with pytest.raises(DBOSException, match="not a workflow"):
        Debouncer.create(plain)
    with pytest.raises(DBOSWorkflowFunctionNotFoundError):
        Debouncer("tests.debounce.nope")

    class Holder:
        def method(self):
            return None

    with pytest.raises(DBOSInvalidArgumentError, match="method"):
        Debouncer.create(Holder().method)


def test_unserializable_arguments_write_nothing():
    with pytest.raises(DBOSSerializationError):
        dw.echo_debouncer.debounce("k", 1, object())
    assert not WorkflowStatus.objects.exists()
    first = dw.echo_debouncer.debounce("k", 3600, "a")
    with pytest.raises(DBOSSerializationError):
        dw.echo_debouncer.debounce("k", 1, object())
    assert row(first.workflow_id).inputs == WorkflowStatus.objects.get().inputs


def test_a_foreign_holder_of_the_marker_is_a_conflict():
    """A workflow of another name holding the marker (a name/key collision) is never extended
    or released: the debounce raises instead of looping."""
    with SetEnqueueOptions(deduplication_id=marker("tests.debounce.echo", "k")):
        foreign = dw.fast.enqueue(dw.other, "x")
    with pytest.raises(DBOSQueueDeduplicatedError):
        dw.echo_debouncer.debounce("k", 1, "a")
    assert row(foreign.workflow_id).inputs is not None
    assert WorkflowStatus.objects.count() == 1


# -- races ---------------------------------------------------------------------------------


def test_concurrent_first_calls_share_one_window():
    barrier = threading.Barrier(6)

    def call(value):
        barrier.wait()
        return dw.echo_debouncer.debounce("k", 3600, value).workflow_id

    started = [in_thread(call, n) for n in range(6)]
    for thread, _ in started:
        thread.join(60)
    errors = [outcome.get("error") for _, outcome in started if "error" in outcome]
    assert errors == []
    ids = {outcome["value"] for _, outcome in started}
    assert len(ids) == 1
    assert WorkflowStatus.objects.count() == 1


def test_a_debounce_that_waits_on_a_claim_opens_a_new_window():
    """A claim holds the window's row; a debounce arriving meanwhile must not extend the row
    that is about to run (its arguments would be lost): it opens a new window."""
    first = dw.echo_debouncer.debounce("k", 3600, "a")
    locked = threading.Event()

    def claim_slowly():
        with transaction.atomic():
            list(WorkflowStatus.objects.select_for_update().filter(workflow_uuid=first.workflow_id))
            if connection.vendor == "sqlite":
                WorkflowStatus.objects.filter(workflow_uuid=first.workflow_id).update(
                    updated_at=now_ms()
                )  # take SQLite's write lock now, as a claim does
            locked.set()
            time.sleep(0.5)
            WorkflowStatus.objects.filter(workflow_uuid=first.workflow_id).update(
                status="PENDING", executor_id="someone", started_at_epoch_ms=now_ms()
            )

    claimer, claim_outcome = in_thread(claim_slowly)
    assert locked.wait(10)
    second = dw.echo_debouncer.debounce("k", 3600, "b")
    claimer.join(10)
    assert "error" not in claim_outcome
    assert second.workflow_id != first.workflow_id
    assert row(first.workflow_id).status == "PENDING"
    assert row(first.workflow_id).deduplication_id is None
    assert row(second.workflow_id).status == "DELAYED"


def test_no_call_is_lost_while_a_worker_claims():
    """Sequential calls with a tiny period while a worker claims: each run must see the last
    call that returned its ID (an extension of an already-claimed row would lose it)."""
    returned: dict[str, list[int]] = {}
    with running_worker(queues=[FAST]):
        for n in range(60):
            workflow_id = dw.echo_debouncer.debounce("k", 0.01, n).workflow_id
            returned.setdefault(workflow_id, []).append(n)
            time.sleep(0.002 if n % 4 else 0.05)  # bursts, and pauses past the period
        results = {
            workflow_id: DBOS.retrieve_workflow(workflow_id).get_result(timeout=30)
            for workflow_id in returned
        }
    assert len(returned) > 1, "the worker should have claimed some windows mid-burst"
    for workflow_id, calls in returned.items():
        assert results[workflow_id] == calls[-1]
    assert sorted(value for _, value in dw.runs) == sorted(results.values())


# -- across processes ------------------------------------------------------------------------

VERSION = "debounce-process-test"
BOOT = (
    "import sys, django; django.setup(); import tests.debounce_workflows; "
    "from django.core.management import call_command; "
    "call_command('dbos_worker', *sys.argv[1:])"
)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_worker_processes_claim_while_calls_come(settings, tmp_path):
    """Two ``dbos_worker`` processes serving only another queue still run debounced workflows
    (the internal queue), each window once, with the last arguments given to it."""
    settings.DBOS = {**settings.DBOS, "APPLICATION_VERSION": VERSION}
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    files = [log.open("w") for log in logs]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", BOOT, "--queue", FAST, "--no-schedules"],
            env=worker_env(
                DJANGO_SETTINGS_MODULE="testproject.settings",
                DBOS_APPLICATION_VERSION=VERSION,
                DBOS_LOG_LEVEL="WARNING",
            ),
            cwd=REPO,
            stdout=file,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for file in files
    ]
    returned: dict[str, list[int]] = {}
    try:
        for n in range(80):
            workflow_id = dw.internal_debouncer.debounce("k", 0.02, n).workflow_id
            returned.setdefault(workflow_id, []).append(n)
            time.sleep(0.002 if n % 5 else 0.3)  # bursts, and pauses past the period
        results = {
            workflow_id: DBOS.retrieve_workflow(workflow_id).get_result(timeout=60)
            for workflow_id in returned
        }
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process, file in zip(processes, files, strict=True):
            process.wait(30)
            file.close()
    output = "\n".join(log.read_text() for log in logs)
    assert len(returned) > 1, output
    for workflow_id, calls in returned.items():
        assert results[workflow_id] == calls[-1], output
    executors = set(
        WorkflowStatus.objects.filter(workflow_uuid__in=returned).values_list(
            "executor_id", flat=True
        )
    )
    assert executors and None not in executors

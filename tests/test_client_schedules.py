"""DBOSClient's schedule methods (django_dbos/client_schedules.py): create / list / get / pause /
resume / delete / trigger / backfill / apply by workflow name, the firings run by a worker
(``running_worker``), bad input that writes nothing, the async twins, and a process with no
Django project that schedules a workflow it does not import."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from django_dbos import (
    ClientScheduleInput,
    DBOSClient,
    DBOSException,
    DBOSInvalidArgumentError,
    DBOSInvalidCronError,
    DBOSInvalidTimezoneError,
    DBOSNonExistentScheduleError,
    DBOSQueueNotFoundError,
    DBOSScheduleExistsError,
    DBOSSerializationError,
)
from django_dbos.client_handles import (
    WorkflowHandleClientAsyncPolling,
    WorkflowHandleClientPolling,
)
from django_dbos.engine import scheduler
from django_dbos.engine.queues import store_config
from django_dbos.models import Schedule, WorkflowStatus
from django_dbos.queues import INTERNAL_QUEUE_NAME
from django_dbos.testing import running_worker
from tests import schedule_workflows as sw
from tests.client_workflows import database_url
from tests.conftest import REPO
from tests.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

UTC = datetime.UTC
EVERY_SECOND = "* * * * * *"
RECORD = "tests.schedule_workflows.record_firing"
QUEUE = sw.sched_queue.name


@pytest.fixture(autouse=True)
def _queue_stored():
    """The client finds queues in dbos_queues (emptied between tests)."""
    sw.sched_queue.stored = False
    store_config(sw.sched_queue)


@pytest.fixture
def client():
    with DBOSClient() as c:
        yield c


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def fired(key: str) -> Counter[str]:
    """How many times each scheduled time (UTC ISO) of ``key`` really ran."""
    return Counter(Run.objects.filter(key=key).values_list("step", flat=True))


def at(hour: int) -> datetime.datetime:
    return datetime.datetime(2025, 1, 1, hour, tzinfo=UTC)


# -- create / read / pause / resume / delete -------------------------------------------------------


def test_create_get_list_pause_resume_delete_by_workflow_name(client):
    client.create_schedule(
        schedule_name="c-report",
        workflow_name=RECORD,
        schedule="0 9 * * 1-5",
        context={"key": "r", "n": [1, 2]},
        cron_timezone="Europe/Paris",
        queue_name=QUEUE,
    )
    client.create_schedule(
        schedule_name="c-other", workflow_name="some.app.other", schedule="@daily"
    )
    report = client.get_schedule("c-report")
    assert report is not None
    assert {k: report[k] for k in ("workflow_name", "schedule", "status", "context")} == {
        "workflow_name": RECORD,
        "schedule": "0 9 * * 1-5",
        "status": "ACTIVE",
        "context": {"key": "r", "n": [1, 2]},
    }
    assert (report["cron_timezone"], report["queue_name"], report["last_fired_at"]) == (
        "Europe/Paris",
        QUEUE,
        None,
    )
    # the row is the one DBOS.create_schedule writes: DBOS's API reads it back the same
    from django_dbos import DBOS

    assert DBOS.get_schedule("c-report") == report
    assert [s["schedule_name"] for s in client.list_schedules()] == ["c-other", "c-report"]
    assert [s["schedule_name"] for s in client.list_schedules(workflow_name=RECORD)] == ["c-report"]
    assert [s["schedule_name"] for s in client.list_schedules(schedule_name_prefix="c-o")] == [
        "c-other"
    ]
    client.pause_schedule("c-report")
    assert [s["schedule_name"] for s in client.list_schedules(status="PAUSED")] == ["c-report"]
    client.resume_schedule("c-report")
    assert client.get_schedule("c-report")["status"] == "ACTIVE"  # type: ignore[index]
    client.delete_schedule("c-report")
    client.delete_schedule("c-report")  # unknown: a no-op, as in DBOS
    assert client.get_schedule("c-report") is None
    with pytest.raises(DBOSNonExistentScheduleError, match="c-report"):
        client.pause_schedule("c-report")
    with pytest.raises(DBOSNonExistentScheduleError, match="c-report"):
        client.resume_schedule("c-report")
    with pytest.raises(DBOSInvalidArgumentError, match="status"):
        client.list_schedules(status="RUNNING")


def test_a_schedule_created_by_name_is_fired_by_a_worker_once_per_time(client):
    client.create_schedule(
        schedule_name="c-tick",
        workflow_name=RECORD,
        schedule=EVERY_SECOND,
        context={"key": "c-tick"},
        queue_name=QUEUE,
    )
    with running_worker():
        wait_for(lambda: len(fired("c-tick")) >= 2, 15, "two firings")
        client.pause_schedule("c-tick")
        wait_for(
            lambda: (
                not WorkflowStatus.objects.filter(
                    workflow_uuid__startswith="sched-c-tick-",
                    status__in=["ENQUEUED", "PENDING", "DELAYED"],
                ).exists()
            ),
            20,
            "the firings to finish",
        )
    stamps = fired("c-tick")
    assert set(stamps.values()) == {1}, stamps
    queues = set(
        WorkflowStatus.objects.filter(workflow_uuid__startswith="sched-c-tick-").values_list(
            "queue_name", flat=True
        )
    )
    assert queues == {QUEUE}


# -- trigger / backfill ----------------------------------------------------------------------------


def test_trigger_writes_the_clients_enqueue_row_and_a_worker_runs_it(client):
    client.create_schedule(
        schedule_name="c-trig",
        workflow_name=RECORD,
        schedule="0 0 1 1 *",
        context={"key": "c-trig"},
        cron_timezone="Asia/Tokyo",
    )
    client.pause_schedule("c-trig")
    before = datetime.datetime.now(UTC)
    handle = client.trigger_schedule("c-trig")
    assert isinstance(handle, WorkflowHandleClientPolling)
    assert handle.workflow_id.startswith("sched-c-trig-trigger-")
    row = WorkflowStatus.objects.get(pk=handle.workflow_id)
    # the row DBOSClient.enqueue writes: no version (the worker that claims it stamps its own)
    assert (row.status, row.name, row.queue_name, row.application_version) == (
        "ENQUEUED",
        RECORD,
        INTERNAL_QUEUE_NAME,
        None,
    )
    with running_worker(schedules=False):
        result = handle.get_result(timeout=20)
    assert result["scheduled_time"] >= before
    assert result["scheduled_time"].utcoffset() == datetime.timedelta(hours=9)  # in its zone
    assert result["context"] == {"key": "c-trig"}
    assert client.get_schedule("c-trig")["status"] == "PAUSED"  # type: ignore[index]
    with pytest.raises(DBOSNonExistentScheduleError, match="nobody"):
        client.trigger_schedule("nobody")


def test_backfill_by_name_runs_each_time_once_even_when_windows_overlap(client):
    client.create_schedule(
        schedule_name="c-hourly",
        workflow_name=RECORD,
        schedule="0 * * * *",
        context={"key": "c-bf"},
        queue_name=QUEUE,
    )
    first = client.backfill_schedule("c-hourly", at(0), "2025-01-01T05:00:00+00:00")
    assert [h.workflow_id for h in first] == [
        scheduler.firing_id("c-hourly", at(h)) for h in (1, 2, 3, 4)
    ]
    assert all(isinstance(h, WorkflowHandleClientPolling) for h in first)
    second = client.backfill_schedule("c-hourly", "2025-01-01T02:30:00Z", "2025-01-01T07:00:00Z")
    assert [h.workflow_id for h in second] == [
        scheduler.firing_id("c-hourly", at(h)) for h in (3, 4, 5, 6)
    ]
    assert WorkflowStatus.objects.filter(workflow_uuid__startswith="sched-c-hourly-").count() == 6
    with running_worker(schedules=False):
        for handle in first + second:
            handle.get_result(timeout=20)
    stamps = fired("c-bf")
    assert sorted(stamps) == [at(h).isoformat() for h in range(1, 7)]
    assert set(stamps.values()) == {1}
    assert client.get_schedule("c-hourly")["last_fired_at"] == at(6).isoformat()  # type: ignore[index]


# -- apply -----------------------------------------------------------------------------------------


def test_apply_schedules_by_name_creates_updates_and_keeps_the_unlisted(client):
    client.create_schedule(schedule_name="c-keep", workflow_name=RECORD, schedule="@hourly")
    entries: list[ClientScheduleInput] = [
        {"schedule_name": "c-a", "workflow_name": RECORD, "schedule": "0 1 * * *"},
        {
            "schedule_name": "c-b",
            "workflow_name": RECORD,
            "schedule": "0 2 * * *",
            "context": {"key": "b"},
            "queue_name": QUEUE,
            "workflow_class_name": None,
        },
    ]
    assert client.apply_schedules(entries) == {
        "created": ["c-a", "c-b"],
        "updated": [],
        "unchanged": [],
        "deleted": [],
    }
    client.pause_schedule("c-a")
    entries[0] = {**entries[0], "schedule": "0 3 * * *", "cron_timezone": "Asia/Tokyo"}
    assert client.apply_schedules(entries) == {
        "created": [],
        "updated": ["c-a"],
        "unchanged": ["c-b"],
        "deleted": [],  # the client's apply never deletes (as DBOS's client)
    }
    a = client.get_schedule("c-a")
    assert a is not None
    assert (a["schedule"], a["cron_timezone"], a["status"]) == ("0 3 * * *", "Asia/Tokyo", "PAUSED")
    assert client.get_schedule("c-keep") is not None


# -- bad input -------------------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "schedule_name": "c-bad",
    "workflow_name": RECORD,
    "schedule": "0 9 * * *",
}


@pytest.mark.parametrize(
    ("change", "error", "mentions"),
    [
        ({"schedule": "61 * * * *"}, DBOSInvalidCronError, "61"),
        ({"schedule": "0 0 30 2 *"}, DBOSInvalidCronError, "never"),
        ({"cron_timezone": "Mars/Olympus"}, DBOSInvalidTimezoneError, "Mars"),
        ({"queue_name": "tests.nope"}, DBOSQueueNotFoundError, "tests.sched.queue"),
        ({"queue_name": sw.sched_partitioned.name}, DBOSInvalidArgumentError, "partition"),
        ({"schedule_name": ""}, DBOSInvalidArgumentError, "schedule_name"),
        ({"schedule_name": "x" * 201}, DBOSInvalidArgumentError, "schedule_name"),
        ({"workflow_name": ""}, DBOSInvalidArgumentError, "workflow_name"),
        ({"workflow_class_name": "Report"}, DBOSInvalidArgumentError, "workflow_class_name"),
        ({"automatic_backfill": "yes"}, DBOSInvalidArgumentError, "automatic_backfill"),
        ({"context": object()}, DBOSSerializationError, "serialize"),
    ],
)
def test_bad_create_is_a_named_error_and_writes_nothing(client, change, error, mentions):
    sw.sched_partitioned.stored = False
    store_config(sw.sched_partitioned)
    with pytest.raises(error, match=mentions):
        client.create_schedule(**{**GOOD, **change})
    assert not Schedule.objects.exists()
    with pytest.raises(error, match=mentions):  # apply_schedules checks each entry the same way
        client.apply_schedules([{**GOOD, "schedule_name": "c-fine"}, {**GOOD, **change}])
    assert not Schedule.objects.exists()


def test_duplicate_names_are_refused_and_keep_the_first(client):
    client.create_schedule(**GOOD)
    with pytest.raises(DBOSScheduleExistsError, match="c-bad"):
        client.create_schedule(**{**GOOD, "schedule": "0 10 * * *"})
    assert client.get_schedule("c-bad")["schedule"] == "0 9 * * *"  # type: ignore[index]
    with pytest.raises(DBOSInvalidArgumentError, match="unique"):
        client.apply_schedules([{**GOOD, "schedule_name": "c-x"}, {**GOOD, "schedule_name": "c-x"}])
    with pytest.raises(DBOSInvalidArgumentError, match="missing"):
        client.apply_schedules([{"schedule_name": "c-y", "schedule": "@daily"}])  # type: ignore[typeddict-item]
    with pytest.raises(DBOSInvalidArgumentError, match="unknown"):
        client.apply_schedules([{**GOOD, "workflow_fn": "x"}])
    assert [s["schedule_name"] for s in client.list_schedules()] == ["c-bad"]


def test_bad_backfill_writes_nothing(client):
    client.create_schedule(**{**GOOD, "schedule": "0 * * * *"})
    with pytest.raises(DBOSInvalidArgumentError, match="start"):
        client.backfill_schedule("c-bad", at(5), at(1))
    with pytest.raises(DBOSInvalidArgumentError, match="end"):
        client.backfill_schedule("c-bad", at(0), "not a time")
    with pytest.raises(DBOSInvalidArgumentError, match="10000"):
        client.backfill_schedule("c-bad", at(0), datetime.datetime(2030, 1, 1, tzinfo=UTC))
    with pytest.raises(DBOSNonExistentScheduleError, match="nobody"):
        client.backfill_schedule("nobody", at(0), at(5))
    assert client.backfill_schedule("c-bad", at(1), at(1)) == []
    assert not WorkflowStatus.objects.exists()
    assert client.get_schedule("c-bad")["last_fired_at"] is None  # type: ignore[index]


def test_a_destroyed_client_refuses_schedule_calls():
    destroyed = DBOSClient()
    destroyed.destroy()
    with pytest.raises(DBOSException, match="destroyed"):
        destroyed.create_schedule(**GOOD)
    with pytest.raises(DBOSException, match="destroyed"):
        destroyed.list_schedules()


# -- async twins -----------------------------------------------------------------------------------


def test_async_twins(client):
    async def main() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        await client.create_schedule_async(
            schedule_name="c-async",
            workflow_name=RECORD,
            schedule="0 * * * *",
            context={"key": "c-async"},
        )
        with pytest.raises(DBOSInvalidCronError):
            await client.create_schedule_async(
                schedule_name="c-bad-async", workflow_name=RECORD, schedule="nope"
            )
        await client.pause_schedule_async("c-async")
        seen["paused"] = (await client.get_schedule_async("c-async"))["status"]  # type: ignore[index]
        await client.resume_schedule_async("c-async")
        seen["listed"] = [
            s["schedule_name"] for s in await client.list_schedules_async(status=["ACTIVE"])
        ]
        seen["trigger"] = await client.trigger_schedule_async("c-async")
        seen["backfill"] = await client.backfill_schedule_async("c-async", at(0), at(3))
        seen["applied"] = await client.apply_schedules_async(
            [{"schedule_name": "c-async-2", "workflow_name": RECORD, "schedule": "@daily"}]
        )
        with running_worker(schedules=False):
            seen["results"] = [
                await handle.get_result(timeout=20)
                for handle in [seen["trigger"], *seen["backfill"]]
            ]
        await client.delete_schedule_async("c-async")
        seen["after_delete"] = await client.get_schedule_async("c-async")
        return seen

    seen = asyncio.run(main())
    assert seen["paused"] == "PAUSED"
    assert seen["listed"] == ["c-async"]
    assert isinstance(seen["trigger"], WorkflowHandleClientAsyncPolling)
    assert all(isinstance(h, WorkflowHandleClientAsyncPolling) for h in seen["backfill"])
    assert [h.workflow_id for h in seen["backfill"]] == [
        scheduler.firing_id("c-async", at(h)) for h in (1, 2)
    ]
    assert seen["applied"]["created"] == ["c-async-2"]
    assert [r["scheduled_time"] for r in seen["results"][1:]] == [at(1), at(2)]
    assert seen["after_delete"] is None
    assert sorted(fired("c-async")) == sorted(
        [at(1).isoformat(), at(2).isoformat(), seen["results"][0]["scheduled_time"].isoformat()]
    )


# -- a process without the workflows ---------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from django_dbos import DBOSClient, DBOSQueueNotFoundError

    report = {}
    with DBOSClient(database_url=sys.argv[1]) as client:
        try:
            client.create_schedule(
                schedule_name="far", workflow_name=sys.argv[2], schedule="@daily",
                queue_name="tests.nope",
            )
        except DBOSQueueNotFoundError as exc:
            report["unknown_queue"] = str(exc)
        client.create_schedule(
            schedule_name="far", workflow_name=sys.argv[2], schedule="0 * * * *",
            context={"key": "far"}, queue_name=sys.argv[3],
        )
        handles = client.backfill_schedule("far", "2025-01-01T00:00:00Z", "2025-01-01T03:00:00Z")
        handles.append(client.trigger_schedule("far"))
        report["results"] = [str(h.get_result(timeout=60)["scheduled_time"]) for h in handles]
        report["schedule"] = client.get_schedule("far")["last_fired_at"]
    print(json.dumps(report))
    """
)


@pytest.mark.slow
def test_a_process_without_the_workflows_schedules_them_by_name():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(REPO)
    with running_worker(queues=[QUEUE], schedules=False):
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, database_url(), RECORD, QUEUE],
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "tests.sched.queue" in report["unknown_queue"]  # the stored queues are listed
    assert report["results"][:2] == ["2025-01-01 01:00:00+00:00", "2025-01-01 02:00:00+00:00"]
    assert report["schedule"] == "2025-01-01T02:00:00+00:00"
    assert len(fired("far")) == 3

"""Cron schedules (issue 6): the API, bad input, firing in a worker, pause / resume / trigger /
backfill, automatic backfill after downtime, apply_schedules, @DBOS.scheduled, and time zones
and DST against croniter's own answers.

The worker tests use second-level crons ("* * * * * *", seconds first as in DBOS) and run the
scheduler in this process (``running_worker``); the multi-process test is
tests/test_schedule_processes.py.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from django.core.checks import Error

from django_dbos import (
    DBOS,
    DBOSException,
    DBOSInvalidArgumentError,
    DBOSInvalidCronError,
    DBOSInvalidTimezoneError,
    DBOSNonExistentScheduleError,
    DBOSQueueNotFoundError,
    DBOSScheduleExistsError,
    DBOSWorkflowFunctionNotFoundError,
)
from django_dbos.checks import check_workflow_modules
from django_dbos.engine import scheduler, scheduler_loop
from django_dbos.models import Schedule, WorkflowStatus
from django_dbos.queues import INTERNAL_QUEUE_NAME
from django_dbos.registry import registry
from django_dbos.testing import running_worker, workflow_step_names
from tests import schedule_workflows as sw
from tests.models import Run

UTC = datetime.UTC
EVERY_SECOND = "* * * * * *"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def fired(key: str) -> Counter[str]:
    """How many times each scheduled time (UTC ISO) of ``key`` really ran."""
    return Counter(Run.objects.filter(key=key).values_list("step", flat=True))


def settle(prefix: str, timeout: float = 20) -> None:
    """Wait until every workflow whose ID starts with ``prefix`` has finished."""
    wait_for(
        lambda: (
            not WorkflowStatus.objects.filter(
                workflow_uuid__startswith=prefix, status__in=["ENQUEUED", "PENDING", "DELAYED"]
            ).exists()
        ),
        timeout,
        f"the {prefix}* workflows to finish",
    )


def seconds(stamps: Counter[str]) -> list[datetime.datetime]:
    return sorted(datetime.datetime.fromisoformat(s) for s in stamps)


def contiguous(times: list[datetime.datetime]) -> bool:
    return all(b - a == datetime.timedelta(seconds=1) for a, b in itertools.pairwise(times))


def expected_by_croniter(
    cron: str, tz: str, start: datetime.datetime, end: datetime.datetime
) -> list[datetime.datetime]:
    """croniter's own answer for the window (start, end), exclusive both, as DBOS uses it."""
    it = croniter(cron, start.astimezone(ZoneInfo(tz)), second_at_beginning=True)
    times = []
    while (when := it.get_next(datetime.datetime)) < end:
        times.append(when)
    return times


@pytest.fixture
def declared() -> Iterator[None]:
    """Schedules a test declares with @DBOS.scheduled leave the registry afterwards."""
    before = dict(registry.schedules)
    duplicates = list(registry.duplicates)
    yield
    registry.schedules.clear()
    registry.schedules.update(before)
    registry.duplicates[:] = duplicates


# -- the API ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_get_list_pause_resume_delete():
    DBOS.create_schedule(
        "report", sw.record_firing, schedule="0 9 * * *", context={"key": "r", "n": [1, 2]}
    )
    DBOS.create_schedule(
        schedule_name="cleanup",
        workflow_fn=sw.record_firing,
        schedule="*/5 * * * * *",
        cron_timezone="Europe/Paris",
        queue_name="tests.sched.queue",
        automatic_backfill=True,
    )
    report = DBOS.get_schedule("report")
    assert report is not None
    assert report["schedule_name"] == "report"
    assert report["workflow_name"] == "tests.schedule_workflows.record_firing"
    assert report["schedule"] == "0 9 * * *"
    assert report["status"] == "ACTIVE"
    assert report["context"] == {"key": "r", "n": [1, 2]}
    assert report["last_fired_at"] is None
    assert report["cron_timezone"] is None and report["queue_name"] is None
    assert report["automatic_backfill"] is False
    cleanup = DBOS.get_schedule("cleanup")
    assert cleanup is not None
    assert (cleanup["cron_timezone"], cleanup["queue_name"], cleanup["automatic_backfill"]) == (
        "Europe/Paris",
        "tests.sched.queue",
        True,
    )
    assert DBOS.get_schedule("nope") is None

    assert [s["schedule_name"] for s in DBOS.list_schedules()] == ["cleanup", "report"]
    DBOS.pause_schedule("report")
    DBOS.pause_schedule("report")  # already paused: no change, no error
    assert DBOS.get_schedule("report")["status"] == "PAUSED"  # type: ignore[index]
    assert [s["schedule_name"] for s in DBOS.list_schedules(status="PAUSED")] == ["report"]
    assert [s["schedule_name"] for s in DBOS.list_schedules(status=["ACTIVE"])] == ["cleanup"]
    assert [s["schedule_name"] for s in DBOS.list_schedules(schedule_name_prefix="rep")] == [
        "report"
    ]
    assert len(DBOS.list_schedules(schedule_name_prefix=["rep", "clean"])) == 2
    assert len(DBOS.list_schedules(workflow_name=sw.record_firing.__dbos_workflow__.name)) == 2
    assert DBOS.list_schedules(workflow_name="other") == []
    DBOS.resume_schedule("report")
    assert DBOS.get_schedule("report")["status"] == "ACTIVE"  # type: ignore[index]

    DBOS.delete_schedule("report")
    DBOS.delete_schedule("report")  # unknown: a no-op, as in DBOS
    assert DBOS.get_schedule("report") is None
    with pytest.raises(DBOSNonExistentScheduleError, match="'report'"):
        DBOS.pause_schedule("report")
    with pytest.raises(DBOSNonExistentScheduleError):
        DBOS.resume_schedule("report")
    with pytest.raises(DBOSNonExistentScheduleError):
        DBOS.trigger_schedule("report")


@pytest.mark.django_db(transaction=True)
def test_workflow_by_registered_name_and_async_twins():
    name = sw.record_firing_async.__dbos_workflow__.name

    async def main() -> list[Any]:
        await DBOS.create_schedule_async("a", name, "0 * * * *")
        await DBOS.pause_schedule_async("a")
        listed = await DBOS.list_schedules_async(status="PAUSED")
        await DBOS.resume_schedule_async("a")
        got = await DBOS.get_schedule_async("a")
        await DBOS.delete_schedule_async("a")
        return [listed, got, await DBOS.get_schedule_async("a")]

    listed, got, gone = asyncio.run(main())
    assert [s["schedule_name"] for s in listed] == ["a"]
    assert got["status"] == "ACTIVE" and got["workflow_name"] == name
    assert gone is None


# -- bad input -------------------------------------------------------------------------------

BAD_CREATES: list[tuple[dict[str, Any], type[DBOSException], str]] = [
    ({"schedule": "not a cron"}, DBOSInvalidCronError, "not a cron"),
    ({"schedule": "* * *"}, DBOSInvalidCronError, "3 fields"),
    ({"schedule": "61 * * * *"}, DBOSInvalidCronError, "61"),
    ({"schedule": "* * * * * * *"}, DBOSInvalidCronError, "7 fields"),
    ({"schedule": ""}, DBOSInvalidCronError, "non-empty"),
    ({"schedule": None}, DBOSInvalidCronError, "None"),
    ({"schedule": "0 0 30 2 *"}, DBOSInvalidCronError, "never fires"),
    ({"schedule": "H * * * *"}, DBOSInvalidCronError, "H * * * *"),
    ({"cron_timezone": "Mars/Olympus"}, DBOSInvalidTimezoneError, "Mars/Olympus"),
    ({"cron_timezone": "../etc/passwd"}, DBOSInvalidTimezoneError, "passwd"),
    ({"workflow_fn": sw.not_a_workflow}, DBOSInvalidArgumentError, "workflow_fn"),
    ({"workflow_fn": "no.such.workflow"}, DBOSWorkflowFunctionNotFoundError, "no.such.workflow"),
    ({"queue_name": "no.such.queue"}, DBOSQueueNotFoundError, "no.such.queue"),
    ({"queue_name": "tests.sched.partitioned"}, DBOSInvalidArgumentError, "partition"),
    ({"schedule_name": ""}, DBOSInvalidArgumentError, "schedule_name"),
    ({"schedule_name": "x" * 201}, DBOSInvalidArgumentError, "schedule_name"),
    ({"automatic_backfill": "yes"}, DBOSInvalidArgumentError, "automatic_backfill"),
    ({"context": object()}, DBOSException, "object"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("change", "error", "mentions"), BAD_CREATES)
def test_bad_create_is_a_named_error_and_writes_nothing(change, error, mentions):
    arguments = {
        "schedule_name": "bad",
        "workflow_fn": sw.record_firing,
        "schedule": "0 9 * * *",
        **change,
    }
    with pytest.raises(error, match=None) as caught:
        DBOS.create_schedule(**arguments)
    assert mentions in str(caught.value)
    assert Schedule.objects.count() == 0


@pytest.mark.django_db
def test_duplicate_name_is_an_error_and_keeps_the_first():
    DBOS.create_schedule("dup", sw.record_firing, "0 9 * * *")
    with pytest.raises(DBOSScheduleExistsError, match="'dup' already exists"):
        DBOS.create_schedule("dup", sw.record_firing_async, "0 10 * * *")
    (row,) = Schedule.objects.all()
    assert row.schedule == "0 9 * * *"


@pytest.mark.django_db
def test_backfill_bad_window_and_unknown_schedule_write_nothing():
    DBOS.create_schedule("bf", sw.record_firing, "0 * * * *")
    with pytest.raises(DBOSInvalidArgumentError, match="start must be at or before end"):
        DBOS.backfill_schedule("bf", "2025-01-02T00:00:00+00:00", "2025-01-01T00:00:00+00:00")
    with pytest.raises(DBOSInvalidArgumentError, match="start"):
        DBOS.backfill_schedule("bf", "yesterday", "2025-01-01T00:00:00+00:00")
    with pytest.raises(DBOSNonExistentScheduleError, match="'nope'"):
        DBOS.backfill_schedule("nope", "2025-01-01T00:00:00+00:00", "2025-01-02T00:00:00+00:00")
    every_second = "bf2"
    DBOS.create_schedule(every_second, sw.record_firing, EVERY_SECOND)
    with pytest.raises(DBOSInvalidArgumentError, match="at most 10000 firings"):
        DBOS.backfill_schedule(every_second, "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")
    assert WorkflowStatus.objects.count() == 0
    assert DBOS.backfill_schedule("bf", "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z") == []


@pytest.mark.django_db
def test_list_filters_are_checked():
    with pytest.raises(DBOSInvalidArgumentError, match="status"):
        DBOS.list_schedules(status="RUNNING")
    with pytest.raises(DBOSInvalidArgumentError, match="schedule_name_prefix"):
        DBOS.list_schedules(schedule_name_prefix=3)  # type: ignore[arg-type]


@pytest.mark.django_db
def test_trigger_backfill_and_apply_refuse_inside_a_workflow():
    DBOS.create_schedule("inside", sw.record_firing, "0 9 * * *")
    with pytest.raises(DBOSException, match="cannot be called from within a workflow"):
        sw.trigger_inside("inside")
    assert WorkflowStatus.objects.filter(workflow_uuid__startswith="sched-").count() == 0


# -- inside a workflow: recorded as steps ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_create_pause_resume_delete_inside_a_workflow_are_steps():
    from django_dbos import SetWorkflowID

    with SetWorkflowID("manager-1"):
        seen = sw.manage_schedules("managed")
    assert seen == ["ACTIVE", "PAUSED", "ACTIVE", "None"]
    assert workflow_step_names("manager-1") == [
        "createSchedule",
        "getSchedule",
        "pauseSchedule",
        "getSchedule",
        "resumeSchedule",
        "getSchedule",
        "deleteSchedule",
        "getSchedule",
    ]
    # the same ID again returns the recorded result; the steps do not run again
    with SetWorkflowID("manager-1"):
        assert sw.manage_schedules("managed") == seen
    assert Schedule.objects.filter(schedule_name="managed").count() == 0


# -- cron and ids ----------------------------------------------------------------------------


def test_six_fields_put_seconds_first_as_dbos_does():
    start = datetime.datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
    times = scheduler.cron_times("*/20 30 * * * *", UTC, start)
    assert [next(times) for _ in range(4)] == [
        datetime.datetime(2025, 1, 1, 0, 30, s, tzinfo=UTC) for s in (0, 20, 40)
    ] + [datetime.datetime(2025, 1, 1, 1, 30, 0, tzinfo=UTC)]
    assert scheduler.check_cron("  0   9 * * 1-5 ") == "0 9 * * 1-5"
    assert scheduler.check_cron("@hourly") == "@hourly"


def test_firing_id_is_the_instant_in_utc_whatever_the_zone():
    paris = datetime.datetime(2025, 7, 1, 11, 0, tzinfo=ZoneInfo("Europe/Paris"))
    utc = datetime.datetime(2025, 7, 1, 9, 0, tzinfo=UTC)
    assert scheduler.firing_id("r", paris) == scheduler.firing_id("r", utc)
    assert scheduler.firing_id("r", utc) == "sched-r-2025-07-01T09:00:00+00:00"


# -- firing in a worker ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fires_each_second_once_with_time_and_context_then_pause_and_resume():
    DBOS.create_schedule("tick", sw.record_firing, EVERY_SECOND, context={"key": "tick"})
    with running_worker():
        wait_for(lambda: len(fired("tick")) >= 3, 10, "three firings")
        DBOS.pause_schedule("tick")
        paused_at = datetime.datetime.now(UTC)
        time.sleep(2.5)
        resuming_at = datetime.datetime.now(UTC)
        DBOS.resume_schedule("tick")
        wait_for(lambda: max(seconds(fired("tick"))) > resuming_at, 10, "a firing after resume")
        wait_for(lambda: len(fired("tick")) >= 5, 10, "two more firings")
        DBOS.pause_schedule("tick")
        settle("sched-tick-")
    stamps = fired("tick")
    assert set(stamps.values()) == {1}, stamps  # each firing ran once
    times = seconds(stamps)
    # nothing fired while paused: a round that read the schedule just before the pause
    # fires only times up to then, and a resumed schedule starts from the resume
    assert [t for t in times if paused_at < t <= resuming_at] == []
    first_run = [t for t in times if t <= paused_at]
    second_run = [t for t in times if t > resuming_at]
    assert len(first_run) >= 3 and len(second_run) >= 1
    assert contiguous(first_run) and contiguous(second_run)
    assert all(t.microsecond == 0 for t in times)
    # the workflow got the scheduled time (aware) and the context; the ID is deterministic
    when = times[0]
    handle = DBOS.retrieve_workflow(scheduler.firing_id("tick", when))
    result = handle.get_result(timeout=10)
    assert result["scheduled_time"] == when
    assert result["scheduled_time"].tzinfo is not None
    assert result["context"] == {"key": "tick"}
    status = handle.get_status()
    assert status.queue_name == INTERNAL_QUEUE_NAME
    # last_fired_at is the latest firing (only ever moved forward)
    last = DBOS.get_schedule("tick")["last_fired_at"]  # type: ignore[index]
    assert datetime.datetime.fromisoformat(last) == times[-1]


@pytest.mark.django_db(transaction=True)
def test_firings_go_to_the_named_queue():
    DBOS.create_schedule(
        "queued",
        sw.record_firing,
        EVERY_SECOND,
        context={"key": "q"},
        queue_name="tests.sched.queue",
    )
    with running_worker():
        wait_for(lambda: len(fired("q")) >= 1, 10, "a firing")
        DBOS.delete_schedule("queued")
    queues = set(
        WorkflowStatus.objects.filter(workflow_uuid__startswith="sched-queued-").values_list(
            "queue_name", flat=True
        )
    )
    assert queues == {"tests.sched.queue"}


@pytest.mark.django_db(transaction=True)
def test_no_schedules_flag_runs_queues_but_fires_nothing():
    DBOS.create_schedule("quiet", sw.record_firing, EVERY_SECOND, context={"key": "quiet"})
    handle = DBOS.trigger_schedule("quiet")
    with running_worker(schedules=False):
        result = handle.get_result(timeout=10)
        time.sleep(1.5)
    assert list(fired("quiet").values()) == [1]  # the trigger only
    assert result["context"] == {"key": "quiet"}


@pytest.mark.django_db(transaction=True)
def test_trigger_runs_now_even_when_paused():
    DBOS.create_schedule(
        "trig", sw.record_firing, "0 0 1 1 *", context={"key": "trig"}, cron_timezone="Asia/Tokyo"
    )
    DBOS.pause_schedule("trig")
    before = datetime.datetime.now(UTC)
    handle = DBOS.trigger_schedule("trig")
    assert handle.workflow_id.startswith("sched-trig-trigger-")
    with running_worker(schedules=False):
        result = handle.get_result(timeout=10)
    assert result["scheduled_time"] >= before
    assert result["scheduled_time"].utcoffset() == datetime.timedelta(hours=9)  # in its zone
    assert DBOS.get_schedule("trig")["status"] == "PAUSED"  # type: ignore[index]


@pytest.mark.django_db(transaction=True)
def test_backfill_runs_each_missed_time_once_even_when_windows_overlap():
    DBOS.create_schedule("hourly", sw.record_firing, "0 * * * *", context={"key": "bf"})
    first = DBOS.backfill_schedule(
        "hourly",
        datetime.datetime(2025, 1, 1, 0, 0, tzinfo=UTC),
        "2025-01-01T05:00:00+00:00",
    )
    hours = [datetime.datetime(2025, 1, 1, h, tzinfo=UTC) for h in (1, 2, 3, 4)]
    assert [h.workflow_id for h in first] == [scheduler.firing_id("hourly", t) for t in hours]
    second = DBOS.backfill_schedule("hourly", "2025-01-01T02:30:00Z", "2025-01-01T07:00:00Z")
    assert [h.workflow_id for h in second] == [
        scheduler.firing_id("hourly", datetime.datetime(2025, 1, 1, h, tzinfo=UTC))
        for h in (3, 4, 5, 6)
    ]
    with running_worker(schedules=False):
        for handle in first + second:
            handle.get_result(timeout=20)
    stamps = fired("bf")
    assert sorted(stamps) == [
        datetime.datetime(2025, 1, 1, h, tzinfo=UTC).isoformat() for h in range(1, 7)
    ]
    assert set(stamps.values()) == {1}
    assert WorkflowStatus.objects.filter(workflow_uuid__startswith="sched-hourly-").count() == 6
    # last_fired_at moved to the latest backfilled time
    assert DBOS.get_schedule("hourly")["last_fired_at"] == "2025-01-01T06:00:00+00:00"  # type: ignore[index]


@pytest.mark.django_db(transaction=True)
def test_automatic_backfill_after_downtime_runs_missed_firings_once():
    DBOS.create_schedule(
        "auto", sw.record_firing, EVERY_SECOND, context={"key": "auto"}, automatic_backfill=True
    )
    DBOS.create_schedule("manual", sw.record_firing, EVERY_SECOND, context={"key": "manual"})
    with running_worker():
        wait_for(lambda: len(fired("auto")) >= 2 and len(fired("manual")) >= 2, 10, "first firings")
    down_from = datetime.datetime.now(UTC)
    time.sleep(3)  # the "downtime": no scheduler runs
    down_to = datetime.datetime.now(UTC)
    with running_worker():
        wait_for(
            lambda: (
                max(seconds(fired("auto"))) > down_to and max(seconds(fired("manual"))) > down_to
            ),
            10,
            "firings after the restart",
        )
        DBOS.pause_schedule("auto")
        DBOS.pause_schedule("manual")
        settle("sched-auto-")
        settle("sched-manual-")
    auto, manual = fired("auto"), fired("manual")
    assert set(auto.values()) == {1} and set(manual.values()) == {1}
    # automatic backfill: every second from the first firing on, none missing
    assert contiguous(seconds(auto)), seconds(auto)
    assert len([t for t in seconds(auto) if down_from < t < down_to]) >= 2
    # without it, the downtime's seconds never ran
    assert [t for t in seconds(manual) if down_from < t < down_to] == []


@pytest.mark.django_db(transaction=True)
def test_resume_with_automatic_backfill_runs_the_paused_window():
    DBOS.create_schedule(
        "pauser", sw.record_firing, EVERY_SECOND, context={"key": "pauser"}, automatic_backfill=True
    )
    with running_worker():
        wait_for(lambda: len(fired("pauser")) >= 2, 10, "first firings")
        DBOS.pause_schedule("pauser")
        time.sleep(2.5)
        DBOS.resume_schedule("pauser")
        resumed_at = datetime.datetime.now(UTC)
        wait_for(lambda: max(seconds(fired("pauser"))) > resumed_at, 10, "a firing after resume")
        DBOS.pause_schedule("pauser")
        settle("sched-pauser-")
    stamps = fired("pauser")
    assert set(stamps.values()) == {1}
    assert contiguous(seconds(stamps))  # the paused seconds ran after the resume


# -- apply_schedules -------------------------------------------------------------------------


@pytest.mark.django_db
def test_apply_schedules_creates_updates_deletes_and_is_idempotent():
    DBOS.create_schedule("old", sw.record_firing, "0 1 * * *")
    DBOS.create_schedule("kept", sw.record_firing, "0 2 * * *")
    DBOS.pause_schedule("kept")
    declared_list = [
        {"schedule_name": "kept", "workflow_fn": sw.record_firing, "schedule": "0 3 * * *"},
        {
            "schedule_name": "new",
            "workflow_fn": sw.record_firing,
            "schedule": "*/10 * * * * *",
            "context": {"key": "new"},
            "cron_timezone": "Europe/Paris",
            "queue_name": "tests.sched.queue",
            "automatic_backfill": True,
        },
    ]
    changes = DBOS.apply_schedules(declared_list)
    assert changes == {"created": ["new"], "updated": ["kept"], "unchanged": [], "deleted": ["old"]}
    kept = DBOS.get_schedule("kept")
    assert kept["schedule"] == "0 3 * * *" and kept["status"] == "PAUSED"  # type: ignore[index]
    new = DBOS.get_schedule("new")
    assert new["context"] == {"key": "new"} and new["queue_name"] == "tests.sched.queue"  # type: ignore[index]
    stamp = Schedule.objects.get(schedule_name="kept").updated_at
    again = DBOS.apply_schedules(declared_list)
    assert again == {"created": [], "updated": [], "unchanged": ["kept", "new"], "deleted": []}
    assert Schedule.objects.get(schedule_name="kept").updated_at == stamp
    DBOS.create_schedule("extra", sw.record_firing, "0 4 * * *")
    assert DBOS.apply_schedules(declared_list[:1], delete_missing=False)["deleted"] == []
    assert {s["schedule_name"] for s in DBOS.list_schedules()} == {"kept", "new", "extra"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"schedule_name": "b", "workflow_fn": sw.record_firing}, DBOSInvalidArgumentError),
        (
            {"schedule_name": "b", "workflow_fn": sw.record_firing, "schedule": "x"},
            DBOSInvalidCronError,
        ),
        (
            {
                "schedule_name": "b",
                "workflow_fn": sw.record_firing,
                "schedule": "* * * * *",
                "queue": 1,
            },
            DBOSInvalidArgumentError,
        ),
        (
            {"schedule_name": "a", "workflow_fn": sw.record_firing, "schedule": "* * * * *"},
            DBOSInvalidArgumentError,  # twice in the list
        ),
        ("not a dict", DBOSInvalidArgumentError),
    ],
)
def test_apply_schedules_validates_everything_before_writing(bad, error):
    DBOS.create_schedule("existing", sw.record_firing, "0 1 * * *")
    good = {"schedule_name": "a", "workflow_fn": sw.record_firing, "schedule": "0 9 * * *"}
    with pytest.raises(error):
        DBOS.apply_schedules([good, bad])
    assert [s["schedule_name"] for s in DBOS.list_schedules()] == ["existing"]


# -- @DBOS.scheduled -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_scheduled_decorator_declares_a_schedule_workers_store_and_fire(declared):
    def heartbeat(scheduled_time: datetime.datetime, context: Any) -> None:
        sw._record("declared", scheduled_time)

    heartbeat.__module__ = "tests.schedule_workflows"
    heartbeat.__qualname__ = "declared_heartbeat"
    wrapped = DBOS.scheduled(EVERY_SECOND, name="declared")(heartbeat)
    assert wrapped.__dbos_workflow__.name == "tests.schedule_workflows.declared_heartbeat"
    assert registry.schedules["declared"].schedule == EVERY_SECOND
    # code-declared names are not apply_schedules' to manage, nor to delete
    with pytest.raises(DBOSScheduleExistsError, match="declared in code"):
        DBOS.apply_schedules(
            [{"schedule_name": "declared", "workflow_fn": wrapped, "schedule": "0 * * * *"}]
        )
    with running_worker():
        wait_for(lambda: len(fired("declared")) >= 2, 10, "the declared schedule to fire")
        assert DBOS.apply_schedules([])["deleted"] == []
        DBOS.pause_schedule("declared")
        settle("sched-declared-")
    assert set(fired("declared").values()) == {1}
    # a worker starting again keeps the pause (and the history)
    scheduler.store_declared()
    assert DBOS.get_schedule("declared")["status"] == "PAUSED"  # type: ignore[index]


def test_scheduled_decorator_checks_cron_and_reports_duplicates(declared):
    with pytest.raises(DBOSInvalidCronError):
        DBOS.scheduled("every minute")
    with pytest.raises(DBOSInvalidTimezoneError):
        DBOS.scheduled("* * * * *", cron_timezone="Nowhere/Land")
    DBOS.scheduled("0 9 * * *", name="twice")(sw.record_firing)
    DBOS.scheduled("0 9 * * *", name="twice")(sw.record_firing)  # the same again: fine
    assert check_workflow_modules() == []
    DBOS.scheduled("0 10 * * *", name="twice")(sw.record_firing)
    errors = check_workflow_modules()
    assert [(e.id, type(e)) for e in errors] == [("django_dbos.E004", Error)]
    assert "Two schedules are registered under the name 'twice'" in errors[0].msg
    assert "@DBOS.scheduled" in errors[0].hint


# -- time zones and DST, against croniter ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("cron", "tz", "start", "end"),
    [
        # spring forward: 02:30 does not exist on 2025-03-09 in New York
        ("30 2 * * *", "America/New_York", "2025-03-07T00:00:00Z", "2025-03-12T00:00:00Z"),
        # fall back: 01:30 happens twice on 2025-11-02 in New York
        ("30 1 * * *", "America/New_York", "2025-10-31T00:00:00Z", "2025-11-05T00:00:00Z"),
        ("*/30 * * * *", "America/New_York", "2025-11-02T04:00:00Z", "2025-11-02T08:00:00Z"),
        ("0 9 * * 1-5", "Europe/Paris", "2025-03-28T00:00:00Z", "2025-04-03T00:00:00Z"),
        ("15 3 * * *", "Australia/Lord_Howe", "2025-04-04T00:00:00Z", "2025-04-08T00:00:00Z"),
    ],
)
def test_backfill_times_match_croniter_across_dst(cron, tz, start, end):
    DBOS.create_schedule("dst", sw.record_firing, cron, cron_timezone=tz)
    begin, finish = (datetime.datetime.fromisoformat(v) for v in (start, end))
    handles = DBOS.backfill_schedule("dst", start, end)
    expected = expected_by_croniter(cron, tz, begin, finish)
    assert expected  # the window is not empty
    assert [h.workflow_id for h in handles] == [scheduler.firing_id("dst", t) for t in expected]
    # the workflow receives the time in the schedule's zone
    inputs = WorkflowStatus.objects.get(workflow_uuid=handles[0].workflow_id).inputs
    from django_dbos import serialization

    (received, _context), _ = serialization.deserialize_args(inputs)
    assert received == expected[0]
    assert received.utcoffset() == expected[0].utcoffset()
    assert getattr(received.tzinfo, "key", None) == tz


def test_live_cron_times_match_croniter_in_a_zone():
    tz = "America/New_York"
    start = datetime.datetime(2025, 11, 2, 5, 0, tzinfo=UTC)
    ours = scheduler.cron_times("0,30 * * * *", ZoneInfo(tz), start)
    theirs = croniter("0,30 * * * *", start.astimezone(ZoneInfo(tz)), second_at_beginning=True)
    for _ in range(10):
        assert next(ours) == theirs.get_next(datetime.datetime)


# -- smaller pieces --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_queue_known_only_from_dbos_queues_is_accepted_unless_partitioned():
    from django_dbos.models import QueueConfig

    QueueConfig.objects.create(name="declared.elsewhere")
    QueueConfig.objects.create(name="parted.elsewhere", partition_queue=True)
    DBOS.create_schedule("far", sw.record_firing, "0 9 * * *", queue_name="declared.elsewhere")
    with pytest.raises(DBOSInvalidArgumentError, match="partition"):
        DBOS.create_schedule("far2", sw.record_firing, "0 9 * * *", queue_name="parted.elsewhere")
    with pytest.raises(DBOSQueueNotFoundError, match=r"declared\.elsewhere"):  # listed as known
        DBOS.create_schedule("far3", sw.record_firing, "0 9 * * *", queue_name="typo")
    assert [s["schedule_name"] for s in DBOS.list_schedules()] == ["far"]


@pytest.mark.django_db
def test_last_fired_at_only_moves_forward():
    DBOS.create_schedule("fwd", sw.record_firing, "0 9 * * *")
    row = Schedule.objects.get(schedule_name="fwd")
    scheduler.advance_last_fired(row, 2_000)
    scheduler.advance_last_fired(row, 1_000)  # a slower scheduler's older firing
    assert Schedule.objects.get(schedule_name="fwd").last_fired_at == 2_000


def test_dbos_worker_takes_no_schedules():
    from django.core.management import load_command_class

    command = load_command_class("django_dbos", "dbos_worker")
    parser = command.create_parser("manage.py", "dbos_worker")
    assert parser.parse_args(["--no-schedules"]).schedules is False
    assert parser.parse_args([]).schedules is True


@pytest.mark.django_db(transaction=True)
def test_async_trigger_backfill_and_apply():
    async def main() -> tuple[Any, Any, Any]:
        changes = await DBOS.apply_schedules_async(
            [
                {
                    "schedule_name": "as",
                    "workflow_fn": sw.record_firing,
                    "schedule": "0 * * * *",
                    "context": {"key": "as"},
                }
            ]
        )
        handle = await DBOS.trigger_schedule_async("as")
        handles = await DBOS.backfill_schedule_async(
            "as", "2025-01-01T00:00:00Z", "2025-01-01T03:00:00Z"
        )
        return changes, handle, handles

    changes, handle, handles = asyncio.run(main())
    assert changes["created"] == ["as"]
    assert handle.workflow_id.startswith("sched-as-trigger-")
    assert [h.workflow_id for h in handles] == [
        scheduler.firing_id("as", datetime.datetime(2025, 1, 1, h, tzinfo=UTC)) for h in (1, 2)
    ]
    with running_worker(schedules=False):

        async def results() -> list[Any]:
            return [await h.get_result() for h in [handle, *handles]]

        assert len(asyncio.run(results())) == 3
    assert len(fired("as")) == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_schedulers_enqueue_each_time_once():
    """Eight schedulers (as eight workers would) catch up on the same ten seconds at once."""
    import threading

    from django.db import connections

    DBOS.create_schedule(
        "herd", sw.record_firing, EVERY_SECOND, context={"key": "herd"}, automatic_backfill=True
    )
    start = datetime.datetime.now(UTC).replace(microsecond=0) - datetime.timedelta(seconds=10)
    Schedule.objects.filter(schedule_name="herd").update(last_fired_at=scheduler.to_ms(start))
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            one = scheduler_loop.Scheduler()
            barrier.wait()
            one.tick()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    rows = WorkflowStatus.objects.filter(workflow_uuid__startswith="sched-herd-")
    times = sorted(
        datetime.datetime.fromisoformat(wid.removeprefix("sched-herd-"))
        for wid in rows.values_list("workflow_uuid", flat=True)
    )
    assert len(times) >= 10 and times[0] == start + datetime.timedelta(seconds=1)
    assert contiguous(times)  # every second once (the IDs are unique by construction)
    assert set(rows.values_list("status", flat=True)) == {"ENQUEUED"}
    with running_worker(schedules=False):
        settle("sched-herd-")
    assert set(fired("herd").values()) == {1}
    assert len(fired("herd")) == len(times)

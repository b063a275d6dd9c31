"""``manage.py dbos_schedules``: list/show as tables and JSON, pause/resume/trigger/backfill/delete
through the public API, and clear errors (CommandError, exit codes) that write nothing."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_dbos import DBOS
from django_dbos.conf import dbos_settings
from django_dbos.engine.executor import reset_executor
from django_dbos.models import Schedule, WorkflowStatus, now_ms
from tests.conftest import REPO, worker_env

pytestmark = pytest.mark.django_db

UTC = dt.UTC


@DBOS.workflow(name="tests.schedops.cmd.tick")
def tick(scheduled_time: dt.datetime, context: object) -> None:
    return None


@DBOS.workflow(name="tests.schedops.cmd.report")
def report(scheduled_time: dt.datetime, context: object) -> None:
    return None


@pytest.fixture(autouse=True)
def quiet_executor(settings):
    """An executor whose heartbeat never fires during a test."""
    settings.DBOS = {**settings.DBOS, "HEARTBEAT_INTERVAL": 3600.0, "EXECUTOR_TIMEOUT": 7200.0}
    executor = reset_executor()
    yield executor
    executor.stop(retire=False, wait=True)


def sched(*args: str) -> str:
    out = StringIO()
    call_command("dbos_schedules", *args, stdout=out)
    return out.getvalue()


def sched_json(*args: str):
    return json.loads(sched(*args, "--json"))


def rows():
    return Schedule.objects.using(dbos_settings().DATABASE)


def workflows():
    return WorkflowStatus.objects.using(dbos_settings().DATABASE)


@pytest.fixture
def three():
    DBOS.create_schedule("ops-hourly", tick, schedule="0 * * * *")
    DBOS.create_schedule(
        "ops-paris", report, schedule="30 9 * * *", cron_timezone="Europe/Paris", context=7
    )
    DBOS.create_schedule("other-nightly", tick, schedule="0 3 * * *")
    DBOS.pause_schedule("other-nightly")
    rows().filter(schedule_name="ops-hourly").update(
        last_fired_at=int(dt.datetime(2025, 5, 1, 12, tzinfo=UTC).timestamp() * 1000)
    )


def next_local(hour: int, minute: int, zone: str) -> dt.datetime:
    """The next hh:mm in ``zone`` after now, in UTC (what the command shows in TIME_ZONE=UTC)."""
    from zoneinfo import ZoneInfo

    now = dt.datetime.now(ZoneInfo(zone))
    candidate = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate <= now:
        candidate = (candidate + dt.timedelta(days=1)).replace(hour=hour, minute=minute)
    return candidate.astimezone(UTC)


# -- list and show -----------------------------------------------------------------------------


def test_list_is_a_table_by_name(three):
    lines = sched("list").splitlines()
    assert lines[0].split() == [
        "NAME", "WORKFLOW", "CRON", "TIMEZONE", "STATUS", "QUEUE", "NEXT", "LAST", "FIRED"
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[1:-1]] == ["ops-hourly", "ops-paris", "other-nightly"]
    assert lines[-1] == "3 schedules."
    hourly, paris, nightly = lines[1:-1]
    assert "0 * * * *" in hourly and "2025-05-01 12:00:00 UTC" in hourly
    assert "Europe/Paris" in paris and "tests.schedops.cmd.report" in paris
    assert next_local(9, 30, "Europe/Paris").strftime("%Y-%m-%d %H:%M:%S UTC") in paris
    assert "PAUSED" in nightly and nightly.split()[-2:] == ["-", "-"]  # no next, never fired


def test_list_filters(three):
    def names(*args: str) -> list[str]:
        return [s["schedule_name"] for s in sched_json("list", *args)]

    assert names("--status", "paused") == ["other-nightly"]
    assert names("--workflow", "tests.schedops.cmd.report") == ["ops-paris"]
    assert names("--prefix", "ops-") == ["ops-hourly", "ops-paris"]
    every = ["--prefix", "ops-", "--status", "ACTIVE", "--workflow", "tests.schedops.cmd.tick"]
    assert names(*every) == ["ops-hourly"]
    assert sched("list", "--prefix", "none-") == "No schedules match.\n"


def test_list_json_has_dbos_fields_and_next_fire(three):
    listed = {s["schedule_name"]: s for s in sched_json("list")}
    paris = listed["ops-paris"]
    assert paris["workflow_name"] == "tests.schedops.cmd.report"
    assert paris["schedule"] == "30 9 * * *"
    assert paris["cron_timezone"] == "Europe/Paris"
    assert paris["status"] == "ACTIVE"
    assert paris["context"] == 7
    next_fire = dt.datetime.fromisoformat(paris["next_fire_at"])
    assert next_fire == next_local(9, 30, "Europe/Paris")
    assert listed["other-nightly"]["next_fire_at"] is None
    assert listed["ops-hourly"]["last_fired_at"].startswith("2025-05-01T12:00:00")


def test_show(three):
    text = sched("show", "ops-paris", "--next", "3")
    assert "Name:               ops-paris" in text
    assert "Time zone:          Europe/Paris" in text
    assert "Context:            7" in text
    assert "Queue:              (internal)" in text
    *_, first, second, third = text.splitlines()
    assert first == f"Next fire times:    {next_local(9, 30, 'Europe/Paris'):%Y-%m-%d %H:%M:%S} UTC"
    assert second.startswith(" " * 20 + "20") and third.startswith(" " * 20 + "20")
    data = sched_json("show", "ops-paris", "--next", "2")
    first, second = (dt.datetime.fromisoformat(t) for t in data["next_fire_times"])
    assert first == next_local(9, 30, "Europe/Paris")
    assert second - first in {dt.timedelta(days=1), dt.timedelta(hours=23), dt.timedelta(hours=25)}
    assert sched_json("show", "other-nightly")["next_fire_times"] == []
    assert "Next fire times:    - (paused)" in sched("show", "other-nightly")


# -- pause, resume, delete ---------------------------------------------------------------------


def test_pause_and_resume(three):
    assert sched("pause", "ops-hourly", "other-nightly") == (
        "Paused ops-hourly.\nother-nightly was already paused.\n"
    )
    assert set(rows().values_list("status", flat=True)) == {"PAUSED", "ACTIVE"}
    assert rows().get(schedule_name="ops-hourly").status == "PAUSED"
    assert sched_json("resume", "ops-hourly", "ops-paris") == {
        "resumed": ["ops-hourly"],
        "unchanged": ["ops-paris"],
    }
    assert rows().get(schedule_name="ops-hourly").status == "ACTIVE"


def test_an_unknown_name_changes_nothing(three):
    with pytest.raises(CommandError, match=r"No schedule named 'nope' exists; nothing was changed"):
        sched("pause", "ops-hourly", "nope")
    with pytest.raises(CommandError, match=r"No schedules named 'a', 'b' exist"):
        sched("delete", "ops-hourly", "a", "b")
    assert rows().get(schedule_name="ops-hourly").status == "ACTIVE"
    assert rows().count() == 3


def test_delete(three):
    assert sched("delete", "ops-hourly", "ops-paris") == "Deleted ops-hourly.\nDeleted ops-paris.\n"
    assert list(rows().values_list("schedule_name", flat=True)) == ["other-nightly"]


def test_deleting_a_schedule_declared_in_code_warns(three, monkeypatch):
    from django_dbos.registry import ScheduleDefinition, registry

    declared = ScheduleDefinition(
        schedule_name="other-nightly",
        workflow_name=tick.__dbos_workflow__.name,
        schedule="0 3 * * *",
    )
    monkeypatch.setitem(registry.schedules, "other-nightly", declared)
    out, err = StringIO(), StringIO()
    call_command("dbos_schedules", "delete", "other-nightly", stdout=out, stderr=err)
    assert out.getvalue() == "Deleted other-nightly.\n"
    assert "declared in code with @DBOS.scheduled" in err.getvalue()
    assert not rows().filter(schedule_name="other-nightly").exists()


# -- trigger and backfill ----------------------------------------------------------------------


def test_trigger_enqueues_one_workflow(three):
    before = now_ms()
    out = sched("trigger", "other-nightly")  # paused schedules can still be run by hand
    workflow_id = out.strip().rsplit(" ", 1)[-1].rstrip(".")
    assert out.startswith("Triggered other-nightly: enqueued sched-other-nightly-trigger-")
    row = workflows().get(workflow_uuid=workflow_id)
    assert (row.name, row.status) == ("tests.schedops.cmd.tick", "ENQUEUED")
    assert row.created_at >= before
    data = sched_json("trigger", "ops-hourly")
    assert workflows().filter(workflow_uuid=data["workflow_id"]).exists()


def test_backfill_enqueues_missed_firings_once(three):
    window = ["--start", "2025-01-01T00:00", "--end", "2025-01-01T03:30"]
    out = sched("backfill", "ops-hourly", *window)
    assert out == "Backfilled ops-hourly: enqueued 3 workflows.\n"
    ids = sorted(workflows().filter(name="tests.schedops.cmd.tick").values_list("pk", flat=True))
    assert ids == [
        f"sched-ops-hourly-2025-01-01T0{h}:00:00+00:00" for h in (1, 2, 3)
    ]  # the start is left out, as in DBOS
    assert sched("backfill", "ops-hourly", *window) == (
        "Backfilled ops-hourly: enqueued 0 workflows (3 of the 3 fire times had already run).\n"
    )
    again = sched_json("backfill", "ops-hourly", *window[:2], "--end", "2025-01-01T04:30")
    assert again == {
        "schedule_name": "ops-hourly",
        "enqueued": ["sched-ops-hourly-2025-01-01T04:00:00+00:00"],
        "already_enqueued": ids,
    }


def test_backfill_in_the_schedules_time_zone(three):
    # 09:30 in Paris is 08:30 UTC in winter
    sched("backfill", "ops-paris", "--start", "2025-01-01", "--end", "2025-01-03")
    fired = workflows().filter(name="tests.schedops.cmd.report").values_list("pk", flat=True)
    assert sorted(fired) == [
        "sched-ops-paris-2025-01-01T08:30:00+00:00",
        "sched-ops-paris-2025-01-02T08:30:00+00:00",
    ]


def test_backfill_dry_run_writes_nothing(three):
    out = sched(
        "backfill", "ops-hourly", "--start", "2025-01-01T00:00", "--end", "2025-01-01T02:30",
        "--dry-run",
    )  # fmt: skip
    assert out == "2025-01-01 01:00:00 UTC\n2025-01-01 02:00:00 UTC\n2 fire times.\n"
    assert not workflows().exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--start", "2025-01-02", "--end", "2025-01-01"],
            "--start (2025-01-02T00:00:00+00:00) must be before --end (2025-01-01T00:00:00+00:00).",
        ),
        (["--start", "2025-01-01", "--end", "2025-01-01"], "must be before --end"),
        (
            ["--start", "2025-01-01", "--end", "2025-01-02", "--max", "5"],
            "would enqueue more than 5 workflows; narrow the range or raise --max (up to 10000)."
            " Nothing was enqueued.",
        ),
    ],
)
def test_bad_backfill_ranges_write_nothing(three, args, message):
    with pytest.raises(CommandError) as caught:
        sched("backfill", "ops-hourly", *args)
    assert message in str(caught.value)
    assert not workflows().exists()
    assert rows().get(schedule_name="ops-hourly").last_fired_at is not None  # untouched


def test_a_range_with_no_fire_time_enqueues_nothing(three):
    out = sched("backfill", "ops-paris", "--start", "2025-01-01T10:00", "--end", "2025-01-01T11:00")
    assert out == "ops-paris has no fire times in that range; nothing to enqueue.\n"
    assert not workflows().exists()


# -- mistakes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "No schedule named 'nope' exists."),
        (["trigger", "nope"], "No schedule named 'nope' exists."),
        (["backfill", "nope", "--start", "1d", "--end", "now"], "No schedule named 'nope' exists."),
        (["list", "--status", "RUNNING"], "unknown status 'RUNNING' (one of ACTIVE, PAUSED)"),
        (["pause", " "], "a schedule name must not be empty"),
        (["backfill", "x", "--start", "yesterday", "--end", "now"], "'yesterday' is not a time"),
        (["backfill", "x", "--start", "1d"], "the following arguments are required: --end"),
        (["show", "x", "--next", "0"], "must be at least 1, not 0"),
        (["backfill", "x", "--start", "1d", "--end", "now", "--max", "10001"], "from 1 to 10000"),
        (["resume"], "the following arguments are required: NAME"),
        ([], "the following arguments are required: ACTION"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_mistakes_are_command_errors(args, message):
    with pytest.raises(CommandError) as caught:
        sched(*args)
    assert message in str(caught.value)


def test_times_take_ages_and_epoch_ms(three):
    out = sched(
        "backfill", "ops-hourly", "--start", "1735689600000", "--end", "2025-01-01T01:30Z",
        "--dry-run",
    )  # fmt: skip
    assert out.splitlines()[0] == "2025-01-01 01:00:00 UTC"
    out = sched("backfill", "ops-hourly", "--start", "3h", "--end", "now", "--dry-run")
    assert out.splitlines()[-1] in {"2 fire times.", "3 fire times."}


def test_exit_codes_from_the_shell():
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / "manage.py"), "dbos_schedules", *args],
            env=worker_env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = run("list", "--prefix", "no-such-")
    assert (ok.returncode, ok.stdout) == (0, "No schedules match.\n"), ok.stderr
    unknown = run("pause", "nope")
    assert unknown.returncode == 1
    assert "CommandError: No schedule named 'nope' exists; nothing was changed." in unknown.stderr
    usage = run("list", "--status", "DONE")
    assert usage.returncode == 2 and "unknown status 'DONE'" in usage.stderr

"""The schedules admin: the list (next fire time in the schedule's time zone, no N+1), pause /
resume / trigger-now actions and the backfill form, each behind its permission; nothing can be
added, edited or deleted there.

Schedules are created through the public API and actions enqueue through it, all in the test's
own (rolled-back) transaction: nothing here needs a worker.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from zoneinfo import ZoneInfo

import pytest
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_dbos import DBOS
from django_dbos.admin import ScheduleAdmin
from django_dbos.admin.schedules import PERMISSIONS
from django_dbos.conf import dbos_settings
from django_dbos.engine.executor import reset_executor
from django_dbos.models import Schedule, WorkflowStatus, now_ms

pytestmark = pytest.mark.django_db

UTC = dt.UTC
CHANGELIST = "admin:django_dbos_schedule_changelist"


@DBOS.workflow(name="tests.schedops.admin.tick")
def tick(scheduled_time: dt.datetime, context: object) -> None:
    return None


@pytest.fixture(autouse=True)
def quiet_executor(settings):
    """A fresh executor per test whose heartbeat never fires during it."""
    settings.DBOS = {**settings.DBOS, "HEARTBEAT_INTERVAL": 3600.0, "EXECUTOR_TIMEOUT": 7200.0}
    executor = reset_executor()
    yield executor
    executor.stop(retire=False, wait=True)


def schedules():
    return Schedule.objects.using(dbos_settings().DATABASE)


def workflows():
    return WorkflowStatus.objects.using(dbos_settings().DATABASE)


def pk(name: str) -> int:
    return schedules().get(schedule_name=name).pk


def change_url(name: str) -> str:
    return reverse("admin:django_dbos_schedule_change", args=[quote(pk(name))])


def backfill_url(name: str) -> str:
    return reverse("admin:django_dbos_schedule_backfill", args=[quote(pk(name))])


def rows(response) -> dict[str, str]:
    """The changelist's rows (their HTML) by the schedule name in their first cell."""
    found = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", response.content.decode(), re.S):
        first = re.search(r'<th class="field-schedule_name"><a href="[^"]*">([^<]*)</a>', row)
        if first:
            found[first.group(1)] = row
    return found


def cell(row: str, column: str) -> str:
    match = re.search(rf'<td class="field-{column}[^"]*">(.*?)</td>', row, re.S)
    assert match, f"no {column} column in {row}"
    return html.unescape(match.group(1))


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def act(client, action: str, *names: str):
    data = {"action": action, helpers.ACTION_CHECKBOX_NAME: [pk(n) for n in names]}
    return client.post(reverse(CHANGELIST), data, follow=True)


def next_local(hour: int, minute: int, zone: str) -> str:
    """The next hh:mm in ``zone`` after now, as the admin shows it (TIME_ZONE is UTC)."""
    now = dt.datetime.now(ZoneInfo(zone))
    candidate = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate <= now:
        candidate = (candidate + dt.timedelta(days=1)).replace(hour=hour, minute=minute)
    return f"{candidate.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


@pytest.fixture
def three():
    DBOS.create_schedule("adm-hourly", tick, schedule="0 * * * *")
    DBOS.create_schedule(
        "adm-paris", tick, schedule="30 9 * * *", cron_timezone="Europe/Paris", context={"n": 7}
    )
    DBOS.create_schedule("adm-paused", tick, schedule="0 3 * * *")
    DBOS.pause_schedule("adm-paused")
    schedules().filter(schedule_name="adm-hourly").update(
        last_fired_at=int(dt.datetime(2025, 5, 1, 12, tzinfo=UTC).timestamp() * 1000)
    )


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("staff", password="pw", is_staff=True)


def grant(user, *operations: str) -> None:
    codenames = ["view_schedule", *(PERMISSIONS[op] for op in operations)]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


@pytest.fixture
def viewer(client, staff_user):
    """Staff allowed to look at schedules, and nothing else."""
    grant(staff_user)
    client.force_login(staff_user)
    return client


@pytest.fixture
def operator(client, staff_user):
    """Staff allowed to pause, resume, trigger and backfill."""
    grant(staff_user, "pause", "trigger", "backfill")
    client.force_login(staff_user)
    return client


# -- the list --------------------------------------------------------------------------------


def test_list_shows_each_column(admin_client, three):
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    found = rows(response)
    assert list(found) == ["adm-hourly", "adm-paris", "adm-paused"]  # by name

    hourly, paris, paused = found["adm-hourly"], found["adm-paris"], found["adm-paused"]
    assert cell(hourly, "workflow").endswith(">tick</span>")
    assert 'title="tests.schedops.admin.tick"' in cell(hourly, "workflow")
    assert cell(hourly, "cron") == '<code style="white-space: nowrap">0 * * * *</code>'
    assert cell(hourly, "time_zone") == "UTC"
    nxt = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    assert cell(hourly, "next_fire") == f"{nxt:%Y-%m-%d %H:%M:%S} UTC"
    assert cell(hourly, "last_fired") == "2025-05-01 12:00:00 UTC"
    assert "Active" in cell(hourly, "status_badge")
    assert cell(hourly, "queue") == "-"

    assert cell(paris, "time_zone") == "Europe/Paris"
    assert cell(paris, "next_fire") == next_local(9, 30, "Europe/Paris")  # 09:30 in Paris

    assert cell(paused, "next_fire") == "-"  # nothing fires while paused
    assert "Paused" in cell(paused, "status_badge")
    assert cell(paused, "last_fired") == "-"


def test_status_filter_and_search(admin_client, three):
    paused = admin_client.get(reverse(CHANGELIST), {"status__exact": "PAUSED"})
    assert list(rows(paused)) == ["adm-paused"]
    found = admin_client.get(reverse(CHANGELIST), {"q": "PARIS"})
    assert list(rows(found)) == ["adm-paris"]


def test_an_unreadable_row_does_not_break_the_page(admin_client, three):
    schedules().filter(schedule_name="adm-hourly").update(schedule="61 * * * *")
    schedules().filter(schedule_name="adm-paris").update(cron_timezone="Mars/Olympus")
    found = rows(admin_client.get(reverse(CHANGELIST)))
    assert cell(found["adm-hourly"], "next_fire") == "invalid cron or time zone"
    assert cell(found["adm-paris"], "next_fire") == "invalid cron or time zone"
    assert admin_client.get(change_url("adm-hourly")).status_code == 200


@pytest.mark.parametrize("superuser", [True, False], ids=["superuser", "operator"])
def test_list_query_count_does_not_grow_with_rows(client, staff_user, superuser):
    staff_user.is_superuser = superuser
    staff_user.save()
    grant(staff_user, "pause", "trigger", "backfill")
    client.force_login(staff_user)

    def page_queries(count: int, prefix: str) -> int:
        now = now_ms()
        schedules().bulk_create(
            Schedule(
                schedule_name=f"{prefix}-{i}",
                workflow_name="tests.schedops.admin.tick",
                schedule="*/5 * * * *",
                cron_timezone="Europe/Paris" if i % 2 else None,
                status="PAUSED" if i % 3 == 0 else "ACTIVE",
                last_fired_at=now - i,
            )
            for i in range(count)
        )
        with CaptureQueriesContext(connections[dbos_settings().DATABASE]) as queries:
            response = client.get(reverse(CHANGELIST))
        assert response.status_code == 200
        assert len(rows(response)) == schedules().count()
        assert "backfill/" in response.content.decode()  # the operator's extra column
        return len(queries)

    few = page_queries(3, "few")
    many = page_queries(27, "many")  # 30 in all
    assert many == few


# -- permissions -------------------------------------------------------------------------------


def test_anonymous_and_non_staff_users_are_sent_to_login(client, django_user_model, three):
    urls = [reverse(CHANGELIST), change_url("adm-hourly"), backfill_url("adm-hourly")]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    user = django_user_model.objects.create_user("plain", password="pw")
    grant(user, "pause", "trigger", "backfill")
    client.force_login(user)
    for url in urls:
        assert client.get(url)["Location"].startswith(reverse("admin:login"))


def test_staff_without_permission_can_neither_see_nor_act(client, staff_user, three):
    staff_user.user_permissions.add(Permission.objects.get(codename="view_workflowstatus"))
    client.force_login(staff_user)
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(change_url("adm-hourly")).status_code == 403
    assert client.get(backfill_url("adm-hourly")).status_code == 403
    data = {"action": "pause_schedules", helpers.ACTION_CHECKBOX_NAME: [pk("adm-hourly")]}
    assert client.post(reverse(CHANGELIST), data).status_code == 403
    assert schedules().get(schedule_name="adm-hourly").status == "ACTIVE"


def test_viewers_see_but_cannot_act(viewer, three):
    listing = viewer.get(reverse(CHANGELIST))
    assert listing.status_code == 200 and len(rows(listing)) == 3
    page = listing.content.decode()
    assert 'name="action"' not in page  # no action they may run
    assert "backfill/" not in page
    detail = viewer.get(change_url("adm-paris")).content.decode()
    assert "Backfill…" not in detail and 'name="_save"' not in detail

    for action in ["pause_schedules", "trigger_schedules"]:
        act(viewer, action, "adm-hourly")
    assert schedules().get(schedule_name="adm-hourly").status == "ACTIVE"
    assert not workflows().exists()
    assert viewer.get(backfill_url("adm-hourly")).status_code == 403
    window = {"start": "2025-01-01T00:00", "end": "2025-01-01T03:30"}
    assert viewer.post(backfill_url("adm-hourly"), window).status_code == 403
    assert not workflows().exists()


def test_each_operation_needs_its_own_permission(client, staff_user, three):
    grant(staff_user, "trigger")
    client.force_login(staff_user)
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert 'value="trigger_schedules"' in page
    assert 'value="pause_schedules"' not in page and 'value="resume_schedules"' not in page
    assert client.get(backfill_url("adm-hourly")).status_code == 403
    act(client, "pause_schedules", "adm-hourly")
    assert schedules().get(schedule_name="adm-hourly").status == "ACTIVE"


def test_change_permission_alone_grants_no_operation(client, staff_user, three):
    staff_user.user_permissions.add(Permission.objects.get(codename="change_schedule"))
    client.force_login(staff_user)
    page = client.get(reverse(CHANGELIST))
    assert page.status_code == 200  # Django's change permission includes viewing
    assert 'name="action"' not in page.content.decode()
    assert client.get(backfill_url("adm-hourly")).status_code == 403
    act(client, "trigger_schedules", "adm-hourly")
    assert not workflows().exists()


def test_nobody_can_add_change_or_delete(admin_client, three):
    listing = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert reverse("admin:django_dbos_schedule_add") not in listing
    assert 'value="delete_selected"' not in listing
    detail = admin_client.get(change_url("adm-hourly")).content.decode()
    assert 'name="_save"' not in detail and "deletelink" not in detail
    assert admin_client.get(reverse("admin:django_dbos_schedule_add")).status_code == 403
    delete = reverse("admin:django_dbos_schedule_delete", args=[pk("adm-hourly")])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_client.post(change_url("adm-hourly"), {"schedule": "* * * * *"}).status_code == 403
    row = schedules().get(schedule_name="adm-hourly")
    assert (row.schedule, schedules().count()) == ("0 * * * *", 3)


def test_registered_with_its_actions():
    model_admin = admin.site._registry[Schedule]
    assert isinstance(model_admin, ScheduleAdmin)
    assert set(PERMISSIONS.values()) <= {
        p.codename for p in Permission.objects.filter(content_type__model="schedule")
    }


# -- actions -----------------------------------------------------------------------------------


def test_pause_and_resume(operator, three):
    response = act(operator, "pause_schedules", "adm-hourly", "adm-paused")
    assert texts(response) == ["Paused 1 schedule (1 was already paused)."]
    assert schedules().get(schedule_name="adm-hourly").status == "PAUSED"
    assert cell(rows(response)["adm-hourly"], "next_fire") == "-"

    response = act(operator, "resume_schedules", "adm-hourly", "adm-paused", "adm-paris")
    assert texts(response) == ["Resumed 2 schedules (1 was already active)."]
    assert set(schedules().values_list("status", flat=True)) == {"ACTIVE"}


def test_trigger_now(operator, three):
    before = now_ms()
    response = act(operator, "trigger_schedules", "adm-paused", "adm-paris")
    (message,) = texts(response)
    fired = workflows().filter(created_at__gte=before).order_by("workflow_uuid")
    assert [(w.name, w.status) for w in fired] == [("tests.schedops.admin.tick", "ENQUEUED")] * 2
    assert message.startswith("Triggered 2 schedules: ")
    for wf in fired:
        link = reverse("admin:django_dbos_workflowstatus_change", args=[quote(wf.workflow_uuid)])
        assert f'<a href="{link}">{wf.workflow_uuid}</a>' in message
    assert schedules().get(schedule_name="adm-paused").status == "PAUSED"  # run once, still off


def test_a_failing_operation_is_reported_and_the_others_go_ahead(operator, three):
    schedules().create(
        schedule_name="adm-gone", workflow_name="tests.schedops.admin.removed", schedule="0 * * * *"
    )  # its workflow is not in this code base (any more)
    response = act(operator, "trigger_schedules", "adm-gone", "adm-hourly")
    error, success = texts(response)
    assert error.startswith("adm-gone: ") and "tests.schedops.admin.removed" in error
    assert success.startswith("Triggered 1 schedule: adm-hourly → ")
    assert [w.name for w in workflows()] == ["tests.schedops.admin.tick"]

    window = {"start": "2025-01-01T00:00", "end": "2025-01-01T03:30"}
    form = operator.post(backfill_url("adm-gone"), window)
    assert form.status_code == 200 and "tests.schedops.admin.removed" in form.content.decode()
    assert workflows().count() == 1


# -- the backfill form -------------------------------------------------------------------------


def test_backfill_form(operator, three):
    page = operator.get(backfill_url("adm-paris"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "<code>30 9 * * *</code>, Europe/Paris" in text
    assert 'type="datetime-local"' in text and "In UTC." in text
    detail = operator.get(change_url("adm-paris")).content.decode()
    assert f'href="{backfill_url("adm-paris")}"' in detail


def test_backfill_enqueues_each_missed_firing_once(operator, three):
    window = {"start": "2025-01-01T00:00", "end": "2025-01-01T03:30"}
    response = operator.post(backfill_url("adm-hourly"), window, follow=True)
    assert response.redirect_chain == [(reverse(CHANGELIST), 302)]
    assert texts(response) == [
        "Backfilled adm-hourly from 2025-01-01 00:00:00 UTC to 2025-01-01 03:30:00 UTC: "
        "enqueued 3 workflows."
    ]
    assert sorted(workflows().values_list("pk", flat=True)) == [
        f"sched-adm-hourly-2025-01-01T0{h}:00:00+00:00" for h in (1, 2, 3)
    ]
    again = operator.post(backfill_url("adm-hourly"), window, follow=True)
    assert texts(again)[-1].endswith(
        "enqueued 0 workflows (3 of the 3 fire times had already run)."
    )
    assert workflows().count() == 3


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"start": "2025-01-02T00:00", "end": "2025-01-01T00:00"}, "The start must be before"),
        ({"start": "2025-01-01T00:00", "end": "2025-01-01T00:00"}, "The start must be before"),
        ({"start": "2025-01-01T10:00", "end": "2025-01-01T11:00"}, "does not fire between"),
        (
            {"start": "2025-01-01T00:00", "end": "2025-01-01T06:00"},
            "more than 3 fire times. Backfill a shorter range",
        ),
        ({"start": "2025-01-01T00:00"}, "This field is required."),
        ({"start": "tomorrow", "end": "2025-01-01T06:00"}, "Enter a valid date/time."),
    ],
    ids=["after", "same", "empty", "too-many", "missing", "not-a-time"],
)
def test_bad_backfill_ranges_enqueue_nothing(operator, three, monkeypatch, form, error):
    monkeypatch.setattr(admin.site._registry[Schedule], "backfill_limit", 3)
    name = "adm-paris" if error == "does not fire between" else "adm-hourly"
    response = operator.post(backfill_url(name), form)
    assert response.status_code == 200  # the form again, with the error
    assert error in html.unescape(response.content.decode())
    assert not workflows().exists()
    assert schedules().get(schedule_name="adm-hourly").last_fired_at is not None


def test_backfill_of_an_unknown_schedule(operator, three):
    url = reverse("admin:django_dbos_schedule_backfill", args=["999999"])
    response = operator.get(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:index")
    assert any("with ID “999999” doesn\u2019t exist" in m for m in texts(response))


# -- the detail page ---------------------------------------------------------------------------


def test_detail_shows_definition_and_next_fire_times(admin_client, three):
    page = html.unescape(admin_client.get(change_url("adm-paris")).content.decode())
    assert "tests.schedops.admin.tick" in page
    assert "Europe/Paris" in page
    assert "{'n': 7}" in page  # the context, decoded
    upcoming = re.search(
        r'<div class="readonly">((?:\d{4}-\d\d-\d\d [^<]+<br>){4}[^<]+)</div>', page
    )
    assert upcoming, page
    times = upcoming.group(1).split("<br>")
    assert times[0] == next_local(9, 30, "Europe/Paris")
    assert len(times) == 5 and times == sorted(times)
    paused = admin_client.get(change_url("adm-paused")).content.decode()
    assert "none while paused" in paused

"""The admin: read-only workflow and executor pages, built for large tables.

Workflows here run inline in the test thread (direct calls), so the ordinary rolled-back ``db``
transaction holds everything they write.
"""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_dbos import DBOS, SetWorkflowID
from django_dbos.admin import (
    WorkflowStatusAdmin,
    distinct_workflow_names,
    format_duration,
)
from django_dbos.conf import dbos_settings
from django_dbos.engine.executor import get_executor, reset_executor
from django_dbos.models import (
    Executor,
    Notification,
    OperationOutput,
    QueueConfig,
    Schedule,
    StreamEntry,
    WorkflowEvent,
    WorkflowStatus,
    now_ms,
)
from django_dbos.testing import simulate_crash

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_dbos_workflowstatus_changelist"
EXECUTORS = "admin:django_dbos_executor_changelist"


@DBOS.step(name="tests.admin.double")
def double(x: int) -> int:
    return 2 * x


@DBOS.step(name="tests.admin.explode")
def explode(message: str) -> None:
    raise ValueError(message)


@DBOS.workflow(name="tests.admin.wf")
def admin_wf(x: int) -> int:
    return double(x) + 1


@DBOS.workflow(name="tests.admin.failing")
def failing_wf(message: str) -> None:
    double(1)
    explode(message)


@DBOS.workflow(name="tests.admin.parent")
def parent_wf(x: int) -> dict[str, int]:
    y = double(x)
    return {"double": y, "child": admin_wf(y)}


@pytest.fixture(autouse=True)
def quiet_executor(settings):
    """A fresh executor per test whose heartbeat never fires during it (the heartbeat thread
    has its own connection and would wait on the test's open transaction)."""
    settings.DBOS = {**settings.DBOS, "HEARTBEAT_INTERVAL": 3600.0, "EXECUTOR_TIMEOUT": 7200.0}
    executor = reset_executor()
    yield executor
    executor.stop(retire=False)


def run(workflow, *args, workflow_id: str):
    with SetWorkflowID(workflow_id):
        return workflow(*args)


def run_failing(message: str, workflow_id: str) -> None:
    with pytest.raises(ValueError, match=message), SetWorkflowID(workflow_id):
        failing_wf(message)


def change_url(model: str, pk: str) -> str:
    return reverse(f"admin:django_dbos_{model}_change", args=[quote(pk)])


def rows(response) -> dict[str, str]:
    """The changelist's rows by the linked ID in their first cell."""
    html = response.content.decode()
    found = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S):
        first = re.search(r'<th class="field-[a-z_]+"><a href="[^"]*">([^<]*)</a>', row)
        if first:
            found[first.group(1)] = row
    return found


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("staff", password="pw", is_staff=True)


@pytest.fixture
def viewer(client, staff_user):
    """A logged-in staff user (not a superuser) allowed to view workflows and executors."""
    staff_user.user_permissions.add(
        Permission.objects.get(codename="view_workflowstatus"),
        Permission.objects.get(codename="view_executor"),
    )
    client.force_login(staff_user)
    return client


# -- the list --------------------------------------------------------------------------------


def test_changelist_shows_each_column(admin_client, settings):
    settings.TIME_ZONE = "Europe/Paris"
    assert run(admin_wf, 1, workflow_id="list-ok") == 3
    run_failing("boom", "list-bad")
    with simulate_crash(after_step=1), SetWorkflowID("list-running"):
        admin_wf(2)
    created = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC, 23:13:20 in Paris
    WorkflowStatus.objects.filter(pk="list-ok").update(
        created_at=created,
        started_at_epoch_ms=created,
        updated_at=created + 1500,
        queue_name="emails",
    )

    response = admin_client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    found = rows(response)
    assert set(found) == {"list-ok", "list-bad", "list-running"}
    ok = found["list-ok"]
    assert f'href="{change_url("workflowstatus", "list-ok")}"' in ok
    assert '<span title="tests.admin.wf">wf</span>' in ok
    assert '<span class="dbos-status dbos-status-success">Success</span>' in ok
    assert "emails" in ok
    assert "2023-11-14 23:13:20 CET" in ok  # the project's time zone, not UTC
    assert "1.5 s" in ok
    assert '<span class="dbos-status dbos-status-error">Error</span>' in found["list-bad"]
    running = found["list-running"]
    assert '<span class="dbos-status dbos-status-pending">Pending</span>' in running
    assert '<td class="field-duration">—</td>' in running
    # newest first
    assert list(found) == ["list-running", "list-bad", "list-ok"]
    assert 'href="/static/django_dbos/admin.css"' in response.content.decode()

    detail = admin_client.get(change_url("workflowstatus", "list-ok")).content.decode()
    assert '<div class="readonly">2023-11-14 23:13:20.000 CET</div>' in detail  # created
    assert '<div class="readonly">2023-11-14 23:13:21.500 CET</div>' in detail  # updated
    assert '<div class="readonly">1.5 s</div>' in detail
    assert "None" not in detail  # empty values show the admin's empty mark


def test_status_filter(admin_client):
    run(admin_wf, 1, workflow_id="status-ok")
    run_failing("boom", "status-bad")

    url = reverse(CHANGELIST)
    assert set(rows(admin_client.get(url, {"status__exact": "ERROR"}))) == {"status-bad"}
    assert set(rows(admin_client.get(url, {"status__exact": "SUCCESS"}))) == {"status-ok"}
    assert rows(admin_client.get(url, {"status__exact": "CANCELLED"})) == {}


def test_name_filter_lists_names_and_filters(admin_client):
    run(admin_wf, 1, workflow_id="name-ok-1")
    run(admin_wf, 2, workflow_id="name-ok-2")
    run_failing("boom", "name-bad")

    url = reverse(CHANGELIST)
    page = admin_client.get(url).content.decode()
    assert 'href="?name=tests.admin.wf"' in page
    assert 'href="?name=tests.admin.failing"' in page

    assert set(rows(admin_client.get(url, {"name": "tests.admin.failing"}))) == {"name-bad"}
    assert set(rows(admin_client.get(url, {"name": "tests.admin.wf"}))) == {
        "name-ok-1",
        "name-ok-2",
    }


def test_distinct_workflow_names_is_one_query():
    run(admin_wf, 1, workflow_id="names-1")
    run(admin_wf, 2, workflow_id="names-2")
    run(parent_wf, 3, workflow_id="names-3")  # and its child, another tests.admin.wf
    run_failing("boom", "names-4")
    alias = dbos_settings().DATABASE

    with CaptureQueriesContext(connections[alias]) as queries:
        names = distinct_workflow_names(alias)

    assert len(queries) == 1
    assert names == sorted(set(names))
    assert {"tests.admin.wf", "tests.admin.failing", "tests.admin.parent"} <= set(names)
    assert len(distinct_workflow_names(alias, limit=2)) == 2


def test_search_by_id_prefix(admin_client):
    for workflow_id in ["srch-alpha-1", "srch-alpha-2", "srch-beta-1", "srch_under-1"]:
        run(admin_wf, 1, workflow_id=workflow_id)

    def search(term: str) -> set[str]:
        return set(rows(admin_client.get(reverse(CHANGELIST), {"q": term})))

    assert search("srch-alpha") == {"srch-alpha-1", "srch-alpha-2"}
    assert search("srch-alpha-2") == {"srch-alpha-2"}  # the exact ID
    assert search("  srch-beta-1 ") == {"srch-beta-1"}
    assert search("alpha") == set()  # a prefix, not a substring
    assert search("SRCH-ALPHA") == set()  # IDs are case-sensitive
    assert search("srch_") == {"srch_under-1"}  # "_" is no wildcard
    assert len(search("")) == 4


def test_changelist_query_count_does_not_grow_with_rows(admin_client):
    def page_queries(count: int, prefix: str) -> list[str]:
        for i in range(count):
            run(admin_wf, i, workflow_id=f"{prefix}-{i}")
        with CaptureQueriesContext(connections[dbos_settings().DATABASE]) as queries:
            response = admin_client.get(reverse(CHANGELIST))
        assert response.status_code == 200
        assert len(rows(response)) == len(WorkflowStatus.objects.all())
        return [q["sql"] for q in queries]

    few = page_queries(3, "few")
    many = page_queries(27, "many")  # 30 in all

    assert len(many) == len(few)
    counts = [sql for sql in many if "COUNT(" in sql.upper()]
    assert counts, "the paginator counts"
    assert all("LIMIT" in sql.upper() for sql in counts), counts
    listing = [sql for sql in many if '"created_at" DESC' in sql]
    assert len(listing) == 1
    assert '"inputs"' not in listing[0]  # the large columns stay in the database


def test_count_is_capped_on_large_tables(admin_client, monkeypatch):
    model_admin = admin.site._registry[WorkflowStatus]
    monkeypatch.setattr(model_admin, "list_per_page", 2)
    monkeypatch.setattr(model_admin, "list_max_show_all", 2)
    monkeypatch.setattr(model_admin, "result_count_cap", 5)
    for i in range(3):
        run(admin_wf, i, workflow_id=f"cap-{i}")

    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "3 workflows" in page
    assert "more than" not in page

    for i in range(3, 8):
        run(admin_wf, i, workflow_id=f"cap-{i}")
    response = admin_client.get(reverse(CHANGELIST))
    page = response.content.decode()
    assert "more than 5 workflows" in page
    assert len(rows(response)) == 2
    assert 'href="?p=3"' in page
    assert 'href="?p=4"' not in page
    third = admin_client.get(reverse(CHANGELIST), {"p": 3})
    assert set(rows(third)) == {"cap-3"}  # the 5th newest: pages stop at the cap


# -- the detail page -------------------------------------------------------------------------


def test_detail_shows_decoded_values_and_steps(admin_client):
    assert run(parent_wf, 21, workflow_id="detail-parent") == {"double": 42, "child": 85}
    alias = dbos_settings().DATABASE

    with CaptureQueriesContext(connections[alias]) as queries:
        response = admin_client.get(change_url("workflowstatus", "detail-parent"))

    assert response.status_code == 200
    page = response.content.decode()
    assert '<pre class="dbos-value">args: (21,)\nkwargs: {}</pre>' in page
    assert '<pre class="dbos-value">{&#x27;double&#x27;: 42, &#x27;child&#x27;: 85}</pre>' in page
    steps = page[page.index('<table class="dbos-steps">') :]
    first = steps.index("tests.admin.double")
    second = steps.index("tests.admin.wf")
    assert first < second  # in function_id order
    assert '<pre class="dbos-value">42</pre>' in steps[first:second]
    child = "detail-parent-2"
    assert f'<a href="{change_url("workflowstatus", child)}">{child}</a>' in steps
    step_queries = [q["sql"] for q in queries if "dbos_operation_outputs" in q["sql"]]
    assert len(step_queries) == 1
    assert "ORDER BY" in step_queries[0] and "function_id" in step_queries[0]

    child_page = admin_client.get(change_url("workflowstatus", child)).content.decode()
    assert f'<a href="{change_url("workflowstatus", "detail-parent")}">' in child_page
    assert '<pre class="dbos-value">85</pre>' in child_page


def test_detail_shows_the_error_of_a_failing_workflow(admin_client):
    run_failing("boom-123", "detail-bad")

    page = admin_client.get(change_url("workflowstatus", "detail-bad")).content.decode()

    assert '<span class="dbos-status dbos-status-error">Error</span>' in page
    steps = page[page.index('<table class="dbos-steps">') :]
    assert '<tr class="dbos-step dbos-step-error">' in steps
    assert '<pre class="dbos-value dbos-error">ValueError: boom-123</pre>' in steps
    assert '<pre class="dbos-value">2</pre>' in steps  # the step before it
    fields = page[: page.index('<table class="dbos-steps">')]
    assert '<pre class="dbos-value">ValueError: boom-123</pre>' in fields


def test_detail_falls_back_to_the_stored_text(admin_client):
    run(admin_wf, 1, workflow_id="detail-raw")
    WorkflowStatus.objects.filter(pk="detail-raw").update(output="<b>not json")
    OperationOutput.objects.filter(workflow_id="detail-raw").update(output='{"__dbos__": "??"')

    response = admin_client.get(change_url("workflowstatus", "detail-raw"))

    assert response.status_code == 200
    page = response.content.decode()
    assert re.search(r'<pre class="dbos-value dbos-raw"[^>]*>&lt;b&gt;not json</pre>', page)
    assert re.search(r'<pre class="dbos-value dbos-raw"[^>]*>{&quot;__dbos__&quot;: &quot;', page)


def test_detail_cuts_long_values(admin_client):
    run(admin_wf, 1, workflow_id="detail-long")
    OperationOutput.objects.filter(workflow_id="detail-long").update(
        output='"' + "x" * 30_000 + '"'
    )

    page = admin_client.get(change_url("workflowstatus", "detail-long")).content.decode()

    # the repr, 30,002 characters with its quotes, cut at 20,000 (one of them the opening quote)
    assert "&#x27;" + "x" * 19_999 + "\n… (10002 more characters)</pre>" in page


def test_ids_that_need_quoting_in_urls(admin_client):
    run(parent_wf, 1, workflow_id="odd/id_1?x")

    listing = admin_client.get(reverse(CHANGELIST), {"q": "odd/id_1?"})
    assert set(rows(listing)) == {"odd/id_1?x", "odd/id_1?x-2"}
    page = admin_client.get(change_url("workflowstatus", "odd/id_1?x"))
    assert page.status_code == 200
    child = "odd/id_1?x-2"
    assert f'<a href="{change_url("workflowstatus", child)}">{child}</a>' in page.content.decode()
    assert admin_client.get(change_url("workflowstatus", child)).status_code == 200


def test_detail_shows_every_column():
    shown_as = {
        "status": "status_badge",
        "inputs": "inputs_pretty",
        "output": "output_pretty",
        "error": "error_pretty",
        "attributes": "attributes_pretty",
        "executor_id": "executor_link",
        "parent_workflow_id": "parent_link",
        "forked_from": "forked_from_link",
        "workflow_uuid": "workflow_id",
        "created_at": "created_time",
        "updated_at": "updated_time",
        "started_at_epoch_ms": "started_time",
        "workflow_deadline_epoch_ms": "deadline_time",
        "delay_until_epoch_ms": "delay_until_time",
        "workflow_timeout_ms": "timeout",
    }
    fields = [name for _, options in WorkflowStatusAdmin.fieldsets for name in options["fields"]]
    for field in WorkflowStatus._meta.concrete_fields:
        assert shown_as.get(field.name, field.name) in fields, field.name


# -- permissions and read-only ---------------------------------------------------------------


def test_anonymous_and_non_staff_users_are_sent_to_login(client, django_user_model):
    run(admin_wf, 1, workflow_id="perm-1")
    urls = [reverse(CHANGELIST), change_url("workflowstatus", "perm-1"), reverse(EXECUTORS)]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))

    user = django_user_model.objects.create_user("plain", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_workflowstatus"))
    client.force_login(user)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_view_permission_is_forbidden(client, staff_user):
    run(admin_wf, 1, workflow_id="perm-2")
    client.force_login(staff_user)

    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(change_url("workflowstatus", "perm-2")).status_code == 403
    assert client.get(reverse(EXECUTORS)).status_code == 403


def test_each_model_needs_its_own_view_permission(client, staff_user):
    staff_user.user_permissions.add(Permission.objects.get(codename="view_workflowstatus"))
    client.force_login(staff_user)

    assert client.get(reverse(CHANGELIST)).status_code == 200
    assert client.get(reverse(EXECUTORS)).status_code == 403


def test_staff_with_view_permission_can_only_view(viewer):
    run(admin_wf, 1, workflow_id="perm-3")
    detail = change_url("workflowstatus", "perm-3")

    listing = viewer.get(reverse(CHANGELIST))
    assert listing.status_code == 200
    assert set(rows(listing)) == {"perm-3"}
    page = viewer.get(detail)
    assert page.status_code == 200
    assert "tests.admin.double" in page.content.decode()  # steps need no extra permission
    assert 'name="_save"' not in page.content.decode()
    assert viewer.get(reverse(EXECUTORS)).status_code == 200
    assert viewer.post(detail, {"status": "CANCELLED"}).status_code == 403
    assert WorkflowStatus.objects.get(pk="perm-3").status == "SUCCESS"


def test_nobody_can_add_change_or_delete(admin_client):
    run(admin_wf, 1, workflow_id="perm-4")
    executor_id = get_executor().executor_id

    listing = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert reverse("admin:django_dbos_workflowstatus_add") not in listing
    assert 'name="action"' not in listing  # no bulk delete (nor any action yet)
    detail = admin_client.get(change_url("workflowstatus", "perm-4")).content.decode()
    assert 'name="_save"' not in detail
    assert "deletelink" not in detail
    for model, pk in [("workflowstatus", "perm-4"), ("executor", executor_id)]:
        assert admin_client.get(reverse(f"admin:django_dbos_{model}_add")).status_code == 403
        delete = reverse(f"admin:django_dbos_{model}_delete", args=[quote(pk)])
        assert admin_client.get(delete).status_code == 403
        assert admin_client.post(delete, {"post": "yes"}).status_code == 403
        assert admin_client.post(change_url(model, pk), {}).status_code == 403
    assert WorkflowStatus.objects.filter(pk="perm-4").exists()
    assert Executor.objects.filter(pk=executor_id).exists()


def test_only_workflows_executors_queues_and_schedules_are_registered():
    assert admin.site.is_registered(WorkflowStatus)
    assert admin.site.is_registered(Executor)
    assert admin.site.is_registered(QueueConfig)
    assert admin.site.is_registered(Schedule)
    for model in [Notification, WorkflowEvent, StreamEntry]:
        assert not admin.site.is_registered(model)
    assert not admin.site.is_registered(OperationOutput)


# -- executors -------------------------------------------------------------------------------


def test_executors_list_shows_liveness(admin_client, settings):
    settings.TIME_ZONE = "Europe/Paris"
    run(admin_wf, 1, workflow_id="exec-1")
    executor_id = get_executor().executor_id
    Executor.objects.create(
        executor_id="dead-one",
        hostname="old-host",
        pid=4242,
        application_version="v0",
        started_at=1_700_000_000_000,
        last_heartbeat=now_ms() - 7300 * 1000,  # EXECUTOR_TIMEOUT is 7200 s here
    )
    url = reverse(EXECUTORS)

    found = rows(admin_client.get(url))

    assert set(found) == {executor_id, "dead-one"}
    assert "icon-yes.svg" in found[executor_id]
    dead = found["dead-one"]
    assert "icon-no.svg" in dead
    assert "old-host" in dead and "4242" in dead and "v0" in dead
    assert "2023-11-14 23:13:20 CET" in dead
    assert set(rows(admin_client.get(url, {"alive": "yes"}))) == {executor_id}
    assert set(rows(admin_client.get(url, {"alive": "no"}))) == {"dead-one"}
    detail = admin_client.get(change_url("executor", "dead-one"))
    assert detail.status_code == 200
    assert "old-host" in detail.content.decode()


# -- formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "—"),
        (0, "0 ms"),
        (250, "250 ms"),
        (1500, "1.5 s"),
        (59_999, "60.0 s"),
        (90_000, "1.5 min"),
        (5_400_000, "1.5 h"),
        (-3, "0 ms"),
    ],
)
def test_format_duration(ms, text):
    assert format_duration(ms) == text

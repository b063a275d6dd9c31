"""The queues admin: each declared queue's flow control, backlog counts (linked to the workflow
list) and the live workers serving it, with a warning for a backlog nobody serves; a constant
number of queries per page; read-only, behind the view permission. Also: workers record the
queues they serve on their executor row, and the executors page shows them.

Queue rows, workflow rows and executor rows are written directly (in the test's rolled-back
transaction) except where a real worker must record its queues.
"""

from __future__ import annotations

import html
import re
import time

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_dbos import Queue
from django_dbos.admin import live_servers, queue_backlogs
from django_dbos.conf import dbos_settings
from django_dbos.engine.executor import get_executor, reset_executor
from django_dbos.models import Executor, QueueConfig, WorkflowStatus, now_ms
from django_dbos.queues import INTERNAL_QUEUE_NAME
from django_dbos.testing import running_worker

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_dbos_queueconfig_changelist"
WORKFLOWS = "admin:django_dbos_workflowstatus_changelist"
TIMEOUT_S = 7200.0

served_queue = Queue("tests.qadmin.served", polling_interval_sec=0.05)


@pytest.fixture(autouse=True)
def quiet_executor(settings):
    """A fresh executor per test whose heartbeat never fires during it."""
    settings.DBOS = {**settings.DBOS, "HEARTBEAT_INTERVAL": 3600.0, "EXECUTOR_TIMEOUT": TIMEOUT_S}
    executor = reset_executor()
    yield executor
    executor.stop(retire=False, wait=True)


def alias() -> str:
    return dbos_settings().DATABASE


def queue(name: str, **config) -> QueueConfig:
    return QueueConfig.objects.using(alias()).create(name=name, **config)


_serial = iter(range(1_000_000))


def workflows(queue_name: str, status: str, n: int = 1, *, age_ms: int = 0) -> list[str]:
    ids = [f"qa-{queue_name}-{status}-{next(_serial)}" for _ in range(n)]
    WorkflowStatus.objects.using(alias()).bulk_create(
        WorkflowStatus(
            workflow_uuid=workflow_id,
            status=status,
            name="tests.qadmin.wf",
            queue_name=queue_name,
            created_at=now_ms() - age_ms,
        )
        for workflow_id in ids
    )
    return ids


def executor_row(executor_id: str, queues: list[str] | None, *, alive: bool = True) -> Executor:
    heartbeat = now_ms() if alive else now_ms() - int(2 * TIMEOUT_S * 1000)
    return Executor.objects.using(alias()).create(
        executor_id=executor_id,
        hostname="host-" + executor_id,
        pid=100,
        application_version="v1",
        last_heartbeat=heartbeat,
        queues=queues,
    )


def rows(response) -> dict[str, str]:
    """The changelist's rows (their HTML) by the queue name in their first cell."""
    assert response.status_code == 200
    found = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", response.content.decode(), re.S):
        first = re.search(r'<th class="field-name"><a href="[^"]*">([^<]*)</a>', row)
        if first:
            found[html.unescape(first.group(1))] = row
    return found


def cell(row: str, column: str) -> str:
    """A cell's inner HTML."""
    found = re.search(rf'<td class="field-{column}[^"]*">(.*?)</td>', row, re.S)
    assert found, f"no {column} cell in {row}"
    return found.group(1)


def text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def counts(row: str) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        int(text(cell(row, f"{status}_count"))) for status in ("enqueued", "delayed", "pending")
    )


# -- the list ----------------------------------------------------------------------------------


def test_list_shows_flow_control_counts_and_oldest_age(admin_client):
    queue("qa.plain")
    queue(
        "qa.limited",
        concurrency=10,
        worker_concurrency=2,
        limiter_limit=5,
        limiter_period_sec=1.0,
        priority_enabled=True,
    )
    queue(
        "qa.parts",
        partition_queue=True,
        partition_concurrency=3,
        partition_limiter_limit=2,
        partition_limiter_period_sec=0.5,
    )
    workflows("qa.limited", "ENQUEUED", 2)
    workflows("qa.limited", "ENQUEUED", 1, age_ms=5 * 60_000)
    workflows("qa.limited", "DELAYED", 1)
    workflows("qa.limited", "PENDING", 3)
    workflows("qa.limited", "SUCCESS", 4)  # finished: not counted
    workflows("qa.limited", "ERROR", 1)
    workflows("qa.parts", "PENDING", 1)
    workflows("qa.not-declared", "ENQUEUED", 2)  # no row: not listed, counted nowhere

    found = rows(admin_client.get(reverse(CHANGELIST)))

    assert set(found) == {"qa.plain", "qa.limited", "qa.parts"}
    limited = found["qa.limited"]
    assert text(cell(limited, "flow_control")) == (
        "concurrency 10 · 2 per worker · 5 per 1.0 s · priority"
    )
    assert text(cell(found["qa.parts"], "flow_control")) == (
        "partitioned (per key: concurrency 3, 2 per 500 ms)"
    )
    assert text(cell(found["qa.plain"], "flow_control")) == "unlimited"
    assert counts(limited) == (3, 1, 3)
    assert counts(found["qa.parts"]) == (0, 0, 1)
    assert counts(found["qa.plain"]) == (0, 0, 0)
    assert text(cell(limited, "oldest_enqueued")) == "5.0 min ago"
    assert text(cell(found["qa.parts"], "oldest_enqueued")) == "-"


def test_queue_backlogs_in_one_query():
    workflows("qa.one", "ENQUEUED", 2, age_ms=1000)
    workflows("qa.one", "ENQUEUED", 1, age_ms=9000)
    workflows("qa.one", "DELAYED", 1, age_ms=60_000)  # older, but not ENQUEUED
    workflows("qa.two", "PENDING", 1)
    workflows("qa.three", "ENQUEUED", 1)  # not asked for

    with CaptureQueriesContext(connections[alias()]) as queries:
        backlogs = queue_backlogs(alias(), ["qa.one", "qa.two", "qa.none"])

    assert len(queries) == 1
    assert set(backlogs) == {"qa.one", "qa.two"}
    one = backlogs["qa.one"]
    assert (one.enqueued, one.delayed, one.pending, one.waiting) == (3, 1, 0, 4)
    oldest = WorkflowStatus.objects.filter(queue_name="qa.one", status="ENQUEUED").order_by(
        "created_at"
    )[0]
    assert one.oldest_enqueued_at == oldest.created_at
    assert backlogs["qa.two"].oldest_enqueued_at is None
    assert queue_backlogs(alias(), []) == {}


# -- who serves a queue ------------------------------------------------------------------------


def test_served_by_counts_live_workers_and_warns_about_unserved_backlogs(admin_client):
    for name in ["qa.served", "qa.stale-only", "qa.idle", INTERNAL_QUEUE_NAME]:
        queue(name)
    executor_row("live-1", ["qa.served", INTERNAL_QUEUE_NAME])
    executor_row("live-2", ["qa.served", INTERNAL_QUEUE_NAME])
    executor_row("stale", ["qa.stale-only", "qa.served", INTERNAL_QUEUE_NAME], alive=False)
    executor_row("web", None)  # runs no dispatcher: serves nothing
    workflows("qa.served", "ENQUEUED", 4)
    workflows("qa.stale-only", "ENQUEUED", 2)
    workflows("qa.stale-only", "DELAYED", 1)
    workflows(INTERNAL_QUEUE_NAME, "ENQUEUED", 1)

    found = rows(admin_client.get(reverse(CHANGELIST)))

    assert text(cell(found["qa.served"], "served_by")) == "2 workers"
    assert text(cell(found[INTERNAL_QUEUE_NAME], "served_by")) == "2 workers"
    assert counts(found[INTERNAL_QUEUE_NAME]) == (1, 0, 0)
    unserved = cell(found["qa.stale-only"], "served_by")
    assert "dbos-unserved" in unserved
    assert text(unserved) == "⚠ no worker"
    assert "its 3 waiting workflows will not run" in unserved
    # nobody serves it, but nothing waits in it: no alarm
    assert text(cell(found["qa.idle"], "served_by")) == "0 workers"
    assert "dbos-unserved" not in found["qa.idle"]
    assert "dbos-unserved" not in found["qa.served"]


def test_live_servers_reads_live_executors_once():
    executor_row("live", ["qa.a", "qa.b"])
    executor_row("dead", ["qa.a", "qa.c"], alive=False)
    executor_row("web", None)

    with CaptureQueriesContext(connections[alias()]) as queries:
        servers = live_servers(alias())

    assert len(queries) == 1
    assert {name: [e.executor_id for e in found] for name, found in servers.items()} == {
        "qa.a": ["live"],
        "qa.b": ["live"],
    }


@pytest.mark.django_db(transaction=True)
def test_a_worker_records_the_queues_it_serves_and_a_web_process_none(admin_client, settings):
    settings.DBOS = {**settings.DBOS, "HEARTBEAT_INTERVAL": 0.2, "EXECUTOR_TIMEOUT": 30.0}
    web = get_executor()
    web.ensure_started()  # what the first workflow a web process runs does
    assert Executor.objects.get(executor_id=web.executor_id).queues is None
    queue(served_queue.name)
    workflows(served_queue.name, "DELAYED", 1)  # waits (delayed): no worker runs it meanwhile

    with running_worker(queues=[served_queue.name], threads=1) as worker:
        row = _wait_for_executor(worker.executor_id)
        assert row.queues == [served_queue.name, INTERNAL_QUEUE_NAME]
        listed = rows(admin_client.get(reverse(CHANGELIST)))[served_queue.name]
        assert text(cell(listed, "served_by")) == "1 worker"

    # the worker retired its row on exit: the waiting workflow is now unserved
    listed = rows(admin_client.get(reverse(CHANGELIST)))[served_queue.name]
    assert text(cell(listed, "served_by")) == "⚠ no worker"


def _wait_for_executor(executor_id: str) -> Executor:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = Executor.objects.filter(executor_id=executor_id).first()
        if row is not None:
            return row
        time.sleep(0.02)
    raise AssertionError(f"executor {executor_id} never registered")


def test_serving_after_registration_rewrites_the_row(quiet_executor):
    quiet_executor.ensure_started()
    assert Executor.objects.get(executor_id=quiet_executor.executor_id).queues is None

    quiet_executor.serve(["qa.x", "qa.y", "qa.x"])

    assert Executor.objects.get(executor_id=quiet_executor.executor_id).queues == ["qa.x", "qa.y"]


# -- links, detail page, executors page ------------------------------------------------------


def test_counts_link_to_the_workflow_list_filtered_by_queue_and_status(admin_client):
    queue("qa.linked")
    queue("qa.neighbour")
    enqueued = workflows("qa.linked", "ENQUEUED", 2)
    delayed = workflows("qa.linked", "DELAYED", 1)
    pending = workflows("qa.linked", "PENDING", 1)
    workflows("qa.linked", "SUCCESS", 1)
    workflows("qa.neighbour", "ENQUEUED", 1)
    row = rows(admin_client.get(reverse(CHANGELIST)))["qa.linked"]

    for column, expected in [("enqueued", enqueued), ("delayed", delayed), ("pending", pending)]:
        href = re.search(r'href="([^"]*)"', cell(row, f"{column}_count"))
        assert href, column
        url = html.unescape(href.group(1))
        assert url.startswith(reverse(WORKFLOWS) + "?")
        listing = admin_client.get(url)
        assert listing.status_code == 200
        shown = set(
            re.findall(
                r'<th class="field-workflow_id"><a href="[^"]*">([^<]*)</a>',
                listing.content.decode(),
            )
        )
        assert shown == set(expected), column


def test_detail_page_shows_the_configuration_backlog_and_live_workers(admin_client):
    queue("qa.detail", concurrency=4, limiter_limit=5, limiter_period_sec=1.0)
    executor_row("serving-live", ["qa.detail"])
    executor_row("serving-dead", ["qa.detail"], alive=False)
    workflows("qa.detail", "ENQUEUED", 2, age_ms=90_000)
    url = reverse("admin:django_dbos_queueconfig_change", args=[quote("qa.detail")])

    page = admin_client.get(url)

    assert page.status_code == 200
    content = page.content.decode()
    assert "5 per 1.0 s" in content
    assert "1.5 min ago" in content
    assert "1 worker" in content
    assert reverse("admin:django_dbos_executor_change", args=["serving-live"]) in content
    assert "serving-dead" not in content
    assert 'name="_save"' not in content
    assert "deletelink" not in content


def test_executors_page_shows_the_queues_each_serves(admin_client):
    executor_row("worker-a", ["qa.one", INTERNAL_QUEUE_NAME])
    executor_row("web-b", None)

    content = admin_client.get(reverse("admin:django_dbos_executor_changelist")).content.decode()

    worker = re.search(r"worker-a</a></th>(.*?)</tr>", content, re.S)
    web = re.search(r"web-b</a></th>(.*?)</tr>", content, re.S)
    assert worker and web
    assert text(cell(worker.group(1), "served_queues")) == f"qa.one, {INTERNAL_QUEUE_NAME}"
    assert text(cell(web.group(1), "served_queues")) == "-"


# -- cost --------------------------------------------------------------------------------------


def _page_queries(admin_client, n: int) -> tuple[int, dict[str, str]]:
    QueueConfig.objects.using(alias()).all().delete()
    for i in range(n):
        name = f"qa.n{n}.{i:02d}"
        queue(name, concurrency=i + 1)
        workflows(name, "ENQUEUED", 1 + i % 3)
        workflows(name, "PENDING", 1)
        executor_row(f"x{n}-{i}", [name], alive=i % 2 == 0)
    with CaptureQueriesContext(connections[alias()]) as queries:
        found = rows(admin_client.get(reverse(CHANGELIST)))
    return len(queries), found


def test_the_list_costs_the_same_queries_for_3_and_30_queues(admin_client):
    few, shown_few = _page_queries(admin_client, 3)
    many, shown_many = _page_queries(admin_client, 30)

    assert len(shown_few) == 3
    assert len(shown_many) == 30
    assert few == many
    for i in (0, 1, 29):
        row = shown_many[f"qa.n30.{i:02d}"]
        assert counts(row) == (1 + i % 3, 0, 1)
        assert text(cell(row, "served_by")) == ("1 worker" if i % 2 == 0 else "⚠ no worker")


# -- permissions -------------------------------------------------------------------------------


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    return user


def test_staff_without_view_permission_get_403(client, staff):
    queue("qa.secret")
    assert client.get(reverse(CHANGELIST)).status_code == 403
    detail = reverse("admin:django_dbos_queueconfig_change", args=[quote("qa.secret")])
    assert client.get(detail).status_code == 403


def test_non_staff_are_sent_to_the_login_page(client, django_user_model):
    queue("qa.secret")
    client.force_login(django_user_model.objects.create_user("visitor", password="pw"))
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    client.logout()
    assert client.get(reverse(CHANGELIST)).status_code == 302


def test_viewers_see_counts_linked_only_if_they_may_view_workflows(client, staff):
    queue("qa.viewed")
    workflows("qa.viewed", "ENQUEUED", 2)
    staff.user_permissions.add(Permission.objects.get(codename="view_queueconfig"))

    row = rows(client.get(reverse(CHANGELIST)))["qa.viewed"]
    assert text(cell(row, "enqueued_count")) == "2"
    assert "href" not in cell(row, "enqueued_count")

    staff.user_permissions.add(Permission.objects.get(codename="view_workflowstatus"))
    row = rows(client.get(reverse(CHANGELIST)))["qa.viewed"]
    assert reverse(WORKFLOWS) in cell(row, "enqueued_count")


def test_nobody_can_add_change_or_delete_a_queue(admin_client):
    queue("qa.fixed", concurrency=1)
    listing = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert reverse("admin:django_dbos_queueconfig_add") not in listing
    assert 'name="action"' not in listing
    assert admin_client.get(reverse("admin:django_dbos_queueconfig_add")).status_code == 403
    delete = reverse("admin:django_dbos_queueconfig_delete", args=[quote("qa.fixed")])
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    change = reverse("admin:django_dbos_queueconfig_change", args=[quote("qa.fixed")])
    assert admin_client.post(change, {"concurrency": 99}).status_code == 403
    assert QueueConfig.objects.get(name="qa.fixed").concurrency == 1

"""DBOSClient and its database (django_dbos/client_setup.py): which database a client uses in a
Django process, a destroyed client, and a client in a process with no Django project at all (a
real subprocess without DJANGO_SETTINGS_MODULE)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from django_dbos import DBOSClient, DBOSConfigurationError, DBOSException
from django_dbos.engine.executor import application_version
from django_dbos.models import WorkflowStatus
from django_dbos.testing import running_worker
from tests import client_workflows as cwf
from tests.client_workflows import database_url, options
from tests.conftest import REPO, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _queues_stored():
    cwf.store_queues()


# -- finding the database ------------------------------------------------------------------------


def test_which_database_a_client_uses_in_a_django_process():
    with DBOSClient(database_url=database_url()) as same:  # the project's own: accepted
        assert same.get_workflow_status("c-nobody") is None
    with DBOSClient(using="default") as named:
        named.check_connection()
        assert repr(named) == "<DBOSClient using='default'>"
    with pytest.raises(DBOSConfigurationError, match=r"using='default'"):
        DBOSClient(database_url="sqlite:////tmp/some-other-project.sqlite3")
    with pytest.raises(DBOSConfigurationError, match="system tables"):
        DBOSClient(using="other")
    with pytest.raises(DBOSConfigurationError, match="not both"):
        DBOSClient(database_url=database_url(), using="default")
    with pytest.raises(DBOSConfigurationError, match=r"settings\.DBOS"):
        DBOSClient(settings={"SERIALIZER": "x"})
    with pytest.raises(DBOSConfigurationError, match="PostgreSQL"):
        DBOSClient(database_url="mysql://u@h/db")


def test_a_destroyed_client_refuses_calls():
    destroyed = DBOSClient()
    destroyed.destroy()
    destroyed.destroy()  # twice is fine
    with pytest.raises(DBOSException, match="destroyed"):
        destroyed.enqueue(options(), "x")
    with pytest.raises(DBOSException, match="destroyed"):
        destroyed.read_stream("w", "k")


# -- a process without a Django project -----------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    from django.apps import apps
    from django.conf import settings
    from django_dbos import DBOSClient, DBOSQueueNotFoundError

    assert not settings.configured
    report = {}
    with DBOSClient(database_url=sys.argv[1]) as client:
        try:
            client.enqueue({"workflow_name": "tests.client.greet", "queue_name": "nope"}, "x")
        except DBOSQueueNotFoundError as exc:
            report["unknown_queue"] = str(exc)
        handle = client.enqueue(
            {"workflow_name": "tests.client.greet", "queue_name": "tests.client",
             "workflow_id": "c-standalone"},
            "from afar",
        )
        report["result"] = handle.get_result(timeout=60)
        report["event"] = client.get_event("c-standalone", "greeted", 10)
        report["status"] = client.get_workflow_status("c-standalone").status
        report["apps"] = [app.name for app in apps.get_app_configs()]
        report["threads_in_use"] = sorted(t.name for t in threading.enumerate())
    report["threads_after"] = sorted(t.name for t in threading.enumerate())
    with DBOSClient(database_url=sys.argv[1]) as again:  # reopens what destroy() closed
        report["again"] = again.get_workflow_status("c-standalone").status
    try:
        DBOSClient(database_url="sqlite:////tmp/another-project.sqlite3")
    except Exception as exc:
        report["other_database"] = type(exc).__name__
    print(json.dumps(report))
    """
)


@pytest.mark.slow
def test_a_process_without_a_django_project_enqueues_by_name_and_reads_the_result():
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}}
    env["PYTHONPATH"] = str(REPO)
    with running_worker(queues=[cwf.QUEUE]):
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, database_url()],
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "No queue named 'nope'" in report["unknown_queue"]
    assert "tests.client" in report["unknown_queue"]  # the known queues are listed
    assert (report["result"], report["event"], report["status"]) == (
        "hello from afar!",
        "from afar",
        "SUCCESS",
    )
    assert report["apps"] == ["django_dbos"]
    # no executor, heartbeat or pool in the client's process; nothing left after destroy()
    assert not any("heartbeat" in n or "workflow" in n for n in report["threads_in_use"])
    assert report["threads_in_use"] == ["MainThread"]  # no LISTEN thread either: waits poll
    assert report["threads_after"] == ["MainThread"]
    assert (report["again"], report["other_database"]) == ("SUCCESS", "DBOSConfigurationError")
    row = WorkflowStatus.objects.get(pk="c-standalone")
    assert row.application_version == application_version()


MISTAKES = textwrap.dedent(
    """
    import sys
    from django_dbos import DBOSClient, DBOSConfigurationError

    def refused(**kwargs):
        try:
            DBOSClient(**kwargs)
        except DBOSConfigurationError as exc:
            return str(exc)
        return "accepted"

    print(refused())
    print(refused(database_url="sqlite://:memory:"))
    print(refused(database_url=sys.argv[1], settings={"POLL_INTERVAL": -1}))
    """
)


def test_a_process_without_a_project_is_told_what_to_fix(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}}
    env["PYTHONPATH"] = str(REPO)

    def run(script: str, url: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", script, url], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()

    no_url, in_memory, bad_settings = run(MISTAKES, database_url())
    assert "needs database_url=" in no_url
    assert "in-memory" in in_memory
    assert "POLL_INTERVAL" in bad_settings
    (no_tables,) = run(
        "import sys\nfrom django_dbos import DBOSClient\n"
        "try:\n    DBOSClient(database_url=sys.argv[1])\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n",
        f"sqlite:///{tmp_path / 'empty.db'}",
    )
    assert no_tables.startswith("DBOSConfigurationError") and "migrate" in no_tables


def test_a_script_with_django_settings_module_but_no_setup():
    """``DJANGO_SETTINGS_MODULE`` set, ``django.setup()`` not called: the client sets Django up
    with the project's settings (and its workflows modules) and uses the project's database."""
    with DBOSClient() as client:
        client.enqueue(options(workflow_id="c-script"), "x")
    script = (
        "from django_dbos import DBOSClient\n"
        "with DBOSClient() as client:\n"
        "    print(client.get_workflow_status('c-script').status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=worker_env(DJANGO_SETTINGS_MODULE="testproject.settings"),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "ENQUEUED"

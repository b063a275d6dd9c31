"""DebouncerClient (django_dbos/client_debouncer.py): debouncing a workflow by its registered
name through a DBOSClient: one run per burst with the last call's arguments, the timeout cap,
the window shared with a worker's ``Debouncer``, the options, the async twin, and bad input that
writes nothing."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
from django.db import transaction

from django_dbos import (
    DBOSClient,
    DBOSInvalidArgumentError,
    DBOSQueueNotFoundError,
    DBOSSerializationError,
    DebouncerClient,
    EnqueueOptions,
)
from django_dbos.client_handles import (
    WorkflowHandleClientAsyncPolling,
    WorkflowHandleClientPolling,
)
from django_dbos.engine.debouncer import marker
from django_dbos.engine.queues import store_config
from django_dbos.models import WorkflowStatus
from django_dbos.queues import INTERNAL_QUEUE_NAME
from django_dbos.testing import running_worker
from tests import debounce_workflows as dw
from tests.client_workflows import database_url
from tests.conftest import REPO

pytestmark = pytest.mark.django_db(transaction=True)

FAST = dw.fast.name
ECHO = "tests.debounce.echo"


@pytest.fixture(autouse=True)
def _fresh():
    with dw.runs_lock:
        dw.runs.clear()


@pytest.fixture
def client():
    with DBOSClient() as c:
        yield c


def echo_options(**extra) -> EnqueueOptions:
    return EnqueueOptions(workflow_name=ECHO, queue_name=FAST, **extra)


def row(workflow_id: str) -> WorkflowStatus:
    return WorkflowStatus.objects.get(workflow_uuid=workflow_id)


# -- a burst becomes one run ----------------------------------------------------------------------


def test_a_burst_runs_once_with_the_last_arguments(client):
    debouncer = DebouncerClient(client, echo_options())
    handles = [debouncer.debounce("k", 0.3, i) for i in range(5)]
    assert all(isinstance(h, WorkflowHandleClientPolling) for h in handles)
    assert len({h.workflow_id for h in handles}) == 1
    stored = row(handles[0].workflow_id)
    # the row DBOSClient.enqueue writes, holding the window's marker
    assert (stored.status, stored.name, stored.queue_name, stored.application_version) == (
        "DELAYED",
        ECHO,
        FAST,
        None,
    )
    assert stored.deduplication_id == marker(ECHO, "k")
    assert WorkflowStatus.objects.count() == 1
    with running_worker(queues=[FAST]):
        assert handles[-1].get_result(timeout=30) == 4
    assert dw.runs == [("echo", 4)]


def test_the_timeout_caps_the_start_at_the_first_call_plus_timeout(client):
    debouncer = DebouncerClient(client, echo_options(), debounce_timeout_sec=1.0)
    first = debouncer.debounce("k", 30, "a")
    stored = row(first.workflow_id)
    assert stored.delay_until_epoch_ms <= stored.created_at + 1000 + 5  # min(period, timeout)
    for value in ("b", "c"):
        assert debouncer.debounce("k", 30, value).workflow_id == first.workflow_id
        assert row(first.workflow_id).delay_until_epoch_ms == stored.created_at + 1000
    uncapped = DebouncerClient(client, echo_options())
    other = uncapped.debounce("other-key", 30, "x")
    assert row(other.workflow_id).delay_until_epoch_ms > row(other.workflow_id).created_at + 29_000
    with running_worker(queues=[FAST]):  # the cap, not the 30 s period, starts it
        assert first.get_result(timeout=20) == "c"


def test_the_window_is_shared_with_a_workers_debouncer(client):
    in_worker = dw.echo_debouncer.debounce("shared", 3600, "from the worker side")
    from_client = DebouncerClient(client, echo_options()).debounce("shared", 0.1, "from a client")
    assert from_client.workflow_id == in_worker.workflow_id
    with running_worker(queues=[FAST]):
        assert in_worker.get_result(timeout=30) == "from a client"


def test_keys_workflows_and_queues_have_separate_windows(client):
    echo = DebouncerClient(client, echo_options())
    other = DebouncerClient(
        client, EnqueueOptions(workflow_name="tests.debounce.other", queue_name=FAST)
    )
    internal = DebouncerClient(client, echo_options(), queue=INTERNAL_QUEUE_NAME)
    ids = {
        echo.debounce("a", 3600, 1).workflow_id,
        echo.debounce("b", 3600, 2).workflow_id,
        other.debounce("a", 3600, 3).workflow_id,
        internal.debounce("a", 3600, 4).workflow_id,
    }
    assert len(ids) == 4
    assert WorkflowStatus.objects.filter(queue_name=INTERNAL_QUEUE_NAME).count() == 1
    assert DebouncerClient(client, echo_options(), queue=dw.fast).queue_name == FAST


def test_options_apply_to_a_new_window(client):
    debouncer = DebouncerClient(
        client,
        echo_options(
            workflow_id="c-debounced",
            workflow_timeout=5,
            app_version="v-client",
            attributes={"tenant": "acme"},
        ),
    )
    first = debouncer.debounce("k", 3600, "a")
    assert first.workflow_id == "c-debounced"
    stored = row("c-debounced")
    assert (stored.workflow_timeout_ms, stored.application_version) == (5000, "v-client")
    assert client.get_workflow_status("c-debounced").attributes == {"tenant": "acme"}
    assert debouncer.debounce("k", 3600, "b").workflow_id == "c-debounced"  # an open window


def test_the_call_joins_the_callers_transaction(client):
    debouncer = DebouncerClient(client, echo_options())
    with transaction.atomic():
        handle = debouncer.debounce("k", 3600, "a")
        transaction.set_rollback(True)
    assert not WorkflowStatus.objects.filter(workflow_uuid=handle.workflow_id).exists()


def test_debounce_async(client):
    debouncer = DebouncerClient(client, echo_options())

    async def burst():
        handles = [await debouncer.debounce_async("k", 0.2, i) for i in range(3)]
        with running_worker(queues=[FAST]):
            result = await handles[0].get_result(timeout=30)
        return handles, result

    handles, result = asyncio.run(burst())
    assert all(isinstance(h, WorkflowHandleClientAsyncPolling) for h in handles)
    assert len({h.workflow_id for h in handles}) == 1
    assert result == 2
    assert dw.runs == [("echo", 2)]


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "mentions"),
    [
        ({"deduplication_id": "mine"}, "deduplication_id"),
        ({"delay_seconds": 3}, "delay_seconds"),
        ({"priority": 1}, "priority"),
        ({"queue_partition_key": "p"}, "queue_partition_key"),
        ({"workflow_timeout": -1}, "workflow_timeout"),
        ({"workflow_name": ""}, "workflow_name"),
        ({"nonsense": 1}, "keys"),
    ],
)
def test_bad_workflow_options_are_refused_at_creation(client, options, mentions):
    with pytest.raises(DBOSInvalidArgumentError, match=mentions):
        DebouncerClient(client, {**echo_options(), **options})


@pytest.mark.parametrize("timeout", [0, -2, math.nan, False, "1"])
def test_a_timeout_must_be_a_positive_number(client, timeout):
    with pytest.raises(DBOSInvalidArgumentError, match="debounce_timeout_sec"):
        DebouncerClient(client, echo_options(), debounce_timeout_sec=timeout)


def test_bad_client_and_queues(client):
    with pytest.raises(DBOSInvalidArgumentError, match="DBOSClient"):
        DebouncerClient("not a client", echo_options())  # type: ignore[arg-type]
    with pytest.raises(DBOSInvalidArgumentError, match="partition_queue"):
        DebouncerClient(client, echo_options(), queue=dw.partitioned)
    with pytest.raises(DBOSInvalidArgumentError, match="queue"):
        DebouncerClient(client, echo_options(), queue=42)  # type: ignore[arg-type]
    by_name = DebouncerClient(client, echo_options(), queue=dw.partitioned.name)
    with pytest.raises(DBOSInvalidArgumentError, match="partition_queue"):
        by_name.debounce("k", 1, "a")
    unknown = DebouncerClient(client, EnqueueOptions(workflow_name=ECHO, queue_name="no.such.q"))
    with pytest.raises(DBOSQueueNotFoundError, match=r"no\.such\.q"):
        unknown.debounce("k", 1, "a")
    assert not WorkflowStatus.objects.exists()


@pytest.mark.parametrize(
    ("key", "period", "error", "mentions"),
    [
        (None, 1, DBOSInvalidArgumentError, "debounce_key"),
        (b"k", 1, DBOSInvalidArgumentError, "debounce_key"),
        ("k" * 250, 1, DBOSInvalidArgumentError, "at most"),
        ("k", 0, DBOSInvalidArgumentError, "debounce_period_sec"),
        ("k", math.inf, DBOSInvalidArgumentError, "debounce_period_sec"),
        ("k", "5", DBOSInvalidArgumentError, "debounce_period_sec"),
    ],
)
def test_a_bad_call_writes_nothing(client, key, period, error, mentions):
    debouncer = DebouncerClient(client, echo_options())
    with pytest.raises(error, match=mentions):
        debouncer.debounce(key, period, "a")
    assert not WorkflowStatus.objects.exists()


def test_unserializable_arguments_write_nothing(client):
    debouncer = DebouncerClient(client, echo_options())
    with pytest.raises(DBOSSerializationError):
        debouncer.debounce("k", 1, object())
    assert not WorkflowStatus.objects.exists()
    first = debouncer.debounce("k", 3600, "a")
    with pytest.raises(DBOSSerializationError):
        debouncer.debounce("k", 1, object())
    assert row(first.workflow_id).inputs == WorkflowStatus.objects.get().inputs


# -- a process without the workflows --------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from django_dbos import DBOSClient, DebouncerClient, EnqueueOptions

    with DBOSClient(database_url=sys.argv[1]) as client:
        debouncer = DebouncerClient(
            client, EnqueueOptions(workflow_name=sys.argv[2], queue_name=sys.argv[3])
        )
        handles = [debouncer.debounce("far", 0.2, i) for i in range(3)]
        result = handles[0].get_result(timeout=60)
    print(json.dumps({"ids": sorted({h.workflow_id for h in handles}), "result": result}))
    """
)


@pytest.mark.slow
def test_a_process_without_the_workflows_debounces_them_by_name():
    dw.fast.stored = False
    store_config(dw.fast)  # what the other process finds the queue by
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(REPO)
    with running_worker(queues=[FAST]):
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, database_url(), ECHO, FAST],
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report["ids"]) == 1
    assert report["result"] == 2
    assert dw.runs == [("echo", 2)]

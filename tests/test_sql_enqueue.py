"""``dbos_enqueue(...)`` (migration 0006): enqueueing from raw SQL and from a PL/pgSQL trigger,
run by a worker like any enqueued workflow; every refusal raises and writes nothing."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from django.db import DatabaseError, connection

from django_dbos import DBOS, DBOSQueueDeduplicatedError, SetEnqueueOptions, serialization
from django_dbos.engine.executor import application_version
from django_dbos.engine.queues import store_config
from django_dbos.errors import DBOSSerializationError
from django_dbos.models import Executor, WorkflowStatus
from django_dbos.testing import running_worker
from tests import sql_enqueue_workflows as sw
from tests.conftest import postgres_only

pytestmark = [pytest.mark.django_db(transaction=True), postgres_only]

QUEUES = [sw.sql_queue, sw.sql_prio, sw.sql_parts, sw.sql_notify]


@pytest.fixture(autouse=True)
def _queues_stored():
    """``dbos_enqueue`` needs the queue's row in ``dbos_queues``; a transactional test's flush
    removed the one an earlier test stored, so store them again (as a worker start would)."""
    for queue in QUEUES:
        queue.stored = False
        store_config(queue)


def sql_enqueue(queue: str, workflow: str, **named: Any) -> str:
    """``SELECT dbos_enqueue(queue, workflow, name => value, ...)`` on the test's connection."""
    parts, params = ["%s", "%s"], [queue, workflow]
    for key, value in named.items():
        if key in ("args", "kwargs"):
            parts.append(f"{key} => %s::jsonb")
            params.append(value if isinstance(value, str) else json.dumps(value))
        else:
            parts.append(f"{key} => %s")
            params.append(value)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT dbos_enqueue({', '.join(parts)})", params)
        return cursor.fetchone()[0]


def row(workflow_id: str) -> WorkflowStatus:
    return WorkflowStatus.objects.get(workflow_uuid=workflow_id)


def test_raw_sql_enqueue_runs_with_its_arguments():
    args = [1, "two", 3.5, None, True, [1, {"nested": ["x"]}], {"a": {"b": 2}}]
    kwargs = {"name": "Zoë", "big": 12345678901234567890, "empty": {}, "list": []}
    workflow_id = sql_enqueue(
        sw.sql_queue.name, "tests.sqlenq.echo", args=args, kwargs=kwargs,
        app_version=application_version(),
    )  # fmt: skip
    stored = row(workflow_id)
    assert stored.status == "ENQUEUED"
    assert stored.queue_name == "tests.sqlenq.queue"
    assert stored.name == "tests.sqlenq.echo"
    assert stored.application_version == application_version()
    assert stored.priority == 0 and stored.recovery_attempts == 0
    assert stored.executor_id is None and stored.started_at_epoch_ms is None
    assert stored.delay_until_epoch_ms is None and stored.deduplication_id is None
    assert abs(stored.created_at - time.time() * 1000) < 60_000
    assert stored.updated_at == stored.created_at
    # the worker decodes what the JSON serializer would have written for the same values
    assert serialization.deserialize_args(stored.inputs) == (tuple(args), kwargs)
    assert serialization.deserialize_args(stored.inputs) == serialization.deserialize_args(
        serialization.serialize_args(tuple(args), kwargs)
    )
    assert json.loads(stored.inputs) == json.loads(serialization.serialize_args(args, kwargs))
    with running_worker(queues=[sw.sql_queue.name]):
        result = DBOS.retrieve_workflow(workflow_id).get_result(timeout=30)
    assert result == {"args": args, "kwargs": kwargs}
    assert row(workflow_id).status == "SUCCESS"


def test_defaults_generate_a_uuid_and_pass_no_arguments():
    workflow_id = sql_enqueue(
        sw.sql_queue.name, "tests.sqlenq.echo", app_version=application_version()
    )
    assert len(workflow_id) == 36 and workflow_id.count("-") == 4
    assert serialization.deserialize_args(row(workflow_id).inputs) == ((), {})
    with running_worker(queues=[sw.sql_queue.name]):
        assert DBOS.retrieve_workflow(workflow_id).get_result(timeout=30) == {
            "args": [],
            "kwargs": {},
        }


def test_app_version_defaults_to_the_newest_live_executors():
    with running_worker(queues=[sw.sql_queue.name]) as worker:
        deadline = time.monotonic() + 10
        while not Executor.objects.filter(executor_id=worker.executor_id).exists():
            assert time.monotonic() < deadline, "the worker never registered"
            time.sleep(0.02)
        workflow_id = sql_enqueue(
            sw.sql_queue.name, "tests.sqlenq.greet", args=["ada"], workflow_id="sqlenq-version"
        )
        assert workflow_id == "sqlenq-version"
        assert DBOS.retrieve_workflow(workflow_id).get_result(timeout=30) == "hello ada."
    assert row(workflow_id).application_version == application_version()
    assert row(workflow_id).status == "SUCCESS"


def test_without_a_version_or_a_live_executor_any_worker_claims_it():
    # a trigger enqueueing while every worker is down must not fail the application's INSERT
    Executor.objects.update(last_heartbeat=0)  # every executor is dead
    workflow_id = sql_enqueue(sw.sql_queue.name, "tests.sqlenq.greet", args=["eve"])
    assert row(workflow_id).application_version is None
    with running_worker(queues=[sw.sql_queue.name]):
        assert DBOS.retrieve_workflow(workflow_id).get_result(timeout=30) == "hello eve."
    assert row(workflow_id).application_version == application_version()  # stamped at claim


def test_an_idle_worker_wakes_for_a_delayed_enqueue_from_sql():
    with running_worker(queues=[sw.sql_notify.name]):
        time.sleep(0.5)  # the dispatcher's first round found nothing; it now waits 60 s
        began = time.monotonic()
        workflow_id = sql_enqueue(
            sw.sql_notify.name, "tests.sqlenq.greet", args=["dee"], delay_seconds=0.5,
            app_version=application_version(),
        )  # fmt: skip
        assert row(workflow_id).status == "DELAYED"
        assert DBOS.retrieve_workflow(workflow_id).get_result(timeout=20) == "hello dee."
    # woken by the DELAYED insert's NOTIFY, it slept until the delay ran out, not 60 s
    assert time.monotonic() - began < 15


def test_an_idle_worker_is_woken_by_the_notify_trigger():
    with running_worker(queues=[sw.sql_notify.name]):
        time.sleep(0.5)  # the dispatcher's first round found nothing; it now waits 60 s
        began = time.monotonic()
        workflow_id = sql_enqueue(
            sw.sql_notify.name, "tests.sqlenq.greet", args=["bob"],
            app_version=application_version(),
        )  # fmt: skip
        assert DBOS.retrieve_workflow(workflow_id).get_result(timeout=20) == "hello bob."
    assert time.monotonic() - began < 15


def test_enqueue_from_a_plpgsql_trigger():
    literal = "'" + application_version().replace("'", "''") + "'"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE sqlenq_orders (id serial PRIMARY KEY, customer text NOT NULL, "
            "queue text NOT NULL DEFAULT 'tests.sqlenq.queue')"
        )
        cursor.execute(
            f"""
            CREATE FUNCTION sqlenq_order_created() RETURNS trigger AS $$
            BEGIN
                PERFORM dbos_enqueue(
                    NEW.queue, 'tests.sqlenq.greet',
                    args => jsonb_build_array(NEW.customer),
                    kwargs => jsonb_build_object('punctuation', '!'),
                    workflow_id => 'sqlenq-order-' || NEW.id,
                    app_version => {literal});
                RETURN NEW;
            END; $$ LANGUAGE plpgsql
            """
        )
        cursor.execute(
            "CREATE TRIGGER sqlenq_order_created AFTER INSERT ON sqlenq_orders "
            "FOR EACH ROW EXECUTE FUNCTION sqlenq_order_created()"
        )
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO sqlenq_orders (customer) VALUES ('ada'), ('grace') RETURNING id"
            )
            ids = [r[0] for r in cursor.fetchall()]
        workflow_ids = [f"sqlenq-order-{i}" for i in ids]
        assert [row(w).status for w in workflow_ids] == ["ENQUEUED", "ENQUEUED"]
        with running_worker(queues=[sw.sql_queue.name]):
            results = [DBOS.retrieve_workflow(w).get_result(timeout=30) for w in workflow_ids]
        assert results == ["hello ada!", "hello grace!"]
        assert [row(w).status for w in workflow_ids] == ["SUCCESS", "SUCCESS"]
        # a refusal in the trigger fails the INSERT that fired it: neither row is written
        refused = pytest.raises(DatabaseError, match=re.escape("unknown queue 'tests.sqlenq.no'"))
        with refused, connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO sqlenq_orders (customer, queue) VALUES ('eve', 'tests.sqlenq.no')"
            )
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM sqlenq_orders")
            assert cursor.fetchone()[0] == 2
        assert WorkflowStatus.objects.count() == 2
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS sqlenq_orders")
            cursor.execute("DROP FUNCTION IF EXISTS sqlenq_order_created()")


def test_delay_priority_and_partition_columns():
    version = application_version()
    delayed = sql_enqueue(
        sw.sql_queue.name, "tests.sqlenq.greet", args=["later"], delay_seconds=0.3,
        app_version=version,
    )  # fmt: skip
    stored = row(delayed)
    assert stored.status == "DELAYED"
    assert stored.delay_until_epoch_ms - stored.created_at == 300
    urgent = sql_enqueue(
        sw.sql_prio.name, "tests.sqlenq.greet", args=["urgent"], priority=5, app_version=version
    )
    assert row(urgent).priority == 5
    tenant = sql_enqueue(
        sw.sql_parts.name, "tests.sqlenq.greet", args=["tenant"], partition_key="t-1",
        app_version=version,
    )  # fmt: skip
    assert row(tenant).queue_partition_key == "t-1"
    with running_worker(queues=[sw.sql_queue.name, sw.sql_prio.name, sw.sql_parts.name]):
        results = [
            DBOS.retrieve_workflow(w).get_result(timeout=30) for w in (delayed, urgent, tenant)
        ]
    assert results == ["hello later.", "hello urgent.", "hello tenant."]
    assert row(delayed).started_at_epoch_ms >= row(delayed).delay_until_epoch_ms


def test_the_same_workflow_id_is_idempotent():
    version = application_version()
    first = sql_enqueue(
        sw.sql_queue.name, "tests.sqlenq.greet", args=["a"], workflow_id="sqlenq-same",
        app_version=version,
    )  # fmt: skip
    again = sql_enqueue(
        sw.sql_queue.name, "tests.sqlenq.greet", args=["b"], workflow_id="sqlenq-same",
        app_version=version,
    )  # fmt: skip
    assert first == again == "sqlenq-same"
    assert WorkflowStatus.objects.count() == 1
    assert serialization.deserialize_args(row("sqlenq-same").inputs) == (("a",), {})
    with pytest.raises(
        DatabaseError, match=re.escape("already belongs to workflow 'tests.sqlenq.greet'")
    ):
        sql_enqueue(
            sw.sql_queue.name, "tests.sqlenq.echo", workflow_id="sqlenq-same", app_version=version
        )
    assert WorkflowStatus.objects.count() == 1


def test_deduplication_refuses_a_live_holder_and_frees_a_finished_one():
    version = application_version()
    held = sql_enqueue(
        sw.sql_queue.name, "tests.sqlenq.greet", args=["one"], deduplication_id="d-1",
        app_version=version,
    )  # fmt: skip
    with pytest.raises(
        DatabaseError, match=re.escape(f"deduplication ID 'd-1' is held by live workflow '{held}'")
    ):
        sql_enqueue(
            sw.sql_queue.name, "tests.sqlenq.greet", args=["two"], deduplication_id="d-1",
            app_version=version,
        )  # fmt: skip
    assert WorkflowStatus.objects.count() == 1
    # the Python enqueue sees the SQL one's ID as taken too
    with SetEnqueueOptions(deduplication_id="d-1"), pytest.raises(DBOSQueueDeduplicatedError):
        sw.sql_queue.enqueue(sw.greet, "three")
    with running_worker(queues=[sw.sql_queue.name]):
        assert DBOS.retrieve_workflow(held).get_result(timeout=30) == "hello one."
    again = sql_enqueue(
        sw.sql_queue.name, "tests.sqlenq.greet", args=["four"], deduplication_id="d-1",
        app_version=version,
    )  # fmt: skip
    assert row(again).deduplication_id == "d-1"
    assert row(held).deduplication_id is None


UNKNOWN, PLAIN, PRIO, PARTS = (
    "tests.sqlenq.unknown",
    "tests.sqlenq.queue",
    "tests.sqlenq.prio",
    "tests.sqlenq.parts",
)
DBOS_TAG = {"x": [{"__dbos__": "uuid", "v": "x"}]}


@pytest.mark.parametrize(
    ("queue", "named", "message"),
    [
        (UNKNOWN, {}, f"unknown queue '{UNKNOWN}'"),
        (PLAIN, {"delay_seconds": -1.0}, "delay_seconds must be a number of seconds, 0 or more"),
        (PLAIN, {"delay_seconds": float("nan")}, "0 or more, not NaN"),
        (PLAIN, {"args": {"a": 1}}, "args must be a JSON array, not a JSON object"),
        (PLAIN, {"args": "null"}, "args must be a JSON array, not a JSON null"),
        (PLAIN, {"kwargs": [1]}, "kwargs must be a JSON object, not a JSON array"),
        (PLAIN, {"kwargs": DBOS_TAG}, 'the object key "__dbos__" is reserved'),
        (PLAIN, {"priority": 1}, f"priority must be 0: queue '{PLAIN}' was declared without"),
        (PRIO, {"priority": -1}, "priority must be 0 or more, not -1"),
        (PARTS, {}, f"partition_key is required: queue '{PARTS}' is partitioned"),
        (PLAIN, {"partition_key": "p"}, "partition_key must be NULL"),
        (PLAIN, {"workflow_id": ""}, "workflow_id must be NULL"),
    ],
)
def test_a_refusal_raises_and_writes_nothing(queue, named, message):
    named.setdefault("app_version", application_version())
    with pytest.raises(DatabaseError, match=re.escape(message)):
        sql_enqueue(queue, "tests.sqlenq.echo", **named)
    assert not WorkflowStatus.objects.exists()


def test_encrypted_json_serializer_still_reads_sql_inputs(settings):
    fernet = pytest.importorskip("cryptography.fernet")
    settings.DBOS = {
        **settings.DBOS,
        "SERIALIZER": "django_dbos.serialization.EncryptedSerializer",
        "ENCRYPTION_KEYS": [fernet.Fernet.generate_key().decode()],
    }
    workflow_id = sql_enqueue(
        sw.sql_queue.name, "tests.sqlenq.greet", args=["cleo"], app_version=application_version()
    )
    with running_worker(queues=[sw.sql_queue.name]):
        assert DBOS.retrieve_workflow(workflow_id).get_result(timeout=30) == "hello cleo."
    assert row(workflow_id).inputs.startswith("{")  # written by SQL: in clear
    assert row(workflow_id).output.startswith("fernet:")


def test_pickle_serializer_cannot_read_sql_inputs(settings):
    settings.DBOS = {**settings.DBOS, "SERIALIZER": "django_dbos.serialization.PickleSerializer"}
    workflow_id = sql_enqueue(
        sw.sql_queue.name, "tests.sqlenq.greet", args=["dan"], app_version=application_version()
    )
    with running_worker(queues=[sw.sql_queue.name]), pytest.raises(DBOSSerializationError):
        DBOS.retrieve_workflow(workflow_id).get_result(timeout=30)
    assert row(workflow_id).status == "ERROR"

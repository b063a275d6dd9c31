"""Introspection: DBOS.list_workflows / list_queued_workflows (every filter, alone and combined;
order and pages; time forms; attributes on both databases; lazy columns; one indexed query;
bad input) and get_workflow_status / list_workflow_steps."""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import math
import pickle
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_dbos import (
    DBOS,
    DBOSException,
    DBOSNonExistentWorkflowError,
    SetWorkflowAttributes,
    SetWorkflowID,
)
from django_dbos.api.introspection import epoch_ms, workflow_query
from django_dbos.conf import dbos_settings
from django_dbos.engine.executor import reset_executor
from django_dbos.engine.introspection import workflow_queryset
from django_dbos.errors import DBOSInvalidArgumentError
from django_dbos.models import WorkflowStatus as Row
from django_dbos.testing import recover_workflow, simulate_crash, workflow_step_names
from tests import introspection_workflows as iwf

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
S = 1000  # one second in ms


@pytest.fixture(autouse=True)
def quiet_executor(settings):
    """An executor whose heartbeat never fires during a test (its thread has its own
    connection and would wait on the test's open transaction)."""
    settings.DBOS = {**settings.DBOS, "HEARTBEAT_INTERVAL": 3600.0, "EXECUTOR_TIMEOUT": 7200.0}
    executor = reset_executor()
    yield executor
    executor.stop(retire=False)


def alias() -> str:
    return dbos_settings().DATABASE


def row(workflow_id: str, status: str, name: str, created: int, **fields) -> Row:
    attributes = fields.pop("attributes", None)
    return Row(
        workflow_uuid=workflow_id,
        status=status,
        name=name,
        created_at=T0 + created * S,
        updated_at=fields.pop("updated", T0 + created * S),
        attributes=json.dumps(attributes) if attributes is not None else None,
        **fields,
    )


@pytest.fixture
def dataset() -> list[str]:
    """Eight workflows, one second apart, that differ in every filtered column."""
    Row.objects.using(alias()).bulk_create(
        [
            row(
                "ds-a", "SUCCESS", "n.one", 0, queue_name=None, executor_id="exec-1",
                application_version="v1", authenticated_user="alice", started_at_epoch_ms=T0,
                updated=T0 + 10 * S, attributes={"tenant": "acme", "tier": 1},
            ),
            row(
                "ds-b", "ERROR", "n.two", 1, queue_name="q1", executor_id="exec-2",
                application_version="v2", parent_workflow_id="ds-a",
                started_at_epoch_ms=T0 + 1500, updated=T0 + 20 * S,
                attributes={"tenant": "acme", "tier": 2},
            ),
            row(
                "ds-c", "PENDING", "n.one", 2, queue_name="q1", executor_id="exec-1",
                application_version="v1", forked_from="ds-a", authenticated_user="bob",
                started_at_epoch_ms=T0 + 2500, attributes={"tenant": "globex", "vip": True},
            ),
            row("ds-d", "ENQUEUED", "n.two", 3, queue_name="q2", application_version="v2"),
            row(
                "ds-e", "CANCELLED", "n.one", 4, executor_id="exec-2", application_version="v1",
                parent_workflow_id="ds-a", authenticated_user="alice", updated=T0 + 5 * S,
                attributes={"tier": 1.0, "vip": False},
            ),
            row("ds-f", "DELAYED", "n.three", 5, queue_name="q2", application_version="v2"),
            row(
                "xs-g", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", "n.three", 6, executor_id="exec-1",
                application_version="v1", updated=T0 + 30 * S, attributes={"tenant": None},
            ),
            row("ds-h", "PENDING", "n.two", 7, executor_id="exec-2", application_version="v2"),
        ]
    )  # fmt: skip
    return ["ds-a", "ds-b", "ds-c", "ds-d", "ds-e", "ds-f", "xs-g", "ds-h"]


def ids(statuses) -> list[str]:
    return [status.workflow_id for status in statuses]


def short(*letters: str) -> list[str]:
    return [("xs-" if letter == "g" else "ds-") + letter for letter in letters]


# -- every filter alone ------------------------------------------------------------------------

SINGLE_FILTERS = [
    ({}, "abcdefgh"),
    ({"status": "ERROR"}, "b"),
    ({"status": ["PENDING", "ENQUEUED"]}, "cdh"),
    ({"name": "n.one"}, "ace"),
    ({"name": ["n.two", "n.three"]}, "bdfgh"),
    ({"queue_name": "q1"}, "bc"),
    ({"queue_name": ["q1", "q2"]}, "bcdf"),
    ({"start_time": T0 + 3 * S}, "defgh"),  # created at or after (inclusive)
    ({"end_time": T0 + 2 * S}, "abc"),  # created at or before (inclusive)
    ({"start_time": T0 + 1 * S, "end_time": T0 + 3 * S}, "bcd"),
    ({"completed_after": T0 + 10 * S}, "abg"),  # finished at or after
    ({"completed_before": T0 + 10 * S}, "ae"),
    ({"dequeued_after": T0 + 2 * S}, "c"),  # started_at_epoch_ms
    ({"dequeued_before": T0 + 2 * S}, "ab"),
    ({"app_version": "v2"}, "bdfh"),
    ({"application_version": "v2"}, "bdfh"),  # the name for it
    ({"app_version": ["v1"]}, "aceg"),
    ({"executor_id": "exec-2"}, "beh"),
    ({"executor_id": ["exec-1", "exec-2"]}, "abcegh"),
    ({"parent_workflow_id": "ds-a"}, "be"),
    ({"forked_from": "ds-a"}, "c"),
    ({"user": "alice"}, "ae"),
    ({"user": ["alice", "bob"]}, "ace"),
    ({"workflow_id_prefix": "xs-"}, "g"),
    ({"workflow_id_prefix": ["xs-", "ds-a"]}, "ag"),
    ({"workflow_ids": ["ds-c", "ds-a", "no-such-id"]}, "ac"),
    ({"workflow_ids": "ds-c"}, "c"),
    ({"attributes": {"tenant": "acme"}}, "ab"),
    ({"is_fork": True}, "c"),
    ({"is_fork": False}, "abdefgh"),
    ({"has_parent": True}, "be"),
    ({"has_parent": False}, "acdfgh"),
    ({"queues_only": True}, "cdf"),  # on a queue and not finished
]


@pytest.mark.parametrize(("filters", "expected"), SINGLE_FILTERS, ids=repr)
def test_each_filter_alone(dataset, filters, expected):
    assert ids(DBOS.list_workflows(**filters)) == short(*expected)


def test_the_single_filter_table_is_not_vacuous(dataset):
    """Each filter above selects something and leaves something out."""
    for filters, expected in SINGLE_FILTERS[1:]:
        assert 0 < len(expected) < len(dataset), filters


COMBINED_FILTERS = [
    ({"status": "PENDING", "name": "n.one", "start_time": T0 + 1 * S}, "c"),
    ({"status": ["PENDING", "SUCCESS"], "end_time": T0 + 2 * S}, "ac"),
    ({"name": "n.one", "executor_id": "exec-1", "end_time": T0 + 1 * S}, "a"),
    ({"queue_name": "q2", "status": "ENQUEUED", "app_version": "v2"}, "d"),
    ({"workflow_id_prefix": "ds-", "attributes": {"tier": 1}}, "ae"),
    ({"user": "alice", "has_parent": True}, "e"),
    ({"queues_only": True, "status": "ERROR"}, "b"),  # a status replaces the default ones
    ({"queues_only": True, "queue_name": "q2", "name": "n.three"}, "f"),
    ({"status": "SUCCESS", "name": "n.two"}, ""),
    ({"workflow_ids": ["ds-a", "ds-b", "ds-c"], "status": ["ERROR", "PENDING"]}, "bc"),
    ({"completed_after": T0, "executor_id": "exec-2"}, "be"),
    ({"name": "n.two", "dequeued_after": T0, "attributes": {"tenant": "acme"}}, "b"),
]


@pytest.mark.parametrize(("filters", "expected"), COMBINED_FILTERS, ids=repr)
def test_filters_combine_with_and(dataset, filters, expected):
    assert ids(DBOS.list_workflows(**filters)) == short(*expected)


@pytest.mark.parametrize(
    "filters",
    [
        {"workflow_ids": []},
        {"status": []},
        {"name": []},
        {"queue_name": []},
        {"workflow_id_prefix": []},
        {"executor_id": ()},
    ],
    ids=repr,
)
def test_an_empty_list_matches_nothing(dataset, filters):
    """Unlike DBOS (where ``[]`` means no filter): an ID list that happens to be empty must not
    select the whole table (and, say, cancel it)."""
    assert DBOS.list_workflows(**filters) == []


def test_an_empty_attributes_dict_does_not_filter(dataset):
    assert ids(DBOS.list_workflows(attributes={})) == dataset


def test_prefix_is_case_sensitive_and_literal():
    Row.objects.using(alias()).bulk_create(
        [
            row("Pre-1", "SUCCESS", "n", 0),
            row("pre-2", "SUCCESS", "n", 1),
            row("pre_3", "SUCCESS", "n", 2),
            row("pre%4", "SUCCESS", "n", 3),
        ]
    )
    assert ids(DBOS.list_workflows(workflow_id_prefix="pre")) == ["pre-2", "pre_3", "pre%4"]
    assert ids(DBOS.list_workflows(workflow_id_prefix="Pre")) == ["Pre-1"]
    assert ids(DBOS.list_workflows(workflow_id_prefix="pre_")) == ["pre_3"]  # no wildcard
    assert ids(DBOS.list_workflows(workflow_id_prefix="pre%")) == ["pre%4"]
    assert ids(DBOS.list_workflows(workflow_id_prefix="pre-2")) == ["pre-2"]  # the whole ID


# -- order and pages ---------------------------------------------------------------------------


def test_oldest_first_by_default_newest_first_with_sort_desc(dataset):
    assert ids(DBOS.list_workflows()) == dataset
    assert ids(DBOS.list_workflows(sort_desc=True)) == dataset[::-1]


def test_limit_and_offset(dataset):
    assert ids(DBOS.list_workflows(limit=3)) == dataset[:3]
    assert ids(DBOS.list_workflows(limit=3, offset=2)) == dataset[2:5]
    assert ids(DBOS.list_workflows(offset=6)) == dataset[6:]
    assert ids(DBOS.list_workflows(offset=20)) == []
    assert ids(DBOS.list_workflows(limit=0)) == []
    assert ids(DBOS.list_workflows(limit=2, offset=1, sort_desc=True)) == dataset[::-1][1:3]
    assert ids(DBOS.list_workflows(name="n.one", limit=2, offset=1)) == short("c", "e")


def test_pages_are_stable_when_workflows_share_a_creation_time():
    same_ms = [f"tie-{n}" for n in (3, 1, 4, 0, 2)]
    Row.objects.using(alias()).bulk_create([row(i, "SUCCESS", "n", 0) for i in same_ms])
    for sort_desc in (False, True):
        pages = [
            ids(DBOS.list_workflows(limit=2, offset=offset, sort_desc=sort_desc))
            for offset in (0, 2, 4)
        ]
        flat = [workflow_id for page in pages for workflow_id in page]
        assert flat == sorted(same_ms, reverse=sort_desc)


# -- times in every accepted form --------------------------------------------------------------

T3 = T0 + 3 * S  # 2023-11-14T22:13:23Z
PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    "when",
    [
        T3,
        float(T3),
        datetime.datetime(2023, 11, 14, 22, 13, 23, tzinfo=datetime.UTC),
        datetime.datetime(2023, 11, 14, 23, 13, 23, tzinfo=PARIS),
        datetime.datetime(2023, 11, 14, 22, 13, 23),  # naive: Django's time zone (UTC here)
        "2023-11-14T22:13:23Z",
        "2023-11-14T22:13:23.000+00:00",
        "2023-11-14T23:13:23+01:00",
        " 2023-11-14 22:13:23 ",  # naive, padded
    ],
    ids=repr,
)
def test_time_filters_accept_every_form(dataset, when):
    assert ids(DBOS.list_workflows(start_time=when)) == short(*"defgh")
    assert ids(DBOS.list_workflows(end_time=when)) == short(*"abcd")
    assert ids(DBOS.list_workflows(start_time=when, end_time=when)) == short("d")


def test_naive_times_are_in_djangos_current_time_zone(dataset):
    with timezone.override(PARIS):
        naive = datetime.datetime(2023, 11, 14, 23, 13, 23)
        assert ids(DBOS.list_workflows(start_time=naive)) == short(*"defgh")
        assert ids(DBOS.list_workflows(start_time="2023-11-14T23:13:23")) == short(*"defgh")
    assert epoch_ms("test", "x", datetime.date(2023, 11, 14)) == 1_699_920_000_000  # UTC midnight
    with timezone.override(PARIS):
        assert epoch_ms("test", "x", datetime.date(2023, 11, 14)) == 1_699_916_400_000
        assert epoch_ms("test", "x", "2023-11-14") == 1_699_916_400_000


def test_times_keep_millisecond_precision():
    moment = datetime.datetime(2023, 11, 14, 22, 13, 20, 1_999, tzinfo=datetime.UTC)
    assert epoch_ms("test", "x", moment) == T0 + 1  # floor, no float rounding
    assert epoch_ms("test", "x", "2023-11-14T22:13:20.001Z") == T0 + 1


# -- attributes, on whichever database runs the tests -------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"tenant": "acme"}, "ab"),
        ({"tenant": "acme", "tier": 2}, "b"),  # all must match
        ({"tenant": "acme", "vip": True}, ""),
        ({"tier": 1}, "ae"),  # 1 and 1.0 are the same number
        ({"tier": 1.0}, "ae"),
        ({"tier": "1"}, ""),  # a string is not a number
        ({"tier": True}, ""),  # true is not 1
        ({"vip": 1}, ""),  # nor 1 true
        ({"vip": 0}, ""),
        ({"vip": True}, "c"),
        ({"vip": False}, "e"),  # false is not missing, nor 0
        ({"tenant": None}, "g"),  # null is not missing
        ({"nothing": "here"}, ""),
    ],
    ids=repr,
)
def test_attributes_filter(dataset, attributes, expected):
    assert ids(DBOS.list_workflows(attributes=attributes)) == short(*expected)


def test_attributes_with_any_key_and_unicode():
    Row.objects.using(alias()).bulk_create(
        [
            row("at-1", "SUCCESS", "n", 0, attributes={'a.b"c[0]': "x", "ünï": "cödé ✓"}),
            row("at-2", "SUCCESS", "n", 1, attributes={"a": {"b": "x"}, "ünï": "other"}),
            row("at-3", "SUCCESS", "n", 2, attributes={"$.a": 1, "'; DROP": "--"}),
        ]
    )
    assert ids(DBOS.list_workflows(attributes={'a.b"c[0]': "x"})) == ["at-1"]
    assert ids(DBOS.list_workflows(attributes={"ünï": "cödé ✓"})) == ["at-1"]
    assert ids(DBOS.list_workflows(attributes={"$.a": 1})) == ["at-3"]
    assert ids(DBOS.list_workflows(attributes={"'; DROP": "--"})) == ["at-3"]
    assert DBOS.list_workflows(attributes={"a.b": "x"}) == []  # not a JSON path


def test_attributes_set_by_running_workflows_are_filterable():
    with SetWorkflowID("attr-acme"), SetWorkflowAttributes({"tenant": "acme", "batch": 7}):
        iwf.ok_workflow(1)
    with SetWorkflowID("attr-globex"), SetWorkflowAttributes({"tenant": "globex", "batch": 7}):
        iwf.ok_workflow(2)
    iwf.ok_workflow(3)

    acme = DBOS.list_workflows(attributes={"tenant": "acme"})
    assert ids(acme) == ["attr-acme"]
    assert acme[0].attributes == {"tenant": "acme", "batch": 7}
    assert ids(DBOS.list_workflows(attributes={"batch": 7})) == ["attr-acme", "attr-globex"]


# -- what comes back ---------------------------------------------------------------------------


def run(workflow, *args, workflow_id: str, **kwargs):
    with SetWorkflowID(workflow_id):
        return workflow(*args, **kwargs)


def test_statuses_carry_decoded_inputs_outputs_errors_and_dbos_field_names():
    assert run(iwf.ok_workflow, 4, workflow_id="got-ok", note="hi") == 9
    assert run(iwf.other_workflow, datetime.date(2024, 5, 1), workflow_id="got-other") == {
        "total": Decimal("12.50")
    }
    with pytest.raises(iwf.IntroError):
        run(iwf.failing_workflow, "out of stock", workflow_id="got-failing")
    assert run(iwf.parent_workflow, 2, workflow_id="got-parent") == 9

    listed = {status.workflow_id: status for status in DBOS.list_workflows()}

    assert set(listed) == {"got-ok", "got-other", "got-failing", "got-parent", "got-parent-2"}
    ok = listed["got-ok"]
    assert (ok.name, ok.status, ok.output, ok.error) == ("tests.intro.ok", "SUCCESS", 9, None)
    assert ok.input == {"args": (4,), "kwargs": {"note": "hi"}}
    assert ok.app_version and ok.executor_id and ok.created_at and ok.completed_at
    assert ok.created_at <= ok.completed_at
    assert listed["got-other"].input == {"args": (datetime.date(2024, 5, 1),), "kwargs": {}}
    assert listed["got-other"].output == {"total": Decimal("12.50")}
    failing = listed["got-failing"]
    assert failing.status == "ERROR" and failing.output is None
    assert isinstance(failing.error, iwf.IntroError) and str(failing.error) == "out of stock"
    assert listed["got-parent-2"].parent_workflow_id == "got-parent"
    assert ids(DBOS.list_workflows(parent_workflow_id="got-parent")) == ["got-parent-2"]
    assert DBOS.get_workflow_status("got-ok") == ok


@pytest.mark.parametrize(
    ("load_input", "load_output", "columns_left_out"),
    [
        (False, True, ['."inputs"']),
        (True, False, ['."output"', '."error"']),
        (False, False, ['."inputs"', '."output"', '."error"']),
    ],
)
def test_load_input_and_output_false_leave_the_columns_in_the_database(
    load_input, load_output, columns_left_out
):
    run(iwf.ok_workflow, 1, workflow_id="lazy-ok")
    with pytest.raises(iwf.IntroError):
        run(iwf.failing_workflow, "nope", workflow_id="lazy-failing")

    with CaptureQueriesContext(connections[alias()]) as queries:
        listed = DBOS.list_workflows(load_input=load_input, load_output=load_output)

    assert len(queries) == 1
    sql = queries[0]["sql"]
    for column in columns_left_out:
        assert column not in sql
    assert '."attributes"' in sql and '."created_at"' in sql
    ok, failing = sorted(listed, key=lambda status: status.workflow_id == "lazy-failing")
    assert (ok.input is None) is (not load_input)
    assert (failing.input is None) is (not load_input)
    assert ok.output == (3 if load_output else None)
    assert isinstance(failing.error, iwf.IntroError) is load_output
    assert ok.status == "SUCCESS" and failing.status == "ERROR"  # the rest is all there


def test_everything_is_selected_by_default():
    run(iwf.ok_workflow, 1, workflow_id="eager")
    with CaptureQueriesContext(connections[alias()]) as queries:
        (status,) = DBOS.list_workflows()
    assert all(column in queries[0]["sql"] for column in ['."inputs"', '."output"', '."error"'])
    assert status.input == {"args": (1,), "kwargs": {}} and status.output == 3


# -- one indexed query -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"status": "ERROR", "start_time": T0, "end_time": T0 + 5 * S},
        {"name": ["n.one", "n.two"], "limit": 2, "offset": 1, "sort_desc": True},
        {"workflow_id_prefix": ["ds-", "xs-"], "attributes": {"tier": 1, "tenant": "acme"}},
        {"queues_only": True, "load_input": False, "load_output": False},
        {"completed_after": T0, "user": "alice", "has_parent": True, "is_fork": False},
    ],
    ids=repr,
)
def test_each_listing_is_one_query(dataset, filters):
    with CaptureQueriesContext(connections[alias()]) as queries:
        listed = DBOS.list_workflows(**filters)
    assert len(queries) == 1, [q["sql"] for q in queries]
    with CaptureQueriesContext(connections[alias()]) as queries:
        DBOS.list_queued_workflows(**{k: v for k, v in filters.items() if k != "queues_only"})
    assert len(queries) == 1
    assert isinstance(listed, list)


def _plan(filters: dict) -> str:
    queryset = workflow_queryset(workflow_query("list_workflows", filters))
    return queryset.explain()


@pytest.fixture
def many_rows():
    """5,000 workflows over 5,000 seconds: 1% ERROR, one rare name, statistics gathered."""
    Row.objects.using(alias()).bulk_create(
        [
            row(
                f"big-{n:05}",
                "ERROR" if n % 100 == 0 else "SUCCESS",
                "n.rare" if n % 500 == 0 else f"n.common-{n % 3}",
                n,
            )
            for n in range(5000)
        ],
        batch_size=1000,
    )
    connection = connections[alias()]
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(Row._meta.db_table)}")


@pytest.mark.parametrize(
    ("filters", "index", "count"),
    [
        ({"status": "ERROR", "start_time": T0 + 500 * S, "end_time": T0 + 4500 * S}, "status", 41),
        ({"status": "ERROR", "sort_desc": True, "limit": 20}, "status", 20),
        ({"name": "n.rare"}, "name", 10),
        ({"name": "n.rare", "start_time": T0 + 100 * S, "limit": 5}, "name", 5),
        ({"limit": 20, "sort_desc": True}, "created", 20),
    ],
    ids=repr,
)
def test_listings_are_answered_from_an_index(many_rows, filters, index, count):
    names = {
        "status": "dbos_wf_status_created",
        "name": "dbos_wf_name_created",
        "created": "dbos_wf_created",
    }
    plan = _plan(filters)
    assert names[index] in plan, plan
    assert "Seq Scan" not in plan and "SCAN dbos_workflow_status\n" not in plan + "\n", plan
    assert len(DBOS.list_workflows(**filters)) == count


def test_id_and_prefix_listings_use_the_primary_key(many_rows):
    for filters in (
        {"workflow_ids": ["big-00042", "big-04242"]},
        {"workflow_id_prefix": "big-042"},
    ):
        plan = _plan(filters)
        assert "Seq Scan" not in plan and "SCAN dbos_workflow_status\n" not in plan + "\n", plan
    assert len(DBOS.list_workflows(workflow_id_prefix="big-042")) == 100


# -- queued workflows --------------------------------------------------------------------------


def test_list_queued_workflows_shows_unfinished_queued_ones(dataset):
    assert ids(DBOS.list_queued_workflows()) == short(*"cdf")  # not ds-h: no queue
    assert ids(DBOS.list_queued_workflows(queue_name="q2")) == short(*"df")
    assert ids(DBOS.list_queued_workflows(status="ENQUEUED")) == short("d")
    assert ids(DBOS.list_queued_workflows(status="ERROR")) == short("b")
    assert ids(DBOS.list_queued_workflows(name="n.two", sort_desc=True)) == short("d")
    assert ids(DBOS.list_queued_workflows(sort_desc=True, limit=2)) == short("f", "d")
    assert ids(DBOS.list_queued_workflows(offset=1, start_time=T0)) == short("d", "f")
    assert ids(DBOS.list_queued_workflows(end_time=T0 + 2 * S)) == short("c")
    assert ids(DBOS.list_queued_workflows(attributes={"vip": True})) == short("c")
    (status,) = DBOS.list_queued_workflows(queue_name="q1", load_input=False)
    assert status.queue_name == "q1" and status.dequeued_at == T0 + 2500


def test_list_queued_workflows_takes_no_queues_only():
    with pytest.raises(TypeError, match="unexpected keyword argument 'queues_only'"):
        DBOS.list_queued_workflows(queues_only=False)  # type: ignore[call-arg]


# -- async twins -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_async_twins_answer_like_the_sync_ones(dataset):
    async def main():
        return (
            await DBOS.list_workflows_async(status=["PENDING", "ERROR"], sort_desc=True),
            await DBOS.list_queued_workflows_async(queue_name="q2"),
        )

    listed, queued = asyncio.run(main())
    assert ids(listed) == short("h", "c", "b")
    assert ids(queued) == short("d", "f")


def test_async_twins_check_arguments_before_awaiting():
    with pytest.raises(DBOSInvalidArgumentError, match="limit"):
        asyncio.run(DBOS.list_workflows_async(limit=-1))
    with pytest.raises(DBOSInvalidArgumentError, match="status"):
        asyncio.run(DBOS.list_queued_workflows_async(status="QUEUED"))


def test_signatures_show_dbos_keywords():
    listing = inspect.signature(DBOS.list_workflows)
    assert list(listing.parameters)[:4] == ["workflow_ids", "status", "name", "queue_name"]
    assert listing.parameters["load_output"].default is True
    assert listing.parameters["sort_desc"].default is False
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in listing.parameters.values())
    assert "queues_only" not in inspect.signature(DBOS.list_queued_workflows_async).parameters


# -- bad input ---------------------------------------------------------------------------------

BAD_INPUT = [
    ({"status": "DONE"}, "status"),
    ({"status": "success"}, "status"),
    ({"status": ["ERROR", None]}, "status"),
    ({"name": 5}, "name"),
    ({"name": [b"n.one"]}, "name"),
    ({"queue_name": {"q": 1}}, "queue_name"),
    ({"workflow_ids": [1, 2]}, "workflow_ids"),
    ({"workflow_id_prefix": 3}, "workflow_id_prefix"),
    ({"app_version": "v1", "application_version": "v1"}, "application_version"),
    ({"limit": -1}, "limit"),
    ({"limit": 1.5}, "limit"),
    ({"limit": True}, "limit"),
    ({"limit": "10"}, "limit"),
    ({"offset": -5}, "offset"),
    ({"offset": 2**63}, "offset"),
    ({"start_time": 10**30}, "start_time"),
    ({"attributes": {"big": 2**64}}, "attributes"),
    ({"start_time": "yesterday"}, "start_time"),
    ({"end_time": "2024-13-01"}, "end_time"),
    ({"completed_after": object()}, "completed_after"),
    ({"dequeued_before": math.nan}, "dequeued_before"),
    ({"start_time": True}, "start_time"),
    ({"start_time": T0 + 1, "end_time": T0}, "end_time"),
    ({"attributes": "tenant=acme"}, "attributes"),
    ({"attributes": {1: "x"}}, "attributes"),
    ({"attributes": {"tags": ["a", "b"]}}, "attributes"),
    ({"attributes": {"nested": {"a": 1}}}, "attributes"),
    ({"attributes": {"ratio": math.inf}}, "attributes"),
    ({"sort_desc": "yes"}, "sort_desc"),
    ({"load_input": None}, "load_input"),
    ({"load_output": 0}, "load_output"),
    ({"queues_only": 1}, "queues_only"),
    ({"is_fork": "no"}, "is_fork"),
]


@pytest.mark.parametrize(("filters", "argument"), BAD_INPUT, ids=repr)
def test_bad_input_is_a_clear_error_naming_the_argument(filters, argument):
    with (
        CaptureQueriesContext(connections[alias()]) as queries,
        pytest.raises(DBOSInvalidArgumentError) as caught,
    ):
        DBOS.list_workflows(**filters)
    assert queries.captured_queries == []  # refused before touching the database
    error = caught.value
    assert isinstance(error, DBOSException) and isinstance(error, ValueError)
    assert (error.operation, error.argument) == ("list_workflows", argument)
    assert str(error).startswith(f"list_workflows: {argument} must be ")
    assert f", not {error.value}." in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.argument) == (type(error), str(error), argument)


def test_unknown_keywords_are_type_errors_as_with_any_signature():
    with pytest.raises(TypeError, match=r"list_workflows\(\) got an unexpected keyword argument"):
        DBOS.list_workflows(state="ERROR")  # type: ignore[call-arg]


def test_long_values_are_shortened_in_the_message():
    with pytest.raises(DBOSInvalidArgumentError) as caught:
        DBOS.list_workflows(status="X" * 500)
    assert len(str(caught.value)) < 300 and "..." in str(caught.value)


# -- one workflow ------------------------------------------------------------------------------


def test_steps_of_one_workflow():
    run(iwf.parent_workflow, 3, workflow_id="steps-parent")
    steps = DBOS.list_workflow_steps("steps-parent")
    assert [(s.function_id, s.function_name) for s in steps] == [
        (1, "tests.intro.double"),
        (2, "tests.intro.ok"),
    ]
    assert steps[0].output == 6 and steps[1].child_workflow_id == "steps-parent-2"
    assert all(s.started_at_epoch_ms <= s.completed_at_epoch_ms for s in steps[:1])
    with pytest.raises(DBOSNonExistentWorkflowError):
        DBOS.list_workflow_steps("no-such-workflow")
    assert DBOS.get_workflow_status("no-such-workflow") is None


# -- inside a workflow: recorded, as in DBOS ---------------------------------------------------


def test_reads_inside_a_workflow_are_recorded_and_replayed():
    Row.objects.using(alias()).bulk_create(
        [row("rp-1", "SUCCESS", "n", 0), row("rp-2", "ENQUEUED", "n", 1, queue_name="q")]
    )
    with simulate_crash(after_step=4), SetWorkflowID("lister"):
        iwf.lister_workflow("rp-")
    assert workflow_step_names("lister") == [
        "listWorkflows",
        "listQueuedWorkflows",
        "getStatus",
        "listWorkflowSteps",
    ]
    # the tables change before the workflow is recovered
    Row.objects.using(alias()).filter(pk="rp-1").update(status="ERROR")
    Row.objects.using(alias()).bulk_create([row("rp-3", "ENQUEUED", "n", 2, queue_name="q")])

    assert recover_workflow("lister") == {
        "listed": ["rp-1", "rp-2"],
        "queued": ["rp-2"],
        "status": "SUCCESS",
        "steps": 0,
    }
    assert workflow_step_names("lister")[-1] == "double"
    with SetWorkflowID("lister-2"):
        again = iwf.lister_workflow("rp-")
    assert again["listed"] == ["rp-1", "rp-2", "rp-3"] and again["status"] == "ERROR"


@pytest.mark.django_db(transaction=True)
def test_async_reads_inside_an_async_workflow_are_recorded():
    Row.objects.using(alias()).bulk_create([row("arp-1", "ENQUEUED", "n", 0, queue_name="q")])

    async def main():
        with SetWorkflowID("async-lister"):
            return await iwf.async_lister_workflow("arp-")

    assert asyncio.run(main()) == ["arp-1", "arp-1", "ENQUEUED", "[]"]
    assert workflow_step_names("async-lister") == [
        "listWorkflows",
        "listQueuedWorkflows",
        "getStatus",
        "listWorkflowSteps",
    ]


def test_a_value_that_cannot_be_decoded_is_listed_as_its_stored_text(caplog):
    # e.g. written under an encryption key since rotated away: one bad row must not make the
    # whole listing fail (DBOS's safe_deserialize)
    from django_dbos.models import OperationOutput

    Row.objects.using(alias()).bulk_create(
        [
            row("bad-1", "SUCCESS", "n.one", 0, inputs="gAAAA-not-json", output="{broken"),
            row("good-1", "SUCCESS", "n.one", 1, inputs='{"args":[1],"kwargs":{}}', output="2"),
        ]
    )
    OperationOutput.objects.using(alias()).create(
        workflow_id="bad-1", function_id=1, function_name="s", output="{broken", error="nope"
    )
    with caplog.at_level("WARNING", logger="django_dbos"):
        listed = {status.workflow_id: status for status in DBOS.list_workflows()}
    assert listed["bad-1"].input == "gAAAA-not-json"
    assert listed["bad-1"].output == "{broken"
    assert listed["good-1"].input == {"args": (1,), "kwargs": {}}
    assert listed["good-1"].output == 2
    assert "could not be decoded" in caplog.text and "bad-1" in caplog.text
    [step] = DBOS.list_workflow_steps("bad-1")
    assert step.output == "{broken"
    # an unreadable recorded error already comes back as an exception saying so
    assert isinstance(step.error, BaseException) and "unreadable" in str(step.error)

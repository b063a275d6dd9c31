"""Retention: DBOS.garbage_collect and manage.py dbos_gc delete old finished workflows whole, in
batches, and never a PENDING, ENQUEUED or DELAYED one."""

from __future__ import annotations

import asyncio
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_dbos import DBOS
from django_dbos.errors import DBOSInvalidArgumentError
from django_dbos.models import (
    Notification,
    OperationOutput,
    StreamEntry,
    WorkflowEvent,
    WorkflowEventHistory,
    WorkflowStatus,
    now_ms,
)
from tests.test_control import add_rows, make_workflow, row_counts

pytestmark = pytest.mark.django_db

DAY_MS = 86_400_000
DEPENDENT_MODELS: list[Any] = [
    OperationOutput,
    Notification,
    WorkflowEvent,
    WorkflowEventHistory,
    StreamEntry,
]


def workflow(workflow_id: str, state: str, created_at: int) -> str:
    make_workflow(workflow_id, state, created_at=created_at, updated_at=created_at)
    add_rows(workflow_id)
    return workflow_id


def survivors() -> set[str]:
    return set(WorkflowStatus.objects.values_list("workflow_uuid", flat=True))


def no_orphans() -> bool:
    """No row anywhere belongs to a workflow that is gone (never half a workflow)."""
    ids = survivors()
    for model in DEPENDENT_MODELS:
        column = "destination_id" if model is Notification else "workflow_id"
        if model.objects.exclude(**{f"{column}__in": ids}).exists():
            return False
    return True


@pytest.fixture
def mixed():
    """Old workflows in every status, and new finished ones."""
    ids = {}
    for state in [
        "SUCCESS",
        "ERROR",
        "CANCELLED",
        "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
        "PENDING",
        "ENQUEUED",
        "DELAYED",
    ]:
        ids[state] = workflow(f"old-{state}", state, created_at=1_000)
    ids["new"] = workflow("new-SUCCESS", "SUCCESS", created_at=5_000)
    return ids


def test_cutoff_deletes_old_finished_workflows_whole_and_never_active_ones(mixed):
    assert DBOS.garbage_collect(cutoff_epoch_timestamp_ms=2_000) == 4
    assert survivors() == {"old-PENDING", "old-ENQUEUED", "old-DELAYED", "new-SUCCESS"}
    for state in ["SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"]:
        assert row_counts(f"old-{state}") == [0] * 6
    for workflow_id in survivors():
        assert row_counts(workflow_id) == [1] * 6
    assert no_orphans()


def test_rows_threshold_keeps_only_the_newest_rows():
    for n in range(1, 11):
        workflow(f"w{n}", "PENDING" if n == 2 else "SUCCESS", created_at=n * 1_000)
    # the 3 newest are w8..w10: finished ones created before w8 go; the PENDING w2 stays
    assert DBOS.garbage_collect(rows_threshold=3) == 6
    assert survivors() == {"w2", "w8", "w9", "w10"}
    assert no_orphans()


def test_the_later_of_cutoff_and_threshold_wins():
    for n in range(1, 6):
        workflow(f"w{n}", "SUCCESS", created_at=n * 1_000)
    # the threshold's cutoff (w3 is the 3rd newest) is later than 1_500
    assert DBOS.garbage_collect(cutoff_epoch_timestamp_ms=1_500, rows_threshold=3) == 2
    assert survivors() == {"w3", "w4", "w5"}
    # 4_500 is later than the threshold's cutoff (w4, the 2nd newest)
    assert DBOS.garbage_collect(cutoff_epoch_timestamp_ms=4_500, rows_threshold=2) == 2
    assert survivors() == {"w5"}


def test_fewer_rows_than_the_threshold_or_no_limit_deletes_nothing(mixed):
    assert DBOS.garbage_collect(rows_threshold=100) == 0
    assert DBOS.garbage_collect() == 0
    assert len(survivors()) == 8


def test_batches_delete_whole_workflows_a_batch_per_transaction():
    for n in range(5):
        workflow(f"b{n}", "SUCCESS", created_at=1_000 + n)
    with CaptureQueriesContext(connection) as queries:
        assert DBOS.garbage_collect(cutoff_epoch_timestamp_ms=2_000, batch_size=2) == 5
    status_deletes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("DELETE FROM dbos_workflow_status")
    ]
    assert len(status_deletes) == 3  # 2 + 2 + 1
    assert survivors() == set()
    assert no_orphans()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cutoff_epoch_timestamp_ms": -1},
        {"cutoff_epoch_timestamp_ms": "2000"},
        {"cutoff_epoch_timestamp_ms": True},
        {"cutoff_epoch_timestamp_ms": 2.5},
        {"rows_threshold": 0},
        {"rows_threshold": -3},
        {"cutoff_epoch_timestamp_ms": 2_000, "batch_size": 0},
        {"cutoff_epoch_timestamp_ms": 2_000, "batch_size": 10_001},
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_deleted(mixed, kwargs):
    with pytest.raises(DBOSInvalidArgumentError, match=r" must be .+, not "):
        DBOS.garbage_collect(**kwargs)
    assert len(survivors()) == 8


@pytest.mark.django_db(transaction=True)
def test_async_twin(mixed):
    assert asyncio.run(DBOS.garbage_collect_async(2_000, batch_size=3)) == 4
    assert no_orphans()


# -- manage.py dbos_gc ---------------------------------------------------------------------


def gc(*args: str) -> str:
    out = StringIO()
    call_command("dbos_gc", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def aged():
    now = now_ms()
    workflow("40-days", "SUCCESS", created_at=now - 40 * DAY_MS)
    workflow("40-days-pending", "PENDING", created_at=now - 40 * DAY_MS)
    workflow("20-days", "ERROR", created_at=now - 20 * DAY_MS)
    workflow("1-hour", "SUCCESS", created_at=now - 3_600_000)


def test_command_older_than(aged):
    assert "Deleted 1 finished workflow(s)." in gc("--older-than", "30d")
    assert survivors() == {"40-days-pending", "20-days", "1-hour"}
    assert "Deleted 1 " in gc("--older-than", "1w", "--batch-size", "1")
    assert survivors() == {"40-days-pending", "1-hour"}
    assert no_orphans()


def test_command_keep_and_combined_durations(aged):
    assert "Deleted 0 " in gc("--older-than", "90d", "--keep", "4")
    assert "Deleted 2 " in gc("--keep", "1")  # the newest row is 1-hour
    assert survivors() == {"40-days-pending", "1-hour"}
    assert "Deleted 0 " in gc("--older-than", "1d12h")


def test_command_dry_run_deletes_nothing(aged):
    assert gc("--older-than", "10d", "--dry-run").strip() == "Would delete 2 finished workflow(s)."
    assert len(survivors()) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--older-than DURATION and/or --keep N"),
        (["--older-than", "30"], "not a duration"),
        (["--older-than", "thirty days"], "not a duration"),
        (["--older-than", "0d"], "longer than zero"),
        (["--keep", "0"], "at least 1"),
        (["--keep", "ten"], "not a whole number"),
        (["--older-than", "1d", "--batch-size", "0"], "from 1 to 10000"),
        (["--older-than", "1d", "--batch-size", "10001"], "from 1 to 10000"),
    ],
)
def test_command_mistakes_are_command_errors(aged, args, message):
    with pytest.raises(CommandError, match=message):
        gc(*args)
    assert len(survivors()) == 4

"""@DBOS.transaction: ORM writes and checkpoint commit together, exactly once."""

from __future__ import annotations

import contextlib
import threading

import pytest
from django.db import OperationalError, connection, transaction

from django_dbos import DBOS, DBOSConfigurationError, SetWorkflowID
from django_dbos.models import OperationOutput, WorkflowStatus
from django_dbos.testing import recover_workflow, simulate_crash
from tests import workflows as wf
from tests.conftest import postgres_only
from tests.models import Ledger, Run

pytestmark = pytest.mark.django_db


def test_writes_and_checkpoint_commit_together_and_replay_does_not_rewrite():
    with simulate_crash(after_step=2), SetWorkflowID("tx-crash"):
        wf.ledger_workflow("k1")
    assert Ledger.objects.filter(key="k1").count() == 1
    assert recover_workflow("tx-crash") == ["before", 1, "after"]
    assert Ledger.objects.filter(key="k1").count() == 1  # exactly once
    assert Run.objects.filter(key="k1", step="before").count() == 1


def test_a_failing_transaction_rolls_back_and_records_its_error():
    with SetWorkflowID("tx-fail"):
        assert wf.ledger_failure_workflow("k2") == "caught: after the write"
    assert not Ledger.objects.filter(key="k2").exists()
    step = OperationOutput.objects.get(workflow_id="tx-fail")
    assert step.output is None and "after the write" in step.error
    with SetWorkflowID("tx-fail"):  # replay re-raises the recorded error inside the workflow
        assert wf.ledger_failure_workflow("k2") == "caught: after the write"
    assert not Ledger.objects.filter(key="k2").exists()


def test_outside_a_workflow_a_transaction_is_just_atomic():
    assert wf.credit("k3", 5) == 1
    with pytest.raises(wf.OrderRejected):
        wf.credit_then_fail("k4")
    assert not Ledger.objects.filter(key="k4").exists()
    assert not OperationOutput.objects.exists()


def test_inside_the_callers_atomic_block_the_checkpoint_rolls_back_with_it():
    with pytest.raises(RuntimeError), transaction.atomic():
        with SetWorkflowID("tx-outer"):
            wf.ledger_workflow("k5")
        raise RuntimeError("the caller changes its mind")
    assert not Ledger.objects.filter(key="k5").exists()
    assert not WorkflowStatus.objects.filter(pk="tx-outer").exists()


def test_other_database_aliases_are_refused_at_decoration():
    with pytest.raises(DBOSConfigurationError, match=r"'other'.*'default'"):
        DBOS.transaction(using="other")


def test_async_functions_are_refused_at_decoration():
    async def body():
        return None

    with pytest.raises(DBOSConfigurationError, match="async"):
        DBOS.transaction()(body)


def test_unknown_isolation_level_is_refused():
    with pytest.raises(DBOSConfigurationError, match="isolation_level"):
        DBOS.transaction(isolation_level="CHAOTIC")


@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_around_commit_is_settled_by_the_checkpoint_row(monkeypatch, executor):
    """COMMIT went through but the client saw an error: the checkpoint row proves it, so the
    body is not run again."""
    runs = []

    @DBOS.transaction(name="tests.lost_commit")
    def lost_commit():
        runs.append(1)
        Ledger.objects.create(key="lost", amount=1)
        return "done"

    @DBOS.workflow(name="tests.lost_commit_wf")
    def lost_commit_wf():
        return lost_commit()

    executor.ensure_started()  # its own commit must not meet the fault below
    real_commit = connection.commit
    failed = []

    def commit_then_fail():
        real_commit()
        if not failed:
            failed.append(1)
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(connection, "commit", commit_then_fail)
    with SetWorkflowID("tx-lost"):
        assert lost_commit_wf() == "done"
    assert failed and runs == [1]
    assert Ledger.objects.filter(key="lost").count() == 1


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_serialization_failures_are_retried():
    """Two SERIALIZABLE transactions that read and write the same rows: one must fail with a
    serialization failure; it is retried and both credits land exactly once."""
    barrier = threading.Barrier(2)
    attempts: list[str] = []

    @DBOS.transaction(name="tests.serializable_credit", isolation_level="SERIALIZABLE")
    def serializable_credit(key: str) -> int:
        attempts.append(key)
        total = sum(Ledger.objects.filter(key="shared").values_list("amount", flat=True))
        with contextlib.suppress(threading.BrokenBarrierError):  # the retry runs alone
            barrier.wait(timeout=2)
        Ledger.objects.create(key="shared", amount=1)
        return total

    @DBOS.workflow(name="tests.serializable_wf")
    def serializable_wf(key: str) -> int:
        return serializable_credit(key)

    results = {}

    def run(key: str) -> None:
        try:
            with SetWorkflowID(f"tx-ser-{key}"):
                results[key] = serializable_wf(key)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(results.values()) == [0, 1]
    assert Ledger.objects.filter(key="shared").count() == 2
    assert len(attempts) == 3  # one of the two ran again after a serialization failure


@postgres_only
def test_an_isolation_level_inside_an_outer_atomic_block_is_a_clear_error():
    @DBOS.transaction(name="tests.iso_nested", isolation_level="SERIALIZABLE")
    def iso_nested():
        return Ledger.objects.count()

    with transaction.atomic(), pytest.raises(DBOSConfigurationError, match="outer transaction"):
        iso_nested()


@pytest.mark.django_db(transaction=True)
def test_isolation_level_applies_outside_workflows_too():
    @DBOS.transaction(name="tests.iso_level", isolation_level="REPEATABLE READ")
    def iso_level():
        if connection.vendor != "postgresql":
            return "repeatable read"
        with connection.cursor() as cursor:
            cursor.execute("SHOW transaction_isolation")
            return cursor.fetchone()[0]

    @DBOS.workflow(name="tests.iso_level_wf")
    def iso_level_wf():
        return iso_level()

    assert iso_level() == "repeatable read"
    assert iso_level_wf() == "repeatable read"

"""The hot path is the product: count every statement a workflow issues."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_dbos import SetWorkflowID
from django_dbos.testing import recover_workflow, simulate_crash
from tests import workflows as wf

pytestmark = pytest.mark.django_db


def _warm_up():
    """Executor registration happens once per process, before its first workflow."""
    with SetWorkflowID("warm-up"):
        wf.k_steps(0)


@pytest.mark.parametrize("k", [0, 1, 10])
def test_a_fresh_workflow_with_k_steps_issues_k_plus_2_writes_and_nothing_else(k):
    _warm_up()
    with CaptureQueriesContext(connection) as queries, SetWorkflowID(f"hot-{k}"):
        assert wf.k_steps(k) == k
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert statements == ["INSERT"] + ["INSERT"] * k + ["UPDATE"], queries.captured_queries


@pytest.mark.django_db(transaction=True)
def test_a_transaction_step_adds_only_its_own_statements_and_one_checkpoint():
    _warm_up()
    with CaptureQueriesContext(connection) as queries, SetWorkflowID("hot-tx"):
        wf.ledger_workflow("hot")
    sql = [q["sql"] for q in queries.captured_queries]
    kinds = [s.split()[0].upper() for s in sql]
    # start; step (Run insert + checkpoint); the transaction: ledger insert, count and its
    # checkpoint between one BEGIN and one COMMIT; step (Run insert + checkpoint); finish
    assert kinds == [
        "INSERT",
        "INSERT", "INSERT",
        "BEGIN", "INSERT", "SELECT", "INSERT", "COMMIT",
        "INSERT", "INSERT",
        "UPDATE",
    ], sql  # fmt: skip
    assert "dbos_operation_outputs" in sql[6]
    assert not any(s.upper().startswith("SELECT") and "dbos_" in s for s in sql)


def test_replaying_a_recovered_workflow_loads_its_checkpoints_in_one_query():
    _warm_up()
    with simulate_crash(after_step=8), SetWorkflowID("hot-replay"):
        wf.k_steps(10)
    with CaptureQueriesContext(connection) as queries:
        assert recover_workflow("hot-replay") == 10
    reads = [q["sql"] for q in queries.captured_queries if "dbos_operation_outputs" in q["sql"]]
    loads = [s for s in reads if s.upper().startswith("SELECT")]
    inserts = [s for s in reads if s.upper().startswith("INSERT")]
    assert len(loads) == 1
    assert len(inserts) == 2  # only steps 9 and 10 run again


def test_calling_a_finished_workflow_again_reads_one_row():
    with SetWorkflowID("hot-done"):
        wf.k_steps(3)
    with CaptureQueriesContext(connection) as queries, SetWorkflowID("hot-done"):
        assert wf.k_steps(3) == 3
    kinds = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert kinds == ["INSERT", "SELECT"]  # the conflicting INSERT, then the recorded outcome

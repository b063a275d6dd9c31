"""workflow_started / workflow_finished / step_finished are sent, after commit."""

from __future__ import annotations

import pytest
from django.db import transaction

from django_dbos import SetWorkflowID
from django_dbos.signals import step_finished, workflow_finished, workflow_started
from tests import workflows as wf

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def received():
    events: list[tuple] = []

    def on_started(sender, workflow_id, name, recovered, **kwargs):
        events.append(("started", workflow_id, name, recovered))

    def on_step(sender, workflow_id, function_id, name, error, **kwargs):
        events.append(("step", workflow_id, function_id, name, type(error).__name__))

    def on_finished(sender, workflow_id, name, status, error, **kwargs):
        events.append(("finished", workflow_id, status, type(error).__name__))

    workflow_started.connect(on_started)
    step_finished.connect(on_step)
    workflow_finished.connect(on_finished)
    yield events
    workflow_started.disconnect(on_started)
    step_finished.disconnect(on_step)
    workflow_finished.disconnect(on_finished)


def test_signals_of_a_successful_workflow(received):
    with SetWorkflowID("sig-1"):
        wf.ledger_workflow("sig")
    assert received == [
        ("started", "sig-1", "tests.ledger", False),
        ("step", "sig-1", 1, "tests.record_run", "NoneType"),
        ("step", "sig-1", 2, "tests.credit", "NoneType"),
        ("step", "sig-1", 3, "tests.record_run", "NoneType"),
        ("finished", "sig-1", "SUCCESS", "NoneType"),
    ]


def test_signals_of_a_failed_workflow(received):
    with SetWorkflowID("sig-2"), pytest.raises(wf.OrderRejected):
        wf.failing_workflow("nope")
    assert received[-1] == ("finished", "sig-2", "ERROR", "OrderRejected")


def test_a_transaction_step_is_announced_only_when_the_outer_transaction_commits(received):
    with transaction.atomic():
        with SetWorkflowID("sig-3"):
            wf.ledger_workflow("sig3")
        assert ("step", "sig-3", 2, "tests.credit", "NoneType") not in received
    assert ("step", "sig-3", 2, "tests.credit", "NoneType") in received


def test_a_failing_receiver_does_not_break_the_workflow(received):
    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    step_finished.connect(broken)
    try:
        with SetWorkflowID("sig-4"):
            assert wf.plain_workflow(1) == 3
    finally:
        step_finished.disconnect(broken)


def test_signals_of_an_inline_workflow_inside_an_atomic_block_wait_for_its_commit(received):
    with transaction.atomic():
        with SetWorkflowID("sig-5"):
            wf.plain_workflow(1)
        assert received == []
    assert [event[0] for event in received] == ["started", "step", "step", "finished"]


def test_nothing_is_sent_when_the_outer_transaction_rolls_back(received):
    with pytest.raises(RuntimeError), transaction.atomic():
        with SetWorkflowID("sig-6"):
            wf.plain_workflow(1)
        raise RuntimeError("roll back")
    assert received == []

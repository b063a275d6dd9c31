"""Django signals about workflows, sent after the change they report has committed.

Receivers get keyword arguments only:
- ``workflow_started(sender, workflow_id, name, recovered)``: an execution began (first run,
  recovery, resume).
- ``workflow_finished(sender, workflow_id, name, status, error)``: the workflow reached a final
  status (``error`` is the exception for ERROR, else None).
- ``step_finished(sender, workflow_id, function_id, name, error)``: a step's checkpoint committed.

``sender`` is the workflow's name (or the step's). A receiver that raises is logged and does not
disturb the workflow (signals are sent with ``send_robust``). Inside an outer
``transaction.atomic()`` they wait for its commit and are dropped if it rolls back.
"""

from typing import Any

from django.db import transaction
from django.dispatch import Signal

workflow_started = Signal()
workflow_finished = Signal()
step_finished = Signal()


def send_after_commit(signal: Signal, sender: str, **kwargs: Any) -> None:
    """Send once the current transaction on the system database commits (at once under
    autocommit). Inside a test's rolled-back transaction, use ``captureOnCommitCallbacks``."""
    if not signal.receivers:
        return
    from django_dbos.conf import dbos_settings

    transaction.on_commit(
        lambda: signal.send_robust(sender=sender, **kwargs), using=dbos_settings().DATABASE
    )


def announce_finished(workflow_id: str, name: str, status: str, error: Any = None) -> None:
    send_after_commit(
        workflow_finished,
        sender=name,
        workflow_id=workflow_id,
        name=name,
        status=status,
        error=error,
    )

"""Reading workflows and their steps back (off the hot path: plain ORM)."""

from __future__ import annotations

from django_dbos.conf import dbos_settings
from django_dbos.engine.records import StepInfo, WorkflowStatus
from django_dbos.errors import DBOSNonExistentWorkflowError
from django_dbos.models import OperationOutput
from django_dbos.models import WorkflowStatus as WorkflowStatusRow


def get_workflow_status(workflow_id: str) -> WorkflowStatus | None:
    row = (
        WorkflowStatusRow.objects.using(dbos_settings().DATABASE)
        .filter(workflow_uuid=workflow_id)
        .first()
    )
    return WorkflowStatus.from_row(row) if row is not None else None


def list_workflow_steps(workflow_id: str) -> list[StepInfo]:
    alias = dbos_settings().DATABASE
    rows = list(
        OperationOutput.objects.using(alias).filter(workflow_id=workflow_id).order_by("function_id")
    )
    if not rows and not WorkflowStatusRow.objects.using(alias).filter(pk=workflow_id).exists():
        raise DBOSNonExistentWorkflowError(workflow_id)
    return [StepInfo.from_row(row) for row in rows]

"""``DBOS`` methods that read workflows back: handles, statuses, steps, listings."""

from __future__ import annotations

from django_dbos.engine import handles, introspection
from django_dbos.engine.handles import WorkflowHandle, WorkflowHandleAsync
from django_dbos.engine.records import StepInfo, WorkflowStatus
from django_dbos.engine.threads import to_thread


class IntrospectionAPI:
    @staticmethod
    def retrieve_workflow(workflow_id: str) -> WorkflowHandle:
        """A handle to an existing workflow; ``DBOSNonExistentWorkflowError`` if there is none."""
        return handles.retrieve_workflow(workflow_id)

    @staticmethod
    async def retrieve_workflow_async(workflow_id: str) -> WorkflowHandleAsync:
        handle = await to_thread(handles.retrieve_workflow, workflow_id)
        return WorkflowHandleAsync(handle.workflow_id)

    @staticmethod
    def get_workflow_status(workflow_id: str) -> WorkflowStatus | None:
        return introspection.get_workflow_status(workflow_id)

    @staticmethod
    async def get_workflow_status_async(workflow_id: str) -> WorkflowStatus | None:
        return await to_thread(introspection.get_workflow_status, workflow_id)

    @staticmethod
    def list_workflow_steps(workflow_id: str) -> list[StepInfo]:
        return introspection.list_workflow_steps(workflow_id)

    @staticmethod
    async def list_workflow_steps_async(workflow_id: str) -> list[StepInfo]:
        return await to_thread(introspection.list_workflow_steps, workflow_id)

"""``DBOS`` methods that operate workflows: cancel, resume, fork, delete, attributes, retention,
versioning.

Each validates its arguments before anything is written (a mistake is a ``DBOSException``
subclass naming the argument) and delegates to ``engine/control.py`` or
``engine/versioning.py``. Async twins run the same sync core on a database thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django_dbos.context import take_start_options
from django_dbos.engine import control, fork, retention, versioning
from django_dbos.engine.handles import WorkflowHandle, WorkflowHandleAsync
from django_dbos.engine.threads import to_thread


def _async_handle(handle: WorkflowHandle) -> WorkflowHandleAsync:
    return WorkflowHandleAsync(handle.workflow_id, handle.future)


class ControlAPI:
    # -- cancel ------------------------------------------------------------------------------

    @staticmethod
    def cancel_workflow(workflow_id: str) -> None:
        """Cancel a workflow and all its descendants that are not finished yet, in one
        transaction. Running code stops at its next durable operation with
        ``DBOSWorkflowCancelledError`` (a step already running finishes; the next one does not
        start). A finished workflow is left as it is; an unknown ID raises
        ``DBOSNonExistentWorkflowError``."""
        control.cancel_workflows([control.check_workflow_id(workflow_id)])

    @staticmethod
    async def cancel_workflow_async(workflow_id: str) -> None:
        await to_thread(control.cancel_workflows, [control.check_workflow_id(workflow_id)])

    @staticmethod
    def cancel_workflows(workflow_ids: Sequence[str]) -> None:
        """``cancel_workflow`` for many IDs at once, in one transaction (all or none)."""
        control.cancel_workflows(workflow_ids)

    @staticmethod
    async def cancel_workflows_async(workflow_ids: Sequence[str]) -> None:
        await to_thread(control.cancel_workflows, workflow_ids)

    # -- resume ------------------------------------------------------------------------------

    @staticmethod
    def resume_workflow(workflow_id: str) -> WorkflowHandle:
        """Continue a CANCELLED, ERROR or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow from its last
        checkpoint, on this process (an ENQUEUED one starts at once, past its queue). Its
        cancelled descendants are resumed with it. A recorded step error is part of the history
        and is replayed. Any other status: its handle, nothing runs."""
        return control.resume_workflows([control.check_workflow_id(workflow_id)])[0]

    @staticmethod
    async def resume_workflow_async(workflow_id: str) -> WorkflowHandleAsync:
        ids = [control.check_workflow_id(workflow_id)]
        return _async_handle((await to_thread(control.resume_workflows, ids))[0])

    @staticmethod
    def resume_workflows(workflow_ids: Sequence[str]) -> list[WorkflowHandle]:
        """``resume_workflow`` for many IDs, in one transaction; handles in the order given."""
        return control.resume_workflows(workflow_ids)

    @staticmethod
    async def resume_workflows_async(workflow_ids: Sequence[str]) -> list[WorkflowHandleAsync]:
        handles = await to_thread(control.resume_workflows, workflow_ids)
        return [_async_handle(handle) for handle in handles]

    # -- fork --------------------------------------------------------------------------------

    @staticmethod
    def fork_workflow(
        workflow_id: str, start_step: int, *, application_version: str | None = None
    ) -> WorkflowHandle:
        """Start a new workflow with the same name and inputs whose checkpoints (and events and
        stream entries) before ``start_step`` are copied; the rest runs again. ``SetWorkflowID``
        names it (default: a uuid4); it records ``forked_from``. It runs on this process unless
        ``application_version`` names another version (then a worker of that version adopts it).
        ``start_step`` must be from 1 to the last recorded step + 1 (else
        ``DBOSInvalidStartStepError``); nothing is written on bad input."""
        return fork.fork_workflow(
            workflow_id, start_step, application_version, take_start_options()
        )

    @staticmethod
    async def fork_workflow_async(
        workflow_id: str, start_step: int, *, application_version: str | None = None
    ) -> WorkflowHandleAsync:
        options = take_start_options()  # here, in the caller's context, not on the thread
        handle = await to_thread(
            fork.fork_workflow, workflow_id, start_step, application_version, options
        )
        return _async_handle(handle)

    # -- delete ------------------------------------------------------------------------------

    @staticmethod
    def delete_workflow(workflow_id: str, delete_children: bool = False) -> None:
        """Delete a workflow with all its rows (steps, messages, events, streams) and, with
        ``delete_children``, all its descendants, in one transaction, whatever their status. A
        running one stops at its next durable operation. Unknown ID:
        ``DBOSNonExistentWorkflowError``."""
        control.delete_workflows([control.check_workflow_id(workflow_id)], delete_children)

    @staticmethod
    async def delete_workflow_async(workflow_id: str, delete_children: bool = False) -> None:
        ids = [control.check_workflow_id(workflow_id)]
        await to_thread(control.delete_workflows, ids, delete_children)

    @staticmethod
    def delete_workflows(workflow_ids: Sequence[str], delete_children: bool = False) -> None:
        """``delete_workflow`` for many IDs, in one transaction (all or none)."""
        control.delete_workflows(workflow_ids, delete_children)

    @staticmethod
    async def delete_workflows_async(
        workflow_ids: Sequence[str], delete_children: bool = False
    ) -> None:
        await to_thread(control.delete_workflows, workflow_ids, delete_children)

    # -- attributes --------------------------------------------------------------------------

    # -- queues -------------------------------------------------------------------------------

    @staticmethod
    def set_workflow_delay(
        workflow_id: str,
        delay_seconds: float | None = None,
        *,
        delay_until_epoch_ms: int | None = None,
    ) -> None:
        """Set or move the delay of a DELAYED queued workflow: no worker claims it before
        ``delay_seconds`` from now (or the epoch time ``delay_until_epoch_ms``; give exactly
        one). A workflow that is not DELAYED is left as it is; an unknown ID raises
        ``DBOSNonExistentWorkflowError``. Not recorded as a step inside a workflow."""
        from django_dbos.engine.queues import set_delay

        set_delay(control.check_workflow_id(workflow_id), delay_seconds, delay_until_epoch_ms)

    @staticmethod
    async def set_workflow_delay_async(
        workflow_id: str,
        delay_seconds: float | None = None,
        *,
        delay_until_epoch_ms: int | None = None,
    ) -> None:
        from django_dbos.engine.queues import set_delay

        workflow_id = control.check_workflow_id(workflow_id)
        await to_thread(set_delay, workflow_id, delay_seconds, delay_until_epoch_ms)

    @staticmethod
    def update_workflow_attributes(
        workflow_id: str, attributes: dict[str, Any] | None, *, merge: bool = True
    ) -> None:
        """Merge ``attributes`` (str keys, JSON scalar values) into the workflow's stored
        attributes atomically; ``merge=False`` replaces them (``None`` clears them). Unknown ID:
        ``DBOSNonExistentWorkflowError``."""
        control.update_workflow_attributes(workflow_id, attributes, merge)

    @staticmethod
    async def update_workflow_attributes_async(
        workflow_id: str, attributes: dict[str, Any] | None, *, merge: bool = True
    ) -> None:
        await to_thread(control.update_workflow_attributes, workflow_id, attributes, merge)

    # -- retention ---------------------------------------------------------------------------

    @staticmethod
    def garbage_collect(
        cutoff_epoch_timestamp_ms: int | None = None,
        rows_threshold: int | None = None,
        *,
        batch_size: int = retention.DEFAULT_GC_BATCH_SIZE,
    ) -> int:
        """Delete finished workflows created before ``cutoff_epoch_timestamp_ms`` and/or all but
        the newest ``rows_threshold`` workflows, with all their rows, ``batch_size`` per
        transaction; never a PENDING, ENQUEUED or DELAYED one. Returns how many were deleted
        (0 when neither limit is given)."""
        return retention.garbage_collect(
            cutoff_epoch_timestamp_ms, rows_threshold, batch_size=batch_size
        )

    @staticmethod
    async def garbage_collect_async(
        cutoff_epoch_timestamp_ms: int | None = None,
        rows_threshold: int | None = None,
        *,
        batch_size: int = retention.DEFAULT_GC_BATCH_SIZE,
    ) -> int:
        return await to_thread(
            lambda: retention.garbage_collect(
                cutoff_epoch_timestamp_ms, rows_threshold, batch_size=batch_size
            )
        )

    # -- versioning --------------------------------------------------------------------------

    @staticmethod
    def patch(patch_name: str) -> bool:
        """Inside a workflow: True where new code runs (a patch marker is recorded), False when
        an execution of the code before the patch replays. See docs/versioning.md."""
        return versioning.patch(patch_name)

    @staticmethod
    async def patch_async(patch_name: str) -> bool:
        return await versioning.patch_async(patch_name)

    @staticmethod
    def deprecate_patch(patch_name: str) -> bool:
        """Inside a workflow: always True; steps over the patch marker where one is recorded.
        Deploy it once no execution of the pre-patch code is left."""
        return versioning.deprecate_patch(patch_name)

    @staticmethod
    async def deprecate_patch_async(patch_name: str) -> bool:
        return versioning.deprecate_patch(patch_name)  # no database work: nothing to await

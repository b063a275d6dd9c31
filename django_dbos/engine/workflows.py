"""Start, run and finish workflows; handles to wait for them.

A workflow starts with one conflict-safe INSERT of its status row. If the row was new, this call
runs the body. If the ID existed, nothing runs twice: a finished workflow's recorded outcome is
returned (or raised), a running one is waited for, and one whose executor died is adopted here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from typing import Any

from django_dbos import serialization
from django_dbos.context import (
    StartOptions,
    WorkflowContext,
    current_workflow,
    entered_workflow,
    take_start_options,
)
from django_dbos.engine import system_db
from django_dbos.engine.executor import application_version, get_executor
from django_dbos.engine.handles import (
    WorkflowHandle,
    WorkflowHandleAsync,
    notify_finished,
    outcome,
)
from django_dbos.engine.steps import (
    begin_operation,
    crash_if_simulated,
    encode_outcome,
    refused_checkpoint,
)
from django_dbos.engine.threads import in_event_loop, run_blocking, to_thread
from django_dbos.errors import (
    DBOSAwaitedWorkflowCancelledError,
    DBOSConflictingWorkflowError,
    DBOSNonExistentWorkflowError,
    DBOSWorkflowCancelledError,
    DBOSWorkflowConflictIDError,
    DBOSWorkflowInterrupted,
)
from django_dbos.models import TERMINAL_STATUSES, WorkflowStatusString, now_ms
from django_dbos.registry import WorkflowDefinition
from django_dbos.signals import announce_finished, send_after_commit, workflow_started

logger = logging.getLogger(__name__)
S = WorkflowStatusString


@dataclasses.dataclass(slots=True, kw_only=True)
class Prepared:
    """The outcome of starting a workflow: a context to run it with, or the existing row."""

    workflow_id: str
    definition: WorkflowDefinition
    ctx: WorkflowContext | None = None
    existing: system_db.WorkflowSummary | None = None
    is_child: bool = False
    recovered: bool = False

    def inputs(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any], bool]:
        """What to run the body with: the recorded inputs when this call adopted the workflow."""
        if self.recovered and self.existing is not None:
            recorded_args, recorded_kwargs = serialization.deserialize_args(
                self.existing.inputs or ""
            )
            return recorded_args, recorded_kwargs, True
        return args, kwargs, False


def prepare(
    definition: WorkflowDefinition,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    parent: WorkflowContext | None,
    options: StartOptions,
    queued: dict[str, Any] | None = None,
) -> Prepared:
    """Validate, serialize and INSERT the status row (nothing is written if input is bad).

    ``queued`` (from ``engine/queues.py``): the row's queue columns; the row is then written
    ENQUEUED/DELAYED for a worker to claim, and the result never has a context to run."""
    executor = get_executor()
    child_checkpointed = False
    if parent is not None:
        function_id, checkpoint = begin_operation(parent, definition.name)
        if checkpoint is not None and checkpoint.child_workflow_id:
            workflow_id, child_checkpointed = checkpoint.child_workflow_id, True
        else:
            workflow_id = options.workflow_id or f"{parent.workflow_id}-{function_id}"
    else:
        workflow_id = options.workflow_id or str(uuid.uuid4())
    inputs = serialization.serialize_args(args, kwargs)
    if queued is None:
        executor.ensure_started()
    now = now_ms()
    timeout_ms = int(options.timeout_seconds * 1000) if options.timeout_seconds else None
    deadline = now + timeout_ms if timeout_ms and queued is None else None
    if parent is not None and parent.deadline_epoch_ms is not None:
        deadline = min(deadline or parent.deadline_epoch_ms, parent.deadline_epoch_ms)
    version = application_version()
    row = {
        "workflow_uuid": workflow_id,
        "status": S.PENDING.value,
        "name": definition.name,
        "inputs": inputs,
        "executor_id": executor.executor_id,
        "application_version": version,
        "recovery_attempts": 0,
        "priority": 0,
        "workflow_timeout_ms": timeout_ms,
        "workflow_deadline_epoch_ms": deadline,
        "started_at_epoch_ms": now,
        "parent_workflow_id": parent.workflow_id if parent else None,
        "authenticated_user": options.authenticated_user,
        "attributes": json.dumps(options.attributes) if options.attributes else None,
        "created_at": now,
        "updated_at": now,
    }
    if queued is not None:
        row.update(queued, executor_id=None, started_at_epoch_ms=None)
        created = system_db.enqueue_workflow(row)
    else:
        created = system_db.insert_workflow(row)
    if (
        parent is not None
        and not child_checkpointed
        and not system_db.record_operation(
            parent.workflow_id, function_id, definition.name, child_workflow_id=workflow_id
        )
    ):
        if created:  # the parent was cancelled meanwhile: its new child must not linger
            system_db.set_status(
                workflow_id, S.CANCELLED, only_if=[S.PENDING, S.ENQUEUED, S.DELAYED]
            )
        raise refused_checkpoint(parent, function_id)
    if parent is not None and not child_checkpointed:
        crash_if_simulated(parent, function_id)
    prepared = Prepared(workflow_id=workflow_id, definition=definition, is_child=bool(parent))
    if created and queued is not None:
        return prepared
    if created:
        executor.reserve(workflow_id)  # a new row: nobody else can hold it
        prepared.ctx = WorkflowContext(
            workflow_id=workflow_id,
            name=definition.name,
            executor_id=executor.executor_id,
            application_version=version,
            deadline_epoch_ms=deadline,
            crash_after_step=options.crash_after_step,
        )
        return prepared
    existing = system_db.get_summary(workflow_id)
    if existing is None:  # deleted between the two statements
        raise DBOSNonExistentWorkflowError(workflow_id)
    if existing.name != definition.name:
        raise DBOSConflictingWorkflowError(workflow_id, existing.name, definition.name)
    prepared.existing = existing
    if (
        queued is None
        and existing.status == S.PENDING
        and not executor.is_running_here(workflow_id)
    ):
        from django_dbos.engine.recovery import adopt_if_orphaned  # recovery imports us

        prepared.ctx = adopt_if_orphaned(existing)
        prepared.recovered = prepared.ctx is not None
    return prepared


def context_for_recovery(summary: system_db.WorkflowSummary) -> WorkflowContext:
    """A context that replays the workflow's recorded checkpoints (loaded in one query)."""
    return WorkflowContext(
        workflow_id=summary.workflow_id,
        name=summary.name,
        executor_id=get_executor().executor_id,
        application_version=summary.application_version or application_version(),
        checkpoints=system_db.load_checkpoints(summary.workflow_id),
        deadline_epoch_ms=summary.deadline_epoch_ms,
    )


# -- running the body ----------------------------------------------------------------------


def _started(ctx: WorkflowContext, recovered: bool) -> None:
    get_executor().track(ctx)
    send_after_commit(
        workflow_started,
        sender=ctx.name,
        workflow_id=ctx.workflow_id,
        name=ctx.name,
        recovered=recovered,
    )


def _finish(ctx: WorkflowContext, status: str, output: str | None, error_text: str | None):
    if not system_db.finish_workflow(
        ctx.workflow_id, status, ctx.executor_id, output=output, error=error_text
    ):
        summary = system_db.get_summary(ctx.workflow_id)
        if summary is not None and summary.status == S.CANCELLED:
            raise DBOSWorkflowCancelledError(ctx.workflow_id)
        raise DBOSWorkflowConflictIDError(ctx.workflow_id, ctx.function_id)


def _succeeded(ctx: WorkflowContext, result: Any) -> Any:
    output, error_text, raised = encode_outcome(result, None)
    status = S.ERROR if raised is not None else S.SUCCESS
    _finish(ctx, status, output, error_text)
    announce_finished(ctx.workflow_id, ctx.name, status, raised)
    if raised is not None:
        raise raised
    return result


def _failed(ctx: WorkflowContext, exc: BaseException) -> None:
    """Record how the body ended; always re-raised by the caller."""
    if isinstance(exc, DBOSWorkflowCancelledError):
        if exc.workflow_id == ctx.workflow_id:
            if ctx.stop_reason == "timeout" and system_db.set_status(
                ctx.workflow_id, S.CANCELLED, only_if=[S.PENDING]
            ):
                announce_finished(ctx.workflow_id, ctx.name, S.CANCELLED, None)
            return
        exc = DBOSAwaitedWorkflowCancelledError(exc.workflow_id)
    if isinstance(exc, DBOSWorkflowConflictIDError | DBOSWorkflowInterrupted):
        return  # another execution owns it / the process is stopping: stays as it is
    if not isinstance(exc, Exception):
        return  # KeyboardInterrupt, SystemExit: the process dies; recovery resumes it
    _, error_text, _ = encode_outcome(None, exc)
    _finish(ctx, S.ERROR, None, error_text)
    announce_finished(ctx.workflow_id, ctx.name, S.ERROR, exc)


def _ended(ctx: WorkflowContext) -> None:
    get_executor().untrack(ctx)
    notify_finished(ctx.workflow_id)


def execute(
    definition: WorkflowDefinition,
    ctx: WorkflowContext,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    recovered: bool = False,
) -> Any:
    _started(ctx, recovered)
    try:
        with entered_workflow(ctx):
            result = definition.func(*args, **kwargs)
    except BaseException as exc:
        _failed(ctx, exc)
        raise
    else:
        return _succeeded(ctx, result)
    finally:
        _ended(ctx)


async def execute_async(
    definition: WorkflowDefinition,
    ctx: WorkflowContext,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    recovered: bool = False,
) -> Any:
    await to_thread(_started, ctx, recovered)
    try:
        with entered_workflow(ctx):
            result = await definition.func(*args, **kwargs)
    except BaseException as exc:
        await to_thread(_failed, ctx, exc)
        raise
    else:
        return await to_thread(_succeeded, ctx, result)
    finally:
        _ended(ctx)


# -- calling a workflow --------------------------------------------------------------------


def call_workflow(definition: WorkflowDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]):
    """A direct call: runs the workflow inline in this thread, durably."""
    if in_event_loop():
        return run_blocking(call_workflow, definition, args, kwargs)
    prepared = prepare(definition, args, kwargs, _parent(), take_start_options())
    if prepared.ctx is None:
        return _recorded_or_awaited(prepared)
    try:
        return execute(definition, prepared.ctx, *prepared.inputs(args, kwargs))
    except DBOSWorkflowConflictIDError:
        return WorkflowHandle(prepared.workflow_id).get_result()
    except DBOSWorkflowCancelledError as exc:
        raise _cancelled_for_caller(prepared.workflow_id, exc) from None


async def call_workflow_async(
    definition: WorkflowDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    parent = _parent()
    options = take_start_options()
    prepared = await to_thread(prepare, definition, args, kwargs, parent, options)
    if prepared.ctx is None:
        return await WorkflowHandleAsync(prepared.workflow_id).get_result()
    try:
        return await execute_async(definition, prepared.ctx, *prepared.inputs(args, kwargs))
    except DBOSWorkflowConflictIDError:
        return await WorkflowHandleAsync(prepared.workflow_id).get_result()
    except DBOSWorkflowCancelledError as exc:
        raise _cancelled_for_caller(prepared.workflow_id, exc) from None


def _cancelled_for_caller(workflow_id: str, exc: DBOSWorkflowCancelledError) -> BaseException:
    """The called workflow's own cancellation (or timeout) reaches its caller, a parent workflow
    or a view, as an ordinary, catchable error. A parent's own cancel stays a BaseException."""
    if exc.workflow_id == workflow_id:
        return DBOSAwaitedWorkflowCancelledError(workflow_id)
    return exc


def _parent() -> WorkflowContext | None:
    parent = current_workflow()
    return None if parent is None or parent.in_step else parent


def _recorded_or_awaited(prepared: Prepared) -> Any:
    """The ID existed and is not ours to run: its recorded outcome, or wait for it."""
    summary = prepared.existing
    assert summary is not None
    if summary.status in TERMINAL_STATUSES:
        return outcome(summary)
    return WorkflowHandle(summary.workflow_id).get_result()


def start_workflow(
    definition: WorkflowDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> WorkflowHandle:
    """Start on this process's pool; the status row is committed before this returns."""
    if in_event_loop():
        return run_blocking(start_workflow, definition, args, kwargs)
    prepared = prepare(definition, args, kwargs, _parent(), take_start_options())
    return _submit(prepared, args, kwargs)


async def start_workflow_async(
    definition: WorkflowDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> WorkflowHandleAsync:
    parent, options = _parent(), take_start_options()
    prepared = await to_thread(prepare, definition, args, kwargs, parent, options)
    handle = await to_thread(_submit, prepared, args, kwargs)
    return WorkflowHandleAsync(handle.workflow_id, handle.future)


def _submit(prepared: Prepared, args: tuple[Any, ...], kwargs: dict[str, Any]) -> WorkflowHandle:
    if prepared.ctx is None:
        return WorkflowHandle(prepared.workflow_id)
    executor = get_executor()
    try:
        future = executor.submit(
            run_in_pool, prepared.definition, prepared.ctx, *prepared.inputs(args, kwargs)
        )
    except BaseException:
        executor.release(prepared.workflow_id)
        raise
    return WorkflowHandle(prepared.workflow_id, future)


def run_in_pool(
    definition: WorkflowDefinition,
    ctx: WorkflowContext,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    recovered: bool,
) -> Any:
    """A pool thread's entry point: sync bodies run here, async ones on a fresh event loop."""
    if definition.is_async:
        import asyncio

        return asyncio.run(execute_async(definition, ctx, args, kwargs, recovered))
    return execute(definition, ctx, args, kwargs, recovered)

"""Patching: change a workflow's code while runs of the old code are still pending.

``DBOS.patch(name)`` marks a branch point in the workflow's history, as DBOS does. It looks at
the next ``function_id``:

- nothing recorded there (a new execution, or an old one that had not got this far): record the
  marker ``DBOS.patch-<name>`` there, take the id, and return True: run the new code;
- the marker is recorded there (a replay of a run that took the new code): take the id and
  return True;
- another operation is recorded there (a replay of a run of the old code): return False and
  take nothing, so the old code's operation replays at that id.

``DBOS.deprecate_patch(name)`` is the next deployment, once no run of the old code is left: it
always returns True, takes the id only when the marker is recorded there (runs that went through
``patch``), and records nothing, so new runs carry no marker. Once no run with the marker is left
either, the call can go.

The decision reads the checkpoints the execution loaded when it started (``ctx.checkpoints``):
only recording a new marker costs a statement.
"""

from __future__ import annotations

from typing import Any

from django_dbos.context import WorkflowContext, current_workflow
from django_dbos.engine import system_db
from django_dbos.engine.steps import crash_if_simulated, refused_checkpoint
from django_dbos.engine.threads import in_event_loop, run_blocking, to_thread
from django_dbos.errors import DBOSException, DBOSNotInWorkflowError
from django_dbos.models import now_ms

PATCH_PREFIX = "DBOS.patch-"
_MAX_NAME = 255 - len(PATCH_PREFIX)  # the marker is a function_name (255 characters)


def _workflow(operation: str) -> WorkflowContext:
    ctx = current_workflow()
    if ctx is None or ctx.in_step:
        raise DBOSNotInWorkflowError(operation)
    return ctx


def marker(operation: str, patch_name: Any) -> str:
    """The checkpoint name of a patch (``DBOS.patch-<name>``)."""
    if not isinstance(patch_name, str) or not patch_name or len(patch_name) > _MAX_NAME:
        raise DBOSException(
            f"{operation} needs a patch name: a non-empty string of at most {_MAX_NAME} "
            f"characters, not {patch_name!r}."
        )
    return PATCH_PREFIX + patch_name


def _recorded_next(ctx: WorkflowContext) -> tuple[int, str | None]:
    """The next function_id and the name recorded there, if any."""
    function_id = ctx.function_id + 1
    checkpoint = ctx.checkpoints.get(function_id)
    return function_id, checkpoint.function_name if checkpoint is not None else None


def _record_marker(ctx: WorkflowContext, function_id: int, name: str) -> None:
    if not system_db.record_operation(ctx.workflow_id, function_id, name, started_at_ms=now_ms()):
        raise refused_checkpoint(ctx, function_id)
    crash_if_simulated(ctx, function_id)


def _decide(ctx: WorkflowContext, name: str) -> tuple[bool, int | None]:
    """(result, function_id whose marker must still be recorded); takes the id when True."""
    function_id, recorded = _recorded_next(ctx)
    if recorded is not None and recorded != name:
        return False, None  # the old code's history: it replays at this id
    if recorded is None:
        ctx.raise_if_stopped()
    ctx.function_id = function_id
    return True, function_id if recorded is None else None


def patch(patch_name: str) -> bool:
    """True where the new code runs (and records the patch), False where an execution of the
    old code replays. Only inside a workflow (``DBOSNotInWorkflowError`` elsewhere)."""
    ctx = _workflow("DBOS.patch")
    name = marker("DBOS.patch", patch_name)
    result, to_record = _decide(ctx, name)
    if to_record is not None:
        if in_event_loop():
            run_blocking(_record_marker, ctx, to_record, name)
        else:
            _record_marker(ctx, to_record, name)
    return result


async def patch_async(patch_name: str) -> bool:
    """``patch`` for async workflows: the id is taken on the event loop before anything is
    awaited, so concurrent tasks of the workflow cannot take it in between."""
    ctx = _workflow("DBOS.patch_async")
    name = marker("DBOS.patch_async", patch_name)
    result, to_record = _decide(ctx, name)
    if to_record is not None:
        await to_thread(_record_marker, ctx, to_record, name)
    return result


def deprecate_patch(patch_name: str) -> bool:
    """Always True; takes the next id only if this patch's marker is recorded there. Records
    nothing. Only inside a workflow."""
    ctx = _workflow("DBOS.deprecate_patch")
    name = marker("DBOS.deprecate_patch", patch_name)
    function_id, recorded = _recorded_next(ctx)
    if recorded == name:
        ctx.function_id = function_id
    return True

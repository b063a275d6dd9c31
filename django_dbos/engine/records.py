"""Immutable value objects the public API returns, with DBOS's field names."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any

from django_dbos import serialization
from django_dbos.models import TERMINAL_STATUSES, OperationOutput
from django_dbos.models import WorkflowStatus as WorkflowStatusRow

logger = logging.getLogger("django_dbos")


def _decoded(text: str, decode: Callable[[str], Any], what: str, workflow_id: str) -> Any:
    """A stored value for introspection: decoded, or (as DBOS's ``safe_deserialize`` does) the
    stored text itself with a warning when it cannot be (a key rotated away, a serializer
    changed), so one bad row never makes a whole listing fail."""
    try:
        return decode(text)
    except Exception as exc:
        logger.warning(
            "The %s of workflow %s could not be decoded (%s: %s); returning the stored text",
            what,
            workflow_id,
            type(exc).__name__,
            exc,
            extra={"workflow_id": workflow_id},
        )
        return text


def _inputs(text: str) -> dict[str, Any]:
    args, kwargs = serialization.deserialize_args(text)
    return {"args": args, "kwargs": kwargs}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowStatus:
    """A snapshot of one workflow (times are epoch milliseconds, as in DBOS)."""

    workflow_id: str
    status: str
    name: str
    class_name: str | None = None
    config_name: str | None = None
    authenticated_user: str | None = None
    input: dict[str, Any] | None = None
    output: Any = None
    error: BaseException | None = None
    created_at: int | None = None
    updated_at: int | None = None
    queue_name: str | None = None
    executor_id: str | None = None
    app_version: str | None = None
    workflow_timeout_ms: int | None = None
    workflow_deadline_epoch_ms: int | None = None
    deduplication_id: str | None = None
    priority: int | None = None
    queue_partition_key: str | None = None
    forked_from: str | None = None
    parent_workflow_id: str | None = None
    dequeued_at: int | None = None
    completed_at: int | None = None
    attributes: dict[str, Any] | None = None
    recovery_attempts: int | None = None

    @classmethod
    def from_row(
        cls, row: WorkflowStatusRow, *, load_input: bool = True, load_output: bool = True
    ) -> WorkflowStatus:
        wid = row.workflow_uuid
        inputs = None
        if load_input and row.inputs is not None:
            inputs = _decoded(row.inputs, _inputs, "input", wid)
        return cls(
            workflow_id=row.workflow_uuid,
            status=row.status,
            name=row.name,
            class_name=row.class_name,
            config_name=row.config_name,
            authenticated_user=row.authenticated_user,
            input=inputs,
            output=(
                _decoded(row.output, serialization.deserialize, "output", wid)
                if load_output and row.output
                else None
            ),
            error=(
                _decoded(row.error, serialization.deserialize_exception, "error", wid)
                if load_output and row.error
                else None
            ),
            created_at=row.created_at,
            updated_at=row.updated_at,
            queue_name=row.queue_name,
            executor_id=row.executor_id,
            app_version=row.application_version,
            workflow_timeout_ms=row.workflow_timeout_ms,
            workflow_deadline_epoch_ms=row.workflow_deadline_epoch_ms,
            deduplication_id=row.deduplication_id,
            priority=row.priority,
            queue_partition_key=row.queue_partition_key,
            forked_from=row.forked_from,
            parent_workflow_id=row.parent_workflow_id,
            dequeued_at=row.started_at_epoch_ms if row.queue_name else None,
            completed_at=row.updated_at if row.status in TERMINAL_STATUSES else None,
            attributes=json.loads(row.attributes) if row.attributes else None,
            recovery_attempts=row.recovery_attempts,
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StepInfo:
    """One recorded operation of a workflow."""

    function_id: int
    function_name: str
    output: Any = None
    error: BaseException | None = None
    child_workflow_id: str | None = None
    started_at_epoch_ms: int | None = None
    completed_at_epoch_ms: int | None = None

    @classmethod
    def from_row(cls, row: OperationOutput) -> StepInfo:
        step = f"step {row.function_id} ({row.function_name})"
        return cls(
            function_id=row.function_id,
            function_name=row.function_name,
            output=(
                _decoded(row.output, serialization.deserialize, step, row.workflow_id)
                if row.output is not None
                else None
            ),
            error=(
                _decoded(row.error, serialization.deserialize_exception, step, row.workflow_id)
                if row.error
                else None
            ),
            child_workflow_id=row.child_workflow_id,
            started_at_epoch_ms=row.started_at_epoch_ms,
            completed_at_epoch_ms=row.completed_at_epoch_ms,
        )

"""Context variables: the running workflow, and options for the next workflow started.

``WorkflowContext`` is the state of one workflow execution: its ID, the counter that hands out
``function_id``s, the checkpoints loaded for replay, and the flags that stop it (cancel,
shutdown). It lives in a ``ContextVar`` so threads and asyncio tasks each see their own.
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

from django_dbos.errors import (
    DBOSException,
    DBOSUnexpectedStepError,
    DBOSWorkflowCancelledError,
    DBOSWorkflowInterrupted,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Checkpoint:
    """A recorded operation, as loaded for replay."""

    function_id: int
    function_name: str
    output: str | None
    error: str | None
    child_workflow_id: str | None


@dataclasses.dataclass(slots=True, kw_only=True)
class WorkflowContext:
    workflow_id: str
    name: str
    executor_id: str
    application_version: str
    checkpoints: dict[int, Checkpoint] = dataclasses.field(default_factory=dict)
    deadline_epoch_ms: int | None = None
    function_id: int = 0
    step_id: int | None = None
    step_writes: int = 0
    in_step: bool = False
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    stop_reason: str = ""
    crash_after_step: int | None = None

    def next_function_id(self) -> int:
        self.function_id += 1
        return self.function_id

    def replay(self, function_id: int, function_name: str) -> Checkpoint | None:
        """The recorded outcome at ``function_id``, checked against the name the code uses now."""
        checkpoint = self.checkpoints.get(function_id)
        if checkpoint is not None and checkpoint.function_name != function_name:
            raise DBOSUnexpectedStepError(
                self.workflow_id, function_id, function_name, checkpoint.function_name
            )
        return checkpoint

    def raise_if_stopped(self) -> None:
        """Called before every durable operation: the only places a workflow may stop."""
        if not self.stop.is_set():
            if self.deadline_epoch_ms is None or time.time() * 1000 < self.deadline_epoch_ms:
                return
            self.stop_reason = "timeout"
        if self.stop_reason in ("cancelled", "timeout"):
            raise DBOSWorkflowCancelledError(self.workflow_id)
        raise DBOSWorkflowInterrupted(self.workflow_id, self.stop_reason or "shutdown")

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self.stop.set()

    def wait(self, seconds: float) -> None:
        """Sleep that wakes early (and raises) when the workflow is cancelled, interrupted or
        reaches its deadline."""
        if seconds > 0:
            if self.deadline_epoch_ms is not None:
                seconds = min(seconds, max(0.0, self.deadline_epoch_ms / 1000 - time.time()))
            self.stop.wait(seconds)
        self.raise_if_stopped()


_current_workflow: contextvars.ContextVar[WorkflowContext | None] = contextvars.ContextVar(
    "dbos_current_workflow", default=None
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StartOptions:
    """What the next workflow started in this context should use (set by the context managers)."""

    workflow_id: str | None = None
    timeout_seconds: float | None = None
    authenticated_user: str | None = None
    attributes: dict[str, Any] | None = None
    crash_after_step: int | None = None
    # enqueue options (SetEnqueueOptions); ignored by workflows that are not enqueued
    deduplication_id: str | None = None
    priority: int | None = None
    queue_partition_key: str | None = None
    delay_seconds: float | None = None
    app_version: str | None = None


_next_start: contextvars.ContextVar[StartOptions] = contextvars.ContextVar(
    "dbos_next_start",
    default=StartOptions(),  # noqa: B039  (immutable)
)


def current_workflow() -> WorkflowContext | None:
    return _current_workflow.get()


@contextmanager
def entered_workflow(ctx: WorkflowContext) -> Iterator[WorkflowContext]:
    token = _current_workflow.set(ctx)
    try:
        yield ctx
    finally:
        _current_workflow.reset(token)


@contextmanager
def outside_workflow() -> Iterator[None]:
    """Run as an outside caller even from inside a workflow: nothing done in the block is
    recorded as one of its operations or made its child (what a ``DBOSClient`` call is)."""
    token = _current_workflow.set(None)
    try:
        yield
    finally:
        _current_workflow.reset(token)


def take_start_options() -> StartOptions:
    """The options for the workflow starting now; consumed, so its children don't inherit them."""
    options = _next_start.get()
    if options != StartOptions():
        _next_start.set(StartOptions())
    return options


class _StartOptionSetter:
    """Sets fields of the next start's options for the ``with`` block, then restores them."""

    _field: str
    _token: contextvars.Token[StartOptions] | None = None

    def __init__(self, value: Any) -> None:
        self._values: dict[str, Any] = {self._field: value}

    def __enter__(self) -> Self:
        self._token = _next_start.set(dataclasses.replace(_next_start.get(), **self._values))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _next_start.reset(self._token)


class SetWorkflowID(_StartOptionSetter):
    """``with SetWorkflowID("order-42"): order_workflow(...)``: the next workflow gets this ID.

    The ID is the idempotency key: starting a workflow with an ID that already ran returns its
    recorded result instead of running it again.
    """

    _field = "workflow_id"

    def __init__(self, workflow_id: str) -> None:
        if not isinstance(workflow_id, str) or not workflow_id:
            raise DBOSException(
                f"SetWorkflowID needs a non-empty string, not {workflow_id!r}.",
            )
        if len(workflow_id) > 255:
            raise DBOSException("A workflow ID is at most 255 characters long.")
        super().__init__(workflow_id)


def check_attributes(attributes: Any) -> dict[str, Any]:
    """Attributes are a flat dict of str keys to JSON scalars (they are filtered on in SQL)."""
    if not isinstance(attributes, dict) or not all(isinstance(k, str) for k in attributes):
        raise DBOSException(
            f"Workflow attributes must be a dict with str keys, not {attributes!r}."
        )
    for key, value in attributes.items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise DBOSException(
                f"Workflow attribute {key!r} must be a str, number, bool or None, "
                f"not {type(value).__name__}."
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise DBOSException(
                f"Workflow attribute {key!r} must be a finite number, not {value!r} "
                "(it is stored as JSON, which has no NaN or infinity)."
            )
    return dict(attributes)


class SetWorkflowAttributes(_StartOptionSetter):
    """``with SetWorkflowAttributes({"tenant": "acme"}):``: the next workflow started is stored
    with these key/value properties (shown in listings, filterable with ``attributes=``)."""

    _field = "attributes"

    def __init__(self, attributes: dict[str, Any]) -> None:
        super().__init__(check_attributes(attributes))


class SetWorkflowTimeout(_StartOptionSetter):
    """``with SetWorkflowTimeout(60):``: the next workflow is cancelled if not done in 60 s."""

    _field = "timeout_seconds"

    def __init__(self, workflow_timeout_sec: float | None) -> None:
        if workflow_timeout_sec is not None and (
            isinstance(workflow_timeout_sec, bool)
            or not isinstance(workflow_timeout_sec, int | float)
            or workflow_timeout_sec <= 0
        ):
            raise DBOSException(
                f"SetWorkflowTimeout needs a positive number of seconds or None, "
                f"not {workflow_timeout_sec!r}."
            )
        super().__init__(workflow_timeout_sec)


MAX_PRIORITY = 2**31 - 1


class SetEnqueueOptions(_StartOptionSetter):
    """``with SetEnqueueOptions(priority=1, deduplication_id="order-42"):``: options for the
    next ``Queue.enqueue`` in this block (DBOS's names).

    ``priority``: 0 (the default) .. 2**31-1, lower runs first (the queue needs
    ``priority_enabled``); ``deduplication_id``: a second enqueue while a workflow with this ID
    is live on the queue raises ``DBOSQueueDeduplicatedError``; ``queue_partition_key``: the
    partition of a partitioned queue; ``delay_seconds``: not claimed before this delay;
    ``app_version``: only workers of that application version run it. Raises
    ``DBOSInvalidArgumentError`` for a value of the wrong type or out of range.
    """

    def __init__(
        self,
        *,
        deduplication_id: str | None = None,
        priority: int | None = None,
        queue_partition_key: str | None = None,
        delay_seconds: float | None = None,
        app_version: str | None = None,
    ) -> None:
        from django_dbos.errors import DBOSInvalidArgumentError

        op = "SetEnqueueOptions"
        for argument, value in (
            ("deduplication_id", deduplication_id),
            ("queue_partition_key", queue_partition_key),
            ("app_version", app_version),
        ):
            if value is not None and (not isinstance(value, str) or not value or len(value) > 255):
                raise DBOSInvalidArgumentError(
                    argument, value, "a non-empty string of at most 255 characters", operation=op
                )
        if priority is not None and (
            isinstance(priority, bool)
            or not isinstance(priority, int)
            or not 0 <= priority <= MAX_PRIORITY
        ):
            raise DBOSInvalidArgumentError(
                "priority", priority, f"an int from 0 to {MAX_PRIORITY}", operation=op
            )
        if delay_seconds is not None and (
            isinstance(delay_seconds, bool)
            or not isinstance(delay_seconds, int | float)
            or not math.isfinite(delay_seconds)
            or delay_seconds < 0
        ):
            raise DBOSInvalidArgumentError(
                "delay_seconds", delay_seconds, "a number of seconds, 0 or more", operation=op
            )
        self._values = {
            "deduplication_id": deduplication_id,
            "priority": priority,
            "queue_partition_key": queue_partition_key,
            "delay_seconds": delay_seconds,
            "app_version": app_version,
        }

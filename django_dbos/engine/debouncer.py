"""Debouncing: a burst of calls for one key becomes one run of the workflow, with the last
call's arguments, ``period`` after the last call (or ``timeout`` after the first, at the latest).

A debounce window is one DELAYED status row on the target queue whose deduplication ID is the
window's marker (``marker()``); the dispatcher claims it like any delayed row once
``delay_until_epoch_ms`` has passed. Each call is one short transaction on the system database:

1. extend: ``UPDATE`` the DELAYED row holding the marker (new inputs, new ``delay_until``, capped
   at ``created_at + timeout``); if a row was updated, that is the window's workflow;
2. otherwise release the marker from a row of an earlier window that has left DELAYED (claimed,
   finished or cancelled), then INSERT a new DELAYED row through the normal enqueue path.

Races: on PostgreSQL the extend UPDATE and the claim both lock the row, so a claim either runs
the row as it was before the update, or skips it and finds the extended delay; an UPDATE that
waited on a claim re-reads the row, sees it PENDING, updates nothing, and opens a new window.
Two calls opening the same window at once: the second INSERT waits on the unique
(queue_name, deduplication_id) index, inserts nothing when the first commits, and retries as an
extension. On SQLite the IMMEDIATE transaction holds the one write lock, so nothing interleaves.

Inside a workflow the call is a durable operation (``DBOS.debounce``): the checkpoint, which
holds the window's workflow ID, commits in the same transaction, so a replay returns the same ID
and never extends or opens a window twice.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import transaction

from django_dbos import serialization
from django_dbos.context import StartOptions, WorkflowContext, current_workflow
from django_dbos.engine import system_db, wakeups
from django_dbos.engine.steps import (
    begin_operation,
    crash_if_simulated,
    record,
    refused_checkpoint,
    replayed,
)
from django_dbos.errors import (
    DBOSConflictingWorkflowError,
    DBOSInvalidArgumentError,
    DBOSQueueDeduplicatedError,
)
from django_dbos.models import QueueConfig, WorkflowStatusString, now_ms
from django_dbos.registry import WorkflowDefinition

if TYPE_CHECKING:
    from django_dbos.queues import Queue

DEBOUNCE_NAME = "DBOS.debounce"
MARKER_PREFIX = "debounce:"
S = WorkflowStatusString
STATUS_TABLE = system_db.STATUS_TABLE
_OPERATION = "Debouncer.debounce"
_ATTEMPTS = 5  # a lost race for a new window costs one retry; more means a real conflict
_MAX_DEDUPLICATION_ID = 255  # the column's length
Q = TypeVar("Q", bound="Queue | QueueConfig")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DebounceTarget:
    """What a ``Debouncer`` debounces: the workflow, the queue it runs on, the window's cap.

    ``by_name``: the workflow is known here only by its name (``DebouncerClient``): a new
    window's row is written as ``DBOSClient.enqueue`` writes it (``queues.enqueue_by_name``),
    on a queue that may be only a ``dbos_queues`` row."""

    definition: WorkflowDefinition
    queue: Queue | QueueConfig
    timeout_sec: float | None
    by_name: bool = False


def target_by_name(
    workflow_name: str, queue: Queue | QueueConfig, timeout_sec: float | None
) -> DebounceTarget:
    """The target of a debounce by workflow name (the workflow need not be importable here;
    an unknown name ends as ERROR at the worker that claims the window's row)."""
    from django_dbos.engine.queues import known_by_name_only

    definition = WorkflowDefinition(
        name=workflow_name, func=known_by_name_only, is_async=False, max_recovery_attempts=None
    )
    return DebounceTarget(
        definition=definition, queue=check_queue(queue), timeout_sec=timeout_sec, by_name=True
    )


def marker(workflow_name: str, key: str) -> str:
    """The deduplication ID a debounce window holds on its queue while it is DELAYED.

    Prefixed so that it cannot be mistaken for an ID a user passes to ``SetEnqueueOptions``;
    the workflow name is part of it because one queue serves many debounced workflows."""
    return f"{MARKER_PREFIX}{workflow_name}:{key}"


def check_seconds(argument: str, value: Any, *, optional: bool, operation: str) -> float | None:
    """A positive, finite number of seconds (or None where ``optional``)."""
    if value is None and optional:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        expected = "a positive number of seconds" + (" or None" if optional else "")
        raise DBOSInvalidArgumentError(argument, value, expected, operation=operation)
    return float(value)


def check_queue(queue: Q) -> Q:
    if queue.partition_queue:
        raise DBOSInvalidArgumentError(
            "queue",
            queue,
            "a queue without partition_queue=True (a debounce key is one window per queue, "
            "not per partition)",
            operation="Debouncer",
        )
    return queue


def _check_key(target: DebounceTarget, key: Any) -> str:
    return check_key(target.definition.name, key)


def check_key(workflow_name: str, key: Any, operation: str = _OPERATION) -> str:
    """A debounce key: a str short enough for the window's marker to fit its column."""
    if not isinstance(key, str):
        raise DBOSInvalidArgumentError("debounce_key", key, "a str", operation=operation)
    room = _MAX_DEDUPLICATION_ID - len(marker(workflow_name, ""))
    if len(key) > room:
        raise DBOSInvalidArgumentError(
            "debounce_key", key, f"at most {room} characters long", operation=operation
        )
    return key


def _check_options(options: StartOptions) -> None:
    """A debounce owns the row's deduplication ID and delay; priority and partitions do not
    apply to it (as in DBOS). ``SetWorkflowID``, ``SetWorkflowTimeout`` and attributes apply to
    a new window's row."""
    for argument in ("deduplication_id", "delay_seconds", "priority", "queue_partition_key"):
        value = getattr(options, argument)
        if value is not None:
            raise DBOSInvalidArgumentError(
                f"SetEnqueueOptions({argument}=...)",
                value,
                "unset around a debounce (the debouncer sets the deduplication ID and the "
                "delay itself; priority and partitions do not apply to debounced workflows)",
                operation=_OPERATION,
            )


def debounce(
    target: DebounceTarget,
    key: Any,
    period_sec: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: StartOptions,
) -> str:
    """Extend the key's open window or open a new one; the window's workflow ID. Raises
    ``DBOSInvalidArgumentError`` or ``DBOSSerializationError`` before anything is written, and
    ``DBOSQueueDeduplicatedError`` when a workflow that is not this debouncer's holds the
    marker."""
    key = _check_key(target, key)
    period = check_seconds("debounce_period_sec", period_sec, optional=False, operation=_OPERATION)
    assert period is not None
    _check_options(options)
    inputs = serialization.serialize_args(args, kwargs)
    ctx = current_workflow()
    if ctx is None or ctx.in_step:  # inside a step: an ordinary call, part of the step
        with transaction.atomic(using=system_db.connection().alias):
            return _debounce(target, key, period, inputs, args, kwargs, options, None)
    function_id, checkpoint = begin_operation(ctx, DEBOUNCE_NAME)
    if checkpoint is not None:
        workflow_id: str = replayed(checkpoint)
        return workflow_id
    started = now_ms()
    try:
        with transaction.atomic(using=system_db.connection().alias):
            workflow_id = _debounce(target, key, period, inputs, args, kwargs, options, ctx)
            if not system_db.record_operation(
                ctx.workflow_id,
                function_id,
                DEBOUNCE_NAME,
                output=serialization.serialize(workflow_id),
                child_workflow_id=workflow_id,
                started_at_ms=started,
            ):
                raise refused_checkpoint(ctx, function_id)
    except (DBOSQueueDeduplicatedError, DBOSConflictingWorkflowError) as exc:
        # outcomes of the database's state, not of the arguments: recorded (after the
        # rollback), so a replay raises the same error instead of trying again
        record(ctx, function_id, DEBOUNCE_NAME, started, error=exc)  # raises exc
        raise  # not reached
    crash_if_simulated(ctx, function_id)
    return workflow_id


def _debounce(
    target: DebounceTarget,
    key: str,
    period: float,
    inputs: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: StartOptions,
    ctx: WorkflowContext | None,
) -> str:
    """The body of the one transaction (already open) of a debounce call."""
    dedup_id = marker(target.definition.name, key)
    queue = target.queue
    error: DBOSQueueDeduplicatedError | None = None
    for _attempt in range(_ATTEMPTS):
        extended = _extend(target, dedup_id, period, inputs)
        if extended is not None:
            wakeups.signal_after_commit(("enqueued", queue.name))
            return extended
        _release(target, dedup_id)
        try:
            workflow_id = _open_window(target, dedup_id, period, args, kwargs, options, ctx)
        except DBOSQueueDeduplicatedError as exc:
            error = exc  # another call opened the window first (or a foreign row holds it)
            continue
        if options.workflow_id is not None:
            # A concurrent call with the same SetWorkflowID may have opened this very window
            # first (our INSERT then found the ID taken): this call's arguments are the latest.
            _extend(target, dedup_id, period, inputs, only=workflow_id)
        return workflow_id
    assert error is not None
    raise error


def _extend(
    target: DebounceTarget, dedup_id: str, period: float, inputs: str, only: str | None = None
) -> str | None:
    """Move the open window's start and inputs; its workflow ID, or None without one (or when
    it is not the workflow ``only``)."""
    now = now_ms()
    until = now + max(1, int(period * 1000))
    if target.timeout_sec is None:
        delay_sql, delay_params = "%s", [until]
    else:
        cap = int(target.timeout_sec * 1000)
        delay_sql = "CASE WHEN created_at + %s < %s THEN created_at + %s ELSE %s END"
        delay_params = [cap, until, cap, until]
    with system_db.connection().cursor() as cursor:
        cursor.execute(
            f"UPDATE {STATUS_TABLE} SET inputs = %s, delay_until_epoch_ms = {delay_sql}, "
            "updated_at = %s WHERE queue_name = %s AND deduplication_id = %s AND status = %s "
            f"AND name = %s{' AND workflow_uuid = %s' if only else ''} RETURNING workflow_uuid",
            [
                inputs,
                *delay_params,
                now,
                target.queue.name,
                dedup_id,
                S.DELAYED.value,
                target.definition.name,
                *([only] if only else []),
            ],
        )
        row = cursor.fetchone()
    return str(row[0]) if row else None


def _release(target: DebounceTarget, dedup_id: str) -> None:
    """An earlier window of this key that left DELAYED (claimed, finished, cancelled) gives the
    marker up, so the next window can take it."""
    with system_db.connection().cursor() as cursor:
        cursor.execute(
            f"UPDATE {STATUS_TABLE} SET deduplication_id = NULL "
            "WHERE queue_name = %s AND deduplication_id = %s AND status <> %s AND name = %s",
            [target.queue.name, dedup_id, S.DELAYED.value, target.definition.name],
        )


def _open_window(
    target: DebounceTarget,
    dedup_id: str,
    period: float,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: StartOptions,
    ctx: WorkflowContext | None,
) -> str:
    """INSERT the new window's DELAYED row through the queue's enqueue path."""
    from django_dbos.engine.queues import _enqueue, enqueue_by_name  # the paths to queued rows

    delay = period if target.timeout_sec is None else min(period, target.timeout_sec)
    row_options = dataclasses.replace(
        options, deduplication_id=dedup_id, delay_seconds=max(delay, 0.001)
    )
    if target.by_name:  # a client: never a child, whatever the caller
        return enqueue_by_name(target.queue, target.definition.name, args, kwargs, row_options)
    assert not isinstance(target.queue, QueueConfig)  # only a by-name target has a stored one
    if ctx is None:
        return _enqueue(target.queue, target.definition, args, kwargs, row_options)
    # The window is shared by every caller of the key, so it is no child of this workflow (a
    # cancel of this workflow must not cancel it): enqueue as from inside a step.
    was_in_step = ctx.in_step
    ctx.in_step = True
    try:
        return _enqueue(target.queue, target.definition, args, kwargs, row_options)
    finally:
        ctx.in_step = was_in_step

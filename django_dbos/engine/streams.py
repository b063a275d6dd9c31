"""Streams: a workflow appends values under a key; readers anywhere follow them in real time.

Each write is named by the operation that made it and its number within that operation
(``function_id``, ``seq``), and a unique index on that name makes every write exactly once:
a replayed workflow skips its recorded writes, a re-run step re-inserts nothing it already
wrote. A close marker ends the stream; so does the end of the workflow.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import transaction

from django_dbos import serialization
from django_dbos.context import WorkflowContext, current_workflow
from django_dbos.engine import system_db, wakeups
from django_dbos.engine.steps import begin_operation, crash_if_simulated, refused_checkpoint
from django_dbos.errors import DBOSException, DBOSNotInWorkflowError, DBOSStreamTimeoutError
from django_dbos.models import TERMINAL_STATUSES, StreamEntry

WRITE, CLOSE = "DBOS.writeStream", "DBOS.closeStream"
CLOSED = "__DBOS_STREAM_CLOSED__"  # never produced by a serializer (not JSON, not base64)

_APPEND_SQL = (
    'INSERT INTO dbos_streams (workflow_uuid, key, "offset", value, function_id, seq) '
    'SELECT %s, %s, COALESCE(MAX("offset"), -1) + 1, %s, %s, %s FROM dbos_streams '
    "WHERE workflow_uuid = %s AND key = %s "
    "ON CONFLICT (workflow_uuid, key, function_id, seq) DO NOTHING"
)


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > 255:
        raise DBOSException(f"A stream key must be a non-empty string (<= 255), not {key!r}.")
    return key


def _append(ctx: WorkflowContext, key: str, text: str, function_id: int, seq: int) -> None:
    with system_db.connection().cursor() as cursor:
        cursor.execute(
            _APPEND_SQL, [ctx.workflow_id, key, text, function_id, seq, ctx.workflow_id, key]
        )
    wakeups.signal_after_commit(("stream", ctx.workflow_id, key))


def _write(key: str, text: str, name: str) -> None:
    ctx = current_workflow()
    if ctx is None:
        raise DBOSNotInWorkflowError(f"DBOS.{'close_stream' if name == CLOSE else 'write_stream'}")
    alias = system_db.connection().alias
    if ctx.in_step:
        # part of the step: numbered within it, so a re-run of the step rewrites nothing
        seq = ctx.step_writes = ctx.step_writes + 1
        with transaction.atomic(using=alias):
            _append(ctx, key, text, ctx.step_id or 0, seq)
        return
    function_id, checkpoint = begin_operation(ctx, name)
    if checkpoint is not None:
        return
    with transaction.atomic(using=alias):
        _append(ctx, key, text, function_id, 0)
        if not system_db.record_operation(ctx.workflow_id, function_id, name):
            raise refused_checkpoint(ctx, function_id)
    crash_if_simulated(ctx, function_id)


def write_stream(key: str, value: Any) -> None:
    _write(_check_key(key), serialization.serialize(value), WRITE)


def close_stream(key: str) -> None:
    _write(_check_key(key), CLOSED, CLOSE)


def _entries_from(workflow_id: str, key: str, offset: int) -> list[tuple[int, str]]:
    return list(
        StreamEntry.objects.using(system_db.connection().alias)
        .filter(workflow_id=workflow_id, key=key, offset__gte=offset)
        .order_by("offset")
        .values_list("offset", "value")[:100]
    )


def _workflow_over(workflow_id: str) -> bool:
    summary = system_db.get_summary(workflow_id)
    return summary is None or summary.status in TERMINAL_STATUSES


def read_stream(
    workflow_id: str, key: str, offset: int = 0, timeout_seconds: float | None = None
) -> Iterator[Any]:
    """Yield the stream's values in order, as they are written, until it is closed or its
    workflow ends. ``timeout_seconds`` bounds the wait for each next value."""
    if not isinstance(workflow_id, str) or not workflow_id:
        raise DBOSException(f"workflow_id must be a non-empty string, not {workflow_id!r}.")
    _check_key(key)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise DBOSException(f"offset must be an integer of 0 or more, not {offset!r}.")
    with wakeups.waiting_for(("stream", workflow_id, key)) as woken:
        backoff = wakeups.Backoff(wakeups.deadline_after(timeout_seconds))
        while True:
            entries = _entries_from(workflow_id, key, offset)
            for entry_offset, text in entries:
                if text == CLOSED:
                    return
                yield serialization.deserialize(text)
                offset = entry_offset + 1
            if entries:
                backoff = wakeups.Backoff(wakeups.deadline_after(timeout_seconds))
                continue
            if _workflow_over(workflow_id):
                # one last look: entries written just before the workflow ended
                if not _entries_from(workflow_id, key, offset):
                    return
                continue
            if backoff.expired():
                raise DBOSStreamTimeoutError(workflow_id, key, offset, "timed out")
            backoff.wait(woken)


def read_stream_offset(
    workflow_id: str, key: str, offset: int, timeout_seconds: float | None = None
) -> Any:
    """The single value at ``offset``, waiting for it to be written."""
    for value in read_stream(workflow_id, key, offset, timeout_seconds):
        return value
    raise DBOSStreamTimeoutError(workflow_id, key, offset, "the stream ended before it")

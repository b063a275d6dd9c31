"""Messages (send/recv) and events (set_event/get_event) between workflows and the outside.

Every operation inside a workflow is a durable operation with its own function_id: its effect
and its checkpoint commit in one transaction, so a replay neither sends twice nor receives a
different message. Waiting uses ``wakeups`` (LISTEN/NOTIFY on PostgreSQL, polling on SQLite).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from django.db import transaction

from django_dbos import serialization
from django_dbos.context import WorkflowContext, current_workflow
from django_dbos.engine import system_db, wakeups
from django_dbos.engine.steps import (
    SLEEP_NAME,
    begin_operation,
    crash_if_simulated,
    refused_checkpoint,
    replayed,
)
from django_dbos.errors import (
    DBOSException,
    DBOSNonExistentWorkflowError,
    DBOSNotInWorkflowError,
)
from django_dbos.models import now_ms

SEND, SEND_BULK, RECV = "DBOS.send", "DBOS.sendBulk", "DBOS.recv"
SET_EVENT, GET_EVENT, GET_ALL_EVENTS = "DBOS.setEvent", "DBOS.getEvent", "DBOS.getAllEvents"

_INSERT_MESSAGE_SQL = (
    "INSERT INTO dbos_notifications "
    "(destination_uuid, topic, message, message_uuid, created_at_epoch_ms) "
    "SELECT %s, %s, %s, %s, %s "
    f"WHERE EXISTS (SELECT 1 FROM {system_db.STATUS_TABLE} WHERE workflow_uuid = %s) "
    "ON CONFLICT (message_uuid) DO NOTHING"
)


@dataclasses.dataclass(frozen=True, slots=True)
class SendMessage:
    """One message of ``DBOS.send_bulk``."""

    destination_id: str
    message: Any
    topic: str | None = None
    idempotency_key: str | None = None


def _check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise DBOSException(f"{what} must be a non-empty string, not {value!r}.")
    return value


def _check_topic(topic: Any) -> str | None:
    if topic is not None and (not isinstance(topic, str) or len(topic) > 255):
        raise DBOSException(f"A topic must be a string of at most 255 characters, not {topic!r}.")
    return topic


def _check_timeout(timeout_seconds: Any) -> float:
    if (
        isinstance(timeout_seconds, bool)
        or not isinstance(timeout_seconds, int | float)
        or timeout_seconds < 0
    ):
        raise DBOSException(f"timeout_seconds must be 0 or more, not {timeout_seconds!r}.")
    return float(timeout_seconds)


def _workflow_operation(operation: str) -> WorkflowContext:
    ctx = current_workflow()
    if ctx is None or ctx.in_step:
        raise DBOSNotInWorkflowError(operation)
    return ctx


def _record_in_transaction(ctx: WorkflowContext, function_id: int, name: str, output: Any):
    """The checkpoint of an operation whose effect is in the same (open) transaction."""
    if not system_db.record_operation(
        ctx.workflow_id, function_id, name, output=serialization.serialize(output)
    ):
        raise refused_checkpoint(ctx, function_id)


# -- messages ----------------------------------------------------------------------------------


def _prepare_messages(messages: list[SendMessage]) -> list[tuple[SendMessage, str]]:
    """Validate and serialize everything before anything is written."""
    prepared = []
    for message in messages:
        _check_id(message.destination_id, "destination_id")
        _check_topic(message.topic)
        if message.idempotency_key is not None:
            _check_id(message.idempotency_key, "idempotency_key")
        prepared.append((message, serialization.serialize(message.message)))
    return prepared


def _insert_messages(prepared: list[tuple[SendMessage, str]], uuids: list[str]) -> None:
    conn = system_db.connection()
    now = now_ms()
    with conn.cursor() as cursor:
        for (message, text), message_uuid in zip(prepared, uuids, strict=True):
            cursor.execute(
                _INSERT_MESSAGE_SQL,
                [
                    message.destination_id,
                    message.topic,
                    text,
                    message_uuid,
                    now,
                    message.destination_id,
                ],
            )
            if cursor.rowcount == 0 and system_db.get_summary(message.destination_id) is None:
                raise DBOSNonExistentWorkflowError(message.destination_id)
    for message, _ in prepared:
        wakeups.signal_after_commit(("msg", message.destination_id, message.topic or ""))


def send_bulk(messages: list[SendMessage]) -> None:
    """Send messages, all or none (one transaction). Inside a workflow the send is a durable
    operation: a replay sends nothing again. Outside one it joins the caller's transaction."""
    if not isinstance(messages, list | tuple) or not all(
        isinstance(m, SendMessage) for m in messages
    ):
        raise DBOSException("send_bulk takes a list of SendMessage objects.")
    prepared = _prepare_messages(list(messages))
    ctx = current_workflow()
    if ctx is not None and ctx.in_step:
        ctx = None  # inside a step: an ordinary send, part of the step
    if ctx is None:
        uuids = [m.idempotency_key or str(uuid.uuid4()) for m, _ in prepared]
        with transaction.atomic(using=system_db.connection().alias):
            _insert_messages(prepared, uuids)
        return
    name = SEND if len(prepared) == 1 else SEND_BULK
    function_id, checkpoint = begin_operation(ctx, name)
    if checkpoint is not None:
        return
    # deterministic message IDs: even a send whose checkpoint was lost is not sent twice
    uuids = [
        m.idempotency_key or f"{ctx.workflow_id}-{function_id}-{n}"
        for n, (m, _) in enumerate(prepared)
    ]
    with transaction.atomic(using=system_db.connection().alias):
        _insert_messages(prepared, uuids)
        _record_in_transaction(ctx, function_id, name, None)
    crash_if_simulated(ctx, function_id)


def send(
    destination_id: str, message: Any, topic: str | None = None, idempotency_key: str | None = None
) -> None:
    send_bulk([SendMessage(destination_id, message, topic, idempotency_key)])


def _consume(ctx: WorkflowContext, function_id: int, topic: str | None) -> tuple[bool, Any]:
    """Take the oldest message for (workflow, topic) and checkpoint it, in one transaction."""
    from django_dbos.models import Notification

    alias = system_db.connection().alias
    rows = Notification.objects.using(alias).filter(destination_id=ctx.workflow_id)
    rows = rows.filter(topic=topic) if topic is not None else rows.filter(topic__isnull=True)
    if system_db.connection().vendor == "sqlite" and not rows.exists():
        return False, None  # look first: an empty poll must not take SQLite's one write lock
    with transaction.atomic(using=alias):
        oldest = (
            rows.select_for_update(skip_locked=True)
            .order_by("created_at_epoch_ms", "id")
            .values_list("id", "message")
            .first()
        )
        if oldest is None:
            return False, None
        Notification.objects.using(alias).filter(id=oldest[0]).delete()
        if not system_db.record_operation(ctx.workflow_id, function_id, RECV, output=oldest[1]):
            raise refused_checkpoint(ctx, function_id)
    return True, serialization.deserialize(oldest[1])


def recv(topic: str | None = None, timeout_seconds: float = 60) -> Any:
    """The next message for this workflow on ``topic`` (None after the timeout). Exactly once:
    the message is deleted and checkpointed together; a replay returns the same message. The
    timeout is durable: a recovered ``recv`` waits only for what was left of it."""
    ctx = _workflow_operation("DBOS.recv")
    _check_topic(topic)
    timeout = _check_timeout(timeout_seconds)
    function_id, checkpoint = begin_operation(ctx, RECV)
    timeout_slot = TimeoutSlot.take(ctx)
    if checkpoint is not None:
        return serialization.deserialize(checkpoint.output)
    with wakeups.waiting_for(("msg", ctx.workflow_id, topic or "")) as woken:
        backoff = None
        while True:
            found, value = _consume(ctx, function_id, topic)
            if found:
                break
            if backoff is None:  # it has to wait: from here on the deadline is durable
                backoff = wakeups.Backoff(timeout_slot.deadline(timeout))
            if backoff.expired():
                _record_timeout(ctx, function_id, RECV)
                value = None
                break
            backoff.wait(woken, ctx.stop)
            ctx.raise_if_stopped()
    crash_if_simulated(ctx, function_id)
    return value


@dataclasses.dataclass(slots=True)
class TimeoutSlot:
    """The durable deadline of a wait inside a workflow (``recv``, ``get_event``), as in DBOS:
    the wait takes a second function_id, right after its own, which records its wake-up time as
    a ``DBOS.sleep`` the first time it has to wait. After a crash the wait resumes until that
    time, not for the whole timeout again. A wait answered at once records nothing there (the
    ID is still taken, so the numbering is the same on replay)."""

    ctx: WorkflowContext
    function_id: int
    wake_ms: int | None

    @classmethod
    def take(cls, ctx: WorkflowContext) -> TimeoutSlot:
        function_id, checkpoint = begin_operation(ctx, SLEEP_NAME)
        wake_ms = replayed(checkpoint) if checkpoint is not None else None
        return cls(ctx, function_id, wake_ms)

    def deadline(self, timeout: float) -> float:
        """The wait's deadline on the monotonic clock, recording its wake-up time once."""
        if self.wake_ms is None:
            started = now_ms()
            self.wake_ms = started + int(timeout * 1000)
            # a plain checkpoint: part of the wait, not an operation of its own (no
            # step_finished signal, no simulated crash between it and the wait's outcome)
            if not system_db.record_operation(
                self.ctx.workflow_id,
                self.function_id,
                SLEEP_NAME,
                output=serialization.serialize(self.wake_ms),
                started_at_ms=started,
            ):
                raise refused_checkpoint(self.ctx, self.function_id)
        return time.monotonic() + max(0.0, (self.wake_ms - now_ms()) / 1000)


def _record_timeout(ctx: WorkflowContext, function_id: int, name: str) -> None:
    if not system_db.record_operation(
        ctx.workflow_id, function_id, name, output=serialization.serialize(None)
    ):
        raise refused_checkpoint(ctx, function_id)


# -- events ------------------------------------------------------------------------------------

_UPSERT_EVENT_SQL = (
    "INSERT INTO dbos_workflow_events (workflow_uuid, key, value) VALUES (%s, %s, %s) "
    "ON CONFLICT (workflow_uuid, key) DO UPDATE SET value = excluded.value"
)
_UPSERT_EVENT_HISTORY_SQL = (
    "INSERT INTO dbos_workflow_events_history (workflow_uuid, function_id, key, value) "
    "VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (workflow_uuid, function_id, key) DO UPDATE SET value = excluded.value"
)


def _write_event(workflow_id: str, function_id: int, key: str, text: str) -> None:
    with system_db.connection().cursor() as cursor:
        cursor.execute(_UPSERT_EVENT_SQL, [workflow_id, key, text])
        cursor.execute(_UPSERT_EVENT_HISTORY_SQL, [workflow_id, function_id, key, text])
    wakeups.signal_after_commit(("event", workflow_id, key))


def set_event(key: str, value: Any) -> None:
    """Publish ``key = value`` for this workflow (readable with ``get_event`` from anywhere).
    From a step it is part of the step; in the workflow it is a durable operation."""
    _check_id(key, "An event key")
    if len(key) > 255:
        raise DBOSException("An event key is at most 255 characters long.")
    ctx = current_workflow()
    if ctx is None:
        raise DBOSNotInWorkflowError("DBOS.set_event")
    text = serialization.serialize(value)
    alias = system_db.connection().alias
    if ctx.in_step:
        with transaction.atomic(using=alias):
            _write_event(ctx.workflow_id, ctx.step_id or 0, key, text)
        return
    function_id, checkpoint = begin_operation(ctx, SET_EVENT)
    if checkpoint is not None:
        return
    with transaction.atomic(using=alias):
        _write_event(ctx.workflow_id, function_id, key, text)
        _record_in_transaction(ctx, function_id, SET_EVENT, None)
    crash_if_simulated(ctx, function_id)


def _read_event(workflow_id: str, key: str) -> tuple[bool, str | None]:
    with system_db.connection().cursor() as cursor:
        cursor.execute(
            "SELECT value FROM dbos_workflow_events WHERE workflow_uuid = %s AND key = %s",
            [workflow_id, key],
        )
        row = cursor.fetchone()
    return (True, row[0]) if row else (False, None)


def get_event(workflow_id: str, key: str, timeout_seconds: float = 60) -> Any:
    """The value of ``key`` published by ``workflow_id``, waiting for it up to the timeout
    (then None). Inside a workflow the answer is recorded, so a replay gets the same one."""
    _check_id(workflow_id, "workflow_id")
    _check_id(key, "An event key")
    timeout = _check_timeout(timeout_seconds)
    ctx = current_workflow()
    if ctx is not None and ctx.in_step:
        ctx = None
    function_id = 0
    timeout_slot = None
    if ctx is not None:
        function_id, checkpoint = begin_operation(ctx, GET_EVENT)
        timeout_slot = TimeoutSlot.take(ctx)
        if checkpoint is not None:
            return serialization.deserialize(checkpoint.output)
    with wakeups.waiting_for(("event", workflow_id, key)) as woken:
        backoff = None
        while True:
            found, text = _read_event(workflow_id, key)
            if found:
                break
            if backoff is None:  # it has to wait; in a workflow the deadline is durable
                deadline = (
                    timeout_slot.deadline(timeout)
                    if timeout_slot is not None
                    else wakeups.deadline_after(timeout)
                )
                backoff = wakeups.Backoff(deadline)
            if backoff.expired():
                break
            backoff.wait(woken, ctx.stop if ctx else None)
            if ctx is not None:
                ctx.raise_if_stopped()
    if ctx is not None:
        if not system_db.record_operation(
            ctx.workflow_id,
            function_id,
            GET_EVENT,
            output=text if found else serialization.serialize(None),
        ):
            raise refused_checkpoint(ctx, function_id)
        crash_if_simulated(ctx, function_id)
    return serialization.deserialize(text) if found else None


def get_all_events(workflow_id: str) -> dict[str, Any]:
    """Every event key of a workflow with its current value (recorded inside a workflow)."""
    from django_dbos.models import WorkflowEvent

    _check_id(workflow_id, "workflow_id")
    ctx = current_workflow()
    if ctx is not None and not ctx.in_step:
        function_id, checkpoint = begin_operation(ctx, GET_ALL_EVENTS)
        if checkpoint is not None:
            recorded: dict[str, Any] = serialization.deserialize(checkpoint.output)
            return recorded
    rows = WorkflowEvent.objects.using(system_db.connection().alias).filter(workflow_id=workflow_id)
    events = {
        key: serialization.deserialize(value) for key, value in rows.values_list("key", "value")
    }
    if ctx is not None and not ctx.in_step:
        if not system_db.record_operation(
            ctx.workflow_id, function_id, GET_ALL_EVENTS, output=serialization.serialize(events)
        ):
            raise refused_checkpoint(ctx, function_id)
        crash_if_simulated(ctx, function_id)
    return events


# -- waiting for the first of several workflows ------------------------------------------------

WAIT_FIRST = "DBOS.waitFirst"


def wait_first(workflow_ids: list[str], timeout_seconds: float | None = None) -> str:
    """The ID of the first workflow among ``workflow_ids`` to finish (recorded in a workflow)."""
    from django_dbos.engine.handles import first_finished

    if not workflow_ids:
        raise DBOSException("wait_first needs at least one handle.")
    if len(set(workflow_ids)) != len(workflow_ids):
        raise DBOSException("wait_first was given the same workflow twice.")
    ctx = current_workflow()
    if ctx is None or ctx.in_step:
        return first_finished(list(workflow_ids), timeout_seconds)
    function_id, checkpoint = begin_operation(ctx, WAIT_FIRST)
    if checkpoint is not None:
        recorded: str = serialization.deserialize(checkpoint.output)
        return recorded
    winner = first_finished(list(workflow_ids), timeout_seconds)
    if not system_db.record_operation(
        ctx.workflow_id, function_id, WAIT_FIRST, output=serialization.serialize(winner)
    ):
        raise refused_checkpoint(ctx, function_id)
    crash_if_simulated(ctx, function_id)
    return winner

"""``DBOS`` methods for workflow communication: messages, events, streams, waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from django.db import connections

from django_dbos.engine import communication, streams
from django_dbos.engine.communication import SendMessage
from django_dbos.engine.handles import WorkflowHandle, WorkflowHandleAsync
from django_dbos.engine.threads import to_thread

T = TypeVar("T")


async def _wait_off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Blocking waits (recv, get_event, ...) run on a throwaway thread, not on the small pool
    of database threads, so many waiting coroutines cannot starve it."""

    def call() -> T:
        try:
            return fn(*args)
        finally:
            connections.close_all()

    return await asyncio.to_thread(call)


class CommunicationAPI:
    # -- messages ----------------------------------------------------------------------------

    @staticmethod
    def send(
        destination_id: str,
        message: Any,
        topic: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> None:
        """Send ``message`` to a workflow (``DBOSNonExistentWorkflowError`` if there is none).
        Inside a workflow it is sent exactly once; outside one it joins the caller's
        ``transaction.atomic()`` (it exists if and only if that commits)."""
        communication.send(destination_id, message, topic, idempotency_key)

    @staticmethod
    async def send_async(
        destination_id: str,
        message: Any,
        topic: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> None:
        await to_thread(communication.send, destination_id, message, topic, idempotency_key)

    @staticmethod
    def send_bulk(messages: list[SendMessage]) -> None:
        """Send many messages in one transaction: all of them or none."""
        communication.send_bulk(messages)

    @staticmethod
    async def send_bulk_async(messages: list[SendMessage]) -> None:
        await to_thread(communication.send_bulk, messages)

    @staticmethod
    def recv(topic: str | None = None, timeout_seconds: float = 60) -> Any:
        """The next message to this workflow on ``topic``, or None after the timeout."""
        return communication.recv(topic, timeout_seconds)

    @staticmethod
    async def recv_async(topic: str | None = None, timeout_seconds: float = 60) -> Any:
        return await _wait_off_loop(communication.recv, topic, timeout_seconds)

    # -- events ------------------------------------------------------------------------------

    @staticmethod
    def set_event(key: str, value: Any) -> None:
        """Publish ``key = value`` for the running workflow."""
        communication.set_event(key, value)

    @staticmethod
    async def set_event_async(key: str, value: Any) -> None:
        await to_thread(communication.set_event, key, value)

    @staticmethod
    def get_event(workflow_id: str, key: str, timeout_seconds: float = 60) -> Any:
        """A workflow's event value, waiting up to ``timeout_seconds`` (then None)."""
        return communication.get_event(workflow_id, key, timeout_seconds)

    @staticmethod
    async def get_event_async(workflow_id: str, key: str, timeout_seconds: float = 60) -> Any:
        return await _wait_off_loop(communication.get_event, workflow_id, key, timeout_seconds)

    @staticmethod
    def get_all_events(workflow_id: str) -> dict[str, Any]:
        return communication.get_all_events(workflow_id)

    @staticmethod
    async def get_all_events_async(workflow_id: str) -> dict[str, Any]:
        return await to_thread(communication.get_all_events, workflow_id)

    # -- streams -----------------------------------------------------------------------------

    @staticmethod
    def write_stream(key: str, value: Any) -> None:
        """Append ``value`` to this workflow's stream ``key`` (exactly once)."""
        streams.write_stream(key, value)

    @staticmethod
    async def write_stream_async(key: str, value: Any) -> None:
        await to_thread(streams.write_stream, key, value)

    @staticmethod
    def close_stream(key: str) -> None:
        streams.close_stream(key)

    @staticmethod
    async def close_stream_async(key: str) -> None:
        await to_thread(streams.close_stream, key)

    @staticmethod
    def read_stream(
        workflow_id: str, key: str, *, offset: int = 0, timeout_seconds: float | None = None
    ) -> Iterator[Any]:
        """Yield the stream's values as they are written, until it is closed or its workflow
        ends; start at ``offset`` to resume."""
        return streams.read_stream(workflow_id, key, offset, timeout_seconds)

    @staticmethod
    async def read_stream_async(
        workflow_id: str, key: str, *, offset: int = 0, timeout_seconds: float | None = None
    ) -> AsyncIterator[Any]:
        iterator = streams.read_stream(workflow_id, key, offset, timeout_seconds)
        done = object()
        while (value := await _wait_off_loop(next, iterator, done)) is not done:
            yield value

    @staticmethod
    def read_stream_offset(
        workflow_id: str, key: str, offset: int, *, timeout_seconds: float | None = None
    ) -> Any:
        """The value at ``offset``, waiting for it to be written."""
        return streams.read_stream_offset(workflow_id, key, offset, timeout_seconds)

    @staticmethod
    async def read_stream_offset_async(
        workflow_id: str, key: str, offset: int, *, timeout_seconds: float | None = None
    ) -> Any:
        return await _wait_off_loop(
            streams.read_stream_offset, workflow_id, key, offset, timeout_seconds
        )

    # -- waiting -----------------------------------------------------------------------------

    @staticmethod
    def wait_first(
        handles: list[WorkflowHandle], *, timeout_seconds: float | None = None
    ) -> WorkflowHandle:
        """The first of ``handles`` whose workflow finishes (recorded inside a workflow)."""
        by_id = {handle.workflow_id: handle for handle in handles}
        winner = communication.wait_first([h.workflow_id for h in handles], timeout_seconds)
        return by_id[winner]

    @staticmethod
    async def wait_first_async(
        handles: list[WorkflowHandleAsync], *, timeout_seconds: float | None = None
    ) -> WorkflowHandleAsync:
        by_id = {handle.workflow_id: handle for handle in handles}
        winner = await _wait_off_loop(
            communication.wait_first, [h.workflow_id for h in handles], timeout_seconds
        )
        return by_id[winner]

"""``DebouncerClient``: DBOS's client-side ``Debouncer``: debounce a workflow by its registered
name from code that does not import it, through a ``DBOSClient``.

::

    client = DBOSClient(database_url=...)
    reindex = DebouncerClient(
        client,
        EnqueueOptions(workflow_name="search.workflows.reindex", queue_name="search"),
        debounce_timeout_sec=60,
    )
    reindex.debounce(f"doc-{doc_id}", 5, doc_id)  # one run, 5 s after the last call

The window is the one a ``Debouncer`` in a worker keeps (``engine/debouncer.py``): the same
DELAYED row and marker, so a ``Debouncer`` and a ``DebouncerClient`` of one workflow and queue
share their windows. A new window's row is the one ``DBOSClient.enqueue`` writes (no
application version unless ``app_version`` says; never a child of a running workflow). A
worker runs it, never the client.

Imported before Django is set up (``from django_dbos import DebouncerClient`` at the top of a
script), so nothing here touches the models at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_dbos.client_options import EnqueueOptions, find_queue, start_options
from django_dbos.errors import DBOSInvalidArgumentError

if TYPE_CHECKING:
    from django_dbos.client import DBOSClient
    from django_dbos.client_handles import (
        WorkflowHandleClientAsyncPolling,
        WorkflowHandleClientPolling,
    )
    from django_dbos.context import StartOptions
    from django_dbos.queues import Queue

__all__ = ["DebouncerClient"]

_OPERATION = "DebouncerClient"
_OWNED_BY_THE_DEBOUNCER = ("deduplication_id", "delay_seconds", "priority", "queue_partition_key")


class DebouncerClient:
    """Debounces the workflow ``workflow_options["workflow_name"]`` from a client:
    ``debounce(key, period, *args)`` starts it ``period`` seconds after the last call for
    ``key``, with that call's arguments, or ``debounce_timeout_sec`` after the window's first
    call at the latest. It runs on ``queue`` (a ``Queue`` or a queue's name) if given, else on
    ``workflow_options["queue_name"]``; the queue must be declared by some process and not be
    partitioned.

    ``workflow_options`` are ``DBOSClient.enqueue``'s: ``workflow_id`` names a new window's
    workflow (an open window keeps its ID), ``workflow_timeout``, ``app_version``,
    ``authenticated_user`` and ``attributes`` apply to a new window's workflow.
    ``deduplication_id``, ``delay_seconds``, ``priority`` and ``queue_partition_key`` are
    refused (the debouncer sets the first two itself; the others do not apply), as in DBOS.

    Raises ``DBOSInvalidArgumentError`` for a bad option, timeout or queue (here, before
    anything is written).
    """

    def __init__(
        self,
        client: DBOSClient,
        workflow_options: EnqueueOptions,
        *,
        debounce_timeout_sec: float | None = None,
        queue: Queue | str | None = None,
    ) -> None:
        from django_dbos.client import DBOSClient
        from django_dbos.engine import debouncer as engine
        from django_dbos.queues import Queue

        if not isinstance(client, DBOSClient):
            raise DBOSInvalidArgumentError("client", client, "a DBOSClient", operation=_OPERATION)
        options = start_options(workflow_options)
        for key in _OWNED_BY_THE_DEBOUNCER:
            if workflow_options.get(key) is not None:
                raise DBOSInvalidArgumentError(
                    f"workflow_options[{key!r}]",
                    workflow_options.get(key),
                    "unset for a debouncer (it sets the deduplication ID and the delay itself; "
                    "priority and partitions do not apply to debounced workflows)",
                    operation=_OPERATION,
                )
        timeout = engine.check_seconds(
            "debounce_timeout_sec", debounce_timeout_sec, optional=True, operation=_OPERATION
        )
        if isinstance(queue, Queue):
            queue_name = engine.check_queue(queue).name
        elif queue is None or isinstance(queue, str):
            queue_name = queue or workflow_options["queue_name"]
        else:
            raise DBOSInvalidArgumentError(
                "queue", queue, "a Queue, a queue's name or None", operation=_OPERATION
            )
        self.client = client
        self.workflow_name: str = workflow_options["workflow_name"]
        self.queue_name: str = queue_name
        self.debounce_timeout_sec = timeout
        self._options: StartOptions = options

    def debounce(
        self, debounce_key: str, debounce_period_sec: float, *args: Any, **kwargs: Any
    ) -> WorkflowHandleClientPolling:
        """Extend ``debounce_key``'s open window (new arguments, new start time) or open one; a
        handle to the window's workflow. Raises ``DBOSInvalidArgumentError`` (a key that is not
        a str, a period that is not a positive number, a partitioned queue),
        ``DBOSQueueNotFoundError``, ``DBOSSerializationError``, all before anything is written,
        and ``DBOSQueueDeduplicatedError`` when a workflow of another name holds the key's
        marker. In a Django process the write joins the caller's transaction on the system
        database, as ``DBOSClient.enqueue`` does."""
        from django_dbos.client_handles import WorkflowHandleClientPolling

        return WorkflowHandleClientPolling(
            self.client._run(self._write, debounce_key, debounce_period_sec, args, kwargs)
        )

    async def debounce_async(
        self, debounce_key: str, debounce_period_sec: float, *args: Any, **kwargs: Any
    ) -> WorkflowHandleClientAsyncPolling:
        """``debounce`` from async code."""
        from django_dbos.client_handles import WorkflowHandleClientAsyncPolling

        handle = await self.client._off_loop(
            self.debounce, debounce_key, debounce_period_sec, *args, **kwargs
        )
        return WorkflowHandleClientAsyncPolling(handle.workflow_id)

    def _write(self, key: Any, period: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        from django_dbos.engine import debouncer as engine

        operation = f"{_OPERATION}.debounce"
        engine.check_key(self.workflow_name, key, operation)  # before the queue is looked up
        engine.check_seconds("debounce_period_sec", period, optional=False, operation=operation)
        target = engine.target_by_name(
            self.workflow_name, find_queue(self.queue_name), self.debounce_timeout_sec
        )
        return engine.debounce(target, key, period, args, kwargs, self._options)

    def __repr__(self) -> str:
        return f"<DebouncerClient {self.workflow_name!r} on {self.queue_name!r}>"

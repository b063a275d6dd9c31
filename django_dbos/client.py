"""``DBOSClient``: enqueue workflows by name, message them, read their events and streams, and
operate them, from code that does not import them (DBOS's client, on the Django ORM).

Two ways in:

- ``DBOSClient()`` in a Django process uses the project's settings and its connection to the
  system database (``settings.DBOS["DATABASE"]``); a call inside ``transaction.atomic()`` on
  that database commits or rolls back with it.
- ``DBOSClient(database_url=...)`` in a Python process with no Django project (a script, a
  service written with another framework): Django is configured here, minimally (that database,
  ``django_dbos`` as the only app; ``client_setup``), and then the same code runs.

Everything goes through the engine's public functions, so a row a client writes is the row
``Queue.enqueue`` writes. A client is always an outside caller: it never runs a workflow, never
registers as an executor (no heartbeat, no pool), never starts a thread (its waits poll instead
of starting the LISTEN thread: ``wakeups.polling_only``), and its calls are never recorded as
steps, even from inside a workflow. Resume and fork put the workflow on a queue for a worker to
run. Options are checked in ``client_options``; the handles are ``client_handles``'; the
schedule methods are ``client_schedules``' (and ``DebouncerClient`` is ``client_debouncer``'s).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar, Unpack

from django_dbos.client_options import (
    EnqueueOptions,
    check_number,
    check_text,
    find_queue,
    start_options,
    target_queue,
)
from django_dbos.client_schedules import ClientScheduleInput, ClientSchedulesMixin
from django_dbos.client_setup import check_tables, set_up_django
from django_dbos.errors import DBOSConfigurationError, DBOSException

if TYPE_CHECKING:
    from django_dbos.api.introspection import QueuedWorkflowFilters, WorkflowFilters
    from django_dbos.client_handles import (
        WorkflowHandleClientAsyncPolling,
        WorkflowHandleClientPolling,
    )
    from django_dbos.engine.communication import SendMessage
    from django_dbos.engine.handles import WorkflowHandle, WorkflowHandleAsync
    from django_dbos.engine.records import StepInfo, WorkflowStatus

__all__ = ["ClientScheduleInput", "DBOSClient", "EnqueueOptions"]

P = ParamSpec("P")
R = TypeVar("R")
_DONE = object()  # the end of a stream, for next()


def _twin(
    method: Callable[Concatenate[DBOSClient, P], R],
) -> Callable[Concatenate[DBOSClient, P], Coroutine[Any, Any, R]]:
    """The ``*_async`` twin of a client method: one core, the sync method itself, run on a
    throwaway thread (see ``DBOSClient._off_loop``)."""

    @functools.wraps(method)  # help() and IDEs show the sync method's parameters
    async def twin(self: DBOSClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._off_loop(method, self, *args, **kwargs)

    twin.__name__ = f"{method.__name__}_async"
    twin.__qualname__ = f"DBOSClient.{twin.__name__}"
    twin.__doc__ = f"``{method.__name__}`` for async code: {method.__doc__ or ''}"
    return twin


class DBOSClient(ClientSchedulesMixin):
    """A client of the workflows stored in one system database.

    ``DBOSClient()`` / ``DBOSClient(using=alias)`` in a Django process (``alias`` must be the
    system database, ``settings.DBOS["DATABASE"]``). ``DBOSClient(database_url=...)`` outside
    one (``postgres://user:password@host:5432/name`` or ``sqlite:////absolute/path.sqlite3``),
    with ``settings`` as that process's ``settings.DBOS`` (e.g. the project's ``SERIALIZER``
    and ``ENCRYPTION_KEYS``: they must match the workers'). ``system_database_url`` is DBOS's
    name for ``database_url``. Inside a Django process ``database_url`` is accepted only when
    it names the system database the project already uses.

    Raises ``DBOSConfigurationError`` for a bad combination, an unreachable database or one
    without django_dbos's tables (``manage.py migrate`` creates them; a client never does).
    Use it as a context manager, or call ``destroy()``, to release what it opened.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        using: str | None = None,
        settings: Mapping[str, Any] | None = None,
        system_database_url: str | None = None,
    ) -> None:
        if database_url is not None and system_database_url is not None:
            raise DBOSConfigurationError("Give database_url or system_database_url, not both.")
        url = database_url if database_url is not None else system_database_url
        if url is not None and using is not None:
            raise DBOSConfigurationError(
                "Give DBOSClient either database_url (outside a Django project) or using (the "
                "alias of the system database inside one), not both."
            )
        self._closed = False
        self._alias, self._owns_django = set_up_django(url, using, settings)
        if self._owns_django:
            self.check_connection()

    def __repr__(self) -> str:
        return f"<DBOSClient using={self._alias!r}{' closed' if self._closed else ''}>"

    # -- lifecycle ---------------------------------------------------------------------------

    def check_connection(self) -> None:
        """Raise ``DBOSConfigurationError`` unless the system database answers and holds the
        system tables."""
        self._run(check_tables, self._alias)

    def destroy(self) -> None:
        """Release what the client opened; later calls raise ``DBOSException``. A client that
        configured Django closes this thread's connection (it reopens on demand for another
        client), and whatever engine threads other code of this process started (a client
        starts none). In a Django project the connections are the project's and stay open."""
        if self._closed:
            return
        self._closed = True
        if self._owns_django:
            from django.db import connections

            from django_dbos.engine import wakeups
            from django_dbos.engine.threads import close_async_db_threads

            wakeups.listener.stop()
            close_async_db_threads()
            connections.close_all()

    close = destroy

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    @contextlib.contextmanager
    def _as_client(self) -> Iterator[None]:
        """Every engine call of a client: refused once destroyed; an outside caller (nothing
        recorded as a step, even inside a workflow); waits that poll, never starting the LISTEN
        thread (the process is not the client's to start threads in)."""
        from django_dbos.context import outside_workflow
        from django_dbos.engine import wakeups

        if self._closed:
            raise DBOSException("This DBOSClient was destroyed; create a new one.")
        with outside_workflow(), wakeups.polling_only():
            yield

    def _run(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Call ``fn`` as a client (off the event loop's thread when there is one; that thread
        inherits the context, so ``_as_client`` holds there too)."""
        from django_dbos.engine.threads import run_blocking

        with self._as_client():
            return run_blocking(functools.partial(fn, *args, **kwargs))

    async def _off_loop(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """The async twins' one core: the sync method on a throwaway thread that closes its
        connections (waits such as ``get_event`` must not hold a shared database thread)."""
        from django.db import connections

        def call() -> R:
            try:
                return fn(*args, **kwargs)
            finally:
                connections.close_all()

        return await asyncio.to_thread(call)

    # -- enqueue -----------------------------------------------------------------------------

    def enqueue(
        self, options: EnqueueOptions, *args: Any, **kwargs: Any
    ) -> WorkflowHandleClientPolling:
        """Enqueue the workflow ``options["workflow_name"]`` on ``options["queue_name"]`` with
        these arguments; its handle. The queue must have been declared by some process
        (``DBOSQueueNotFoundError`` lists the known ones). A workflow name no worker knows
        ends as ERROR (``DBOSWorkflowFunctionNotFoundError``) when a worker claims it.

        Everything is checked before anything is written: ``DBOSInvalidArgumentError`` for a
        bad option, ``DBOSSerializationError`` for an argument the serializer refuses. Also
        raises ``DBOSQueueDeduplicatedError`` and ``DBOSConflictingWorkflowError``."""
        from django_dbos.engine.queues import enqueue_by_name

        start = start_options(options)

        def write() -> str:
            queue = find_queue(options["queue_name"])
            return enqueue_by_name(queue, options["workflow_name"], args, kwargs, start)

        return _handle(self._run(write))

    async def enqueue_async(
        self, options: EnqueueOptions, *args: Any, **kwargs: Any
    ) -> WorkflowHandleClientAsyncPolling:
        return _async_handle(await self._off_loop(self.enqueue, options, *args, **kwargs))

    # -- messages and events -----------------------------------------------------------------

    def send(
        self,
        destination_id: str,
        message: Any,
        topic: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Send ``message`` to a workflow's ``recv(topic)``; ``DBOSNonExistentWorkflowError``
        if there is no such workflow. With ``idempotency_key`` a second send is a no-op."""
        from django_dbos.engine import communication

        self._run(communication.send, destination_id, message, topic, idempotency_key)

    def send_bulk(self, messages: Sequence[SendMessage]) -> None:
        """Send many messages in one transaction: all of them or none."""
        from django_dbos.engine import communication

        self._run(communication.send_bulk, messages)

    def get_event(self, workflow_id: str, key: str, timeout_seconds: float = 60) -> Any:
        """The value a workflow published under ``key``, waiting up to ``timeout_seconds``
        for it (then ``None``)."""
        from django_dbos.engine import communication

        return self._run(communication.get_event, workflow_id, key, timeout_seconds)

    def read_stream(
        self, workflow_id: str, key: str, *, offset: int = 0, timeout_seconds: float | None = None
    ) -> Iterator[Any]:
        """Yield a workflow's stream values as they are written, until the stream is closed
        or the workflow ends; ``timeout_seconds`` bounds each wait (``DBOSStreamTimeoutError``).
        From async code use ``read_stream_async``."""
        from django_dbos.engine import streams

        with self._as_client():  # a destroyed client refuses before the first value
            values = streams.read_stream(workflow_id, key, offset, timeout_seconds)
        return self._each(values)

    def _each(self, values: Iterator[Any]) -> Iterator[Any]:
        """``values``, each one read as a client (the engine's generator runs only inside
        ``next``, so that is where the client's context must be)."""
        try:
            while (value := self._run(next, values, _DONE)) is not _DONE:
                yield value
        finally:
            if isinstance(values, Generator):  # stop waiting on the stream's key too
                values.close()

    async def read_stream_async(
        self, workflow_id: str, key: str, *, offset: int = 0, timeout_seconds: float | None = None
    ) -> AsyncIterator[Any]:
        values = self.read_stream(workflow_id, key, offset=offset, timeout_seconds=timeout_seconds)
        done = object()
        while (value := await self._off_loop(next, values, done)) is not done:
            yield value

    def read_stream_offset(
        self, workflow_id: str, key: str, offset: int, *, timeout_seconds: float | None = None
    ) -> Any:
        """The one stream value at ``offset``, waiting for it to be written."""
        from django_dbos.engine import streams

        return self._run(streams.read_stream_offset, workflow_id, key, offset, timeout_seconds)

    # -- workflows ---------------------------------------------------------------------------

    def retrieve_workflow(self, workflow_id: str) -> WorkflowHandleClientPolling:
        """A handle to an existing workflow (``DBOSNonExistentWorkflowError`` if none)."""
        from django_dbos.engine import handles

        return _handle(self._run(handles.retrieve_workflow, workflow_id).workflow_id)

    async def retrieve_workflow_async(self, workflow_id: str) -> WorkflowHandleClientAsyncPolling:
        return _async_handle(await self._off_loop(self.retrieve_workflow, workflow_id))

    def get_workflow_status(self, workflow_id: str) -> WorkflowStatus | None:
        """The workflow's status, or ``None`` if there is no such workflow."""
        from django_dbos.engine import introspection

        return self._run(introspection.get_workflow_status, workflow_id)

    def wait_first(
        self, handles: Sequence[WorkflowHandle], *, timeout_seconds: float | None = None
    ) -> WorkflowHandle:
        """The first of ``handles`` whose workflow finishes (``TimeoutError`` past the
        timeout)."""
        from django_dbos.engine import communication

        by_id = {handle.workflow_id: handle for handle in handles}
        ids = [handle.workflow_id for handle in handles]
        return by_id[self._run(communication.wait_first, ids, timeout_seconds)]

    async def wait_first_async(
        self, handles: Sequence[WorkflowHandleAsync], *, timeout_seconds: float | None = None
    ) -> WorkflowHandleAsync:
        from django_dbos.engine import communication

        by_id = {handle.workflow_id: handle for handle in handles}
        ids = [handle.workflow_id for handle in handles]
        winner = await self._off_loop(self._run, communication.wait_first, ids, timeout_seconds)
        return by_id[winner]

    def list_workflows(self, **filters: Unpack[WorkflowFilters]) -> list[WorkflowStatus]:
        """``DBOS.list_workflows``: the workflows matching every filter given (DBOS's keyword
        names), oldest first. ``DBOSInvalidArgumentError`` names a bad filter."""
        from django_dbos.api.introspection import workflow_query
        from django_dbos.engine import introspection

        query = workflow_query("DBOSClient.list_workflows", filters)
        return self._run(introspection.list_workflows, query)

    def list_queued_workflows(
        self, **filters: Unpack[QueuedWorkflowFilters]
    ) -> list[WorkflowStatus]:
        """``DBOS.list_queued_workflows``: queued workflows that have not finished."""
        from django_dbos.api.introspection import QueuedWorkflowFilters, workflow_query
        from django_dbos.engine import introspection

        query = workflow_query(
            "DBOSClient.list_queued_workflows", filters, allowed=QueuedWorkflowFilters
        )
        query = dataclasses.replace(query, queues_only=True)
        return self._run(introspection.list_workflows, query)

    def list_workflow_steps(self, workflow_id: str) -> list[StepInfo]:
        """The workflow's recorded operations in order."""
        from django_dbos.engine import introspection

        return self._run(introspection.list_workflow_steps, workflow_id)

    # -- operating ---------------------------------------------------------------------------

    def cancel_workflow(self, workflow_id: str) -> None:
        """Cancel a workflow and its unfinished descendants (as ``DBOS.cancel_workflow``)."""
        self.cancel_workflows([workflow_id])

    def cancel_workflows(self, workflow_ids: Sequence[str]) -> None:
        from django_dbos.engine import control

        self._run(control.cancel_workflows, workflow_ids)

    def delete_workflow(self, workflow_id: str, *, delete_children: bool = False) -> None:
        """Delete a workflow with all its rows (and, optionally, its descendants)."""
        self.delete_workflows([workflow_id], delete_children=delete_children)

    def delete_workflows(
        self, workflow_ids: Sequence[str], *, delete_children: bool = False
    ) -> None:
        from django_dbos.engine import control

        self._run(control.delete_workflows, workflow_ids, delete_children)

    def resume_workflow(
        self, workflow_id: str, *, queue_name: str | None = None
    ) -> WorkflowHandleClientPolling:
        """Put a CANCELLED, ERROR or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflow (and its cancelled
        descendants; an ENQUEUED or DELAYED one moves) back on a queue, ENQUEUED: a worker runs
        it from its last checkpoint. ``queue_name`` defaults to the internal queue, which every
        worker serves. Other statuses are left as they are."""
        return self.resume_workflows([workflow_id], queue_name=queue_name)[0]

    def resume_workflows(
        self, workflow_ids: Sequence[str], *, queue_name: str | None = None
    ) -> list[WorkflowHandleClientPolling]:
        from django_dbos.engine import control

        ids = control.check_workflow_ids(workflow_ids)  # before the queue is looked up

        def write() -> list[str]:
            return control.enqueue_resumed(ids, target_queue(queue_name, None).name)

        return [_handle(workflow_id) for workflow_id in self._run(write)]

    def fork_workflow(
        self,
        workflow_id: str,
        start_step: int,
        *,
        application_version: str | None = None,
        queue_name: str | None = None,
        queue_partition_key: str | None = None,
        timeout_seconds: float | None = None,
    ) -> WorkflowHandleClientPolling:
        """A new workflow with ``workflow_id``'s inputs whose checkpoints, events and stream
        entries before ``start_step`` are copied, ENQUEUED on ``queue_name`` (default: the
        internal queue) for a worker of ``application_version`` (default: any). Its ID is a
        uuid4 unless ``SetWorkflowID`` names it. ``DBOSInvalidStartStepError`` for a step
        past the last recorded one + 1; nothing is written on bad input."""
        write = _fork_writer(
            workflow_id,
            start_step,
            application_version,
            queue_name,
            queue_partition_key,
            timeout_seconds,
        )
        return _handle(self._run(write))

    async def fork_workflow_async(
        self,
        workflow_id: str,
        start_step: int,
        *,
        application_version: str | None = None,
        queue_name: str | None = None,
        queue_partition_key: str | None = None,
        timeout_seconds: float | None = None,
    ) -> WorkflowHandleClientAsyncPolling:
        write = _fork_writer(  # here: SetWorkflowID is the caller's context
            workflow_id,
            start_step,
            application_version,
            queue_name,
            queue_partition_key,
            timeout_seconds,
        )
        return _async_handle(await self._off_loop(self._run, write))

    async def resume_workflow_async(
        self, workflow_id: str, *, queue_name: str | None = None
    ) -> WorkflowHandleClientAsyncPolling:
        handle = await self._off_loop(self.resume_workflow, workflow_id, queue_name=queue_name)
        return _async_handle(handle)

    async def resume_workflows_async(
        self, workflow_ids: Sequence[str], *, queue_name: str | None = None
    ) -> list[WorkflowHandleClientAsyncPolling]:
        handles = await self._off_loop(self.resume_workflows, workflow_ids, queue_name=queue_name)
        return [_async_handle(handle) for handle in handles]

    def set_workflow_delay(
        self,
        workflow_id: str,
        *,
        delay_seconds: float | None = None,
        delay_until_epoch_ms: int | None = None,
    ) -> None:
        """Set or move the delay of a DELAYED workflow (give exactly one bound)."""
        from django_dbos.engine.queues import set_delay

        self._run(set_delay, workflow_id, delay_seconds, delay_until_epoch_ms)

    # -- async twins of the plain calls: the sync method itself, off the event loop --------

    check_connection_async = _twin(check_connection)
    send_async = _twin(send)
    send_bulk_async = _twin(send_bulk)
    get_event_async = _twin(get_event)
    read_stream_offset_async = _twin(read_stream_offset)
    get_workflow_status_async = _twin(get_workflow_status)
    list_workflows_async = _twin(list_workflows)
    list_queued_workflows_async = _twin(list_queued_workflows)
    list_workflow_steps_async = _twin(list_workflow_steps)
    cancel_workflow_async = _twin(cancel_workflow)
    cancel_workflows_async = _twin(cancel_workflows)
    delete_workflow_async = _twin(delete_workflow)
    delete_workflows_async = _twin(delete_workflows)
    set_workflow_delay_async = _twin(set_workflow_delay)


def _handle(workflow_id: str) -> WorkflowHandleClientPolling:
    from django_dbos.client_handles import WorkflowHandleClientPolling

    return WorkflowHandleClientPolling(workflow_id)


def _async_handle(workflow: WorkflowHandle | str) -> WorkflowHandleClientAsyncPolling:
    from django_dbos.client_handles import WorkflowHandleClientAsyncPolling

    workflow_id = workflow if isinstance(workflow, str) else workflow.workflow_id
    return WorkflowHandleClientAsyncPolling(workflow_id)


def _fork_writer(
    workflow_id: str,
    start_step: int,
    version: str | None,
    queue_name: str | None,
    partition_key: str | None,
    timeout_seconds: float | None,
) -> Callable[[], str]:
    """``fork_workflow``'s arguments checked (before anything is read or written) and the
    write, which returns the fork's ID. Called in the caller's context: it takes the
    ``SetWorkflowID`` given for the fork."""
    from django_dbos.context import StartOptions, take_start_options
    from django_dbos.engine import fork

    op = "DBOSClient.fork_workflow"
    fork.check_fork_arguments(workflow_id, start_step, version)
    if queue_name is not None:
        check_text("queue_name", queue_name, op)
    if partition_key is not None:
        check_text("queue_partition_key", partition_key, op)
    options = StartOptions(
        workflow_id=take_start_options().workflow_id,
        queue_partition_key=partition_key,
        timeout_seconds=None
        if timeout_seconds is None
        else check_number("timeout_seconds", timeout_seconds, op),
    )

    def write() -> str:
        queue = target_queue(queue_name, partition_key)
        return fork.enqueue_fork(workflow_id, start_step, version, options, queue)

    return write

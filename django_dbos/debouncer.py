"""``Debouncer``: run a workflow once per burst of calls (DBOS's names and semantics).

::

    reindex = Debouncer.create(reindex_workflow, debounce_timeout_sec=60)

    def on_save(sender, instance, **kwargs):
        # one reindex per document, 5 s after the last save (60 s after the first at the latest)
        reindex.debounce(f"doc-{instance.pk}", 5, instance.pk)

Every call for a key within a window returns a handle to the same workflow; the workflow runs
once, with the last call's arguments. See docs/queues.md ("Debouncing") and
``engine/debouncer.py`` for how a window is stored and why it is race-free.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar

from django_dbos.context import take_start_options
from django_dbos.engine import debouncer as engine
from django_dbos.engine.handles import WorkflowHandle, WorkflowHandleAsync
from django_dbos.engine.threads import run_blocking, to_thread
from django_dbos.errors import DBOSInvalidArgumentError, DBOSWorkflowFunctionNotFoundError
from django_dbos.queues import Queue, internal_queue
from django_dbos.registry import registry

P = ParamSpec("P")
R = TypeVar("R")


def _resolve_queue(queue: Queue | str | None) -> Queue:
    """A declared queue (by object or name); None is the internal queue. Names are resolved
    when used: the queue may be declared in a module imported after the debouncer's."""
    if queue is None:
        return internal_queue()
    if isinstance(queue, Queue):
        return engine.check_queue(queue)
    if queue in registry.queues:
        return engine.check_queue(registry.queues[queue])
    declared = ", ".join(repr(name) for name in sorted(registry.queues)) or "none"
    raise DBOSInvalidArgumentError(
        "queue",
        queue,
        f"a Queue, the name of a declared queue (declared: {declared}), or None",
        operation="Debouncer",
    )


class Debouncer(Generic[P, R]):
    """Debounces one workflow: ``debounce(key, period, *args)`` starts it ``period`` seconds
    after the last call for ``key``, with that call's arguments, or ``debounce_timeout_sec``
    after the window's first call at the latest. It runs on ``queue`` (default: the internal
    queue, which every worker serves).

    Raises ``DBOSWorkflowFunctionNotFoundError`` for a workflow name not registered here and
    ``DBOSInvalidArgumentError`` for a bad timeout or queue.
    """

    def __init__(
        self,
        workflow_name: str,
        *,
        debounce_timeout_sec: float | None = None,
        queue: Queue | str | None = None,
    ) -> None:
        if not isinstance(workflow_name, str) or workflow_name not in registry.workflows:
            raise DBOSWorkflowFunctionNotFoundError(str(workflow_name))
        self.func_name = workflow_name
        self.debounce_timeout_sec = engine.check_seconds(
            "debounce_timeout_sec", debounce_timeout_sec, optional=True, operation="Debouncer"
        )
        if queue is not None and not isinstance(queue, Queue | str):
            raise DBOSInvalidArgumentError(
                "queue", queue, "a Queue, a queue's name or None", operation="Debouncer"
            )
        if isinstance(queue, Queue):
            engine.check_queue(queue)
        self._queue = queue

    @staticmethod
    def create(
        workflow: Callable[P, R],
        *,
        debounce_timeout_sec: float | None = None,
        queue: Queue | str | None = None,
    ) -> Debouncer[P, R]:
        """The debouncer of a ``@DBOS.workflow()`` function (not a method)."""
        return Debouncer(
            _workflow_name(workflow), debounce_timeout_sec=debounce_timeout_sec, queue=queue
        )

    @staticmethod
    def create_async(
        workflow: Callable[P, Coroutine[Any, Any, R]],
        *,
        debounce_timeout_sec: float | None = None,
        queue: Queue | str | None = None,
    ) -> Debouncer[P, R]:
        """``create`` for an ``async def`` workflow (typed for its awaited result)."""
        return Debouncer(
            _workflow_name(workflow), debounce_timeout_sec=debounce_timeout_sec, queue=queue
        )

    @property
    def queue(self) -> Queue:
        """The queue the debounced workflow runs on."""
        return _resolve_queue(self._queue)

    def _target(self) -> engine.DebounceTarget:
        return engine.DebounceTarget(
            definition=registry.get_workflow(self.func_name),
            queue=self.queue,
            timeout_sec=self.debounce_timeout_sec,
        )

    def debounce(
        self, debounce_key: str, debounce_period_sec: float, *args: P.args, **kwargs: P.kwargs
    ) -> WorkflowHandle:
        """Extend ``debounce_key``'s open window (new arguments, new start time) or open one;
        a handle to the window's workflow. ``SetWorkflowID`` names a new window's workflow (an
        open window keeps its ID); ``SetWorkflowTimeout`` and ``SetWorkflowAttributes`` apply
        to a new window's workflow. Inside a workflow the call is recorded: a replay returns
        the same handle. Like ``Queue.enqueue``, the write joins the caller's transaction on
        the system database, if any.

        Raises ``DBOSInvalidArgumentError`` (a key that is not a str, a period that is not a
        positive number, ``SetEnqueueOptions`` around the call), ``DBOSSerializationError``,
        ``DBOSConflictingWorkflowError`` (``SetWorkflowID`` of another workflow), all before
        anything is written, and ``DBOSQueueDeduplicatedError`` when a workflow of another
        name holds the key's marker (a name/key collision)."""
        options = take_start_options()  # consumed here, in the caller's context
        target = self._target()
        workflow_id = run_blocking(
            engine.debounce, target, debounce_key, debounce_period_sec, args, kwargs, options
        )
        return WorkflowHandle(workflow_id)

    async def debounce_async(
        self, debounce_key: str, debounce_period_sec: float, *args: P.args, **kwargs: P.kwargs
    ) -> WorkflowHandleAsync:
        """``debounce`` from async code: a ``WorkflowHandleAsync``."""
        options = take_start_options()
        target = self._target()
        workflow_id = await to_thread(
            engine.debounce,
            target,
            debounce_key,
            debounce_period_sec,
            args,
            kwargs,
            options,
        )
        return WorkflowHandleAsync(workflow_id)

    def __repr__(self) -> str:
        return f"<Debouncer {self.func_name!r} on {self.queue.name!r}>"


def _workflow_name(workflow: Any) -> str:
    if isinstance(workflow, types.MethodType):
        raise DBOSInvalidArgumentError(
            "workflow", workflow, "a workflow function, not a method", operation="Debouncer"
        )
    from django_dbos.dbos import _definition

    return _definition(workflow).name

"""``DBOSTaskBackend``: Django's Tasks framework on durable workflows.

``enqueue`` puts one ``django_dbos.tasks.run_task`` workflow on a DBOS ``Queue``; a worker
(``manage.py dbos_worker``) runs it, and ``get_result`` reads the workflow's status back as a
``TaskResult``. The result ID is the workflow ID, so every DBOS tool (the admin,
``DBOS.cancel_workflow``, ``dbos_workflows``) works on tasks too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, cast

from django.apps import apps
from django.db import transaction
from django.utils import timezone

from django_dbos.conf import dbos_settings
from django_dbos.context import StartOptions, _next_start, take_start_options
from django_dbos.engine.introspection import get_workflow_status
from django_dbos.engine.threads import to_thread
from django_dbos.errors import (
    DBOSConfigurationError,
    DBOSInvalidArgumentError,
    DBOSQueueNotFoundError,
)
from django_dbos.queues import Queue
from django_dbos.registry import registry
from django_dbos.tasks.compat import (
    DEFAULT_TASK_PRIORITY,
    TASK_MAX_PRIORITY,
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    normalize_json,
    task_enqueued,
)
from django_dbos.tasks.results import RUN_TASK, build_result, split_inputs, task_options

P = ParamSpec("P")
R = TypeVar("R")

APP_NAME = "django_dbos.tasks"
OPTION_KEYS = frozenset({"queues"})
# Queue(...) arguments a backend may declare a queue with. Partitioned queues are left out: a
# task has no partition key to give.
QUEUE_KEYS = frozenset(
    {"name", "concurrency", "limiter", "worker_concurrency", "priority_enabled",
     "polling_interval_sec"}
)  # fmt: skip


def dbos_priority(priority: int) -> int:
    """Django's priority (-100..100, higher first) as DBOS's (1..201, lower first)."""
    return TASK_MAX_PRIORITY + 1 - priority


@dataclasses.dataclass(frozen=True, slots=True)
class QueueRoute:
    """Where one Django queue name goes: a DBOS queue, declared here or in a workflows
    module (``declared=False``: looked up by name when needed)."""

    queue_name: str
    dbos_queue: str
    declared: bool


class DBOSTaskBackend(BaseTaskBackend):
    """Runs ``@task`` functions as durable workflows on DBOS queues.

    ``QUEUES`` lists the Django queue names tasks may use (Django's meaning; default
    ``["default"]``). ``OPTIONS["queues"]`` says how each is served: a dict of ``Queue``
    arguments (``name``, ``concurrency``, ``limiter``, ``worker_concurrency``,
    ``priority_enabled``, ``polling_interval_sec``) declares the queue here, a string names a
    ``Queue`` declared in a workflows module. A listed name without an entry gets
    ``Queue(<name>, priority_enabled=True)``.

    Enqueue joins the caller's transaction on the system database (``Queue.enqueue``'s
    transactional enqueue): a task enqueued inside ``transaction.atomic()`` exists only if the
    transaction commits. Raises ``DBOSConfigurationError`` for bad settings at construction.
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        queues = params.get("QUEUES")
        if queues is not None and (
            isinstance(queues, str | bytes)
            or not isinstance(queues, Iterable)
            or not all(isinstance(q, str) and 0 < len(q) <= 255 for q in queues)
        ):
            raise DBOSConfigurationError(
                f"TASKS[{alias!r}]['QUEUES'] must be a list of queue names (non-empty strings "
                f"of at most 255 characters), not {queues!r}."
            )
        super().__init__(alias, params)
        if apps.apps_ready and not apps.is_installed(APP_NAME):
            raise DBOSConfigurationError(
                f"TASKS[{alias!r}] uses DBOSTaskBackend: add {APP_NAME!r} to INSTALLED_APPS "
                "(beside 'django_dbos'), so that every process, workers included, registers "
                "the task workflow and declares the tasks' queues at start-up."
            )
        self.routes = self._routes(alias, self.options)

    # -- configuration -------------------------------------------------------------------------

    def _routes(self, alias: str, options: Any) -> dict[str, QueueRoute]:
        where = f"TASKS[{alias!r}]['OPTIONS']"
        if not isinstance(options, Mapping):
            raise DBOSConfigurationError(f"{where} must be a dict, not {options!r}.")
        unknown = set(options) - OPTION_KEYS
        if unknown:
            raise DBOSConfigurationError(
                f"{where} has unknown key(s) {sorted(unknown)}; the keys are {sorted(OPTION_KEYS)}."
            )
        mapping = options.get("queues", {})
        if not isinstance(mapping, Mapping):
            raise DBOSConfigurationError(
                f"{where}['queues'] must be a dict of Django queue name -> Queue arguments "
                f"(dict) or the name of a declared Queue (str), not {mapping!r}."
            )
        routes: dict[str, QueueRoute] = {}
        for queue_name, spec in mapping.items():
            if self.queues and queue_name not in self.queues:
                raise DBOSConfigurationError(
                    f"{where}['queues'] configures queue {queue_name!r}, which is not in "
                    f"TASKS[{alias!r}]['QUEUES'] ({sorted(self.queues)}): add it there."
                )
            routes[queue_name] = self._route(f"{where}['queues'][{queue_name!r}]", queue_name, spec)
        for queue_name in sorted(self.queues - set(routes)):
            routes[queue_name] = self._route(where, queue_name, {})
        return routes

    def _route(self, where: str, queue_name: Any, spec: Any) -> QueueRoute:
        if not isinstance(queue_name, str) or not queue_name or len(queue_name) > 255:
            raise DBOSConfigurationError(f"{where}: {queue_name!r} is not a queue name.")
        if isinstance(spec, str) and spec:
            return QueueRoute(queue_name, spec, declared=False)
        if not isinstance(spec, Mapping):
            raise DBOSConfigurationError(
                f"{where} must be a dict of Queue arguments or the name of a declared Queue, "
                f"not {spec!r}."
            )
        unknown = set(spec) - QUEUE_KEYS
        if unknown:
            raise DBOSConfigurationError(
                f"{where} has unknown key(s) {sorted(unknown)}; the keys are "
                f"{sorted(QUEUE_KEYS)} (partitioned queues cannot serve tasks)."
            )
        arguments = {"priority_enabled": True, **spec}
        name = arguments.pop("name", queue_name)
        try:
            Queue(name, **arguments)  # registers it (an unlike twin is reported by E004)
        except DBOSConfigurationError as exc:
            raise DBOSConfigurationError(f"{where}: {exc}") from exc
        return QueueRoute(queue_name, name, declared=True)

    def queue_for(self, queue_name: str) -> Queue:
        """The DBOS queue that serves ``queue_name``; ``DBOSQueueNotFoundError`` if none is
        declared in this process."""
        route = self.routes.get(queue_name)
        name = route.dbos_queue if route else queue_name
        queue = registry.queues.get(name)
        if queue is None:
            raise DBOSQueueNotFoundError(name, sorted(registry.queues))
        return queue

    def validate_task(self, task: Task[..., Any]) -> None:
        """Django's checks, plus: a non-default priority needs a priority-enabled queue."""
        super().validate_task(task)
        route = self.routes.get(task.queue_name)
        queue = registry.queues.get(route.dbos_queue if route else task.queue_name)
        if queue is not None:
            self._check_priority(task, queue)

    def _check_priority(self, task: Task[..., Any], queue: Queue) -> None:
        if task.priority != DEFAULT_TASK_PRIORITY and not queue.priority_enabled:
            raise InvalidTask(
                f"Task {task.module_path} has priority {task.priority}, but queue "
                f"{queue.name!r} (for Django queue {task.queue_name!r}) was declared without "
                "priority_enabled=True."
            )

    # -- enqueue and results -------------------------------------------------------------------

    def enqueue(self, task: Task[P, R], args: Any, kwargs: Any) -> TaskResult[P, R]:
        """Write the task's workflow row (in the caller's transaction, if any) and return its
        ``TaskResult``. ``SetWorkflowID`` around the call makes it idempotent: the same ID
        returns the existing task's result. Raises ``InvalidTask``,
        ``DBOSQueueNotFoundError`` or ``DBOSInvalidArgumentError`` (arguments that are not
        JSON) before anything is written."""
        from django_dbos.tasks.workflows import run_task

        self.validate_task(task)
        queue = self.queue_for(task.queue_name)
        self._check_priority(task, queue)
        try:
            json_args = normalize_json(list(args))
            json_kwargs = normalize_json(dict(kwargs))
        except (TypeError, ValueError) as exc:
            raise DBOSInvalidArgumentError(
                "a task's arguments",
                (args, kwargs),
                f"JSON values (str, int, float, bool, None, lists and str-keyed dicts): {exc}",
                operation=f"enqueue {task.module_path}",
            ) from exc
        options = {**task_options(task), "backend": self.alias}
        delay = None
        if task.run_after is not None:
            delay = max(0.0, (task.run_after - timezone.now()) / timedelta(seconds=1))
        priority = dbos_priority(task.priority) if queue.priority_enabled else None
        with _enqueue_options(priority=priority, delay_seconds=delay or None):
            handle = queue.enqueue(run_task, task.module_path, json_args, json_kwargs, options)
        status = get_workflow_status(handle.workflow_id)
        if status is None:  # deleted in the instant between
            raise TaskResultDoesNotExist(handle.workflow_id)
        same_task = split_inputs(status)[0] == task.module_path
        result = build_result(status, task=task if same_task else None)
        transaction.on_commit(
            lambda: task_enqueued.send(type(self), task_result=result),
            using=dbos_settings().DATABASE,
        )
        return cast("TaskResult[P, R]", result)

    async def aenqueue(self, task: Task[P, R], args: Any, kwargs: Any) -> TaskResult[P, R]:
        """``enqueue`` from async code, on django_dbos's database threads (they close their
        connections); the caller's ``SetWorkflowID`` / ``SetEnqueueOptions`` are taken here."""
        options = take_start_options()

        def enqueue_with_options() -> TaskResult[P, R]:
            _next_start.set(options)  # in the copied context the thread runs
            return self.enqueue(task, args, kwargs)

        return await to_thread(enqueue_with_options)

    async def aget_result(self, result_id: str) -> TaskResult[..., Any]:
        """``get_result`` from async code."""
        return await to_thread(self.get_result, result_id)

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        """The task's current ``TaskResult``. Raises ``TaskResultDoesNotExist`` unless
        ``result_id`` is a task enqueued through this backend alias."""
        status = get_workflow_status(result_id) if isinstance(result_id, str) else None
        if status is None or status.name != RUN_TASK:
            raise TaskResultDoesNotExist(result_id)
        if split_inputs(status)[3].get("backend") != self.alias:
            raise TaskResultDoesNotExist(result_id)
        return build_result(status)


@contextmanager
def _enqueue_options(**changes: Any) -> Iterator[None]:
    """The caller's ``SetWorkflowID`` / ``SetEnqueueOptions`` stay; the task's own priority
    and delay are set over them."""
    changes = {k: v for k, v in changes.items() if v is not None}
    token = _next_start.set(dataclasses.replace(_next_start.get(), **changes))
    try:
        yield
    finally:
        consumed = _next_start.get() == StartOptions()
        _next_start.reset(token)
        if consumed:  # taken by the enqueue, as Queue.enqueue takes them
            _next_start.set(StartOptions())

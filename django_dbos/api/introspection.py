"""``DBOS`` methods that read workflows back: handles, statuses, steps, listings.

The listings take DBOS's keyword arguments, declared once in ``WorkflowFilters`` (so the sync
and async twins, the command and a client share them). ``workflow_query`` validates them into
the engine's ``WorkflowQuery`` before anything reaches the database: a mistake is a
``DBOSInvalidArgumentError`` naming the argument, never a database error.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict, TypeVar, Unpack

from django.utils import timezone

from django_dbos.context import current_workflow
from django_dbos.engine import handles, introspection, steps
from django_dbos.engine.handles import WorkflowHandle, WorkflowHandleAsync
from django_dbos.engine.introspection import AttributeValue, WorkflowQuery
from django_dbos.engine.records import StepInfo, WorkflowStatus
from django_dbos.engine.threads import to_thread
from django_dbos.errors import DBOSInvalidArgumentError
from django_dbos.models import WorkflowStatusString

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

# The step names these reads are recorded under inside a workflow (DBOS's names).
GET_STATUS = "DBOS.getStatus"
LIST_STEPS = "DBOS.listWorkflowSteps"
LIST_WORKFLOWS = "DBOS.listWorkflows"
LIST_QUEUED = "DBOS.listQueuedWorkflows"

TimeArg = datetime.datetime | datetime.date | str | int | float
"""A point in time: an aware or naive ``datetime`` (naive ones are in Django's current time
zone), a ``date`` (its midnight there), an ISO 8601 string, or epoch milliseconds."""

StrOrList = str | Sequence[str]


class QueuedWorkflowFilters(TypedDict, total=False):
    """The keyword arguments of ``DBOS.list_queued_workflows`` (DBOS's names; all optional).

    A string-or-list filter matches any of its values (an empty list matches nothing); ``None``
    does not filter. Time bounds are inclusive. Every filter given must hold.
    """

    workflow_ids: Sequence[str] | None
    status: StrOrList | None
    name: StrOrList | None
    queue_name: StrOrList | None
    start_time: TimeArg | None
    """Created at or after."""
    end_time: TimeArg | None
    """Created at or before."""
    completed_after: TimeArg | None
    completed_before: TimeArg | None
    dequeued_after: TimeArg | None
    dequeued_before: TimeArg | None
    app_version: StrOrList | None
    application_version: StrOrList | None
    """The issue's name for ``app_version`` (give one or the other)."""
    executor_id: StrOrList | None
    parent_workflow_id: StrOrList | None
    forked_from: StrOrList | None
    user: StrOrList | None
    workflow_id_prefix: StrOrList | None
    attributes: Mapping[str, AttributeValue] | None
    """Every key must be present with exactly this value (values are JSON scalars)."""
    is_fork: bool | None
    has_parent: bool | None
    limit: int | None
    offset: int | None
    sort_desc: bool
    load_input: bool
    load_output: bool


class WorkflowFilters(QueuedWorkflowFilters, total=False):
    """The keyword arguments of ``DBOS.list_workflows``."""

    queues_only: bool


_DEFAULTS: dict[str, Any] = {
    "sort_desc": False,
    "load_input": True,
    "load_output": True,
    "queues_only": False,
}
_TIMES = (
    ("start_time", "end_time"),
    ("completed_after", "completed_before"),
    ("dequeued_after", "dequeued_before"),
)
_STRING_FILTERS = (
    "name",
    "queue_name",
    "executor_id",
    "parent_workflow_id",
    "forked_from",
    "user",
    "workflow_id_prefix",
)
_STATUSES = frozenset(WorkflowStatusString.values)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_BIGINT = range(-(2**63), 2**63)  # what a bigint column (and an SQLite integer) holds
_COUNTS = range(2**62)  # limit and offset (their sum must be a bigint too)


def workflow_query(
    operation: str, filters: Mapping[str, Any], allowed: type = WorkflowFilters
) -> WorkflowQuery:
    """Check ``filters`` (the keyword arguments of ``operation``) and build the engine's query.

    Raises ``TypeError`` for a keyword ``operation`` does not take (as a plain signature would)
    and ``DBOSInvalidArgumentError`` for a value of the wrong type or out of range."""
    for key in filters:
        if key not in allowed.__annotations__:
            raise TypeError(f"{operation}() got an unexpected keyword argument {key!r}")
    options = {**_DEFAULTS, **filters}
    check = _Checker(operation, options)
    times = {
        bound: epoch_ms(operation, bound, options.get(bound)) for pair in _TIMES for bound in pair
    }
    for lower, upper in _TIMES:
        first, last = times[lower], times[upper]
        if first is not None and last is not None and first > last:
            raise DBOSInvalidArgumentError(
                upper, options[upper], f"at or after {lower}", operation=operation
            )
    return WorkflowQuery(
        **{key: check.strings(key) for key in _STRING_FILTERS},
        workflow_ids=check.strings("workflow_ids"),
        status=check.statuses(),
        app_version=check.app_version(),
        created_after=times["start_time"],
        created_before=times["end_time"],
        completed_after=times["completed_after"],
        completed_before=times["completed_before"],
        dequeued_after=times["dequeued_after"],
        dequeued_before=times["dequeued_before"],
        attributes=check.attributes(),
        is_fork=check.flag("is_fork", optional=True),
        has_parent=check.flag("has_parent", optional=True),
        queues_only=bool(check.flag("queues_only")),
        limit=check.count("limit"),
        offset=check.count("offset") or 0,
        sort_desc=bool(check.flag("sort_desc")),
        load_input=bool(check.flag("load_input")),
        load_output=bool(check.flag("load_output")),
    )


def epoch_ms(operation: str, argument: str, value: Any) -> int | None:
    """``value`` (see ``TimeArg``) as epoch milliseconds; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or int(value) not in _BIGINT:
            raise DBOSInvalidArgumentError(
                argument, value, "a 64-bit epoch ms", operation=operation
            )
        return int(value)
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            raise DBOSInvalidArgumentError(
                argument,
                value,
                "an ISO 8601 date or time (e.g. '2025-05-01T12:00:00+00:00'), a datetime, "
                "or epoch milliseconds",
                operation=operation,
            ) from None
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        value = datetime.datetime.combine(value, datetime.time())
    if isinstance(value, datetime.datetime):
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        return (value - _EPOCH) // datetime.timedelta(milliseconds=1)
    raise DBOSInvalidArgumentError(
        argument,
        value,
        "a datetime, a date, an ISO 8601 string or epoch milliseconds",
        operation=operation,
    )


class _Checker:
    """Checks one call's arguments; each error names the operation and the argument."""

    def __init__(self, operation: str, options: Mapping[str, Any]) -> None:
        self.operation = operation
        self.options = options

    def fail(self, argument: str, expected: str) -> DBOSInvalidArgumentError:
        return DBOSInvalidArgumentError(
            argument, self.options[argument], expected, operation=self.operation
        )

    def strings(self, argument: str) -> tuple[str, ...] | None:
        value = self.options.get(argument)
        if value is None:
            return None
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list | tuple | set | frozenset) and all(
            isinstance(item, str) for item in value
        ):
            return tuple(value)
        raise self.fail(argument, "a string or a list of strings")

    def statuses(self) -> tuple[str, ...] | None:
        statuses = self.strings("status")
        if statuses is None:
            return None
        if not _STATUSES.issuperset(statuses):
            raise self.fail("status", f"one or a list of {', '.join(WorkflowStatusString.values)}")
        return tuple(str(status) for status in statuses)

    def app_version(self) -> tuple[str, ...] | None:
        if self.options.get("application_version") is None:
            return self.strings("app_version")
        if self.options.get("app_version") is not None:
            raise self.fail("application_version", "left out when app_version is given")
        return self.strings("application_version")

    def attributes(self) -> dict[str, AttributeValue] | None:
        value = self.options.get("attributes")
        if value is None:
            return None
        expected = "a dict of str keys to str, int, float, bool or None values"
        if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
            raise self.fail("attributes", expected)
        for item in value.values():
            if item is not None and not isinstance(item, str | int | float | bool):
                raise self.fail("attributes", expected)
            if isinstance(item, float) and not math.isfinite(item):
                raise self.fail("attributes", "free of NaN and infinity")
            if isinstance(item, int) and item not in _BIGINT:
                raise self.fail("attributes", "free of integers beyond 64 bits")
        return dict(value)

    def flag(self, argument: str, optional: bool = False) -> bool | None:
        value = self.options.get(argument)
        if isinstance(value, bool) or (optional and value is None):
            return value
        raise self.fail(argument, "True or False" + (" or None" if optional else ""))

    def count(self, argument: str) -> int | None:
        value = self.options.get(argument)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value not in _COUNTS:
            raise self.fail(argument, "a whole number of 0 or more, or None")
        return value


def _keyword_signature(filters: type) -> Callable[[F], F]:
    """Give a ``**filters`` function the signature ``help()`` and IDEs should show: each filter
    as a keyword-only parameter with its default."""

    def decorate(fn: F) -> F:
        parameters = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=_DEFAULTS.get(name),
                annotation=getattr(hint, "__forward_arg__", hint),
            )
            for name, hint in filters.__annotations__.items()
        ]
        returns = inspect.signature(fn).return_annotation
        fn.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]
        return fn

    return decorate


def _durably(name: str, fn: Callable[..., T], *args: Any) -> T:
    """Inside a workflow, run ``fn`` as a step named ``name``, as DBOS does: its answer is
    recorded, and a replay gets the same answer back instead of reading the tables again (the
    workflow stays deterministic). Elsewhere a plain call."""
    ctx = current_workflow()
    if ctx is None or ctx.in_step:
        return fn(*args)
    return steps.run_step(steps.StepConfig(name=name), fn, args, {})


class IntrospectionAPI:
    @staticmethod
    def retrieve_workflow(workflow_id: str) -> WorkflowHandle:
        """A handle to an existing workflow; ``DBOSNonExistentWorkflowError`` if there is none."""
        return handles.retrieve_workflow(workflow_id)

    @staticmethod
    async def retrieve_workflow_async(workflow_id: str) -> WorkflowHandleAsync:
        handle = await to_thread(handles.retrieve_workflow, workflow_id)
        return WorkflowHandleAsync(handle.workflow_id)

    @staticmethod
    def get_workflow_status(workflow_id: str) -> WorkflowStatus | None:
        """The workflow's status, or ``None`` if there is no such workflow."""
        return _durably(GET_STATUS, introspection.get_workflow_status, workflow_id)

    @staticmethod
    async def get_workflow_status_async(workflow_id: str) -> WorkflowStatus | None:
        return await to_thread(_durably, GET_STATUS, introspection.get_workflow_status, workflow_id)

    @staticmethod
    def list_workflow_steps(workflow_id: str) -> list[StepInfo]:
        """The workflow's recorded operations in order (``DBOSNonExistentWorkflowError`` if
        there is no such workflow)."""
        return _durably(LIST_STEPS, introspection.list_workflow_steps, workflow_id)

    @staticmethod
    async def list_workflow_steps_async(workflow_id: str) -> list[StepInfo]:
        return await to_thread(_durably, LIST_STEPS, introspection.list_workflow_steps, workflow_id)

    @staticmethod
    @_keyword_signature(WorkflowFilters)
    def list_workflows(**filters: Unpack[WorkflowFilters]) -> list[WorkflowStatus]:
        """The workflows matching every filter given, oldest first (``sort_desc=True``: newest
        first), in one indexed query.

        Filters (DBOS's names, see ``WorkflowFilters``): ``workflow_ids``, ``status``, ``name``,
        ``queue_name``, ``start_time``/``end_time`` (created), ``completed_after``/``_before``,
        ``dequeued_after``/``_before``, ``app_version`` (or ``application_version``),
        ``executor_id``, ``parent_workflow_id``, ``forked_from``, ``user``,
        ``workflow_id_prefix``, ``attributes``, ``is_fork``, ``has_parent``, ``queues_only``;
        then ``limit``, ``offset``, ``sort_desc``. ``load_input=False`` / ``load_output=False``
        leave ``input`` / ``output`` and ``error`` as ``None`` without reading them.

        Raises ``DBOSInvalidArgumentError`` (naming the argument) for a bad value."""
        query = workflow_query("list_workflows", filters)
        return _durably(LIST_WORKFLOWS, introspection.list_workflows, query)

    @staticmethod
    @_keyword_signature(WorkflowFilters)
    async def list_workflows_async(**filters: Unpack[WorkflowFilters]) -> list[WorkflowStatus]:
        query = workflow_query("list_workflows_async", filters)
        return await to_thread(_durably, LIST_WORKFLOWS, introspection.list_workflows, query)

    @staticmethod
    @_keyword_signature(QueuedWorkflowFilters)
    def list_queued_workflows(**filters: Unpack[QueuedWorkflowFilters]) -> list[WorkflowStatus]:
        """Workflows on a queue that have not finished (DELAYED, ENQUEUED or PENDING; with
        ``status=``, those statuses instead), oldest first. Takes ``list_workflows``' filters."""
        query = _queued("list_queued_workflows", filters)
        return _durably(LIST_QUEUED, introspection.list_workflows, query)

    @staticmethod
    @_keyword_signature(QueuedWorkflowFilters)
    async def list_queued_workflows_async(
        **filters: Unpack[QueuedWorkflowFilters],
    ) -> list[WorkflowStatus]:
        query = _queued("list_queued_workflows_async", filters)
        return await to_thread(_durably, LIST_QUEUED, introspection.list_workflows, query)


def _queued(operation: str, filters: Mapping[str, Any]) -> WorkflowQuery:
    query = workflow_query(operation, filters, allowed=QueuedWorkflowFilters)
    return dataclasses.replace(query, queues_only=True)

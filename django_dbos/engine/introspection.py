"""Reading workflows and their steps back: one status, one workflow's steps, listings.

Off the hot path, so plain ORM. A listing is one query that an index answers on a table of
millions of rows: each filter maps onto a column the status table indexes (status+created_at,
name+created_at, created_at, queue, executor+status, parent, the primary key for IDs and ID
prefixes), rows come newest or oldest first by ``created_at`` (ties broken by ID, so pages are
stable), and the large serialized columns stay in the database unless asked for.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from django.db import NotSupportedError, connections
from django.db.models import BooleanField, F, Func, Q, QuerySet

from django_dbos.conf import dbos_settings
from django_dbos.engine.records import StepInfo, WorkflowStatus
from django_dbos.errors import DBOSNonExistentWorkflowError
from django_dbos.models import TERMINAL_STATUSES, OperationOutput, WorkflowStatusString
from django_dbos.models import WorkflowStatus as WorkflowStatusRow

QUEUED_STATUSES = (
    WorkflowStatusString.DELAYED.value,
    WorkflowStatusString.ENQUEUED.value,
    WorkflowStatusString.PENDING.value,
)
"""What ``list_queued_workflows`` shows when no status is given (as in DBOS): queued workflows
not yet finished."""

AttributeValue = str | int | float | bool | None


def get_workflow_status(workflow_id: str) -> WorkflowStatus | None:
    row = (
        WorkflowStatusRow.objects.using(dbos_settings().DATABASE)
        .filter(workflow_uuid=workflow_id)
        .first()
    )
    return WorkflowStatus.from_row(row) if row is not None else None


def list_workflow_steps(workflow_id: str) -> list[StepInfo]:
    alias = dbos_settings().DATABASE
    rows = list(
        OperationOutput.objects.using(alias).filter(workflow_id=workflow_id).order_by("function_id")
    )
    if not rows and not WorkflowStatusRow.objects.using(alias).filter(pk=workflow_id).exists():
        raise DBOSNonExistentWorkflowError(workflow_id)
    return [StepInfo.from_row(row) for row in rows]


# -- listings ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowQuery:
    """A validated listing (``api/introspection.py`` builds it from DBOS's keyword arguments).

    A tuple filter matches any of its values and an empty tuple matches nothing; ``None`` does
    not filter. Times are epoch milliseconds, both bounds inclusive. All filters must hold.
    """

    workflow_ids: tuple[str, ...] | None = None
    status: tuple[str, ...] | None = None
    name: tuple[str, ...] | None = None
    queue_name: tuple[str, ...] | None = None
    app_version: tuple[str, ...] | None = None
    executor_id: tuple[str, ...] | None = None
    parent_workflow_id: tuple[str, ...] | None = None
    forked_from: tuple[str, ...] | None = None
    user: tuple[str, ...] | None = None
    workflow_id_prefix: tuple[str, ...] | None = None
    created_after: int | None = None
    created_before: int | None = None
    completed_after: int | None = None
    completed_before: int | None = None
    dequeued_after: int | None = None
    dequeued_before: int | None = None
    attributes: Mapping[str, AttributeValue] | None = None
    is_fork: bool | None = None
    has_parent: bool | None = None
    queues_only: bool = False
    limit: int | None = None
    offset: int = 0
    sort_desc: bool = False
    load_input: bool = True
    load_output: bool = True


_ANY_OF = {
    "workflow_ids": "workflow_uuid",
    "status": "status",
    "name": "name",
    "queue_name": "queue_name",
    "app_version": "application_version",
    "executor_id": "executor_id",
    "parent_workflow_id": "parent_workflow_id",
    "forked_from": "forked_from",
    "user": "authenticated_user",
}
_RANGES = {  # bound -> column lookup
    "created_after": "created_at__gte",
    "created_before": "created_at__lte",
    "completed_after": "updated_at__gte",
    "completed_before": "updated_at__lte",
    "dequeued_after": "started_at_epoch_ms__gte",
    "dequeued_before": "started_at_epoch_ms__lte",
}


def workflow_queryset(query: WorkflowQuery, using: str | None = None) -> QuerySet[Any]:
    """The rows ``query`` selects, ordered and sliced: evaluating it is the listing's one query.

    Exposed so that tests (and the admin) can ``explain()`` the very query a listing runs."""
    alias = using or dbos_settings().DATABASE
    rows = WorkflowStatusRow.objects.using(alias)
    if query.workflow_id_prefix == ():
        return rows.none()
    conditions = Q()
    for field, column in _ANY_OF.items():
        values = getattr(query, field)
        if values is not None:
            lookup = column if len(values) == 1 else f"{column}__in"
            conditions &= Q(**{lookup: values[0] if len(values) == 1 else values})
    for field, lookup in _RANGES.items():
        bound = getattr(query, field)
        if bound is not None:
            conditions &= Q(**{lookup: bound})
    if query.completed_after is not None or query.completed_before is not None:
        conditions &= Q(status__in=sorted(TERMINAL_STATUSES))  # updated_at is the completion
    if query.queues_only:
        conditions &= Q(queue_name__isnull=False)
        if query.status is None:
            conditions &= Q(status__in=QUEUED_STATUSES)
    if query.is_fork is not None:
        conditions &= Q(forked_from__isnull=not query.is_fork)
    if query.has_parent is not None:
        conditions &= Q(parent_workflow_id__isnull=not query.has_parent)
    if query.workflow_id_prefix is not None:
        conditions &= _any_prefix(query.workflow_id_prefix, alias)
    rows = rows.filter(conditions)
    if query.attributes:
        rows = rows.filter(AttributesMatch(query.attributes))
    deferred = [] if query.load_input else ["inputs"]
    deferred += [] if query.load_output else ["output", "error"]
    if deferred:
        rows = rows.defer(*deferred)
    order = (
        ["-created_at", "-workflow_uuid"] if query.sort_desc else ["created_at", "workflow_uuid"]
    )
    rows = rows.order_by(*order)
    end = query.offset + query.limit if query.limit is not None else None
    return rows[query.offset : end]


def list_workflows(query: WorkflowQuery) -> list[WorkflowStatus]:
    """The workflows ``query`` selects, in one query."""
    return [
        WorkflowStatus.from_row(row, load_input=query.load_input, load_output=query.load_output)
        for row in workflow_queryset(query)
    ]


def _any_prefix(prefixes: tuple[str, ...], alias: str) -> Q:
    """IDs starting with any of ``prefixes`` (case-sensitive), in a form an index answers.

    PostgreSQL serves ``LIKE 'p%'`` from the ``varchar_pattern_ops`` index Django creates
    beside a varchar primary key. SQLite's LIKE ignores case and never uses the primary key's
    index; there the byte-ordered range ``p <= id < p + U+10FFFF`` finds the rows and LIKE only
    re-checks them."""
    sqlite = connections[alias].vendor == "sqlite"
    any_of = Q()
    for prefix in prefixes:
        match = Q(workflow_uuid__startswith=prefix)
        if sqlite:
            match &= Q(workflow_uuid__gte=prefix, workflow_uuid__lt=prefix + "\U0010ffff")
        any_of |= match
    return any_of


class AttributesMatch(Func):
    """True where the JSON text in ``attributes`` holds every given key with exactly that value.

    The one place the listing differs by database. The column is text (whatever serializer is
    configured, attributes are written with ``json.dumps``) and holds a flat object of JSON
    scalars (``SetWorkflowAttributes`` refuses anything else), so the match is per key, by JSON
    type and value, on both databases:

    - PostgreSQL: ``attributes::jsonb @> '{"k": v, ...}'::jsonb`` (containment; for scalar
      values that is equality per key, ``1`` equals ``1.0``, ``true`` is not ``1``).
    - SQLite: its JSON1 functions have no containment, so each pair is one
      ``EXISTS (SELECT 1 FROM json_each(attributes) WHERE key = ? AND type = ? AND atom = ?)``;
      ``json_each`` rather than ``json_extract`` because a key may hold any character (no JSON
      path quoting), and ``type`` keeps ``true`` apart from ``1`` and ``null`` apart from a
      missing key, as ``jsonb`` does.

    Neither is served by an index: combine it with an indexed filter (status, name, time) on
    large tables.
    """

    output_field = BooleanField()

    def __init__(self, attributes: Mapping[str, AttributeValue]) -> None:
        super().__init__(F("attributes"))
        self.attributes = dict(attributes)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column})::jsonb @> %s::jsonb", (*params, json.dumps(self.attributes))

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        column, column_params = compiler.compile(self.source_expressions[0])
        clauses: list[str] = []
        params: list[Any] = []
        for key, value in self.attributes.items():
            match_params: list[Any]
            if value is None or isinstance(value, bool):
                match, match_params = "type = %s", [json.dumps(value)]  # 'null', 'true', 'false'
            elif isinstance(value, int | float):
                match, match_params = "type IN ('integer', 'real') AND atom = %s", [value]
            else:
                match, match_params = "type = 'text' AND atom = %s", [value]
            clauses.append(f"EXISTS (SELECT 1 FROM json_each({column}) WHERE key = %s AND {match})")
            params += [*column_params, key, *match_params]
        return "(" + " AND ".join(clauses) + ")", params

    def as_sql(self, compiler: Any, connection: Any, *args: Any, **extra: Any) -> Any:
        raise NotSupportedError(
            "Filtering workflows by attributes needs PostgreSQL or SQLite, "
            f"not {connection.vendor}."
        )

"""The workflow pages: the list and detail admin for ``WorkflowStatus``, its name filter, its
change list, and the queries that keep them fast on a system table of millions of rows.

The list never counts the whole table (``CappedCountPaginator``), orders by the indexed
``created_at``, searches IDs through an index (``workflow_id_prefix``), lists names with a loose
index scan (``distinct_workflow_names``) and leaves the large serialized columns out. The detail
page decodes inputs, output, error and every step's result (see ``display``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.contrib import admin
from django.contrib.admin.templatetags.admin_list import pagination
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from django_dbos.admin.base import ReadOnlyAdmin
from django_dbos.admin.display import (
    Decoded,
    decode,
    decode_attributes,
    decode_error,
    decode_inputs,
    decode_value,
    format_duration,
    local_time,
    render_decoded,
)
from django_dbos.conf import dbos_settings
from django_dbos.models import OperationOutput, WorkflowStatus

NAME_FILTER_LIMIT = 200
"""The name filter lists at most this many names (filtering by any name still works by URL)."""

_LARGE_COLUMNS = ("inputs", "output", "error", "attributes")


# -- queries built for a table of millions of rows -----------------------------------------


class CappedCountPaginator(Paginator):
    """Counts at most ``cap`` rows (``SELECT COUNT(*) FROM (... LIMIT cap + 1)``), so a page of a
    huge table never pays for an exact ``COUNT(*)``. ``capped`` tells that more rows exist; pages
    past the cap are not offered (narrow the list with a filter or a search instead)."""

    def __init__(self, object_list: QuerySet[Any], per_page: int, *args: Any, cap: int, **kw: Any):
        super().__init__(object_list, per_page, *args, **kw)
        self.queryset = object_list
        self.cap = cap

    @cached_property
    def _counted(self) -> int:
        return self.queryset.order_by()[: self.cap + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self._counted, self.cap)

    @property
    def capped(self) -> bool:
        return self._counted > self.cap


def workflow_id_prefix(term: str, alias: str) -> Q:
    """Workflows whose ID starts with ``term`` (case-sensitive; the exact ID included), in a form
    the database answers from an index rather than a scan.

    PostgreSQL serves ``LIKE 'term%'`` from the ``varchar_pattern_ops`` index Django creates
    beside a varchar primary key. SQLite's LIKE ignores case and so never uses the primary key's
    index; there the byte-ordered range ``term <= id < term + U+10FFFF`` finds the rows and LIKE
    only re-checks them.
    """
    q = Q(workflow_uuid__startswith=term)
    if connections[alias].vendor == "sqlite":
        q &= Q(workflow_uuid__gte=term, workflow_uuid__lt=term + "\U0010ffff")
    return q


def distinct_workflow_names(alias: str, limit: int = NAME_FILTER_LIMIT) -> list[str]:
    """The distinct workflow names in order, in one query.

    ``SELECT DISTINCT name`` reads every row (the whole name index, at best). On PostgreSQL and
    SQLite a recursive query instead jumps from each name to the next through the name index
    (a "loose index scan"): one index probe per distinct name, however many rows each has.
    """
    connection = connections[alias]
    if connection.vendor not in {"postgresql", "sqlite"}:
        names = WorkflowStatus.objects.using(alias).values_list("name", flat=True)
        return list(names.order_by("name").distinct()[:limit])
    table = connection.ops.quote_name(WorkflowStatus._meta.db_table)
    sql = (
        "WITH RECURSIVE names(name) AS ("
        f" SELECT MIN(name) FROM {table}"
        " UNION ALL"
        f" SELECT (SELECT MIN(t.name) FROM {table} t WHERE t.name > names.name)"
        " FROM names WHERE names.name IS NOT NULL"
        ") SELECT name FROM names WHERE name IS NOT NULL LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


# -- filter, change list and admin -------------------------------------------------------


class WorkflowNameFilter(admin.SimpleListFilter):
    title = _("name")
    parameter_name = "name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in distinct_workflow_names(dbos_settings().DATABASE)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        value = self.value()
        return queryset.filter(name=value) if value else queryset


class WorkflowChangeList(ChangeList):
    """The list leaves the serialized columns out and knows when its count was capped."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        return super().get_queryset(request, exclude_parameters).defer(*_LARGE_COLUMNS)

    @property
    def result_count_capped(self) -> bool:
        return bool(getattr(self.paginator, "capped", False))

    @property
    def page_range(self) -> Any:
        return pagination(self)["page_range"]


@dataclasses.dataclass(frozen=True, slots=True)
class StepRow:
    """One line of the detail page's steps table."""

    function_id: int
    name: str
    result: Decoded | None
    is_error: bool
    child_workflow_id: str | None
    child_url: str | None
    started: str | None
    duration: str


# every column of the row, raw or through the method that shows it readably
_WORKFLOW_FIELDS = {
    "identity": ("workflow_id", "name", "status_badge", "class_name", "config_name"),
    "data": ("inputs_pretty", "output_pretty", "error_pretty"),
    "timing": (
        "created_time",
        "started_time",
        "updated_time",
        "duration",
        "timeout",
        "deadline_time",
    ),
    "queue": (
        "queue_name",
        "queue_partition_key",
        "priority",
        "deduplication_id",
        "delay_until_time",
    ),
    "execution": (
        "executor_link",
        "application_version",
        "recovery_attempts",
        "parent_link",
        "forked_from_link",
        "authenticated_user",
        "attributes_pretty",
    ),
}


@admin.register(WorkflowStatus)
class WorkflowStatusAdmin(ReadOnlyAdmin):
    list_display = [
        "workflow_id",
        "short_name",
        "status_badge",
        "queue_name",
        "created",
        "duration",
    ]
    list_filter = ["status", WorkflowNameFilter]
    search_fields = ["=workflow_uuid"]  # shows the box; get_search_results does the matching
    search_help_text = _("A workflow ID, or its beginning (case-sensitive).")
    ordering = ["-created_at"]
    sortable_by = ["workflow_id", "created"]  # only indexed orderings
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would count the whole table
    result_count_cap = 10_000
    steps_limit = 1000
    change_list_template = "django_dbos/admin/workflow_change_list.html"
    change_form_template = "django_dbos/admin/workflow_change_form.html"
    fieldsets = [
        (None, {"fields": _WORKFLOW_FIELDS["identity"]}),
        (_("Data"), {"fields": _WORKFLOW_FIELDS["data"]}),
        (_("Timing"), {"fields": _WORKFLOW_FIELDS["timing"]}),
        (_("Queue"), {"fields": _WORKFLOW_FIELDS["queue"]}),
        (_("Execution"), {"fields": _WORKFLOW_FIELDS["execution"]}),
    ]
    readonly_fields = [name for names in _WORKFLOW_FIELDS.values() for name in names]

    class Media:
        css = {"all": ["django_dbos/admin.css"]}

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return WorkflowChangeList

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Paginator:
        # the cap must exceed both so the admin paginates rather than loading "all" rows
        cap = max(self.result_count_cap, self.list_max_show_all + 1, per_page + 1)
        return CappedCountPaginator(queryset, per_page, orphans, allow_empty_first_page, cap=cap)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(workflow_id_prefix(term, queryset.db)), False

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        # called only once the permission checks have passed
        if obj is not None:
            context["dbos_steps"], context["dbos_steps_truncated"] = self.step_rows(obj)
            context["dbos_steps_limit"] = self.steps_limit
        return super().render_change_form(request, context, add, change, form_url, obj)

    def step_rows(self, obj: WorkflowStatus) -> tuple[list[StepRow], bool]:
        """The workflow's recorded operations in order, in one query (the first
        ``steps_limit``); and whether there are more."""
        rows = list(
            OperationOutput.objects.using(obj._state.db)
            .filter(workflow_id=obj.pk)
            .order_by("function_id")[: self.steps_limit + 1]
        )
        steps = []
        for row in rows[: self.steps_limit]:
            is_error = row.error is not None
            if row.started_at_epoch_ms is not None and row.completed_at_epoch_ms is not None:
                duration = format_duration(row.completed_at_epoch_ms - row.started_at_epoch_ms)
            else:
                duration = "—"
            steps.append(
                StepRow(
                    function_id=row.function_id,
                    name=row.function_name,
                    result=decode(row.error, decode_error)
                    if is_error
                    else decode(row.output, decode_value),
                    is_error=is_error,
                    child_workflow_id=row.child_workflow_id,
                    child_url=self._workflow_url(row.child_workflow_id),
                    started=local_time(row.started_at_epoch_ms, millis=True),
                    duration=duration,
                )
            )
        return steps, len(rows) > self.steps_limit

    def _workflow_url(self, workflow_id: str | None) -> str | None:
        if not workflow_id:
            return None
        return reverse(
            f"{self.admin_site.name}:django_dbos_workflowstatus_change", args=[quote(workflow_id)]
        )

    def _workflow_link(self, workflow_id: str | None) -> Any:
        url = self._workflow_url(workflow_id)
        return self.shown(format_html('<a href="{}">{}</a>', url, workflow_id) if url else None)

    # -- columns and fields ----------------------------------------------------------------

    @admin.display(description=_("workflow ID"), ordering="workflow_uuid")
    def workflow_id(self, obj: WorkflowStatus) -> str:
        return obj.workflow_uuid

    @admin.display(description=_("name"))
    def short_name(self, obj: WorkflowStatus) -> SafeString:
        return format_html('<span title="{}">{}</span>', obj.name, obj.name.rsplit(".", 1)[-1])

    @admin.display(description=_("status"))
    def status_badge(self, obj: WorkflowStatus) -> SafeString:
        return format_html(
            '<span class="dbos-status dbos-status-{}">{}</span>',
            obj.status.lower(),
            obj.get_status_display(),
        )

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: WorkflowStatus) -> Any:
        return self.shown(local_time(obj.created_at))

    @admin.display(description=_("created"))
    def created_time(self, obj: WorkflowStatus) -> Any:
        return self.shown(local_time(obj.created_at, millis=True))

    @admin.display(description=_("started"))
    def started_time(self, obj: WorkflowStatus) -> Any:
        return self.shown(local_time(obj.started_at_epoch_ms, millis=True))

    @admin.display(description=_("updated"))
    def updated_time(self, obj: WorkflowStatus) -> Any:
        return self.shown(local_time(obj.updated_at, millis=True))

    @admin.display(description=_("deadline"))
    def deadline_time(self, obj: WorkflowStatus) -> Any:
        return self.shown(local_time(obj.workflow_deadline_epoch_ms, millis=True))

    @admin.display(description=_("delayed until"))
    def delay_until_time(self, obj: WorkflowStatus) -> Any:
        return self.shown(local_time(obj.delay_until_epoch_ms, millis=True))

    @admin.display(description=_("duration"))
    def duration(self, obj: WorkflowStatus) -> str:
        return format_duration(obj.duration_ms)

    @admin.display(description=_("timeout"))
    def timeout(self, obj: WorkflowStatus) -> Any:
        ms = obj.workflow_timeout_ms
        return self.shown(format_duration(ms) if ms is not None else None)

    @admin.display(description=_("inputs"))
    def inputs_pretty(self, obj: WorkflowStatus) -> Any:
        return self.shown(render_decoded(decode(obj.inputs, decode_inputs)))

    @admin.display(description=_("output"))
    def output_pretty(self, obj: WorkflowStatus) -> Any:
        return self.shown(render_decoded(decode(obj.output, decode_value)))

    @admin.display(description=_("error"))
    def error_pretty(self, obj: WorkflowStatus) -> Any:
        return self.shown(render_decoded(decode(obj.error, decode_error)))

    @admin.display(description=_("attributes"))
    def attributes_pretty(self, obj: WorkflowStatus) -> Any:
        return self.shown(render_decoded(decode(obj.attributes, decode_attributes)))

    @admin.display(description=_("executor"))
    def executor_link(self, obj: WorkflowStatus) -> Any:
        if not obj.executor_id:
            return self.shown(None)
        url = reverse(
            f"{self.admin_site.name}:django_dbos_executor_change", args=[quote(obj.executor_id)]
        )
        return format_html('<a href="{}">{}</a>', url, obj.executor_id)

    @admin.display(description=_("parent workflow"))
    def parent_link(self, obj: WorkflowStatus) -> Any:
        return self._workflow_link(obj.parent_workflow_id)

    @admin.display(description=_("forked from"))
    def forked_from_link(self, obj: WorkflowStatus) -> Any:
        return self._workflow_link(obj.forked_from)

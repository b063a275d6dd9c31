"""The executor pages: a read-only admin for ``Executor`` rows, with an "alive" filter and
column that use the same heartbeat cutoff as recovery."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_dbos.admin.base import ReadOnlyAdmin
from django_dbos.admin.display import local_time
from django_dbos.conf import dbos_settings
from django_dbos.models import Executor, now_ms


def _alive_cutoff_ms() -> int:
    return now_ms() - int(dbos_settings().EXECUTOR_TIMEOUT * 1000)


class ExecutorAliveFilter(admin.SimpleListFilter):
    title = _("alive")
    parameter_name = "alive"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        if self.value() == "yes":
            return queryset.filter(last_heartbeat__gte=_alive_cutoff_ms())
        if self.value() == "no":
            return queryset.filter(last_heartbeat__lt=_alive_cutoff_ms())
        return queryset


_EXECUTOR_FIELDS = (
    "executor_id",
    "hostname",
    "pid",
    "version",
    "started",
    "last_heartbeat_at",
    "alive",
    "served_queues",
)


@admin.register(Executor)
class ExecutorAdmin(ReadOnlyAdmin):
    list_display = _EXECUTOR_FIELDS
    list_filter = [ExecutorAliveFilter]
    search_fields = ["^executor_id", "^hostname"]
    ordering = ["-last_heartbeat"]
    sortable_by = ["executor_id", "last_heartbeat_at"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = _EXECUTOR_FIELDS
    readonly_fields = _EXECUTOR_FIELDS

    @admin.display(description=_("version"))
    def version(self, obj: Executor) -> Any:
        """A default version is a 32-character hash: its first 12 characters, the rest on
        hover (the list stays readable next to the queues column)."""
        version = obj.application_version
        if version is None or len(version) <= 16:
            return self.shown(version)
        return format_html('<span title="{}">{}…</span>', version, version[:12])

    @admin.display(description=_("started"))
    def started(self, obj: Executor) -> Any:
        return self.shown(local_time(obj.started_at))

    @admin.display(description=_("last heartbeat"), ordering="last_heartbeat")
    def last_heartbeat_at(self, obj: Executor) -> Any:
        return self.shown(local_time(obj.last_heartbeat))

    @admin.display(description=_("queues"))
    def served_queues(self, obj: Executor) -> Any:
        """The queues its dispatcher serves (a worker); a dash for a process that runs none."""
        if not isinstance(obj.queues, list):
            return self.shown(None)
        return ", ".join(str(name) for name in obj.queues) or self.shown(None)

    @admin.display(description=_("alive"), boolean=True)
    def alive(self, obj: Executor) -> bool:
        """Heartbeat within ``DBOS["EXECUTOR_TIMEOUT"]`` (what recovery uses to call it dead)."""
        return obj.last_heartbeat >= _alive_cutoff_ms()

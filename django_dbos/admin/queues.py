"""The queue pages: every declared queue (a ``QueueConfig`` row), its flow control, its backlog
and the live workers that serve it, so an operator sees at a glance a queue whose workflows
pile up because no live worker serves it.

Queues are declared in code (``Queue(...)``) and upserted by the processes that declare them, so
the pages are read-only. A page of the list costs a constant number of queries whatever its
length: one grouped query counts the page's ENQUEUED / DELAYED / PENDING workflows
(``queue_backlogs``), one reads the live executors and the queues they serve
(``live_servers``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count, Min
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_dbos.admin.base import ReadOnlyAdmin
from django_dbos.admin.display import format_duration, local_time
from django_dbos.admin.executors import _alive_cutoff_ms
from django_dbos.conf import dbos_settings
from django_dbos.models import (
    Executor,
    QueueConfig,
    WorkflowStatus,
    WorkflowStatusString,
    now_ms,
)

BACKLOG_STATUSES = (
    WorkflowStatusString.ENQUEUED,
    WorkflowStatusString.DELAYED,
    WorkflowStatusString.PENDING,
)
"""The statuses counted per queue: waiting to be claimed (ENQUEUED, DELAYED) and running."""


# -- the queries -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class QueueBacklog:
    """A queue's unfinished workflows: how many per status, and when the oldest ENQUEUED one
    was created (epoch ms; None when none is)."""

    enqueued: int = 0
    delayed: int = 0
    pending: int = 0
    oldest_enqueued_at: int | None = None

    @property
    def waiting(self) -> int:
        """Workflows no worker has claimed yet (a queue nobody serves never runs them)."""
        return self.enqueued + self.delayed


def queue_backlogs(alias: str, names: list[str]) -> dict[str, QueueBacklog]:
    """The backlog of each named queue (a queue with none is left out), in one grouped query
    that the (queue_name, status, ...) index answers."""
    if not names:
        return {}
    groups = (
        WorkflowStatus.objects.using(alias)
        .filter(queue_name__in=names, status__in=BACKLOG_STATUSES)
        .values("queue_name", "status")
        .annotate(count=Count("*"), oldest=Min("created_at"))
        .order_by()
    )
    counts: dict[str, dict[str, Any]] = {}
    for group in groups:
        found = counts.setdefault(str(group["queue_name"]), {})
        found[group["status"].lower()] = group["count"]
        if group["status"] == WorkflowStatusString.ENQUEUED:
            found["oldest_enqueued_at"] = group["oldest"]
    return {name: QueueBacklog(**found) for name, found in counts.items()}


def live_servers(alias: str) -> dict[str, list[Executor]]:
    """Queue name -> the live executors (heartbeat within ``EXECUTOR_TIMEOUT``, as recovery
    judges) whose dispatcher serves it, in one query. Executors are few (one per process), so
    they are matched to queues here rather than with a JSON lookup SQLite lacks."""
    servers: dict[str, list[Executor]] = {}
    executors = (
        Executor.objects.using(alias)
        .filter(last_heartbeat__gte=_alive_cutoff_ms(), queues__isnull=False)
        .only("executor_id", "hostname", "pid", "application_version", "last_heartbeat", "queues")
        .order_by("executor_id")
    )
    for executor in executors:
        if not isinstance(executor.queues, list):
            continue  # not written by this version
        for name in dict.fromkeys(executor.queues):
            if isinstance(name, str):
                servers.setdefault(name, []).append(executor)
    return servers


@dataclasses.dataclass(frozen=True, slots=True)
class QueueState:
    """What the pages show of a queue beyond its configuration row."""

    backlog: QueueBacklog
    servers: list[Executor]
    workflows_url: str | None
    """The workflow list's URL, when this user may open it (the counts link there)."""


_STATE = "_dbos_queue_state"


# -- change list and admin ---------------------------------------------------------------------


class QueueChangeList(ChangeList):
    """Reads the page's backlogs and the live executors once for all its rows."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = list(self.result_list)  # fills the page queryset's cache: the rows shown
        model_admin: QueueConfigAdmin = self.model_admin  # type: ignore[assignment]
        model_admin.attach_state(request, rows)


_QUEUE_FIELDS = {
    "identity": ("name", "updated"),
    "flow": (
        "concurrency",
        "worker_concurrency",
        "limiter",
        "priority_enabled",
        "partition_queue",
        "partition_concurrency",
        "partition_limiter",
    ),
    "backlog": (
        "enqueued_count",
        "delayed_count",
        "pending_count",
        "oldest_enqueued",
        "served_by",
        "servers",
    ),
}


@admin.register(QueueConfig)
class QueueConfigAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "flow_control",
        "enqueued_count",
        "delayed_count",
        "pending_count",
        "oldest_enqueued",
        "served_by",
        "updated",
    ]
    search_fields = ["name"]
    search_help_text = _("Part of a queue's name.")
    ordering = ["name"]
    sortable_by = ["name", "updated"]
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fieldsets = [
        (None, {"fields": _QUEUE_FIELDS["identity"]}),
        (_("Flow control"), {"fields": _QUEUE_FIELDS["flow"]}),
        (_("Backlog and workers"), {"fields": _QUEUE_FIELDS["backlog"]}),
    ]
    readonly_fields = [name for names in _QUEUE_FIELDS.values() for name in names]

    class Media:
        css = {"all": ["django_dbos/admin.css"]}

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return QueueChangeList

    def attach_state(self, request: HttpRequest, rows: list[QueueConfig]) -> None:
        """Read the backlogs of ``rows`` and the live executors (two queries however many rows)
        and hang each row's ``QueueState`` on it for the columns to show."""
        if not rows:
            return
        alias = rows[0]._state.db or dbos_settings().DATABASE
        backlogs = queue_backlogs(alias, [row.name for row in rows])
        servers = live_servers(alias)
        url = self._workflows_url(request)
        for row in rows:
            state = QueueState(
                backlogs.get(row.name, QueueBacklog()), servers.get(row.name, []), url
            )
            setattr(row, _STATE, state)

    def _workflows_url(self, request: HttpRequest) -> str | None:
        if not self.admin_site.is_registered(WorkflowStatus):
            return None
        if not self.admin_site.get_model_admin(WorkflowStatus).has_view_permission(request):
            return None
        return reverse(f"{self.admin_site.name}:django_dbos_workflowstatus_changelist")

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        # called only once the permission checks have passed; the fields render after this
        if obj is not None:
            self.attach_state(request, [obj])
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _state(self, obj: QueueConfig) -> QueueState:
        state = getattr(obj, _STATE, None)
        if state is None:  # shown outside the pages above: read it now, without links
            alias = obj._state.db or dbos_settings().DATABASE
            state = QueueState(
                queue_backlogs(alias, [obj.name]).get(obj.name, QueueBacklog()),
                live_servers(alias).get(obj.name, []),
                None,
            )
            setattr(obj, _STATE, state)
        return state

    def _count(self, obj: QueueConfig, status: str) -> SafeString:
        state = self._state(obj)
        count = getattr(state.backlog, status.lower())
        if state.workflows_url is None:
            return format_html("{}", count)
        query = urlencode({"queue_name": obj.name, "status__exact": status})
        return format_html(
            '<a href="{}?{}" title="{}">{}</a>',
            state.workflows_url,
            query,
            _("%(status)s workflows of this queue") % {"status": status},
            count,
        )

    # -- columns and fields ----------------------------------------------------------------

    @admin.display(description=_("flow control"))
    def flow_control(self, obj: QueueConfig) -> str:
        """The limits in one line: global concurrency, per worker, rate limit, partition
        limits, priority; "unlimited" for a queue with none."""
        parts: list[str] = []
        if obj.concurrency is not None:
            parts.append(str(_("concurrency %(n)s") % {"n": obj.concurrency}))
        if obj.worker_concurrency is not None:
            parts.append(str(_("%(n)s per worker") % {"n": obj.worker_concurrency}))
        if obj.limiter_limit is not None and obj.limiter_period_sec is not None:
            parts.append(_rate(obj.limiter_limit, obj.limiter_period_sec))
        if obj.partition_queue:
            per_key: list[str] = []
            if obj.partition_concurrency is not None:
                per_key.append(str(_("concurrency %(n)s") % {"n": obj.partition_concurrency}))
            if (
                obj.partition_limiter_limit is not None
                and obj.partition_limiter_period_sec is not None
            ):
                per_key.append(_rate(obj.partition_limiter_limit, obj.partition_limiter_period_sec))
            parts.append(
                str(_("partitioned (per key: %(limits)s)") % {"limits": ", ".join(per_key)})
                if per_key
                else str(_("partitioned"))
            )
        if obj.priority_enabled:
            parts.append(str(_("priority")))
        return " · ".join(parts) if parts else str(_("unlimited"))

    @admin.display(description=_("enqueued"))
    def enqueued_count(self, obj: QueueConfig) -> SafeString:
        return self._count(obj, WorkflowStatusString.ENQUEUED)

    @admin.display(description=_("delayed"))
    def delayed_count(self, obj: QueueConfig) -> SafeString:
        return self._count(obj, WorkflowStatusString.DELAYED)

    @admin.display(description=_("pending"))
    def pending_count(self, obj: QueueConfig) -> SafeString:
        return self._count(obj, WorkflowStatusString.PENDING)

    @admin.display(description=_("oldest enqueued"))
    def oldest_enqueued(self, obj: QueueConfig) -> Any:
        """How long the oldest ENQUEUED workflow has waited (its creation time on hover)."""
        created = self._state(obj).backlog.oldest_enqueued_at
        if created is None:
            return self.shown(None)
        return format_html(
            '<span title="{}">{}</span>',
            local_time(created),
            _("%(age)s ago") % {"age": format_duration(now_ms() - created)},
        )

    @admin.display(description=_("served by"))
    def served_by(self, obj: QueueConfig) -> SafeString:
        """The number of live executors serving the queue; a red mark when none does while
        workflows wait in it (they will not run until a worker serving it starts)."""
        state = self._state(obj)
        live = len(state.servers)
        if live == 0 and state.backlog.waiting:
            return format_html(
                '<span class="dbos-status dbos-status-error dbos-unserved" title="{}">⚠ {}</span>',
                ngettext(
                    "No live worker serves this queue: its %(n)d waiting workflow will not run.",
                    "No live worker serves this queue: its %(n)d waiting workflows will not run.",
                    state.backlog.waiting,
                )
                % {"n": state.backlog.waiting},
                _("no worker"),
            )
        return format_html(
            '<span class="dbos-served">{}</span>',
            ngettext("%(n)d worker", "%(n)d workers", live) % {"n": live},
        )

    @admin.display(description=_("live workers"))
    def servers(self, obj: QueueConfig) -> Any:
        """The live executors serving the queue, each linked to its page."""
        servers = self._state(obj).servers
        if not servers:
            return self.shown(None)
        return format_html_join(
            mark_safe("<br>"),
            '<a href="{}">{}</a> ({}, pid {}, version {}; last heartbeat {})',
            (
                (
                    reverse(
                        f"{self.admin_site.name}:django_dbos_executor_change",
                        args=[quote(executor.executor_id)],
                    ),
                    executor.executor_id,
                    executor.hostname,
                    executor.pid,
                    executor.application_version or "—",
                    local_time(executor.last_heartbeat),
                )
                for executor in servers
            ),
        )

    @admin.display(description=_("rate limit"))
    def limiter(self, obj: QueueConfig) -> Any:
        if obj.limiter_limit is None or obj.limiter_period_sec is None:
            return self.shown(None)
        return _rate(obj.limiter_limit, obj.limiter_period_sec)

    @admin.display(description=_("rate limit per partition"))
    def partition_limiter(self, obj: QueueConfig) -> Any:
        if obj.partition_limiter_limit is None or obj.partition_limiter_period_sec is None:
            return self.shown(None)
        return _rate(obj.partition_limiter_limit, obj.partition_limiter_period_sec)

    @admin.display(description=_("updated"), ordering="updated_at")
    def updated(self, obj: QueueConfig) -> Any:
        return self.shown(local_time(obj.updated_at))


def _rate(limit: int, period_sec: float) -> str:
    """``5 per 1.0 s``."""
    return str(
        _("%(limit)s per %(period)s")
        % {"limit": limit, "period": format_duration(round(period_sec * 1000))}
    )

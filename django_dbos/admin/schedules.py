"""The schedule pages: the ``Schedule`` list and detail, with pause / resume / trigger-now actions
and a backfill form, each behind its own permission.

Schedules are declared in code (``DBOS.create_schedule`` / ``DBOS.apply_schedules``), so their
fields are read-only here, as the other django_dbos pages are: an edit made in the admin would be
overwritten by the next deploy's ``apply_schedules``. What an operator needs at 3 a.m. is here
instead: stop a schedule, start it again, run it now, run the firings it missed. Each operation
goes through the public API (``DBOS.pause_schedule`` & co.), never through ``.update()``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_dbos import DBOS, DBOSException
from django_dbos.admin.base import ReadOnlyAdmin
from django_dbos.admin.display import decode, decode_value, local_time, render_decoded
from django_dbos.api.schedules import MAX_BACKFILL
from django_dbos.engine.scheduler import fire_times, next_fire_time
from django_dbos.models import Schedule, ScheduleStatus, WorkflowStatus, now_ms

UPCOMING = 5
"""The detail page lists this many next fire times."""

PERMISSIONS = {
    "pause": "pause_schedule",
    "trigger": "trigger_schedule",
    "backfill": "backfill_schedule",
}
"""Operation -> permission codename (``Schedule.Meta.permissions``); pause covers resume."""


def _local(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    local = timezone.localtime(moment)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


_SCHEDULE_FIELDS = (
    "schedule_name",
    "workflow_name",
    "cron",
    "time_zone",
    "status_badge",
    "queue",
    "automatic_backfill",
    "context_pretty",
    "last_fired",
    "upcoming",
    "created",
    "updated",
)


class BackfillForm(forms.Form):
    """A backfill's range, checked against the schedule before anything is enqueued: the start
    must come before the end, and the range must hold at least one fire time and no more than
    ``limit``."""

    start = forms.DateTimeField(
        label=_("From (exclusive)"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1}),
    )
    end = forms.DateTimeField(
        label=_("To (exclusive)"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1}),
    )

    def __init__(self, *args: Any, schedule: Schedule, limit: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schedule = schedule
        self.limit = limit
        self.times: list[dt.datetime] = []
        zone = timezone.get_current_timezone_name()
        for field in self.fields.values():
            field.help_text = _("In %(zone)s.") % {"zone": zone}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start is None or end is None:
            return data
        if start >= end:
            raise forms.ValidationError(_("The start must be before the end."), code="order")
        try:
            self.times = fire_times(
                self.schedule.schedule,
                self.schedule.cron_timezone,
                start,
                until=end,
                limit=self.limit + 1,
            )
        except DBOSException as exc:
            raise forms.ValidationError(str(exc), code="schedule") from None
        if not self.times:
            raise forms.ValidationError(
                _("%(name)s does not fire between these times: nothing to enqueue."),
                code="empty",
                params={"name": self.schedule.schedule_name},
            )
        if len(self.times) > self.limit:
            raise forms.ValidationError(
                _(
                    "This range holds more than %(limit)s fire times. Backfill a shorter range "
                    "here, or use manage.py dbos_schedules backfill (up to %(most)s a run)."
                ),
                code="too_many",
                params={"limit": self.limit, "most": MAX_BACKFILL},
            )
        return data


@admin.register(Schedule)
class ScheduleAdmin(ReadOnlyAdmin):
    list_display = [
        "schedule_name",
        "workflow",
        "cron",
        "time_zone",
        "next_fire",
        "last_fired",
        "status_badge",
        "queue",
    ]
    list_filter = ["status"]
    search_fields = ["schedule_name"]
    search_help_text = _("Part of a schedule's name.")
    ordering = ["schedule_name"]
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["pause_schedules", "resume_schedules", "trigger_schedules"]
    backfill_limit = 1000
    """The backfill form refuses ranges with more fire times than this (one request enqueues
    them all); ``manage.py dbos_schedules backfill`` takes up to the API's limit."""
    change_form_template = "django_dbos/admin/schedule_change_form.html"
    backfill_template = "django_dbos/admin/schedule_backfill.html"
    fields = _SCHEDULE_FIELDS
    readonly_fields = _SCHEDULE_FIELDS

    class Media:
        css = {"all": ["django_dbos/admin.css"]}

    # -- permissions -----------------------------------------------------------------------

    def _has(self, request: HttpRequest, operation: str) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.{PERMISSIONS[operation]}")

    def has_pause_permission(self, request: HttpRequest) -> bool:
        """Pausing and resuming (``PERMISSIONS["pause"]``)."""
        return self._has(request, "pause")

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        """Triggering now (``PERMISSIONS["trigger"]``)."""
        return self._has(request, "trigger")

    def has_backfill_permission(self, request: HttpRequest) -> bool:
        """The backfill form (``PERMISSIONS["backfill"]``)."""
        return self._has(request, "backfill")

    def get_list_display(self, request: HttpRequest) -> Any:
        columns = list(super().get_list_display(request))
        return [*columns, "backfill_link"] if self.has_backfill_permission(request) else columns

    # -- actions ---------------------------------------------------------------------------

    @admin.action(permissions=["pause"], description=_("Pause selected schedules"))
    def pause_schedules(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._set_status(request, queryset, ScheduleStatus.PAUSED)

    @admin.action(permissions=["pause"], description=_("Resume selected schedules"))
    def resume_schedules(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._set_status(request, queryset, ScheduleStatus.ACTIVE)

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Schedule], status: str) -> None:
        operation = DBOS.pause_schedule if status == ScheduleStatus.PAUSED else DBOS.resume_schedule
        changed, failed = [], []
        rows = list(queryset.only("schedule_name", "status"))
        for row in rows:
            if row.status == status:
                continue
            try:
                operation(row.schedule_name)
            except DBOSException as exc:
                failed.append(f"{row.schedule_name}: {exc}")
            else:
                changed.append(row.schedule_name)
        unchanged = len(rows) - len(changed) - len(failed)
        if status == ScheduleStatus.PAUSED:
            text = ngettext("Paused %(n)d schedule", "Paused %(n)d schedules", len(changed))
            already = ngettext("%(m)d was already paused", "%(m)d were already paused", unchanged)
        else:
            text = ngettext("Resumed %(n)d schedule", "Resumed %(n)d schedules", len(changed))
            already = ngettext("%(m)d was already active", "%(m)d were already active", unchanged)
        summary = text % {"n": len(changed)}
        if unchanged:
            summary += f" ({already % {'m': unchanged}})"
        self.message_user(request, f"{summary}.", messages.SUCCESS if changed else messages.INFO)
        for error in failed:
            self.message_user(request, error, messages.ERROR)

    @admin.action(permissions=["trigger"], description=_("Trigger selected schedules now"))
    def trigger_schedules(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        started = []
        for row in queryset.only("schedule_name"):
            try:
                handle = DBOS.trigger_schedule(row.schedule_name)
            except DBOSException as exc:
                self.message_user(request, f"{row.schedule_name}: {exc}", messages.ERROR)
            else:
                started.append((row.schedule_name, handle.workflow_id))
        if started:
            links = format_html_join(
                ", ",
                "{} → {}",
                ((name, self._workflow_link(workflow_id)) for name, workflow_id in started),
            )
            message = ngettext(
                "Triggered %(n)d schedule: ", "Triggered %(n)d schedules: ", len(started)
            ) % {"n": len(started)}
            self.message_user(request, format_html("{}{}.", message, links), messages.SUCCESS)

    def _workflow_link(self, workflow_id: str) -> SafeString:
        if not self.admin_site.is_registered(WorkflowStatus):
            return format_html("{}", workflow_id)
        url = reverse(
            f"{self.admin_site.name}:django_dbos_workflowstatus_change", args=[quote(workflow_id)]
        )
        return format_html('<a href="{}">{}</a>', url, workflow_id)

    # -- the backfill form -----------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        backfill = path(
            "<path:object_id>/backfill/",
            self.admin_site.admin_view(self.backfill_view),
            name="{}_{}_backfill".format(*info),
        )
        return [backfill, *super().get_urls()]

    def backfill_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: the form; POST: validate, then ``DBOS.backfill_schedule`` and back to the list
        with how many workflows were enqueued. A bad range redisplays the form; nothing is
        enqueued."""
        if not (self.has_view_permission(request) and self.has_backfill_permission(request)):
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
                request, self.opts, object_id
            )
        form = BackfillForm(
            request.POST if request.method == "POST" else None,
            schedule=obj,
            limit=self.backfill_limit,
        )
        if request.method == "POST" and form.is_valid():
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
            try:
                before = now_ms()
                handles = DBOS.backfill_schedule(obj.schedule_name, start, end)
            except DBOSException as exc:
                form.add_error(None, str(exc))
            else:
                self._report_backfill(request, obj, handles, before, start, end)
                return HttpResponseRedirect(
                    reverse(f"{self.admin_site.name}:django_dbos_schedule_changelist")
                )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Backfill %(name)s") % {"name": obj.schedule_name},
            "subtitle": None,
            "opts": self.opts,
            "original": obj,
            "form": form,
            "limit": self.backfill_limit,
            "command_limit": MAX_BACKFILL,
            "media": self.media + form.media,
            "has_view_permission": self.has_view_permission(request, obj),
        }
        return TemplateResponse(request, self.backfill_template, context)

    def _report_backfill(
        self,
        request: HttpRequest,
        obj: Schedule,
        handles: list[Any],
        before: int,
        start: dt.datetime,
        end: dt.datetime,
    ) -> None:
        ids = [handle.workflow_id for handle in handles]
        # the backfill skips fire times that already ran: the rows it wrote were created now
        new = (
            WorkflowStatus.objects.using(obj._state.db)
            .filter(workflow_uuid__in=ids, created_at__gte=before)
            .count()
            if ids
            else 0
        )
        message = ngettext(
            "Backfilled %(name)s from %(start)s to %(end)s: enqueued %(new)d workflow",
            "Backfilled %(name)s from %(start)s to %(end)s: enqueued %(new)d workflows",
            new,
        ) % {"name": obj.schedule_name, "start": _local(start), "end": _local(end), "new": new}
        if new < len(ids):
            message += " " + _("(%(old)d of the %(all)d fire times had already run)") % {
                "old": len(ids) - new,
                "all": len(ids),
            }
        self.message_user(request, f"{message}.", messages.SUCCESS)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if obj is not None and self.has_backfill_permission(request):
            context["dbos_backfill_url"] = reverse(
                f"{self.admin_site.name}:django_dbos_schedule_backfill", args=[quote(obj.pk)]
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # -- columns and fields ----------------------------------------------------------------

    @admin.display(description=_("workflow"), ordering="workflow_name")
    def workflow(self, obj: Schedule) -> SafeString:
        return format_html(
            '<span title="{}">{}</span>', obj.workflow_name, obj.workflow_name.rsplit(".", 1)[-1]
        )

    @admin.display(description=_("cron"))
    def cron(self, obj: Schedule) -> SafeString:
        return format_html('<code style="white-space: nowrap">{}</code>', obj.schedule)

    @admin.display(description=_("time zone"))
    def time_zone(self, obj: Schedule) -> str:
        return obj.cron_timezone or "UTC"

    @admin.display(description=_("next fire time"))
    def next_fire(self, obj: Schedule) -> Any:
        """Computed from the cron expression in the schedule's time zone, shown in the
        project's; a dash when paused, "invalid" when the row's cron cannot be read."""
        if obj.status != ScheduleStatus.ACTIVE:
            return self.shown(None)
        when = next_fire_time(obj.schedule, obj.cron_timezone)
        return _local(when) if when is not None else _("invalid cron or time zone")

    @admin.display(description=_("last fired"), ordering="last_fired_at")
    def last_fired(self, obj: Schedule) -> Any:
        return self.shown(local_time(obj.last_fired_at))

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: Schedule) -> SafeString:
        colour = "success" if obj.status == ScheduleStatus.ACTIVE else "cancelled"
        return format_html(
            '<span class="dbos-status dbos-status-{} dbos-schedule-{}">{}</span>',
            colour,
            obj.status.lower(),
            obj.get_status_display(),
        )

    @admin.display(description=_("queue"), ordering="queue_name")
    def queue(self, obj: Schedule) -> Any:
        return self.shown(obj.queue_name)

    @admin.display(description=_("context"))
    def context_pretty(self, obj: Schedule) -> Any:
        return self.shown(render_decoded(decode(obj.context, decode_value)))

    @admin.display(description=_("next fire times"))
    def upcoming(self, obj: Schedule) -> Any:
        if obj.status != ScheduleStatus.ACTIVE:
            return _("none while paused")
        try:
            times = fire_times(obj.schedule, obj.cron_timezone, timezone.now(), limit=UPCOMING)
        except DBOSException as exc:
            return str(exc)
        return format_html_join(mark_safe("<br>"), "{}", ((_local(t),) for t in times))

    @admin.display(description=_("backfill"))
    def backfill_link(self, obj: Schedule) -> SafeString:
        url = reverse(f"{self.admin_site.name}:django_dbos_schedule_backfill", args=[quote(obj.pk)])
        return format_html('<a href="{}">{}</a>', url, _("Backfill…"))

    @admin.display(description=_("created"))
    def created(self, obj: Schedule) -> Any:
        return self.shown(local_time(obj.created_at))

    @admin.display(description=_("updated"))
    def updated(self, obj: Schedule) -> Any:
        return self.shown(local_time(obj.updated_at))

"""``manage.py dbos_schedules``: list and operate managed cron schedules from a shell.

A thin layer over the public API (``DBOS.list_schedules``, ``get_schedule``, ``pause_schedule``,
``resume_schedule``, ``trigger_schedule``, ``backfill_schedule``, ``delete_schedule``): it checks
arguments, calls the API and prints aligned tables, or JSON with ``--json``. Mistakes (a bad
argument, an unknown schedule, a backfill range that is empty or too large) are
``CommandError``s raised before anything is written; usage errors exit with 2, the others with 1.

Schedules are created in code (``DBOS.create_schedule``/``apply_schedules``); this command
operates the ones that exist.
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Callable, Mapping
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_dbos import DBOS, DBOSException
from django_dbos.api.schedules import MAX_BACKFILL
from django_dbos.engine import scheduler
from django_dbos.management.arguments import moment, non_empty, positive_int, whole_number
from django_dbos.models import ScheduleStatus, now_ms
from django_dbos.registry import registry

_FIELDS = (
    "schedule_name",
    "workflow_name",
    "schedule",
    "cron_timezone",
    "status",
    "queue_name",
    "automatic_backfill",
    "last_fired_at",
)


# -- fire times (shared with the admin's schedule pages) -----------------------------------------


# -- argument types ------------------------------------------------------------------------------


def schedule_status(value: str) -> str:
    """``ACTIVE`` or ``paused`` (any case)."""
    status = value.strip().upper()
    if status not in ScheduleStatus.values:
        raise argparse.ArgumentTypeError(
            f"unknown status {value!r} (one of {', '.join(ScheduleStatus.values)})"
        )
    return status


schedule_name = non_empty("a schedule name")


class Command(BaseCommand):
    help = (
        "List and operate managed cron schedules: list, show NAME, pause NAME..., resume NAME..., "
        "trigger NAME, backfill NAME --start T --end T, delete NAME.... Add --json for machine "
        "output."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--json", action="store_true", help="Print JSON instead of text.")
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

        listing = actions.add_parser(
            "list", parents=[common], help="Schedules by name, with their next fire time."
        )
        listing.add_argument("--status", type=schedule_status, help="ACTIVE or PAUSED.")
        listing.add_argument(
            "--workflow", action="append", dest="workflow_name", help="Workflow name (repeatable)."
        )
        listing.add_argument(
            "--prefix",
            action="append",
            dest="schedule_name_prefix",
            help="Schedule name prefix (repeatable).",
        )

        show = actions.add_parser(
            "show", parents=[common], help="One schedule and its next fire times."
        )
        show.add_argument("name", type=schedule_name, metavar="NAME")
        show.add_argument(
            "--next", type=positive_int, default=5, dest="count", help="Fire times shown (5)."
        )

        for name, what in (
            ("pause", "Stop schedules from firing (they keep their state)."),
            ("resume", "Let paused schedules fire again (missed times are not run)."),
            ("delete", "Delete schedules (workflows they started are kept)."),
        ):
            many = actions.add_parser(name, parents=[common], help=what)
            many.add_argument("names", type=schedule_name, nargs="+", metavar="NAME")

        trigger = actions.add_parser(
            "trigger", parents=[common], help="Enqueue the schedule's workflow now, once."
        )
        trigger.add_argument("name", type=schedule_name, metavar="NAME")

        backfill = actions.add_parser(
            "backfill",
            parents=[common],
            help="Enqueue the firings between --start and --end (both exclusive) that have "
            "not run yet.",
        )
        backfill.add_argument("name", type=schedule_name, metavar="NAME")
        times = "ISO 8601 (naive: Django's time zone), epoch ms, now, or an age such as 2d"
        backfill.add_argument("--start", type=moment, required=True, help=f"From: {times}.")
        backfill.add_argument("--end", type=moment, required=True, help=f"To: {times}.")
        backfill.add_argument(
            "--max",
            type=whole_number(1, MAX_BACKFILL),
            default=MAX_BACKFILL,
            dest="max_firings",
            help=f"Refuse ranges with more firings than this (at most and by default "
            f"{MAX_BACKFILL}, the API's limit per call: split larger ranges).",
        )
        backfill.add_argument(
            "--dry-run", action="store_true", help="Only list the times it would enqueue."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = options["json"]
        try:
            getattr(self, f"_{options['action']}")(options)
        except DBOSException as exc:
            raise CommandError(str(exc)) from exc

    # -- reading ---------------------------------------------------------------------------

    def _list(self, options: dict[str, Any]) -> None:
        schedules = [
            _plain(s)
            for s in DBOS.list_schedules(
                status=options["status"],
                workflow_name=options["workflow_name"],
                schedule_name_prefix=options["schedule_name_prefix"],
            )
        ]
        schedules.sort(key=lambda s: s["schedule_name"])
        now = timezone.now()
        for s in schedules:
            s["next_fire_at"] = _next(s, now)
        if self.as_json:
            return self._json([_json_row(s) for s in schedules])
        if not schedules:
            self.stdout.write("No schedules match.")
            return
        header = ["NAME", "WORKFLOW", "CRON", "TIMEZONE", "STATUS", "QUEUE", "NEXT", "LAST FIRED"]
        rows = [
            [
                s["schedule_name"],
                s["workflow_name"],
                s["schedule"],
                s["cron_timezone"] or "UTC",
                s["status"],
                s["queue_name"] or "-",
                _when(s["next_fire_at"]),
                _when(_from_iso(s["last_fired_at"])),
            ]
            for s in schedules
        ]
        self._table(header, rows, status_column=4)
        self.stdout.write(f"{len(rows)} schedule{'s' if len(rows) != 1 else ''}.")

    def _show(self, options: dict[str, Any]) -> None:
        s = self._get(options["name"])
        upcoming = []
        if s["status"] == ScheduleStatus.ACTIVE:
            upcoming = scheduler.fire_times(
                s["schedule"], s["cron_timezone"], timezone.now(), limit=options["count"]
            )
        if self.as_json:
            data = _json_row(s)
            data["next_fire_times"] = [t.isoformat() for t in upcoming]
            return self._json(data)
        fields = [
            ("Name", s["schedule_name"]),
            ("Workflow", s["workflow_name"]),
            ("Cron", s["schedule"]),
            ("Time zone", s["cron_timezone"] or "UTC"),
            ("Status", self._styled_status(s["status"])),
            ("Queue", s["queue_name"] or "(internal)"),
            ("Automatic backfill", "yes" if s["automatic_backfill"] else "no"),
            ("Context", repr(s.get("context"))),
            ("Last fired", _when(_from_iso(s["last_fired_at"]))),
        ]
        width = max(len(label) for label, _ in fields) + 1
        for label, value in fields:
            self.stdout.write(f"{label + ':':<{width}} {value}")
        times = [_when(t) for t in upcoming] or ["- (paused)"]
        self.stdout.write(f"{'Next fire times:':<{width}} {times[0]}")
        for each in times[1:]:
            self.stdout.write(f"{'':<{width}} {each}")

    # -- operating -------------------------------------------------------------------------

    def _pause(self, options: dict[str, Any]) -> None:
        self._set_status(options["names"], ScheduleStatus.PAUSED, DBOS.pause_schedule, "Paused")

    def _resume(self, options: dict[str, Any]) -> None:
        self._set_status(options["names"], ScheduleStatus.ACTIVE, DBOS.resume_schedule, "Resumed")

    def _set_status(
        self, names: list[str], status: str, operation: Callable[[str], Any], verb: str
    ) -> None:
        schedules = self._get_all(names)  # all or none: an unknown name changes nothing
        changed = [s["schedule_name"] for s in schedules if s["status"] != status]
        for name in changed:
            operation(name)
        if self.as_json:
            return self._json({verb.lower(): changed, "unchanged": _others(names, changed)})
        for name in dict.fromkeys(names):
            if name in changed:
                self.stdout.write(self.style.SUCCESS(f"{verb} {name}."))
            else:
                self.stdout.write(f"{name} was already {status.lower()}.")

    def _delete(self, options: dict[str, Any]) -> None:
        names = list(dict.fromkeys(options["names"]))
        self._get_all(names)
        for name in names:
            DBOS.delete_schedule(name)
        for name in names:
            if name in registry.schedules:
                self.stderr.write(
                    f"{name} is declared in code with @DBOS.scheduled: workers create it again "
                    "when they start. Remove the declaration, or pause it instead.",
                    self.style.WARNING,
                )
        if self.as_json:
            return self._json({"deleted": names})
        for name in names:
            self.stdout.write(self.style.SUCCESS(f"Deleted {name}."))

    def _trigger(self, options: dict[str, Any]) -> None:
        self._get(options["name"])
        handle = DBOS.trigger_schedule(options["name"])
        if self.as_json:
            return self._json({"schedule_name": options["name"], "workflow_id": handle.workflow_id})
        self.stdout.write(
            self.style.SUCCESS(f"Triggered {options['name']}: enqueued {handle.workflow_id}.")
        )

    def _backfill(self, options: dict[str, Any]) -> None:
        name, start, end = options["name"], options["start"], options["end"]
        if start >= end:
            raise CommandError(
                f"--start ({start.isoformat()}) must be before --end ({end.isoformat()})."
            )
        s = self._get(name)
        limit = options["max_firings"]
        times = scheduler.fire_times(
            s["schedule"], s["cron_timezone"], start, until=end, limit=limit + 1
        )
        if len(times) > limit:
            advice = (
                f"narrow the range or raise --max (up to {MAX_BACKFILL})"
                if limit < MAX_BACKFILL
                else "split it into shorter ranges"
            )
            raise CommandError(
                f"Backfilling {name} from {start.isoformat()} to {end.isoformat()} would enqueue "
                f"more than {limit} workflows; {advice}. Nothing was enqueued."
            )
        if options["dry_run"] or not times:
            if self.as_json:
                return self._json({"schedule_name": name, "times": [t.isoformat() for t in times]})
            if not times:
                self.stdout.write(f"{name} has no fire times in that range; nothing to enqueue.")
            for t in times:
                self.stdout.write(_when(t))
            if times:
                self.stdout.write(f"{len(times)} fire time{'s' if len(times) != 1 else ''}.")
            return
        before = now_ms()
        handles = DBOS.backfill_schedule(name, start, end)
        ids = [h.workflow_id for h in handles]
        # the backfill skips times that already ran; the rows it wrote are the ones created now
        new = {
            status.workflow_id
            for status in DBOS.list_workflows(
                workflow_ids=ids, start_time=before, load_input=False, load_output=False
            )
        } if ids else set()  # fmt: skip
        if self.as_json:
            return self._json(
                {
                    "schedule_name": name,
                    "enqueued": [i for i in ids if i in new],
                    "already_enqueued": [i for i in ids if i not in new],
                }
            )
        text = f"Backfilled {name}: enqueued {len(new)} workflow{'s' if len(new) != 1 else ''}"
        if len(new) < len(ids):
            text += f" ({len(ids) - len(new)} of the {len(ids)} fire times had already run)"
        self.stdout.write(self.style.SUCCESS(f"{text}."))

    # -- helpers ---------------------------------------------------------------------------

    def _get(self, name: str) -> dict[str, Any]:
        schedule = DBOS.get_schedule(name)
        if schedule is None:
            raise CommandError(f"No schedule named {name!r} exists.")
        return _plain(schedule)

    def _get_all(self, names: list[str]) -> list[dict[str, Any]]:
        found = {}
        for name in dict.fromkeys(names):
            schedule = DBOS.get_schedule(name)
            if schedule is not None:
                found[name] = _plain(schedule)
        missing = [name for name in dict.fromkeys(names) if name not in found]
        if missing:
            listed = ", ".join(repr(name) for name in missing)
            raise CommandError(
                f"No schedule named {listed} exists; nothing was changed."
                if len(missing) == 1
                else f"No schedules named {listed} exist; nothing was changed."
            )
        return list(found.values())

    def _json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, indent=2, default=repr, ensure_ascii=False))

    def _table(self, header: list[str], rows: list[list[str]], status_column: int) -> None:
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        self.stdout.write(
            "  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()
        )
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
            cells[status_column] = self._styled_status(cells[status_column])
            self.stdout.write("  ".join(cells).rstrip())

    def _styled_status(self, text: str) -> str:
        return self.style.WARNING(text) if text.strip() == ScheduleStatus.PAUSED else text


# -- formatting --------------------------------------------------------------------------------


def _plain(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """A schedule from the API (a ``WorkflowSchedule`` dict) as a dict the command may annotate."""
    return dict(schedule)


def _next(schedule: Mapping[str, Any], now: datetime.datetime) -> datetime.datetime | None:
    if schedule["status"] != ScheduleStatus.ACTIVE:
        return None
    return scheduler.next_fire_time(schedule["schedule"], schedule["cron_timezone"], now)


def _from_iso(value: str | None) -> datetime.datetime | None:
    """``last_fired_at`` as the API gives it (ISO 8601 UTC, as in DBOS)."""
    return datetime.datetime.fromisoformat(value) if value else None


def _when(moment: datetime.datetime | None) -> str:
    if moment is None:
        return "-"
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


def _others(names: list[str], changed: list[str]) -> list[str]:
    return [name for name in dict.fromkeys(names) if name not in changed]


def _json_row(schedule: Mapping[str, Any]) -> dict[str, Any]:
    data = {field: schedule.get(field) for field in _FIELDS}
    data["context"] = schedule.get("context")
    next_fire = schedule.get("next_fire_at")
    data["next_fire_at"] = next_fire.isoformat() if next_fire else None
    return data

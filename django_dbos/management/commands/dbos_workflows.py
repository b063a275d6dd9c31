"""``manage.py dbos_workflows``: list, inspect and operate workflows from a shell.

A thin layer over the public API (``DBOS.list_workflows``, ``get_workflow_status``,
``list_workflow_steps``, ``cancel_workflow``, ``resume_workflow``, ``fork_workflow``,
``delete_workflow``): it parses and checks arguments, calls the API and prints aligned tables,
or JSON with ``--json``. Mistakes (a bad argument, an unknown ID) are ``CommandError``s.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_dbos import DBOS, DBOSException, SetWorkflowID, StepInfo, WorkflowStatus
from django_dbos.api.introspection import epoch_ms
from django_dbos.management.arguments import non_empty, non_negative_int
from django_dbos.models import TERMINAL_STATUSES, WorkflowStatusString

DEFAULT_LIMIT = 50
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_CELL = 60  # widest table cell for free text (names, results)


# -- argument types (argparse ``type=``: a bad value is a usage error naming the option) --------


def status_list(value: str) -> list[str]:
    """``ERROR`` or ``error,cancelled``."""
    statuses = [part.strip().upper() for part in value.split(",") if part.strip()]
    unknown = [status for status in statuses if status not in WorkflowStatusString.values]
    if unknown or not statuses:
        raise argparse.ArgumentTypeError(
            f"unknown status {value!r} (one or more of {', '.join(WorkflowStatusString.values)}, "
            "comma-separated)"
        )
    return statuses


def point_in_time(value: str) -> int:
    """An ISO 8601 date or time (naive: Django's time zone), epoch milliseconds, or an age:
    ``30s``, ``15m``, ``2h``, ``3d``, ``1w`` ago."""
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative:
        seconds = float(relative.group(1)) * _UNITS[relative.group(2)]
        return int((timezone.now().timestamp() - seconds) * 1000)
    try:
        moment = epoch_ms("dbos_workflows", "time", int(text) if text.isdigit() else text)
    except DBOSException:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a time: give an ISO 8601 date or time (2025-05-01, "
            "2025-05-01T12:00:00+02:00), epoch milliseconds, or an age such as 15m, 2h, 3d"
        ) from None
    assert moment is not None
    return moment


def attribute(value: str) -> tuple[str, Any]:
    """``key=value``; the value is read as JSON when it is a JSON scalar (``5``, ``true``,
    ``null``, ``"5"``), else taken as a plain string."""
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{value!r} is not key=value")
    try:
        parsed = json.loads(raw)
    except ValueError:
        return key, raw
    if parsed is not None and not isinstance(parsed, str | int | float | bool):
        raise argparse.ArgumentTypeError(
            f"{value!r}: an attribute value is a string, number, true, false or null"
        )
    return key, parsed


def step_number(value: str) -> int:
    number = non_negative_int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("steps are numbered from 1")
    return number


workflow_id = non_empty("a workflow ID")


# -- the command -------------------------------------------------------------------------------


class Command(BaseCommand):
    help = (
        "List, inspect and operate durable workflows: list (with filters), show ID, steps ID, "
        "cancel ID..., resume ID..., fork ID --step N, delete ID.... Add --json for machine "
        "output."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--json", action="store_true", help="Print JSON instead of text.")
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

        listing = actions.add_parser(
            "list", parents=[common], help="Workflows matching the filters, newest first."
        )
        self._listing_arguments(listing)

        for name, what in (("show", "One workflow's status, input and outcome."),
                           ("steps", "One workflow's recorded steps.")):  # fmt: skip
            one = actions.add_parser(name, parents=[common], help=what)
            one.add_argument("workflow_id", type=workflow_id, metavar="ID")

        for name, what in (
            ("cancel", "Cancel workflows (and their descendants)."),
            ("resume", "Resume cancelled or failed workflows from their last checkpoint."),
            ("delete", "Delete workflows with all their rows."),
        ):
            many = actions.add_parser(name, parents=[common], help=what)
            many.add_argument("workflow_ids", type=workflow_id, nargs="+", metavar="ID")
        actions.choices["delete"].add_argument(
            "--children", action="store_true", help="Delete their descendants too."
        )

        fork = actions.add_parser(
            "fork",
            parents=[common],
            help="Start a new workflow with the same inputs, reusing the steps before --step.",
        )
        fork.add_argument("workflow_id", type=workflow_id, metavar="ID")
        fork.add_argument("--step", type=step_number, required=True, help="First step to rerun.")
        fork.add_argument("--id", type=workflow_id, dest="new_id", help="The new workflow's ID.")
        fork.add_argument("--version", dest="application_version", help="Its app version.")

        for name in ("resume", "fork"):
            actions.choices[name].add_argument(
                "--no-wait",
                action="store_true",
                help="Return at once. The workflow runs in this process, so it stops when the "
                "command exits; a dbos_worker adopts it after EXECUTOR_TIMEOUT.",
            )

    def _listing_arguments(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("--status", type=status_list, action="extend", help="e.g. ERROR or ERROR,CANCELLED")
        add("--name", action="append", help="Workflow name (repeatable).")
        add("--queue", action="append", dest="queue_name", help="Queue name (repeatable).")
        add("--since", type=point_in_time, help="Created at or after: ISO time, epoch ms or 2h.")
        add("--until", type=point_in_time, help="Created at or before (same forms).")
        add("--version", action="append", dest="app_version", help="Application version.")
        add("--prefix", action="append", dest="workflow_id_prefix", help="Workflow ID prefix.")
        add("--executor", action="append", dest="executor_id", help="Executor ID.")
        add("--parent", action="append", dest="parent_workflow_id", help="Parent workflow ID.")
        add("--user", action="append", help="Authenticated user.")
        add(
            "--attr",
            type=attribute,
            action="append",
            dest="attributes",
            metavar="KEY=VALUE",
            help="Attribute that must match (repeatable; VALUE read as JSON if it is one).",
        )
        add("--queued", action="store_true", help="Only unfinished queued workflows.")
        add("--limit", type=non_negative_int, default=DEFAULT_LIMIT, help="Default 50.")
        add("--offset", type=non_negative_int, default=0)
        add("--asc", action="store_true", help="Oldest first.")
        add("--values", action="store_true", help="Also load inputs, outputs and errors.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        self.as_json = options["json"]
        try:
            getattr(self, f"_{action}")(options)
        except DBOSException as exc:
            raise CommandError(str(exc)) from exc

    # -- reading ---------------------------------------------------------------------------

    def _list(self, options: dict[str, Any]) -> None:
        attributes = dict(options["attributes"]) if options["attributes"] else None
        filters = {
            key: options[key]
            for key in (
                "status", "name", "queue_name", "app_version", "workflow_id_prefix",
                "executor_id", "parent_workflow_id", "user",
            )
            if options[key]
        }  # fmt: skip
        listing = DBOS.list_queued_workflows if options["queued"] else DBOS.list_workflows
        statuses = listing(
            **filters,
            start_time=options["since"],
            end_time=options["until"],
            attributes=attributes,
            limit=options["limit"],
            offset=options["offset"],
            sort_desc=not options["asc"],
            load_input=options["values"],
            load_output=options["values"],
        )
        if self.as_json:
            return self._json([_status_json(s, options["values"]) for s in statuses])
        if not statuses:
            self.stdout.write("No workflows match.")
            return
        header = ["ID", "NAME", "STATUS", "QUEUE", "CREATED", "DURATION"]
        rows = [
            [
                s.workflow_id,
                _clip(s.name),
                s.status,
                s.queue_name or "-",
                _when(s.created_at),
                _duration(_duration_ms(s)),
            ]
            for s in statuses
        ]
        if options["values"]:
            header.append("OUTPUT / ERROR")
            rows = [[*r, _clip(_outcome(s))] for r, s in zip(rows, statuses, strict=True)]
        self._table(header, rows, status_column=2)
        shown = len(statuses)
        if shown == options["limit"]:
            self.stdout.write(
                f"{shown} shown; more may match: --offset {options['offset'] + shown}."
            )
        else:
            self.stdout.write(f"{shown} workflow{'s' if shown != 1 else ''}.")

    def _show(self, options: dict[str, Any]) -> None:
        status = DBOS.get_workflow_status(options["workflow_id"])
        if status is None:
            raise CommandError(f"No workflow with ID {options['workflow_id']!r} exists.")
        if self.as_json:
            return self._json(_status_json(status, True))
        fields = [
            ("Workflow ID", status.workflow_id),
            ("Name", status.name),
            ("Status", status.status),
            ("Queue", status.queue_name),
            ("Executor", status.executor_id),
            ("App version", status.app_version),
            ("Created", _when(status.created_at)),
            ("Dequeued", _when(status.dequeued_at)),
            ("Completed", _when(status.completed_at)),
            ("Duration", _duration(_duration_ms(status))),
            ("Recovery attempts", status.recovery_attempts),
            ("Parent", status.parent_workflow_id),
            ("Forked from", status.forked_from),
            ("User", status.authenticated_user),
            ("Attributes", json.dumps(status.attributes) if status.attributes else None),
            ("Input", _input_text(status.input)),
            ("Output", repr(status.output) if status.status == "SUCCESS" else None),
            ("Error", _error_text(status.error)),
        ]
        width = max(len(label) for label, _ in fields) + 1
        for label, value in fields:
            if value is not None and value != "-":
                self.stdout.write(f"{label + ':':<{width}} {value}")

    def _steps(self, options: dict[str, Any]) -> None:
        steps = DBOS.list_workflow_steps(options["workflow_id"])
        if self.as_json:
            return self._json([_step_json(step) for step in steps])
        if not steps:
            self.stdout.write("No steps recorded yet.")
            return
        rows = [
            [
                str(step.function_id),
                _clip(step.function_name),
                _when(step.started_at_epoch_ms),
                _duration(_step_duration_ms(step)),
                step.child_workflow_id or "-",
                _clip(_step_outcome(step)),
            ]
            for step in steps
        ]
        self._table(["STEP", "NAME", "STARTED", "DURATION", "CHILD", "OUTPUT / ERROR"], rows)

    # -- operating -------------------------------------------------------------------------

    def _cancel(self, options: dict[str, Any]) -> None:
        ids = list(dict.fromkeys(options["workflow_ids"]))
        DBOS.cancel_workflows(ids)  # all or none: an unknown ID cancels nothing
        self._report("Cancelled", ids)

    def _resume(self, options: dict[str, Any]) -> None:
        ids = list(dict.fromkeys(options["workflow_ids"]))
        handles = DBOS.resume_workflows(ids)
        self._finish(handles, options["no_wait"])
        self._report("Resumed", ids)

    def _fork(self, options: dict[str, Any]) -> None:
        extra = {}
        if options["application_version"]:
            extra["application_version"] = options["application_version"]
        with SetWorkflowID(options["new_id"]) if options["new_id"] else contextlib.nullcontext():
            handle = DBOS.fork_workflow(options["workflow_id"], options["step"], **extra)
        self._finish([handle], options["no_wait"])
        self._report("Forked", [handle.workflow_id])

    def _delete(self, options: dict[str, Any]) -> None:
        ids = list(dict.fromkeys(options["workflow_ids"]))
        DBOS.delete_workflows(ids, delete_children=options["children"])
        if self.as_json:
            return self._json({"deleted": ids, "children": options["children"]})
        suffix = " and its descendants" if options["children"] else ""
        for each in ids:
            self.stdout.write(self.style.SUCCESS(f"Deleted {each}{suffix}."))

    def _finish(self, handles: Sequence[Any], no_wait: bool) -> None:
        """Resumed and forked workflows run in this process: wait for them (their outcome,
        good or bad, is shown by ``_report``; it is not the command's failure)."""
        if no_wait:
            return
        for handle in handles:
            with contextlib.suppress(Exception):  # reported through the workflow's status
                handle.get_result()

    def _report(self, verb: str, ids: list[str]) -> None:
        """Each workflow's status after the operation (one query)."""
        statuses = {
            s.workflow_id: s
            for s in DBOS.list_workflows(workflow_ids=ids, load_input=False, load_output=False)
        }
        if self.as_json:
            return self._json([_status_json(statuses[each], False) for each in ids])
        for each in ids:
            status = statuses[each]
            origin = f" from {status.forked_from}" if verb == "Forked" else ""
            self.stdout.write(f"{verb} {each}{origin}: {self._styled_status(status.status)}.")

    # -- output ----------------------------------------------------------------------------

    def _json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, indent=2, default=_jsonable, ensure_ascii=False))

    def _table(self, header: list[str], rows: list[list[str]], status_column: int = -1) -> None:
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

        def line(cells: list[str], style: Callable[[str], str] | None = None) -> str:
            padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
            if style is not None and status_column >= 0:
                padded[status_column] = style(padded[status_column])
            return "  ".join(padded).rstrip()

        self.stdout.write(line(header))
        for row in rows:
            self.stdout.write(line(row, self._styled_status))

    def _styled_status(self, text: str) -> str:
        status = text.strip()
        if status == "SUCCESS":
            return self.style.SUCCESS(text)
        if status in TERMINAL_STATUSES:
            return self.style.ERROR(text)
        return self.style.WARNING(text) if status == "PENDING" else text


# -- formatting --------------------------------------------------------------------------------


def _when(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(epoch_ms / 1000, tz=datetime.UTC)
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def _duration_ms(status: WorkflowStatus) -> int | None:
    if status.completed_at is None or status.created_at is None:
        return None
    return status.completed_at - (status.dequeued_at or status.created_at)


def _step_duration_ms(step: StepInfo) -> int | None:
    if step.started_at_epoch_ms is None or step.completed_at_epoch_ms is None:
        return None
    return step.completed_at_epoch_ms - step.started_at_epoch_ms


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


def _error_text(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


def _input_text(value: dict[str, Any] | None) -> str | None:
    if value is None:
        return None
    parts = [repr(arg) for arg in value.get("args", ())]
    parts += [f"{key}={item!r}" for key, item in value.get("kwargs", {}).items()]
    return f"({', '.join(parts)})"


def _outcome(status: WorkflowStatus) -> str:
    if status.error is not None:
        return _error_text(status.error) or ""
    return repr(status.output) if status.status == "SUCCESS" else "-"


def _step_outcome(step: StepInfo) -> str:
    if step.error is not None:
        return _error_text(step.error) or ""
    return repr(step.output)


def _status_json(status: WorkflowStatus, values: bool) -> dict[str, Any]:
    data = {
        field.name: getattr(status, field.name)
        for field in dataclasses.fields(status)
        if values or field.name not in {"input", "output", "error"}
    }
    data["duration_ms"] = _duration_ms(status)
    return data


def _step_json(step: StepInfo) -> dict[str, Any]:
    data = {field.name: getattr(step, field.name) for field in dataclasses.fields(step)}
    data["duration_ms"] = _step_duration_ms(step)
    return data


def _jsonable(value: Any) -> Any:
    """What ``json.dumps`` cannot write itself: errors as type and message, dates as ISO,
    decimals as strings, dataclasses as dicts, anything else by its ``repr``."""
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": str(value)}
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return repr(value)

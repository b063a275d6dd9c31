"""Name -> workflow / step / queue / schedule definitions for this process.

Registration happens at import time (the decorators), which in a Django project means while
``AppConfig.ready()`` autodiscovers each app's ``workflows`` module. Two different functions
under one name are not raised at import (that would break ``import``); they are recorded and
reported by the ``django_dbos.E004`` system check, which stops ``dbos_worker`` from starting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django_dbos.errors import DBOSWorkflowFunctionNotFoundError

if TYPE_CHECKING:
    from django_dbos.queues import Queue


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowDefinition:
    name: str
    func: Callable[..., Any]
    is_async: bool
    max_recovery_attempts: int | None

    @property
    def origin(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleDefinition:
    """A schedule declared in code (``@DBOS.scheduled``); workers upsert it into
    ``dbos_schedules`` when they start (engine/scheduler.py)."""

    schedule_name: str
    workflow_name: str
    schedule: str
    context: Any = None
    cron_timezone: str | None = None
    queue_name: str | None = None
    automatic_backfill: bool = False

    def describe(self) -> str:
        return f"{self.workflow_name} at {self.schedule!r}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DuplicateName:
    kind: str
    name: str
    first: str
    second: str


def default_name(func: Callable[..., Any]) -> str:
    """Module-qualified, so two apps' ``process_order`` functions never collide."""
    return f"{func.__module__}.{func.__qualname__}"


class Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.workflows: dict[str, WorkflowDefinition] = {}
        self.steps: dict[str, str] = {}
        self.queues: dict[str, Queue] = {}
        self.schedules: dict[str, ScheduleDefinition] = {}
        self.duplicates: list[DuplicateName] = []
        self.import_errors: dict[str, BaseException] = {}
        self._version: str | None = None

    def add_workflow(self, definition: WorkflowDefinition) -> None:
        with self._lock:
            existing = self.workflows.get(definition.name)
            if existing is not None and existing.origin != definition.origin:
                self.duplicates.append(
                    DuplicateName(
                        kind="workflow",
                        name=definition.name,
                        first=existing.origin,
                        second=definition.origin,
                    )
                )
                return
            # the same function imported again (module reload) replaces its old self
            self.workflows[definition.name] = definition
            self._version = None

    def add_step(self, name: str, func: Callable[..., Any]) -> None:
        origin = default_name(func)
        with self._lock:
            existing = self.steps.get(name)
            if existing is not None and existing != origin:
                self.duplicates.append(
                    DuplicateName(kind="step", name=name, first=existing, second=origin)
                )
                return
            self.steps[name] = origin

    def add_queue(self, queue: Queue) -> None:
        """The same name with other settings is recorded for the E004 check (the first stays)."""
        with self._lock:
            existing = self.queues.get(queue.name)
            if existing is not None and existing.settings != queue.settings:
                self.duplicates.append(
                    DuplicateName(
                        kind="queue",
                        name=queue.name,
                        first=existing.settings.describe(),
                        second=queue.settings.describe(),
                    )
                )
                return
            self.queues[queue.name] = queue

    def add_schedule(self, schedule: ScheduleDefinition) -> None:
        """Another declaration under the same name is recorded for the E004 check."""
        with self._lock:
            existing = self.schedules.get(schedule.schedule_name)
            if existing is not None and existing != schedule:
                self.duplicates.append(
                    DuplicateName(
                        kind="schedule",
                        name=schedule.schedule_name,
                        first=existing.describe(),
                        second=schedule.describe(),
                    )
                )
                return
            self.schedules[schedule.schedule_name] = schedule

    def get_workflow(self, name: str, workflow_id: str = "") -> WorkflowDefinition:
        try:
            return self.workflows[name]
        except KeyError:
            raise DBOSWorkflowFunctionNotFoundError(name, workflow_id) from None

    def code_version(self) -> str:
        """A hash of the registered workflows' source: changes whenever their code does."""
        if self._version is None:
            digest = hashlib.sha256()
            for name in sorted(self.workflows):
                func = inspect.unwrap(self.workflows[name].func)
                digest.update(name.encode())
                try:
                    digest.update(inspect.getsource(func).encode())
                except (OSError, TypeError):
                    digest.update(func.__code__.co_code)
            self._version = digest.hexdigest()[:32]
        return self._version


registry = Registry()

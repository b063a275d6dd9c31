"""``django_dbos.tasks`` as an installed app: registers the task workflow and declares the
tasks' queues in every process at start-up (workers included), so they agree on the
application version and serve the queues the web processes enqueue to."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class DBOSTasksConfig(AppConfig):
    name = "django_dbos.tasks"
    label = "django_dbos_tasks"
    verbose_name = "Durable tasks"

    def ready(self) -> None:
        from django_dbos.tasks import workflows  # noqa: F401  (registers run_task)

        checks.register(check_task_backends)
        # Building each backend declares its queues; what fails is reported by the check.
        list(configured_backends())


def configured_backends() -> Iterator[tuple[str, Any]]:
    """``(alias, backend or the ImproperlyConfigured it raised)`` for each ``settings.TASKS``
    entry whose backend is a ``DBOSTaskBackend`` (or a subclass). Another backend whose path
    does not import is left for Django to report when it is used."""
    for alias, params in (getattr(settings, "TASKS", None) or {}).items():
        path = params.get("BACKEND") if isinstance(params, dict) else None
        if not isinstance(path, str):
            continue
        ours = path.startswith("django_dbos.")
        try:
            cls = import_string(path)
            from django_dbos.tasks.backend import DBOSTaskBackend

            if isinstance(cls, type) and issubclass(cls, DBOSTaskBackend):
                yield alias, cls(alias=alias, params=params)
        except (ImproperlyConfigured, ImportError) as exc:
            if ours:
                yield alias, exc


def check_task_backends(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``django_dbos_tasks.E001``: a DBOS task backend cannot be built from its settings;
    ``E002``: a Django queue is mapped to a ``Queue`` name that nothing declares."""
    from django_dbos.registry import registry

    messages: list[checks.CheckMessage] = []
    for alias, backend in configured_backends():
        if isinstance(backend, Exception):
            messages.append(
                checks.Error(
                    f"TASKS[{alias!r}]: {backend}",
                    hint="Fix settings.TASKS; see docs/tasks.md.",
                    obj=alias,
                    id="django_dbos_tasks.E001",
                )
            )
            continue
        for route in backend.routes.values():
            if not route.declared and route.dbos_queue not in registry.queues:
                messages.append(
                    checks.Error(
                        f"TASKS[{alias!r}] sends queue {route.queue_name!r} to DBOS queue "
                        f"{route.dbos_queue!r}, which no Queue(...) declares.",
                        hint=f"Declare Queue({route.dbos_queue!r}, priority_enabled=True) in a "
                        "workflows module, or give OPTIONS['queues'] a dict of Queue arguments.",
                        obj=alias,
                        id="django_dbos_tasks.E002",
                    )
                )
    return messages

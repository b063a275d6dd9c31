"""The Tasks API this process has: Django's own ``django.tasks`` (Django 6+) or the
``django-tasks`` backport (``django_tasks``, for Django 5.2).

The two have the same classes under the same names, except ``InvalidTask`` (the backport calls
it ``InvalidTaskError``). Everything in ``django_dbos.tasks`` imports them from here, so the
backend works unchanged on both. When both are installed, Django's own wins: it is the one
``@django.tasks.task`` and ``settings.TASKS`` use on Django 6.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:  # django-stubs describe django.tasks; the backport has the same shape
    from django.tasks import DEFAULT_TASK_QUEUE_NAME, task, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import (
        DEFAULT_TASK_PRIORITY,
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        Task,
        TaskContext,
        TaskError,
        TaskResult,
        TaskResultStatus,
    )
    from django.tasks.exceptions import (
        InvalidTask,
        TaskResultDoesNotExist,
        TaskResultMismatch,
    )
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    API_NAME = "django.tasks"
else:
    import importlib

    # name -> (submodule of the package, name there); the backport's InvalidTask is
    # InvalidTaskError, and its normalize_json lives in django_tasks.utils
    _NAMES = {
        "DEFAULT_TASK_QUEUE_NAME": ("", "DEFAULT_TASK_QUEUE_NAME"),
        "task": ("", "task"),
        "task_backends": ("", "task_backends"),
        "BaseTaskBackend": (".backends.base", "BaseTaskBackend"),
        "DEFAULT_TASK_PRIORITY": (".base", "DEFAULT_TASK_PRIORITY"),
        "TASK_MAX_PRIORITY": (".base", "TASK_MAX_PRIORITY"),
        "TASK_MIN_PRIORITY": (".base", "TASK_MIN_PRIORITY"),
        "Task": (".base", "Task"),
        "TaskContext": (".base", "TaskContext"),
        "TaskError": (".base", "TaskError"),
        "TaskResult": (".base", "TaskResult"),
        "TaskResultStatus": (".base", "TaskResultStatus"),
        "InvalidTask": (".exceptions", "InvalidTask"),
        "TaskResultDoesNotExist": (".exceptions", "TaskResultDoesNotExist"),
        "TaskResultMismatch": (".exceptions", "TaskResultMismatch"),
        "task_enqueued": (".signals", "task_enqueued"),
        "task_finished": (".signals", "task_finished"),
        "task_started": (".signals", "task_started"),
    }
    _BACKPORT_NAMES = {"InvalidTask": (".exceptions", "InvalidTaskError")}

    def _load(package: str) -> dict[str, object]:
        overrides = _BACKPORT_NAMES if package == "django_tasks" else {}
        found = {}
        for name, (module, attribute) in {**_NAMES, **overrides}.items():
            found[name] = getattr(importlib.import_module(package + module), attribute)
        json_module = "django.utils.json" if package == "django.tasks" else "django_tasks.utils"
        found["normalize_json"] = importlib.import_module(json_module).normalize_json
        found["API_NAME"] = package
        return found

    for _package in ("django.tasks", "django_tasks"):
        try:
            globals().update(_load(_package))
            break
        except ImportError:
            continue
    else:
        raise ImproperlyConfigured(
            "django_dbos.tasks needs Django's Tasks framework: Django 6 has it built in "
            "(django.tasks); on Django 5.2 install the backport with "
            "`pip install django-dbos-workflows[tasks]` (or `pip install django-tasks`)."
        )

__all__ = [
    "API_NAME",
    "DEFAULT_TASK_PRIORITY",
    "DEFAULT_TASK_QUEUE_NAME",
    "TASK_MAX_PRIORITY",
    "TASK_MIN_PRIORITY",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultMismatch",
    "TaskResultStatus",
    "normalize_json",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]

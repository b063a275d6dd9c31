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
    try:
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
    except ImportError:
        try:
            from django_tasks import DEFAULT_TASK_QUEUE_NAME, task, task_backends
            from django_tasks.backends.base import BaseTaskBackend
            from django_tasks.base import (
                DEFAULT_TASK_PRIORITY,
                TASK_MAX_PRIORITY,
                TASK_MIN_PRIORITY,
                Task,
                TaskContext,
                TaskError,
                TaskResult,
                TaskResultStatus,
            )
            from django_tasks.exceptions import InvalidTaskError as InvalidTask
            from django_tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch
            from django_tasks.signals import task_enqueued, task_finished, task_started
            from django_tasks.utils import normalize_json

            API_NAME = "django_tasks"
        except ImportError as exc:
            raise ImproperlyConfigured(
                "django_dbos.tasks needs Django's Tasks framework: Django 6 has it built in "
                "(django.tasks); on Django 5.2 install the backport with "
                "`pip install django-dbos-workflows[tasks]` (or `pip install django-tasks`)."
            ) from exc

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

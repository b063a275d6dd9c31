"""A backend for Django's Tasks framework (``django.tasks`` on Django 6, the ``django-tasks``
backport on Django 5.2) that runs ``@task`` functions as durable workflows::

    INSTALLED_APPS = [..., "django_dbos", "django_dbos.tasks"]
    TASKS = {"default": {"BACKEND": "django_dbos.tasks.DBOSTaskBackend"}}

See docs/tasks.md. ``DBOSTaskBackend`` loads lazily, so listing this app never imports the
Tasks framework before Django is set up (nor fails where it is missing: a check says so).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_dbos.tasks.backend import DBOSTaskBackend


def __getattr__(name: str) -> Any:
    if name == "DBOSTaskBackend":
        from django_dbos.tasks.backend import DBOSTaskBackend

        return DBOSTaskBackend
    raise AttributeError(f"module 'django_dbos.tasks' has no attribute {name!r}")


__all__ = ["DBOSTaskBackend"]

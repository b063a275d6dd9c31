"""System checks (``django_dbos.E0xx`` errors, ``W0xx`` warnings); listed in docs/settings.md."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import connections

from django_dbos import conf
from django_dbos.registry import registry


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = [
        Error(problem, hint="Fix settings.DBOS; see docs/settings.md.", id="django_dbos.E001")
        for problem in conf.problems()
    ]
    settings = conf.dbos_settings()
    if settings.DATABASE not in connections.settings:
        messages.append(
            Error(
                f"settings.DBOS['DATABASE'] names database alias {settings.DATABASE!r}, which "
                "is not in settings.DATABASES.",
                hint="Use one of: " + ", ".join(sorted(connections.settings)),
                id="django_dbos.E002",
            )
        )
    from django_dbos.serialization import check_serializer_path

    problem = check_serializer_path(settings.SERIALIZER)
    if problem:
        messages.append(
            Error(
                problem,
                hint="Set settings.DBOS['SERIALIZER'] to an importable serializer class, e.g. "
                "'django_dbos.serialization.JSONSerializer'.",
                id="django_dbos.E005",
            )
        )
    return messages


@register()
def check_workflow_modules(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for module, exc in registry.import_errors.items():
        messages.append(
            Error(
                f"Workflow module {module} failed to import: {exc!r}",
                hint=getattr(exc, "__dbos_traceback__", None)
                or "Fix the import error; its workflows are not registered.",
                obj=module,
                id="django_dbos.E003",
            )
        )
    for duplicate in registry.duplicates:
        hint = f"Give one of them another name with @DBOS.{duplicate.kind}(name=...)."
        if duplicate.kind == "queue":
            hint = "Declare each queue once (import that Queue object), or use another name."
        if duplicate.kind == "schedule":
            hint = "Give one of them another name with @DBOS.scheduled(..., name=...)."
        messages.append(
            Error(
                f"Two {duplicate.kind}s are registered under the name {duplicate.name!r}: "
                f"{duplicate.first} and {duplicate.second}.",
                hint=hint,
                obj=duplicate.second,
                id="django_dbos.E004",
            )
        )
    return messages


@register(Tags.database)
def check_sqlite_mode(app_configs: Any = None, databases: Any = None, **kwargs: Any):
    """SQLite needs WAL (readers beside the writer) and IMMEDIATE transactions (no deadlocks)."""
    alias = conf.dbos_settings().DATABASE
    if not databases or alias not in databases:
        return []  # like Django's own database checks: only when a command names the database
    if alias not in connections.settings:
        return []
    connection = connections[alias]
    if connection.vendor != "sqlite":
        return []
    messages: list[CheckMessage] = []
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        mode = str(cursor.fetchone()[0]).lower()
    if mode != "wal" and connection.settings_dict["NAME"] != ":memory:":
        messages.append(
            Warning(
                f"The SQLite database {alias!r} is in {mode!r} journal mode, not WAL: workers "
                "and web requests will block each other.",
                hint='Add "init_command": "PRAGMA journal_mode=WAL;" to its OPTIONS.',
                id="django_dbos.W001",
            )
        )
    options = connection.settings_dict.get("OPTIONS", {})
    if str(options.get("transaction_mode", "")).upper() != "IMMEDIATE":
        messages.append(
            Warning(
                f"The SQLite database {alias!r} does not use IMMEDIATE transactions: two "
                "concurrent transactions can fail with 'database is locked'.",
                hint='Add "transaction_mode": "IMMEDIATE" to its OPTIONS.',
                id="django_dbos.W002",
            )
        )
    return messages

"""Setting Django up for a ``DBOSClient``: in a process with no Django project, configure it
from a database URL (that database as ``default``, ``django_dbos`` as the only app); in a Django
process, check that the client is pointed at the project's system database.

The engine serves one system database per process through one alias, so a client cannot point
it elsewhere: a URL naming another database is refused with a message saying what to do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django_dbos.errors import DBOSConfigurationError

# What testproject/settings.py uses (and the W002 check asks for): readers beside one writer,
# the write lock taken up front, and a writer waited out instead of failing at once.
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
}
_configured_url: str | None = None  # set once a client has configured Django in this process


def set_up_django(
    url: str | None, using: str | None, dbos: Mapping[str, Any] | None
) -> tuple[str, bool]:
    """The system database's alias for a client, and whether a client configured Django in this
    process (it then owns the connections and closes them on ``destroy()``). Configures Django
    when it is not (``database_url`` required), sets it up when only ``DJANGO_SETTINGS_MODULE``
    is set, and otherwise checks that ``url`` / ``using`` name the project's system database."""
    import django
    from django.apps import apps
    from django.conf import settings

    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        if url is None:
            raise DBOSConfigurationError(
                "DBOSClient() outside a Django project needs database_url= (e.g. "
                "'postgres://user:password@host:5432/name' or 'sqlite:////abs/path.sqlite3'); "
                "inside a project, set DJANGO_SETTINGS_MODULE."
            )
        _configure(url, dbos)
        return "default", True
    if not apps.ready and not apps.loading:
        # a script that set DJANGO_SETTINGS_MODULE without django.setup(); never while the apps
        # are loading (a client built at import time in a workflows module)
        django.setup()
    from django.db import connections

    from django_dbos.conf import dbos_settings

    system = dbos_settings().DATABASE
    if dbos is not None:
        raise DBOSConfigurationError(
            "DBOSClient(settings=...) only applies to the client that configures Django in a "
            "process without a project; Django is configured here already (in a project, put "
            "the options in settings.DBOS)."
        )
    if url is not None:
        if system not in settings.DATABASES or not _same_database(
            _database_config(url), connections[system].settings_dict
        ):
            where = (
                f"A DBOSClient in this process already uses {_redacted(_configured_url)}"
                if _configured_url
                else "Django is already set up in this process with its own system database "
                f"(settings.DBOS['DATABASE'] = {system!r})"
            )
            raise DBOSConfigurationError(
                f"{where}, not {_redacted(url)}. The engine serves one system database per "
                f"process: use DBOSClient(using={system!r}) for that one, and another process "
                "for another database."
            )
        return system, _configured_url is not None
    alias = system if using is None else using
    if alias != system:
        raise DBOSConfigurationError(
            f"DBOSClient(using={alias!r}): the system tables are in {system!r} "
            "(settings.DBOS['DATABASE']); a client must use that alias."
        )
    if alias not in settings.DATABASES:
        raise DBOSConfigurationError(f"settings.DATABASES has no {alias!r} database.")
    return alias, _configured_url is not None


def _configure(url: str, dbos: Mapping[str, Any] | None) -> None:
    """Configure Django for a process without a project: the URL's database as ``default``,
    ``django_dbos`` as the only app, ``dbos`` as ``settings.DBOS`` (checked here, since no
    system checks run in such a process)."""
    global _configured_url
    import django
    from django.conf import settings

    if dbos is not None and not isinstance(dbos, Mapping):
        raise DBOSConfigurationError(f"settings must be a dict (settings.DBOS), not {dbos!r}.")
    database = _database_config(url)
    settings.configure(
        DATABASES={"default": database},
        INSTALLED_APPS=["django_dbos"],
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        DBOS=dict(dbos or {}),
    )
    django.setup()
    _configured_url = url
    from django_dbos.conf import problems

    found = problems()
    if found:
        raise DBOSConfigurationError(" ".join(found))


def _database_config(url: str) -> dict[str, Any]:
    """A ``DATABASES`` entry for ``url`` (django-environ's parser), with SQLite's options."""
    import environ

    if not isinstance(url, str) or "://" not in url:
        raise DBOSConfigurationError(
            f"database_url must be a URL such as 'postgres://user:password@host:5432/name' or "
            f"'sqlite:////abs/path.sqlite3', not {url!r}."
        )
    try:
        config: dict[str, Any] = dict(environ.Env.db_url_config(url))
    except Exception as exc:
        raise DBOSConfigurationError(f"{_redacted(url)} is not a database URL: {exc}") from exc
    engine = config.get("ENGINE")
    if engine == "django.db.backends.sqlite3":
        if not config.get("NAME") or config["NAME"] == ":memory:":
            raise DBOSConfigurationError(
                "A client's SQLite database must be the workers' file, e.g. "
                "'sqlite:////abs/path/db.sqlite3' (an in-memory database holds no workflows)."
            )
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
    elif engine == "django.db.backends.postgresql":
        config["CONN_HEALTH_CHECKS"] = True
    else:
        raise DBOSConfigurationError(
            f"{_redacted(url)}: django_dbos runs on PostgreSQL ('postgres://...') and SQLite "
            "('sqlite:///...') only."
        )
    return config


def _same_database(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    def identity(entry: Mapping[str, Any]) -> tuple[str, ...]:
        vendor = str(entry.get("ENGINE", "")).rsplit(".", 1)[-1]
        name = str(entry.get("NAME") or "")
        if vendor == "sqlite3":
            return (vendor, os.path.realpath(name))
        host = str(entry.get("HOST") or "localhost")
        return (vendor, name, host, str(entry.get("PORT") or "5432"))

    return identity(a) == identity(b)


def _redacted(url: str) -> str:
    """``url`` without its password, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return repr(url)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return repr(urlunsplit(parts._replace(netloc=netloc)))


def check_tables(alias: str) -> None:
    """Raise ``DBOSConfigurationError`` unless ``alias`` answers and holds the system tables
    (a client never creates them)."""
    from django.db import DatabaseError, connections

    from django_dbos.models import WorkflowStatus

    conn = connections[alias]
    try:
        with conn.cursor() as cursor:
            tables = conn.introspection.table_names(cursor)
    except DatabaseError as exc:
        raise DBOSConfigurationError(f"Cannot reach the system database: {exc}") from exc
    if WorkflowStatus._meta.db_table not in tables:
        raise DBOSConfigurationError(
            "The database has no django_dbos tables: run `manage.py migrate` in the project "
            "whose workers use it (a client never creates them)."
        )

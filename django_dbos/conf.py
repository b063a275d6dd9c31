"""The only reader of ``settings.DBOS``.

``settings.DBOS`` is one optional dict. ``dbos_settings()`` merges it over ``DEFAULTS`` into a
frozen ``DBOSSettings`` and caches it; the cache is dropped when a test overrides ``DBOS``.
Bad keys or values never crash at import: ``problems()`` lists them and ``checks.py`` reports
them as ``django_dbos.E001``; at run time a bad value falls back to its default.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DBOSSettings:
    DATABASE: str = "default"
    """Database alias that holds the system tables (and that @DBOS.transaction writes to)."""
    APPLICATION_VERSION: str | None = None
    """Version recorded on workflows; default: a hash of the registered workflows' code."""
    EXECUTOR_ID: str | None = None
    """This process's executor ID; default: unique per process (hostname, pid, random)."""
    SERIALIZER: str = "django_dbos.serialization.JSONSerializer"
    """Dotted path to a Serializer class (or zero-argument factory)."""
    ENCRYPTION_KEYS: tuple[str, ...] = ()
    """Fernet keys for EncryptedSerializer, newest first (older ones still decrypt)."""
    WORKER_THREADS: int = 8
    """Threads that run workflows in this process (start_workflow, recovery, queues)."""
    HEARTBEAT_INTERVAL: float = 5.0
    """Seconds between executor heartbeats."""
    EXECUTOR_TIMEOUT: float = 30.0
    """An executor whose last heartbeat is older than this is dead; its workflows are adopted."""
    RECOVERY_INTERVAL: float | None = None
    """Seconds between a worker's scans for dead executors; default: HEARTBEAT_INTERVAL."""
    MAX_RECOVERY_ATTEMPTS: int = 100
    """Default max_recovery_attempts of a workflow."""
    WORKFLOWS_MODULE: str = "workflows"
    """Module name autodiscovered in every installed app."""
    SHUTDOWN_GRACE_PERIOD: float = 30.0
    """Seconds a stopping worker waits for running workflows to reach a checkpoint."""
    POLL_INTERVAL: float = 0.5
    """Longest pause between two looks at the database while waiting for a result."""
    PREPARED_STATEMENTS: bool = True
    """Prepare the hot-path statements on PostgreSQL (turn off behind PgBouncer < 1.21)."""

    @property
    def recovery_interval(self) -> float:
        return self.RECOVERY_INTERVAL or self.HEARTBEAT_INTERVAL


DEFAULTS = DBOSSettings()

_TYPES: dict[str, tuple[type, ...]] = {
    "DATABASE": (str,),
    "APPLICATION_VERSION": (str, type(None)),
    "EXECUTOR_ID": (str, type(None)),
    "SERIALIZER": (str,),
    "ENCRYPTION_KEYS": (list, tuple),
    "WORKER_THREADS": (int,),
    "HEARTBEAT_INTERVAL": (int, float),
    "EXECUTOR_TIMEOUT": (int, float),
    "RECOVERY_INTERVAL": (int, float, type(None)),
    "MAX_RECOVERY_ATTEMPTS": (int,),
    "WORKFLOWS_MODULE": (str,),
    "SHUTDOWN_GRACE_PERIOD": (int, float),
    "POLL_INTERVAL": (int, float),
    "PREPARED_STATEMENTS": (bool,),
}
_POSITIVE = {
    "WORKER_THREADS",
    "HEARTBEAT_INTERVAL",
    "EXECUTOR_TIMEOUT",
    "RECOVERY_INTERVAL",
    "POLL_INTERVAL",
}
_NON_NEGATIVE = {"MAX_RECOVERY_ATTEMPTS", "SHUTDOWN_GRACE_PERIOD"}


def _user_dict() -> Any:
    return getattr(settings, "DBOS", {})


def problems() -> list[str]:
    """Everything wrong with ``settings.DBOS``, one sentence each (empty when all is well)."""
    user = _user_dict()
    if not isinstance(user, dict):
        return [f"settings.DBOS must be a dict, not {type(user).__name__}."]
    found: list[str] = []
    for key, value in user.items():
        if key not in _TYPES:
            known = ", ".join(sorted(_TYPES))
            found.append(f"settings.DBOS has an unknown key {key!r}; known keys: {known}.")
            continue
        if (isinstance(value, bool) and bool not in _TYPES[key]) or not isinstance(
            value, _TYPES[key]
        ):
            expected = " or ".join(t.__name__ for t in _TYPES[key])
            found.append(f"settings.DBOS[{key!r}] must be {expected}, not {type(value).__name__}.")
            continue
        number = value if isinstance(value, int | float) else None
        if key in _POSITIVE and number is not None and number <= 0:
            found.append(f"settings.DBOS[{key!r}] must be greater than 0, not {value!r}.")
        elif key in _NON_NEGATIVE and number is not None and number < 0:
            found.append(f"settings.DBOS[{key!r}] must be 0 or more, not {value!r}.")
        elif key in {"DATABASE", "SERIALIZER", "WORKFLOWS_MODULE"} and not value:
            found.append(f"settings.DBOS[{key!r}] must not be empty.")
    heartbeat: float = user.get("HEARTBEAT_INTERVAL", DEFAULTS.HEARTBEAT_INTERVAL)
    timeout: float = user.get("EXECUTOR_TIMEOUT", DEFAULTS.EXECUTOR_TIMEOUT)
    if not found and heartbeat >= timeout:
        found.append(
            "settings.DBOS['EXECUTOR_TIMEOUT'] must be longer than HEARTBEAT_INTERVAL, or live "
            "executors would be taken for dead."
        )
    return found


@functools.cache
def dbos_settings() -> DBOSSettings:
    """The effective settings: ``settings.DBOS`` over the defaults, bad values ignored."""
    user = _user_dict()
    if not isinstance(user, dict):
        return DEFAULTS
    bad_keys = {p.split("[")[1].split("]")[0].strip("'") for p in problems() if "[" in p}
    values: dict[str, Any] = {}
    for key, value in user.items():
        if key in _TYPES and key not in bad_keys:
            values[key] = tuple(value) if key == "ENCRYPTION_KEYS" else value
    merged = dataclasses.replace(DEFAULTS, **values)
    if merged.EXECUTOR_TIMEOUT <= merged.HEARTBEAT_INTERVAL:
        # E001 reports it; meanwhile never take live executors for dead
        merged = dataclasses.replace(merged, EXECUTOR_TIMEOUT=6 * merged.HEARTBEAT_INTERVAL)
    return merged


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting in {"DBOS", "DATABASES"}:
        dbos_settings.cache_clear()

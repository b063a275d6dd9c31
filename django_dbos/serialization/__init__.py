"""How workflow inputs, step outputs and recorded errors become text in the system tables.

The default ``JSONSerializer`` writes plain JSON (so ``::jsonb`` and SQL over stored values work)
and tags the few types JSON lacks as ``{"__dbos__": "<tag>", ...}``. Reading never runs code from
the database: a dataclass, enum or exception is rebuilt only from a class that is importable by
its recorded ``module:QualName`` and is of that kind; otherwise the plain value comes back with a
``RuntimeWarning``. ``PickleSerializer`` is the opt-in for trusted databases, and
``EncryptedSerializer`` wraps either with Fernet.

This package is the one door: the engine, admin and checks import from here, and settings name
``django_dbos.serialization.<Class>``. Inside, ``codec`` holds the tagged JSON format, ``rebuild``
the rules for classes named in stored values (and ``RecordedError``, still recorded under this
package's path), and ``serializers`` the classes a setting can name. This module holds what the
engine and the system checks call: the configured serializer, cached per setting value.
"""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

from django_dbos.conf import dbos_settings
from django_dbos.errors import DBOSConfigurationError, DBOSSerializationError
from django_dbos.serialization.codec import safe_str, type_name
from django_dbos.serialization.rebuild import RecordedError
from django_dbos.serialization.serializers import (
    EncryptedSerializer,
    JSONSerializer,
    PickleSerializer,
    Serializer,
)

_cached: tuple[tuple[str, tuple[str, ...]], Serializer] | None = None


def _load(path: str) -> Serializer:
    try:
        factory = import_string(path)
    except Exception as exc:
        raise DBOSConfigurationError(
            f"DBOS['SERIALIZER'] = {path!r} cannot be imported ({exc}); give a dotted path such "
            "as 'django_dbos.serialization.JSONSerializer'."
        ) from exc
    serializer = factory() if callable(factory) else factory
    if not all(callable(getattr(serializer, m, None)) for m in ("dumps", "loads")):
        raise DBOSConfigurationError(
            f"DBOS['SERIALIZER'] = {path!r} gives no object with dumps() and loads()."
        )
    return serializer


def get_serializer() -> Serializer:
    """The configured serializer, built once per (SERIALIZER, ENCRYPTION_KEYS) value.

    Raise ``DBOSConfigurationError`` when the path cannot be imported or built.
    """
    global _cached
    conf = dbos_settings()
    key = (conf.SERIALIZER, conf.ENCRYPTION_KEYS)
    cached = _cached
    if cached is None or cached[0] != key:
        cached = _cached = (key, _load(conf.SERIALIZER))
    return cached[1]


def check_serializer_path(path: str) -> str | None:
    """What is wrong with ``path`` as ``DBOS["SERIALIZER"]``, in one sentence; None if nothing."""
    try:
        _load(path)
    except Exception as exc:
        return str(exc)
    return None


def serialize(value: Any) -> str:
    return get_serializer().dumps(value)


def deserialize(text: str | None) -> Any:
    return None if text is None else get_serializer().loads(text)


def serialize_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Store ``{"args": [...], "kwargs": {...}}``; errors point at e.g. ``args[1]['items']``."""
    return get_serializer().dumps({"args": list(args), "kwargs": kwargs})


def deserialize_args(text: str | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    payload = {} if text is None else get_serializer().loads(text)
    if not isinstance(payload, dict) or not isinstance(payload.get("kwargs", {}), dict):
        raise DBOSSerializationError("Stored workflow inputs are not an args/kwargs record.")
    return tuple(payload.get("args", ())), dict(payload.get("kwargs", {}))


def serialize_exception(exc: BaseException) -> str:
    """Record ``exc``; if the serializer refuses it, record its type and message instead."""
    serializer = get_serializer()
    try:
        return serializer.dumps(exc)
    except Exception:
        return serializer.dumps(RecordedError(type_name(type(exc)), safe_str(exc)))


def deserialize_exception(text: str) -> BaseException:
    """The recorded exception, or a ``RecordedError``: never raises, whatever the row holds."""
    try:
        value = get_serializer().loads(text)
    except Exception as exc:
        return RecordedError("DBOSSerializationError", f"the recorded error is unreadable: {exc}")
    if isinstance(value, BaseException):
        return value
    return RecordedError("UnknownError", f"the recorded error is not an exception: {value!r:.200}")


__all__ = [
    "EncryptedSerializer",
    "JSONSerializer",
    "PickleSerializer",
    "RecordedError",
    "Serializer",
    "check_serializer_path",
    "deserialize",
    "deserialize_args",
    "deserialize_exception",
    "get_serializer",
    "serialize",
    "serialize_args",
    "serialize_exception",
]

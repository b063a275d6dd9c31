"""The tagged JSON format behind ``JSONSerializer``: walking values out, and reading them back.

Stored values are plain JSON (so ``::jsonb`` and SQL over them work); the few types JSON lacks
are written as ``{"__dbos__": "<tag>", ...}``, and a user dict that could be mistaken for one is
written as key/value pairs. Encoding is copy-on-write, so JSON-native data is walked once and
never copied; an unsupported value fails at once with its type and where it sat. Decoding is
``json``'s ``object_hook``; classes named in a value are rebuilt by the rules in ``rebuild.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from django_dbos.errors import DBOSSerializationError
from django_dbos.serialization.rebuild import (
    OWN_CLASS,
    may_rebuild,
    path_of,
    rebuild_dataclass,
    rebuild_enum,
    rebuild_exception,
    rebuild_namedtuple,
)

_TAG = "__dbos__"
_PLAIN = frozenset({str, int, bool, type(None)})
_SELF = {_TAG: "cls"}  # written for "the exception's own class" in its __reduce__ arguments
_HINT = (
    "pass plain data (str, int, float, bool, None, list, tuple, dict, set, datetimes, Decimal, "
    "UUID, bytes, dataclasses, enums), e.g. a model's primary key rather than the instance; or, "
    "if the database is trusted, set DBOS['SERIALIZER'] = "
    "'django_dbos.serialization.PickleSerializer'."
)


def type_name(cls: type) -> str:
    """``ValueError`` for builtins, else ``module.QualName``: how errors name a type."""
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder when the exception's ``__str__`` itself fails."""
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


def b64(v: bytes | bytearray) -> str:
    return base64.b64encode(v).decode("ascii")


class _Unserializable(Exception):  # internal signal; callers see the error it builds
    """Raised by the encoder; each container on the way out prepends its position to ``path``."""

    def __init__(self, value: Any, reason: str = _HINT) -> None:
        self.value, self.reason = value, reason
        self.path: list[str | tuple[Any]] = []  # innermost first; a tuple holds a dict key

    def error(self) -> DBOSSerializationError:
        where = ""
        for i, part in enumerate(reversed(self.path)):
            if isinstance(part, tuple):  # a dict key: bare at the top (args, kwargs), else [..]
                bare = i == 0 and isinstance(part[0], str) and part[0].isidentifier()
                part = part[0] if bare else f"[{part[0]!r}]"
            where += part
        name = type_name(type(self.value))
        at = f" at {where}" if where else ""
        return DBOSSerializationError(
            f"Cannot serialize a {name!r} value{at}: {self.reason}", type_name=name
        )


def _class_path(value: Any) -> str:
    if "<locals>" in type(value).__qualname__:
        raise _Unserializable(value, "its class is defined in a function; move it to module level.")
    return path_of(type(value))


# -- encoding: copy-on-write, so JSON-native data is walked once and never copied --------------


def _enc(v: Any) -> Any:
    t = type(v)
    if t in _PLAIN:
        return v
    if t is float:
        return v if v - v == 0.0 else {_TAG: "float", "v": repr(v)}  # nan/inf are not JSON
    if t is dict:
        return _enc_dict(v)
    if t is list:
        return _enc_list(v)
    return _enc_other(v)


def _enc_dict(d: dict[Any, Any]) -> Any:
    if _TAG in d:
        return _enc_pairs(d)
    out = d
    try:
        for k, x in d.items():
            if type(k) is not str:
                break
            if type(x) not in _PLAIN and (y := _enc(x)) is not x:
                if out is d:
                    out = dict(d)
                out[k] = y
        else:
            return out
    except _Unserializable as exc:
        exc.path.append((k,))
        raise
    return _enc_pairs(d)


def _enc_pairs(d: dict[Any, Any]) -> dict[str, Any]:
    """A dict JSON cannot hold as an object (non-str keys, or our tag as a key) becomes pairs."""
    pairs = []
    try:
        for k, x in d.items():
            pairs.append([_enc(k), _enc(x)])
    except _Unserializable as exc:
        exc.path.append((k,))
        raise
    return {_TAG: "dict", "v": pairs}


def _enc_list(items: list[Any]) -> list[Any]:
    out = items
    try:
        for i, x in enumerate(items):
            if type(x) not in _PLAIN and (y := _enc(x)) is not x:
                if out is items:
                    out = list(items)
                out[i] = y
    except _Unserializable as exc:
        exc.path.append(f"[{i}]")
        raise
    return out


def _enc_set(v: set[Any] | frozenset[Any]) -> dict[str, Any]:
    try:
        items = sorted(v)  # equal sets give equal text
    except TypeError:
        items = list(v)
    return {_TAG: "frozenset" if isinstance(v, frozenset) else "set", "v": _enc_list(items)}


def _enc_datetime(v: dt.datetime) -> dict[str, Any]:
    if isinstance(v.tzinfo, ZoneInfo) and v.tzinfo.key:  # the offset alone loses DST rules
        return {_TAG: "datetime", "v": v.isoformat(), "tz": v.tzinfo.key}
    return {_TAG: "datetime", "v": v.isoformat()}


_ENCODERS: dict[type, Callable[[Any], Any]] = {  # insertion order matters: datetime before date
    tuple: lambda v: {_TAG: "tuple", "v": _enc_list(list(v))},
    set: _enc_set,
    frozenset: _enc_set,
    dt.datetime: _enc_datetime,
    dt.date: lambda v: {_TAG: "date", "v": v.isoformat()},
    dt.time: lambda v: {_TAG: "time", "v": v.isoformat()},
    dt.timedelta: lambda v: {_TAG: "timedelta", "v": [v.days, v.seconds, v.microseconds]},
    Decimal: lambda v: {_TAG: "decimal", "v": str(v)},
    uuid.UUID: lambda v: {_TAG: "uuid", "v": str(v)},
    bytes: lambda v: {_TAG: "bytes", "v": b64(v)},
    bytearray: lambda v: {_TAG: "bytearray", "v": b64(v)},
}


def _enc_other(v: Any) -> Any:
    encode = _ENCODERS.get(type(v))
    if encode is not None:
        return encode(v)
    if isinstance(v, Enum):  # before str/int: StrEnum, IntEnum and TextChoices are both
        return {_TAG: "enum", "cls": _class_path(v), "name": v.name, "v": _enc(v.value)}
    if isinstance(v, BaseException):
        return _enc_exception(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        path, fields = _class_path(v), {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
        try:
            return {_TAG: "dataclass", "cls": path, "v": _enc_dict(fields)}
        except _Unserializable as exc:
            if isinstance(exc.path[-1], tuple):
                exc.path[-1] = f".{exc.path[-1][0]}"
            raise
    if isinstance(v, tuple) and hasattr(type(v), "_fields"):
        return {_TAG: "namedtuple", "cls": _class_path(v), "v": _enc_list(list(v))}
    if isinstance(v, str | int):  # subclasses JSON writes natively; they come back as the base
        return v
    if isinstance(v, float):
        return _enc(float(v))
    if isinstance(v, dict | list):  # OrderedDict, defaultdict, ... come back as dict / list
        return _enc(dict(v) if isinstance(v, dict) else list(v))
    for base, encode in _ENCODERS.items():
        if isinstance(v, base):
            return encode(v)
    raise _Unserializable(v)


_ATTR_TYPES = (str, int, float, type(None), dt.date, dt.time, dt.timedelta, Decimal, uuid.UUID)


def _enc_exception(exc: BaseException) -> dict[str, Any]:
    """Class path, ``args`` and ``str()``; plus ``__reduce__`` for django_dbos's own errors."""
    cls, message = type(exc), safe_str(exc)
    out: dict[str, Any] = {_TAG: "exception", "cls": path_of(cls), "str": message}
    try:
        out["args"] = _enc_list(list(exc.args))
    except (_Unserializable, RecursionError):
        out["args"] = [message]
    if cls.__reduce__ is not BaseException.__reduce__:
        try:
            reduced: Any = exc.__reduce__()
            fn, fargs = reduced[:2]
            if fn is cls or may_rebuild(fn):
                fargs = [_SELF if a is cls else _enc(a) for a in fargs]
                out["reduce"] = [None if fn is cls else path_of(fn), fargs]
                return out
        except Exception:  # noqa: S110 - then it is rebuilt from args like any other exception
            pass
    # Scalar attributes set beside args (``self.code = code``); containers could hold cycles.
    attrs = {k: x for k, x in vars(exc).items() if isinstance(x, _ATTR_TYPES)}
    if attrs:
        out["attrs"] = _enc_dict(attrs)
    return out


# -- decoding: json's object_hook sees inner dicts first, so payloads arrive already decoded ----


def _dec_datetime(obj: dict[str, Any]) -> dt.datetime:
    value = dt.datetime.fromisoformat(obj["v"])
    try:
        return value.astimezone(ZoneInfo(obj["tz"])) if "tz" in obj and value.tzinfo else value
    except Exception:  # an unknown zone here: the fixed offset is still the right instant
        return value


_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "tuple": lambda o: tuple(o["v"]),
    "dict": lambda o: {k: v for k, v in o["v"]},
    "set": lambda o: set(o["v"]),
    "frozenset": lambda o: frozenset(o["v"]),
    "float": lambda o: float(o["v"]),
    "datetime": _dec_datetime,
    "date": lambda o: dt.date.fromisoformat(o["v"]),
    "time": lambda o: dt.time.fromisoformat(o["v"]),
    "timedelta": lambda o: dt.timedelta(*o["v"]),
    "decimal": lambda o: Decimal(o["v"]),
    "uuid": lambda o: uuid.UUID(o["v"]),
    "bytes": lambda o: base64.b64decode(o["v"]),
    "bytearray": lambda o: bytearray(base64.b64decode(o["v"])),
    "dataclass": rebuild_dataclass,
    "enum": rebuild_enum,
    "namedtuple": rebuild_namedtuple,
    "exception": rebuild_exception,
    "cls": lambda o: OWN_CLASS,
}


def _hook(obj: dict[str, Any]) -> Any:
    if _TAG not in obj:
        return obj
    tag = obj[_TAG]
    try:
        return _DECODERS[tag](obj)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DBOSSerializationError(
            f"A stored {tag!r} value is malformed ({exc!r}); was it written by another serializer?",
            type_name=str(tag),
        ) from exc


_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False, allow_nan=False)
_DECODER = json.JSONDecoder(object_hook=_hook)


def encode(value: Any) -> str:
    """Raise ``DBOSSerializationError`` naming the first unsupported value and where it sat."""
    try:
        return _ENCODER.encode(_enc(value))
    except _Unserializable as exc:
        raise exc.error() from None
    except RecursionError:
        raise _Unserializable(
            value, "it is nested too deeply or contains itself."
        ).error() from None


def decode(text: str) -> Any:
    """Raise ``DBOSSerializationError`` if ``text`` is not JSON or a tagged value is malformed."""
    try:
        return _DECODER.decode(text)
    except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError: ValueError
        raise DBOSSerializationError(f"A stored value is not readable JSON ({exc}).") from exc

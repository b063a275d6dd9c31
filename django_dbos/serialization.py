"""How workflow inputs, step outputs and recorded errors become text in the system tables.

The default ``JSONSerializer`` writes plain JSON (so ``::jsonb`` and SQL over stored values work)
and tags the few types JSON lacks as ``{"__dbos__": "<tag>", ...}``. Reading never runs code from
the database: a dataclass, enum or exception is rebuilt only from a class that is importable by
its recorded ``module:QualName`` and is of that kind; otherwise the plain value comes back with a
``RuntimeWarning``. ``PickleSerializer`` is the opt-in for trusted databases, and
``EncryptedSerializer`` wraps either with Fernet.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import importlib
import inspect
import json
import pickle
import uuid
import warnings
from collections.abc import Callable, Sequence
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from django.utils.module_loading import import_string

from django_dbos.conf import dbos_settings
from django_dbos.errors import DBOSConfigurationError, DBOSSerializationError


class Serializer(Protocol):
    """Turns values into text for the system tables and back; chosen by ``DBOS["SERIALIZER"]``."""

    name: str

    def dumps(self, value: Any) -> str: ...

    def loads(self, text: str) -> Any: ...


class RecordedError(Exception):
    """Stands in for a recorded exception whose class cannot be rebuilt in this process."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(type_name, message)
        self.type_name = type_name
        self.message = message

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


_TAG = "__dbos__"
_PLAIN = frozenset({str, int, bool, type(None)})
_REBUILD_MODULES = frozenset({"django_dbos.errors"})  # where an error's __reduce__ may point
_SELF = {_TAG: "cls"}  # written for "the exception's own class" in its __reduce__ arguments
_OWN_CLASS = object()  # what _SELF reads back as (escaped user dicts never do)
_HINT = (
    "pass plain data (str, int, float, bool, None, list, tuple, dict, set, datetimes, Decimal, "
    "UUID, bytes, dataclasses, enums), e.g. a model's primary key rather than the instance; or, "
    "if the database is trusted, set DBOS['SERIALIZER'] = "
    "'django_dbos.serialization.PickleSerializer'."
)


def _type_name(cls: type) -> str:
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _path_of(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


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
        name = _type_name(type(self.value))
        at = f" at {where}" if where else ""
        return DBOSSerializationError(
            f"Cannot serialize a {name!r} value{at}: {self.reason}", type_name=name
        )


def _class_path(value: Any) -> str:
    if "<locals>" in type(value).__qualname__:
        raise _Unserializable(value, "its class is defined in a function; move it to module level.")
    return _path_of(type(value))


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


def _b64(v: bytes | bytearray) -> str:
    return base64.b64encode(v).decode("ascii")


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
    bytes: lambda v: {_TAG: "bytes", "v": _b64(v)},
    bytearray: lambda v: {_TAG: "bytearray", "v": _b64(v)},
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
    cls, message = type(exc), _safe_str(exc)
    out: dict[str, Any] = {_TAG: "exception", "cls": _path_of(cls), "str": message}
    try:
        out["args"] = _enc_list(list(exc.args))
    except (_Unserializable, RecursionError):
        out["args"] = [message]
    if cls.__reduce__ is not BaseException.__reduce__:
        try:
            reduced: Any = exc.__reduce__()
            fn, fargs = reduced[:2]
            if fn is cls or _may_rebuild(fn):
                fargs = [_SELF if a is cls else _enc(a) for a in fargs]
                out["reduce"] = [None if fn is cls else _path_of(fn), fargs]
                return out
        except Exception:  # noqa: S110 - then it is rebuilt from args like any other exception
            pass
    # Scalar attributes set beside args (``self.code = code``); containers could hold cycles.
    attrs = {k: x for k, x in vars(exc).items() if isinstance(x, _ATTR_TYPES)}
    if attrs:
        out["attrs"] = _enc_dict(attrs)
    return out


def _may_rebuild(fn: Any) -> bool:
    return (
        inspect.isfunction(fn) and fn.__module__ in _REBUILD_MODULES and "." not in fn.__qualname__
    )


# -- decoding: json's object_hook sees inner dicts first, so payloads arrive already decoded ----

_RESOLVED: dict[str, Any] = {}


def _resolve(path: str, kind: Callable[[type], bool] | None = None) -> Any:
    """Import ``module:QualName`` and nothing else; ``LookupError`` if absent or not ``kind``."""
    found = _RESOLVED.get(path)
    if found is None:
        module, _, qualname = path.partition(":")
        try:
            if not module or not qualname or "<" in qualname:
                raise ImportError(path)
            found = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
        except Exception as exc:
            raise LookupError(path) from exc
        _RESOLVED[path] = found
    if kind is not None and not (isinstance(found, type) and kind(found)):
        raise LookupError(path)
    return found


def _or_plain(instead: str, fallback: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
    """On any failure to rebuild (class gone, of another kind, changed), warn; give ``fallback``."""

    def decorate(rebuild: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        def decode(obj: dict[str, Any]) -> Any:
            try:
                return rebuild(obj)
            except Exception:
                what = obj[_TAG]
                warnings.warn(
                    f"django_dbos: cannot rebuild the {what} {obj['cls']!r} (not importable "
                    f"here, of another kind, or changed); returning {instead} instead.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return fallback(obj)

        return decode

    return decorate


@_or_plain("its fields as a dict", lambda obj: obj["v"])
def _dec_dataclass(obj: dict[str, Any]) -> Any:
    cls, values = _resolve(obj["cls"], dataclasses.is_dataclass), obj["v"]
    fields = dataclasses.fields(cls)
    made = cls(**{f.name: values[f.name] for f in fields if f.init and f.name in values})
    for f in fields:
        if not f.init and f.name in values:
            object.__setattr__(made, f.name, values[f.name])
    return made


@_or_plain("its value", lambda obj: obj["v"])
def _dec_enum(obj: dict[str, Any]) -> Any:
    cls = _resolve(obj["cls"], lambda c: issubclass(c, Enum))
    try:
        return cls(obj["v"])
    except ValueError:
        return cls[obj["name"]]  # the value changed but the name did not


@_or_plain("a plain tuple", lambda obj: tuple(obj["v"]))
def _dec_namedtuple(obj: dict[str, Any]) -> Any:
    return _resolve(obj["cls"], lambda c: issubclass(c, tuple) and hasattr(c, "_fields"))(*obj["v"])


@_or_plain(
    "a RecordedError",
    lambda obj: RecordedError(obj["cls"].replace(":", "."), str(obj.get("str", ""))),
)
def _dec_exception(obj: dict[str, Any]) -> BaseException:
    cls = _resolve(obj["cls"], lambda c: issubclass(c, BaseException))
    try:  # django_dbos's own errors come back with their fields
        fn_path, fargs = obj["reduce"]
        fn = cls if fn_path is None else _resolve(fn_path)
        if fn is cls or _may_rebuild(fn):
            made = fn(*[cls if a is _OWN_CLASS else a for a in fargs])
            if isinstance(made, cls):
                return made
    except Exception:  # noqa: S110 - no (usable) reduce record: rebuild from args
        pass
    args = tuple(obj.get("args", ()))
    try:
        made = cls(*args)
    except Exception:  # an __init__ with other parameters: set args as pickle would
        made = cls.__new__(cls)
        made.args = args
    if isinstance(obj.get("attrs"), dict):
        made.__dict__.update(obj["attrs"])
    if not isinstance(made, cls):
        raise TypeError(obj["cls"])
    return made


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
    "dataclass": _dec_dataclass,
    "enum": _dec_enum,
    "namedtuple": _dec_namedtuple,
    "exception": _dec_exception,
    "cls": lambda o: _OWN_CLASS,
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


class JSONSerializer:
    """The default: JSON text, tagged where JSON lacks a type; reading never runs stored code."""

    name = "json"

    def dumps(self, value: Any) -> str:
        """Raise ``DBOSSerializationError`` naming the first unsupported value and where it sat."""
        try:
            return _ENCODER.encode(_enc(value))
        except _Unserializable as exc:
            raise exc.error() from None
        except RecursionError:
            raise _Unserializable(
                value, "it is nested too deeply or contains itself."
            ).error() from None

    def loads(self, text: str) -> Any:
        try:
            return _DECODER.decode(text)
        except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError: ValueError
            raise DBOSSerializationError(f"A stored value is not readable JSON ({exc}).") from exc


class PickleSerializer:
    """Base64 text of a pickle: any picklable value, for databases you trust.

    Unpickling runs code chosen by whoever wrote the row, so anyone who can write to the system
    tables can run code in every worker. Opt in with
    ``DBOS["SERIALIZER"] = "django_dbos.serialization.PickleSerializer"``.
    """

    name = "pickle"

    def dumps(self, value: Any) -> str:
        try:
            return _b64(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:  # PicklingError, TypeError, or a __reduce__ that fails
            name = _type_name(type(value))
            raise DBOSSerializationError(
                f"Cannot pickle a {name!r} value ({exc}); pass picklable data.", type_name=name
            ) from None

    def loads(self, text: str) -> Any:
        try:
            return pickle.loads(base64.b64decode(text))  # noqa: S301 - the documented opt-in
        except Exception as exc:
            raise DBOSSerializationError(f"A stored value cannot be unpickled ({exc}).") from exc


class EncryptedSerializer:
    """Fernet encryption around another serializer (default: JSON), with key rotation.

    Encrypts with the first key and decrypts with any, so a new key goes first and old ones stay
    until ``rotate()`` has re-encrypted their rows. Fernet also authenticates: a row edited in the
    database fails to decrypt instead of being decoded. Rows without the ``fernet:`` prefix
    (written before encryption was turned on) still load when the inner serializer is JSON.
    """

    name = "encrypted"
    prefix = "fernet:"

    def __init__(self, inner: Serializer | None = None, keys: Sequence[str] | None = None) -> None:
        """Raise ``DBOSConfigurationError`` without ``cryptography`` or without usable keys."""
        try:
            from cryptography.fernet import Fernet, InvalidToken, MultiFernet
        except ImportError:
            raise DBOSConfigurationError(
                "EncryptedSerializer needs the cryptography package: "
                "pip install 'django-dbos-workflows[crypto]'."
            ) from None
        keys = dbos_settings().ENCRYPTION_KEYS if keys is None else keys
        keys = [keys] if isinstance(keys, str | bytes) else keys
        make = "make one with cryptography.fernet.Fernet.generate_key()"
        if not keys:
            raise DBOSConfigurationError(
                f"EncryptedSerializer has no keys: set DBOS['ENCRYPTION_KEYS'] to a list of Fernet "
                f"keys, newest first ({make})."
            )
        fernets = []
        for i, key in enumerate(keys):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):  # the message must not echo the secret
                raise DBOSConfigurationError(
                    f"DBOS['ENCRYPTION_KEYS'][{i}] is not a Fernet key; {make}."
                ) from None
        self.inner: Serializer = inner if inner is not None else JSONSerializer()
        self._fernet, self._invalid = MultiFernet(fernets), (InvalidToken, ValueError)

    def dumps(self, value: Any) -> str:
        return self._encrypt(self.inner.dumps(value))

    def loads(self, text: str) -> Any:
        if not text.startswith(self.prefix) and isinstance(self.inner, JSONSerializer):
            return self.inner.loads(text)
        return self.inner.loads(self._open(text, self._fernet.decrypt).decode())

    def rotate(self, text: str) -> str:
        """The same value encrypted with the newest key (unencrypted JSON rows get encrypted)."""
        if not text.startswith(self.prefix) and isinstance(self.inner, JSONSerializer):
            return self._encrypt(text)
        return self.prefix + self._open(text, self._fernet.rotate).decode("ascii")

    def _encrypt(self, text: str) -> str:
        return self.prefix + self._fernet.encrypt(text.encode()).decode("ascii")

    def _open(self, text: str, op: Callable[[bytes], bytes]) -> bytes:
        if not text.startswith(self.prefix):
            raise DBOSSerializationError("A stored value is not encrypted (no 'fernet:' prefix).")
        try:
            return op(text[len(self.prefix) :].encode("ascii"))
        except self._invalid:
            raise DBOSSerializationError(
                "A stored value cannot be decrypted with any of DBOS['ENCRYPTION_KEYS']; "
                "was the key it was written with removed?"
            ) from None


# -- what the engine and the system checks call ------------------------------------------------

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
        return serializer.dumps(RecordedError(_type_name(type(exc)), _safe_str(exc)))


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

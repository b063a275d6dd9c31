"""Rebuilding classes named in stored values: the rules that keep reading from running code.

A dataclass, enum, named tuple or exception is stored with its class's ``module:QualName``. On
reading, the path is only imported and looked up (never called as a function), and the result
is used only if it is a class of the recorded kind; exceptions may also be rebuilt through a
``__reduce__`` function, but only a module-level one from ``django_dbos.errors``. Anything else
(class gone, renamed, of another kind, or a tampered row naming ``os:system``) gives the plain
value and a ``RuntimeWarning``; an exception becomes a ``RecordedError``. These rules live apart
from the codec in ``codec.py`` because they are the security boundary of ``JSONSerializer``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import warnings
from collections.abc import Callable
from enum import Enum
from typing import Any


class RecordedError(Exception):
    """Stands in for a recorded exception whose class cannot be rebuilt in this process."""

    # Stored rows name this class by its path (``django_dbos.serialization:RecordedError``, and
    # pickles by the same module): keep the public path rather than this file's, so rows written
    # before and after the package split, and by either version, read the same.
    __module__ = "django_dbos.serialization"

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(type_name, message)
        self.type_name = type_name
        self.message = message

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


REBUILD_MODULES = frozenset({"django_dbos.errors"})  # where an error's __reduce__ may point
OWN_CLASS = object()  # what the "cls" tag reads back as: "the exception's own class"


def path_of(obj: Any) -> str:
    """The ``module:QualName`` that stored values record for a class or function."""
    return f"{obj.__module__}:{obj.__qualname__}"


def may_rebuild(fn: Any) -> bool:
    """Whether ``fn`` is a ``__reduce__`` function that stored values may name and call."""
    return (
        inspect.isfunction(fn) and fn.__module__ in REBUILD_MODULES and "." not in fn.__qualname__
    )


_RESOLVED: dict[str, Any] = {}


def resolve(path: str, kind: Callable[[type], bool] | None = None) -> Any:
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


def _or_plain(
    what: str, instead: str, fallback: Callable[[dict[str, Any]], Any]
) -> Callable[..., Any]:
    """On any failure to rebuild (class gone, of another kind, changed), warn; give ``fallback``."""

    def decorate(rebuild: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        def decode(obj: dict[str, Any]) -> Any:
            try:
                return rebuild(obj)
            except Exception:
                warnings.warn(
                    f"django_dbos: cannot rebuild the {what} {obj['cls']!r} (not importable "
                    f"here, of another kind, or changed); returning {instead} instead.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return fallback(obj)

        return decode

    return decorate


@_or_plain("dataclass", "its fields as a dict", lambda obj: obj["v"])
def rebuild_dataclass(obj: dict[str, Any]) -> Any:
    cls, values = resolve(obj["cls"], dataclasses.is_dataclass), obj["v"]
    fields = dataclasses.fields(cls)
    made = cls(**{f.name: values[f.name] for f in fields if f.init and f.name in values})
    for f in fields:
        if not f.init and f.name in values:
            object.__setattr__(made, f.name, values[f.name])
    return made


@_or_plain("enum", "its value", lambda obj: obj["v"])
def rebuild_enum(obj: dict[str, Any]) -> Any:
    cls = resolve(obj["cls"], lambda c: issubclass(c, Enum))
    try:
        return cls(obj["v"])
    except ValueError:
        return cls[obj["name"]]  # the value changed but the name did not


@_or_plain("namedtuple", "a plain tuple", lambda obj: tuple(obj["v"]))
def rebuild_namedtuple(obj: dict[str, Any]) -> Any:
    return resolve(obj["cls"], lambda c: issubclass(c, tuple) and hasattr(c, "_fields"))(*obj["v"])


@_or_plain(
    "exception",
    "a RecordedError",
    lambda obj: RecordedError(obj["cls"].replace(":", "."), str(obj.get("str", ""))),
)
def rebuild_exception(obj: dict[str, Any]) -> BaseException:
    cls = resolve(obj["cls"], lambda c: issubclass(c, BaseException))
    try:  # django_dbos's own errors come back with their fields
        fn_path, fargs = obj["reduce"]
        fn = cls if fn_path is None else resolve(fn_path)
        if fn is cls or may_rebuild(fn):
            made = fn(*[cls if a is OWN_CLASS else a for a in fargs])
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

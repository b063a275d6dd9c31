"""How the admin shows stored values: epoch milliseconds as local times, durations, and
serialized inputs, outputs, errors and attributes decoded into readable (and size-capped) text.

Decoding never raises: a value that cannot be decoded is shown as stored, marked as raw, so one
unreadable row never breaks a page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import pprint
from collections.abc import Callable
from typing import Any

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from django_dbos import serialization

PREVIEW_CHARS = 20_000
"""A decoded value longer than this is cut (the page stays light whatever a step returned)."""


def local_time(ms: int | None, *, millis: bool = False) -> str | None:
    """Epoch milliseconds as ``2024-05-01 14:03:07 CEST`` in the current (by default the
    project's) time zone; ``14:03:07.123`` with ``millis``. None for no value, and for 0 (a
    retired executor's heartbeat)."""
    if not ms:
        return None
    local = timezone.localtime(dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC))
    fraction = f".{local.microsecond // 1000:03d}" if millis else ""
    return f"{local:%Y-%m-%d %H:%M:%S}{fraction} {local.tzname()}"


def format_duration(ms: int | None) -> str:
    """``250 ms``, ``1.5 s``, ``2.0 min``, ``1.2 h``; an em dash when there is none (running)."""
    if ms is None:
        return "—"
    ms = max(ms, 0)  # clocks of two hosts may disagree by a little
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.1f} min"
    return f"{ms / 3_600_000:.1f} h"


@dataclasses.dataclass(frozen=True, slots=True)
class Decoded:
    """A stored value made readable; ``raw`` when it could not be decoded and is shown as
    stored."""

    text: str
    raw: bool = False


def _clip(text: str) -> str:
    if len(text) <= PREVIEW_CHARS:
        return text
    return f"{text[:PREVIEW_CHARS]}\n… ({len(text) - PREVIEW_CHARS} more characters)"


def _pretty(value: Any) -> str:
    if isinstance(value, str | bytes):  # whole, not split into pformat's wrapped pieces
        return repr(value)
    return pprint.pformat(value, width=88, sort_dicts=False)


def _describe_exception(exc: BaseException) -> str:
    if isinstance(exc, serialization.RecordedError):
        return str(exc)
    cls = type(exc)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    message = str(exc)
    return f"{name}: {message}" if message else name


def decode_inputs(text: str) -> str:
    """A workflow's serialized ``(args, kwargs)`` as two pretty-printed lines."""
    args, kwargs = serialization.deserialize_args(text)
    return f"args: {_pretty(args)}\nkwargs: {_pretty(kwargs)}"


def decode_value(text: str) -> str:
    """A serialized output, pretty-printed."""
    return _pretty(serialization.deserialize(text))


def decode_error(text: str) -> str:
    """A serialized error as ``module.Class: message``; raises if it cannot be deserialized."""
    # deserialize_exception never fails and so hides the stored text; decode it here instead
    value = serialization.deserialize(text)
    return _describe_exception(value) if isinstance(value, BaseException) else _pretty(value)


def decode_attributes(text: str) -> str:
    """The JSON attributes column, indented."""
    return json.dumps(json.loads(text), indent=2, ensure_ascii=False, default=str)


def decode(text: str | None, decoder: Callable[[str], str]) -> Decoded | None:
    """``decoder(text)``, or the stored text itself if decoding fails; None for no value."""
    if text is None:
        return None
    try:
        return Decoded(_clip(decoder(text)))
    except Exception:
        return Decoded(_clip(text), raw=True)


def render_decoded(value: Decoded | None) -> SafeString | None:
    if value is None:
        return None
    if value.raw:
        return format_html(
            '<pre class="dbos-value dbos-raw" title="{}">{}</pre>',
            _("Could not be decoded: shown as stored"),
            value.text,
        )
    return format_html('<pre class="dbos-value">{}</pre>', value.text)

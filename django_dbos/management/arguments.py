"""argparse ``type=`` validators shared by the management commands: a mistake on the command line
is an ``ArgumentTypeError`` naming the option, never a traceback."""

from __future__ import annotations

import argparse
import datetime
import re
from collections.abc import Callable

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An int within [minimum, maximum]."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if number < minimum or (maximum is not None and number > maximum):
            if maximum is not None:
                limits = f"from {minimum} to {maximum}"
            else:
                limits = "0 or more" if minimum == 0 else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {limits}, not {number}")
        return number

    return parse


positive_int = whole_number(1)
non_negative_int = whole_number(0)


def non_empty(what: str) -> Callable[[str], str]:
    """An argparse type for a name or ID that must not be blank (``what`` names it)."""

    def parse(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(f"{what} must not be empty")
        return value

    return parse


def non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {number}")
    return number


def duration(value: str) -> datetime.timedelta:
    """``30d``, ``12h``, ``1d12h``, ``90m``, ``2w``, ``45s``: a positive span of time."""
    text = value.strip().lower()
    if not text or not re.fullmatch(rf"(?:{_PART.pattern})+", text):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a duration: use a number with a unit s, m, h, d or w "
            "(e.g. 30d, 12h, 1d12h)"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be longer than zero")
    return datetime.timedelta(seconds=seconds)


def moment(value: str) -> datetime.datetime:
    """A point in time as an aware datetime: ``now``; an ISO 8601 date or time (naive ones are in
    Django's current time zone); epoch milliseconds; or an age such as ``90m``, ``2h``, ``1d12h``
    (that long ago)."""
    from django.utils import timezone  # settings are only needed when a value is parsed

    text = value.strip()
    if text.lower() == "now":
        return timezone.now()
    if text.isdigit():
        return datetime.datetime.fromtimestamp(int(text) / 1000, tz=datetime.UTC)
    if re.fullmatch(rf"(?:{_PART.pattern})+", text.lower()):
        return timezone.now() - duration(text)
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a time: give an ISO 8601 date or time (2025-05-01, "
            "2025-05-01T12:00, 2025-05-01T12:00:00+02:00), epoch milliseconds, now, or an age "
            "such as 90m, 2h, 3d"
        ) from None
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed

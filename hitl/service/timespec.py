"""Durations (`30m`, `2h`, `1d`) and moments (a duration from now, or an ISO 8601 time)."""

import re
from datetime import UTC, datetime

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `90s`, `30m`, `2h`, `1d`, `1w`."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; use a number and a unit: 90s, 30m, 2h, 1d")
    return float(match[1]) * _UNITS[match[2]]


def parse_moment(text: str, now: float) -> float:
    """A UNIX time: `now` plus a duration, or an ISO 8601 time (UTC unless it says)."""
    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (30m, 2h) nor an ISO 8601 time (2026-11-26T18:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:  # what is stored is shown as a UTC time: it must have one
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"{text!r} has no date in UTC (years 1 to 9999); give a time within them"
        ) from None
    return moment.timestamp()

"""Timeframe strings (``1m``, ``4h``, ``1d``), their lengths in milliseconds, and how times are shown.

A timeframe is ASCII digits and one unit of ``s m h d w`` (surrounding whitespace ignored).
Its canonical form is ccxt's: the largest unit that divides it, so ``60m``, ``" 1h"`` and
``"1h\\n"`` are all ``1h``; one market has one dataset.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = [
    "timeframe_to_ms", "normalize_timeframe", "TIMEFRAME_UNITS_MS", "DAY_MS", "MAX_TIMEFRAME_MS", "format_ms", "format_utc",
]

#: One UTC day in milliseconds: the day of the daily-loss breaker, of time features and of reports.
DAY_MS = 86_400_000
TIMEFRAME_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}
#: The longest timeframe accepted: one year (365 days).
MAX_TIMEFRAME_MS = 365 * DAY_MS
# ASCII digits only (\d would take Unicode digits), at most 9 of them, full match
_PATTERN = re.compile(r"([0-9]{1,9})([smhdw])")
_WHITESPACE = " \t\r\n"


def timeframe_to_ms(timeframe: str) -> int:
    """``"1h"`` -> ``3600000``; ``ValueError`` naming the timeframe when it is malformed."""
    match = _PATTERN.fullmatch(timeframe.strip(_WHITESPACE)) if isinstance(timeframe, str) else None
    ms = int(match.group(1)) * TIMEFRAME_UNITS_MS[match.group(2)] if match else 0
    if not 0 < ms <= MAX_TIMEFRAME_MS:
        shown = repr(timeframe)[:40] if isinstance(timeframe, str) else type(timeframe).__name__
        raise ValueError(f"invalid timeframe {shown} (expected e.g. 1m, 5m, 1h, 4h, 1d; at most 365d)")
    return ms


def normalize_timeframe(timeframe: str) -> str:
    """ccxt's canonical spelling: ``"60m"`` -> ``"1h"``, ``" 1h"`` -> ``"1h"``, ``"14d"`` -> ``"2w"``."""
    ms = timeframe_to_ms(timeframe)
    for unit, size in sorted(TIMEFRAME_UNITS_MS.items(), key=lambda kv: -kv[1]):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    raise AssertionError("every timeframe is a whole number of seconds")  # pragma: no cover


def format_ms(ms: int | None) -> str:
    """``1704067200000`` -> ``2024-01-01 00:00`` (UTC); seconds shown when not zero; ``-`` for ``None``."""
    if ms is None:
        return "-"
    when = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S" if when.second else "%Y-%m-%d %H:%M")


def format_utc(ms: int | None) -> str:
    """:func:`format_ms` with its time zone named: ``2024-01-01 00:00 UTC``; ``-`` for ``None``."""
    return "-" if ms is None else f"{format_ms(ms)} UTC"

"""Timeframe strings (``1m``, ``4h``, ``1d``), their lengths in milliseconds, and how times are shown."""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["timeframe_to_ms", "TIMEFRAME_UNITS_MS", "format_ms"]

TIMEFRAME_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PATTERN = re.compile(r"^(\d+)([smhdw])$")


def timeframe_to_ms(timeframe: str) -> int:
    """``"1h"`` -> ``3600000``; ``ValueError`` naming the timeframe when it is malformed."""
    match = _PATTERN.match(timeframe.strip()) if isinstance(timeframe, str) else None
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"invalid timeframe {timeframe!r} (expected e.g. 1m, 5m, 1h, 4h, 1d)")
    return int(match.group(1)) * TIMEFRAME_UNITS_MS[match.group(2)]


def format_ms(ms: int | None) -> str:
    """``1704067200000`` -> ``2024-01-01 00:00`` (UTC); seconds shown when not zero; ``-`` for ``None``."""
    if ms is None:
        return "-"
    when = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S" if when.second else "%Y-%m-%d %H:%M")

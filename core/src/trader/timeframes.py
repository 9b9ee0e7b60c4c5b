"""Timeframe strings (``1m``, ``4h``, ``1d``) and their lengths in milliseconds."""

from __future__ import annotations

import re

__all__ = ["timeframe_to_ms", "TIMEFRAME_UNITS_MS"]

TIMEFRAME_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PATTERN = re.compile(r"^(\d+)([smhdw])$")


def timeframe_to_ms(timeframe: str) -> int:
    """``"1h"`` -> ``3600000``; ``ValueError`` naming the timeframe when it is malformed."""
    match = _PATTERN.match(timeframe.strip()) if isinstance(timeframe, str) else None
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"invalid timeframe {timeframe!r} (expected e.g. 1m, 5m, 1h, 4h, 1d)")
    return int(match.group(1)) * TIMEFRAME_UNITS_MS[match.group(2)]

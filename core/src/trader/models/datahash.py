"""Content hash and range of the candles a model was trained on."""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["CANDLE_COLUMNS", "candles_hash", "candles_range"]

CANDLE_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


def candles_hash(candles: Any) -> str:
    """``sha256:<hex>`` over the OHLCV columns (timestamp as int64, prices as float64), in row order.

    Two frames with the same candles give the same hash whatever their index or
    extra columns.
    """
    import numpy as np

    digest = hashlib.sha256()
    digest.update(f"rows={len(candles)};".encode())
    for column in CANDLE_COLUMNS:
        dtype = np.int64 if column == "timestamp" else np.float64
        values = np.ascontiguousarray(np.asarray(candles[column], dtype=dtype))
        digest.update(column.encode())
        digest.update(values.tobytes())
    return "sha256:" + digest.hexdigest()


def candles_range(candles: Any) -> dict[str, Any]:
    """First and last candle timestamps (ms and ISO-8601 UTC) and the row count."""
    from datetime import UTC, datetime

    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    if len(candles) == 0:
        return {"start": None, "end": None, "rows": 0}
    start, end = int(candles["timestamp"].iloc[0]), int(candles["timestamp"].iloc[-1])
    return {"start": start, "end": end, "start_iso": iso(start), "end_iso": iso(end), "rows": int(len(candles))}

"""Where a candle frame keeps its time: the ``timestamp`` column, a ``date`` column or a UTC ``DatetimeIndex``.

Every public function of the core that takes candles reads their times through
:func:`candle_timestamps`, so a frame from ``trader data export``, from freqtrade (a UTC
``date`` column) or from ``pandas.read_csv(..., index_col=0, parse_dates=True)`` (a
``DatetimeIndex``) is accepted as it is, and the rows of the answer stay aligned to the input's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trader.errors import DataError

__all__ = ["candle_timestamps", "has_time", "TIME_FORMS"]

#: The three places a candle frame may keep its time, in the order they are looked for.
TIME_FORMS = ("a timestamp column (integer UTC milliseconds)", "a date column (time-zone aware)",
              "a DatetimeIndex (time-zone aware)")


def candle_timestamps(df: Any) -> np.ndarray:
    """The candles' open times as int64 UTC milliseconds, one per row, or a one-line DataError.

    Looked for in this order: a ``timestamp`` column (integer milliseconds, or datetimes), a
    ``date`` column of datetimes, the frame's ``DatetimeIndex``. Datetimes must carry a time zone
    (any zone: the instant is converted to UTC); naive ones are refused, since their zone is a guess.
    """
    columns = getattr(df, "columns", ())
    if "timestamp" in columns:
        values = df["timestamp"]
        if values.dtype.kind in "iu":
            ms: np.ndarray = values.to_numpy().astype(np.int64, copy=False)
            return ms
        if values.dtype.kind != "M" and not _is_aware(values.dtype):
            raise DataError(f"column timestamp must hold integer milliseconds, got {values.dtype}")
        return _milliseconds(values, "column timestamp")
    if "date" in columns:
        return _milliseconds(df["date"], "column date")
    index = getattr(df, "index", None)
    if index is not None and (index.dtype.kind == "M" or _is_aware(index.dtype)):
        return _milliseconds(index, "the index")
    raise DataError(f"the candle frame has no time: it needs {', '.join(TIME_FORMS[:-1])} or {TIME_FORMS[-1]}")


def has_time(df: Any) -> bool:
    """Whether the frame keeps its time in one of the :data:`TIME_FORMS` (checked or not)."""
    columns = getattr(df, "columns", ())
    index = getattr(df, "index", None)
    return "timestamp" in columns or "date" in columns or (
        index is not None and (index.dtype.kind == "M" or _is_aware(index.dtype)))


def _is_aware(dtype: Any) -> bool:
    return getattr(dtype, "tz", None) is not None


def _milliseconds(values: Any, where: str) -> np.ndarray:
    """Time-zone aware datetimes (a Series or an Index) as int64 UTC milliseconds."""
    import pandas as pd

    if not _is_aware(values.dtype):
        if values.dtype.kind == "M":
            raise DataError(f"{where} holds datetimes without a time zone; make them UTC first "
                            f"(pandas: .tz_localize('UTC'), or .dt.tz_localize('UTC') for a column)")
        raise DataError(f"{where} must hold time-zone aware datetimes, got {values.dtype}")
    index = pd.DatetimeIndex(values).tz_convert("UTC").tz_localize(None)
    if index.isna().any():
        row = int(np.flatnonzero(index.isna())[0])
        raise DataError(f"{where}: row {row} has no time (NaT)")
    out: np.ndarray = index.as_unit("ms").asi8.astype(np.int64, copy=False)
    return out

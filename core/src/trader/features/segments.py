"""Gaps in the candles: which missing bars are filled and where the series is split.

Policy (``docs/features.md``): between two consecutive candles ``m`` bars are missing when the
timestamps are ``(m + 1) * bar`` apart. When ``1 <= m <= max_fill_bars`` the missing bars are
filled, for the feature computation only, with flat zero-volume bars at the previous close (what
an exchange shows for minutes without trades); the filled rows never appear in any output. When
``m > max_fill_bars``, or the step is not a whole number of bars, the series is split: a new
segment starts, its features restart their warm-up, and no window or label spans the split.
"""

from __future__ import annotations

import numpy as np
from attrs import frozen

from trader.errors import DataError

__all__ = ["GapPlan", "infer_bar_ms", "plan_gaps", "check_increasing", "segment_ids", "DEFAULT_MAX_FILL_BARS"]

DEFAULT_MAX_FILL_BARS = 5


def infer_bar_ms(timestamps: np.ndarray) -> int | None:
    """The most common positive step between timestamps (the bar length), or None with < 2 rows."""
    ts = np.asarray(timestamps, dtype=np.int64)
    if len(ts) < 2:
        return None
    steps = np.diff(ts)
    steps = steps[steps > 0]
    if len(steps) == 0:
        return None
    median = int(np.partition(steps, len(steps) // 2)[len(steps) // 2])
    if 2 * np.count_nonzero(steps == median) > len(steps):
        return median  # a majority of regular steps: that is the mode, found without sorting
    values, counts = np.unique(steps, return_counts=True)
    return int(values[np.argmax(counts)])


@frozen
class GapPlan:
    """Where fills go and where segments start, for one timestamp column.

    ``fill_before[i]`` is the number of flat bars inserted before row ``i``; ``split_before[i]``
    is True where row ``i`` starts a new segment (row 0 always does).
    """

    bar_ms: int | None
    fill_before: np.ndarray
    split_before: np.ndarray

    @property
    def n_fills(self) -> int:
        return int(self.fill_before.sum())

    @property
    def n_segments(self) -> int:
        return int(self.split_before.sum())


def check_increasing(ts: np.ndarray) -> None:
    """Raise a one-line :class:`DataError` naming the first row whose timestamp does not increase."""
    if len(ts) > 1:
        bad = np.flatnonzero(np.diff(ts) <= 0)
        if len(bad):
            i = int(bad[0]) + 1
            raise DataError(
                f"candles must be sorted by timestamp without duplicates: row {i} (timestamp {int(ts[i])}) "
                f"is not after row {i - 1} (timestamp {int(ts[i - 1])})"
            )


def plan_gaps(timestamps: np.ndarray, bar_ms: int | None, max_fill_bars: int = DEFAULT_MAX_FILL_BARS) -> GapPlan:
    """Apply the gap policy to *timestamps* (int64 ms, strictly increasing).

    With ``bar_ms=None`` the bar length is inferred (:func:`infer_bar_ms`); when it cannot be
    (fewer than two rows) the series is one segment without fills.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    check_increasing(ts)
    n = len(ts)
    fill_before = np.zeros(n, dtype=np.int64)
    split_before = np.zeros(n, dtype=bool)
    if n:
        split_before[0] = True
    if bar_ms is None:
        bar_ms = infer_bar_ms(ts)
    if bar_ms is None or n < 2:
        return GapPlan(bar_ms=bar_ms, fill_before=fill_before, split_before=split_before)
    steps = np.diff(ts)
    whole = steps % bar_ms == 0
    missing = steps // bar_ms - 1
    fill = whole & (missing >= 1) & (missing <= max_fill_bars)
    fill_before[1:] = np.where(fill, missing, 0)
    split_before[1:] = ~whole | (missing > max_fill_bars)
    return GapPlan(bar_ms=int(bar_ms), fill_before=fill_before, split_before=split_before)


def segment_ids(timestamps: np.ndarray, bar_ms: int | None = None,
                max_fill_bars: int = DEFAULT_MAX_FILL_BARS) -> np.ndarray:
    """Segment number (0, 1, ...) of every row under the gap policy; windows never span two."""
    plan = plan_gaps(timestamps, bar_ms, max_fill_bars)
    return np.cumsum(plan.split_before) - 1

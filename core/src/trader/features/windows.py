"""Sliding windows over a feature array without copying it, and which windows are usable.

A sample is the window of ``W`` consecutive rows ending at row ``t`` (its "end row"); its label is
the label of row ``t``. A window is usable when every row in it is finite (past the warm-up), the
label of ``t`` is known, and all its rows are in one segment (no gap inside).
"""

from __future__ import annotations

import numpy as np

__all__ = ["windows", "valid_window_ends", "finite_rows", "gather_windows"]

_CHUNK_ROWS = 65_536


def _check_window(window: int) -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    return int(window)


def windows(array: np.ndarray, window: int) -> np.ndarray:
    """Read-only view ``(n - window + 1, window, ...)``: element ``i`` is rows ``i .. i + window - 1``.

    No data is copied (``sliding_window_view``); element ``i`` ends at row ``i + window - 1``.
    """
    window = _check_window(window)
    array = np.asarray(array)
    if len(array) < window:
        return np.empty((0, window, *array.shape[1:]), dtype=array.dtype)
    view = np.lib.stride_tricks.sliding_window_view(array, window, axis=0)
    # sliding_window_view appends the window axis last; move it to position 1
    return np.moveaxis(view, -1, 1)


def finite_rows(array: np.ndarray) -> np.ndarray:
    """Boolean per row: every value finite (computed in chunks, so memory stays small)."""
    array = np.asarray(array)
    if array.ndim == 1:
        return np.isfinite(array)
    ok = np.empty(len(array), dtype=bool)
    for start in range(0, len(array), _CHUNK_ROWS):
        chunk = array[start:start + _CHUNK_ROWS]
        ok[start:start + _CHUNK_ROWS] = np.isfinite(chunk).reshape(len(chunk), -1).all(axis=1)
    return ok


def valid_window_ends(valid_rows: np.ndarray, window: int, segments: np.ndarray | None = None,
                      labels: np.ndarray | None = None) -> np.ndarray:
    """End rows ``t`` (int64, ascending) of the usable windows of length *window*.

    *valid_rows*: bool per row (features finite); *segments*: segment id per row (windows never
    span two); *labels*: a window is usable only when the label of its end row is finite.
    """
    window = _check_window(window)
    valid_rows = np.asarray(valid_rows, dtype=bool)
    n = len(valid_rows)
    if n < window:
        return np.empty(0, dtype=np.int64)
    bad = np.concatenate(([0], np.cumsum(~valid_rows, dtype=np.int64)))
    ends = np.arange(window - 1, n)
    ok = bad[ends + 1] - bad[ends + 1 - window] == 0
    if segments is not None:
        segments = np.asarray(segments)
        if len(segments) != n:
            raise ValueError(f"segments has {len(segments)} rows, features have {n}")
        ok &= segments[ends] == segments[ends - window + 1]
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) != n:
            raise ValueError(f"labels has {len(labels)} rows, features have {n}")
        ok &= np.isfinite(labels[ends])
    return ends[ok].astype(np.int64)


def gather_windows(array: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Copy of the windows ending at *ends*: ``(len(ends), window, ...)`` (one batch, not the data set)."""
    window = _check_window(window)
    ends = np.asarray(ends, dtype=np.int64)
    array = np.asarray(array)
    if len(ends) and (ends.min() < window - 1 or ends.max() >= len(array)):
        raise ValueError(f"window end rows must be within [{window - 1}, {len(array) - 1}]")
    offsets = np.arange(1 - window, 1, dtype=np.int64)
    return array[ends[:, None] + offsets]

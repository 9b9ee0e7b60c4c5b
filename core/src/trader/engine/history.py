"""The recent candles (and their feature rows) that ``trader run`` shows a strategy at each step.

Kept in preallocated numpy arrays; :meth:`CandleWindow.frames` builds the two frames of a
:class:`~trader.types.SignalRequest` (candles with a RangeIndex, and the feature frame
aligned row for row, or ``None``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trader.types import Candle

__all__ = ["CandleWindow"]

_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


class CandleWindow:
    """The last ``size`` candles; with ``feature_names``, their feature rows too."""

    def __init__(self, size: int, feature_names: Sequence[str] = ()) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self.size = size
        self.feature_names = list(feature_names)
        capacity = 2 * size
        self._ts = np.empty(capacity, dtype=np.int64)
        self._values = np.empty((capacity, 5), dtype=np.float64)
        self._features = np.empty((capacity, len(self.feature_names)), dtype=np.float64) if self.feature_names else None
        self._n = 0
        self._columns: tuple[Any, Any] | None = None

    def __len__(self) -> int:
        return min(self._n, self.size)

    def _make_room(self) -> None:
        if self._n == len(self._ts):
            keep = self.size - 1
            self._ts[:keep] = self._ts[self._n - keep : self._n]
            self._values[:keep] = self._values[self._n - keep : self._n]
            if self._features is not None:
                self._features[:keep] = self._features[self._n - keep : self._n]
            self._n = keep

    def append(self, candle: Candle, features: np.ndarray | None = None) -> None:
        self._make_room()
        i = self._n
        self._ts[i] = candle.timestamp
        self._values[i] = (candle.open, candle.high, candle.low, candle.close, candle.volume)
        if self._features is not None:
            self._features[i] = features if features is not None else np.nan
        self._n = i + 1

    def extend(self, candles: Any, features: Any = None) -> None:
        """Load the tail of a candle frame (and its feature frame or array) at once."""
        n = len(candles)
        if n == 0:
            return
        take = min(n, self.size)
        self._ts[:take] = candles["timestamp"].to_numpy(dtype=np.int64)[n - take :]
        self._values[:take] = candles[list(_COLUMNS[1:])].to_numpy(dtype=np.float64)[n - take :]
        if self._features is not None:
            if features is None:
                self._features[:take] = np.nan
            else:
                values = features.to_numpy(dtype=np.float64) if hasattr(features, "to_numpy") else np.asarray(features, dtype=np.float64)
                self._features[:take] = values[len(values) - take :]
        self._n = take

    def frames(self) -> tuple[Any, Any]:
        """``(candles, features)`` of the window, oldest first, with a RangeIndex.

        Fresh frames each call (a strategy may keep or change them), each built from one copy
        of its numpy blocks with column indexes made once: the same columns, dtypes, values
        and block layout as frames built column by column, at a fraction of the cost.
        """
        end = self._n
        start = max(0, end - self.size)
        if self._columns is None:
            self._columns = _frame_columns(self.feature_names)
        return _window_frames(self._columns, self._ts[start:end], self._values[start:end],
                              None if self._features is None else self._features[start:end])


def _frame_columns(feature_names: Sequence[str]) -> tuple[Any, ...]:
    """The column indexes (made once per window) and the block builder pandas offers, if any."""
    import pandas as pd

    try:  # pandas >= 3: frames straight from their blocks, without the constructor's checks
        from pandas.api.internals import create_dataframe_from_blocks
    except ImportError:  # pragma: no cover - pandas 2.x
        create_dataframe_from_blocks = None
    names = list(feature_names)
    return pd.Index(_COLUMNS), pd.Index(_COLUMNS[1:]), pd.Index(names), np.arange(len(names)), create_dataframe_from_blocks


_PRICE_PLACEMENT = np.arange(1, len(_COLUMNS))
_TIMESTAMP_PLACEMENT = np.zeros(1, dtype=np.intp)


def _window_frames(columns: tuple[Any, ...], ts: np.ndarray, values: np.ndarray, features: np.ndarray | None) -> tuple[Any, Any]:
    """Fresh candle and feature frames over copies of ``ts`` (n), ``values`` (n x 5), ``features`` (n x F)."""
    import pandas as pd

    all_columns, price_columns, feature_columns, feature_placement, from_blocks = columns
    n = len(ts)
    if from_blocks is None:
        candles = pd.DataFrame(values.copy(), columns=price_columns, copy=False)
        candles.insert(0, "timestamp", ts.copy())
        frame = None if features is None else pd.DataFrame(features.copy(), columns=feature_columns, copy=False)
        return candles, frame
    # blocks are (columns x rows): the transposes of row-major copies, as pd.DataFrame(array) stores them
    candles = from_blocks([(values.copy().T, _PRICE_PLACEMENT), (ts.copy().reshape(1, n), _TIMESTAMP_PLACEMENT)],
                          pd.RangeIndex(n), all_columns)
    frame = None
    if features is not None:
        frame = from_blocks([(features.copy().T, feature_placement)], pd.RangeIndex(n), feature_columns)
    return candles, frame

"""``CandleWindow.frames``: what a strategy receives each candle (columns, dtypes, values, fresh copies)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trader.engine.history import CandleWindow
from trader.types import Candle

NAMES = [f"feature_{i}" for i in range(7)]


def _reference(candles: list[Candle], rows: list[np.ndarray], size: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    tail, features = candles[-size:], rows[-size:]
    frame = pd.DataFrame({
        "timestamp": np.array([c.timestamp for c in tail], dtype=np.int64),
        "open": [c.open for c in tail], "high": [c.high for c in tail], "low": [c.low for c in tail],
        "close": [c.close for c in tail], "volume": [c.volume for c in tail],
    })
    return frame, pd.DataFrame(np.array(features, dtype=np.float64), columns=NAMES)


@pytest.mark.parametrize("size", [1, 3, 50])
def test_frames_hold_the_last_candles_and_feature_rows(size):
    rng = np.random.default_rng(size)
    window = CandleWindow(size, NAMES)
    candles, rows = [], []
    for i in range(3 * size + 2):
        o, c = (float(v) for v in rng.uniform(1, 2, 2))
        candle = Candle(1_704_067_200_000 + i * 3_600_000, o, max(o, c) + 0.1, min(o, c) - 0.1, c, float(i))
        row = rng.normal(size=len(NAMES))
        candles.append(candle)
        rows.append(row)
        window.append(candle, row)
        got_candles, got_features = window.frames()
        want_candles, want_features = _reference(candles, rows, size)
        pd.testing.assert_frame_equal(got_candles, want_candles, check_exact=True)
        pd.testing.assert_frame_equal(got_features, want_features, check_exact=True)
        assert isinstance(got_candles.index, pd.RangeIndex) and isinstance(got_features.index, pd.RangeIndex)


def test_frames_are_fresh_copies_a_strategy_may_keep_or_change():
    window = CandleWindow(4, NAMES)
    for i in range(4):
        window.append(Candle(1_704_067_200_000 + i * 3_600_000, 1.0, 2.0, 0.5, 1.5, 10.0), np.full(len(NAMES), float(i)))
    kept_candles, kept_features = window.frames()
    kept_candles.loc[0, "close"] = -1.0
    kept_features.iloc[0, 0] = -1.0
    again_candles, again_features = window.frames()
    assert again_candles["close"].iloc[0] == 1.5 and again_features.iloc[0, 0] == 0.0  # the window is not changed
    window.append(Candle(1_704_067_200_000 + 9 * 3_600_000, 1.0, 8.0, 0.5, 7.0, 10.0), np.full(len(NAMES), 9.0))
    candles, features = window.frames()
    assert candles["close"].tolist() == [1.5, 1.5, 1.5, 7.0] and features.iloc[:, 0].tolist() == [1.0, 2.0, 3.0, 9.0]
    assert kept_candles["close"].tolist() == [-1.0, 1.5, 1.5, 1.5]  # an earlier frame is not changed by the window


def test_windows_without_features_give_none():
    window = CandleWindow(2)
    window.append(Candle(1_704_067_200_000, 1.0, 2.0, 0.5, 1.5, 10.0))
    candles, features = window.frames()
    assert features is None and list(candles.columns) == ["timestamp", "open", "high", "low", "close", "volume"]


def test_frames_from_blocks_equal_frames_from_the_constructor():
    """pandas >= 3 builds the frames from their blocks; pandas 2 through the constructor: the same frames."""
    from trader.engine.history import _frame_columns, _window_frames

    rng = np.random.default_rng(7)
    ts = np.arange(5, dtype=np.int64) * 3_600_000
    values, features = rng.uniform(1, 2, (5, 5)), rng.normal(size=(5, len(NAMES)))
    columns = _frame_columns(NAMES)
    assert columns[-1] is not None  # this environment has the block builder
    fast = _window_frames(columns, ts, values, features)
    plain = _window_frames((*columns[:-1], None), ts, values, features)
    for got, want in zip(fast, plain, strict=True):
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert isinstance(got.index, pd.RangeIndex)
    array = fast[1].to_numpy()
    assert array.flags.c_contiguous and np.shares_memory(array, fast[1].to_numpy())  # one block, read as a view
    assert not np.shares_memory(array, features)  # a copy of the window's rows
    fast[0].loc[0, "close"] = -1.0
    assert values[0, 3] != -1.0

"""Incremental updates: one candle at a time equals the batch computation, over thousands of steps."""

from __future__ import annotations

import numpy as np
import pytest
from features_data import flat_volume_candles, load_real

from trader.errors import DataError
from trader.features import FeatureEngineer
from trader.types import Candle


def replay(fe: FeatureEngineer, df, warm_rows: int, timeframe: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows from warm + update, batch rows) for every candle after the first *warm_rows*."""
    inc = fe.incremental(timeframe=timeframe)
    rows = [inc.warm(df.iloc[:warm_rows])] if warm_rows else []
    records = df[["timestamp", "open", "high", "low", "close", "volume"]].to_numpy(dtype=object)
    for record in records[warm_rows:]:
        rows.append(inc.update(tuple(record)))
    start = max(warm_rows - 1, 0)
    return np.array(rows), fe.transform(df).to_numpy()[start:]


def assert_rows_match(live: np.ndarray, batch: np.ndarray, names: list[str]) -> None:
    assert live.shape == batch.shape
    np.testing.assert_array_equal(np.isnan(live), np.isnan(batch))
    diff = np.abs(np.nan_to_num(live) - np.nan_to_num(batch))
    tol = 1e-9 + 1e-9 * np.abs(np.nan_to_num(batch))
    if (diff > tol).any():
        row, col = np.argwhere(diff > tol)[0]
        pytest.fail(f"{names[col]} differs at step {row}: live {live[row, col]!r}, batch {batch[row, col]!r}")


def test_updates_from_scratch_equal_batch_over_thousands_of_steps(candles):
    fe = FeatureEngineer()
    live, batch = replay(fe, candles.iloc[:3000], warm_rows=0, timeframe="1h")
    assert len(live) == 3000
    assert np.isfinite(live[fe.warmup_bars:]).all() and np.isnan(live[: fe.warmup_bars]).all()
    assert_rows_match(live, batch, fe.get_feature_names())


def test_warm_then_update_equals_batch_bit_for_bit_across_gaps(gappy_candles):
    fe = FeatureEngineer()
    live, batch = replay(fe, gappy_candles, warm_rows=400)
    assert len(live) > 5000
    np.testing.assert_array_equal(live, batch)  # same kernels, same running sums: bitwise


def test_updates_through_flat_zero_volume_stretches():
    fe = FeatureEngineer(windows=(5, 10, 20))
    live, batch = replay(fe, flat_volume_candles(n=800), warm_rows=0, timeframe="1m")
    assert_rows_match(live, batch, fe.get_feature_names())


def test_updates_on_real_candles_with_hundreds_of_gaps():
    df, timeframe = load_real("UNITTEST_BTC-1m.feather")
    df = df.iloc[:6000]  # 446 holes, 4 of them long enough to split the series
    fe = FeatureEngineer(timeframe=timeframe)
    live, batch = replay(fe, df, warm_rows=200)
    assert np.isfinite(live).all(axis=1).sum() > 5_000
    assert_rows_match(live, batch, fe.get_feature_names())


def test_update_accepts_candles_mappings_series_and_tuples(candles):
    fe = FeatureEngineer(windows=(5, 10))
    df = candles.iloc[:40]
    expected = fe.transform(df).to_numpy()[-1]
    forms = [
        lambda r: Candle(**{k: (int(v) if k == "timestamp" else float(v)) for k, v in r.items()}),
        lambda r: dict(r),
        lambda r: r,
        lambda r: tuple(r.values),
    ]
    for form in forms:
        inc = fe.incremental(timeframe="1h")
        for _, row in df.iterrows():
            out = inc.update(form(row))
        np.testing.assert_allclose(out, expected, rtol=1e-12)
        assert inc.is_warm and out.dtype == np.float64 and out.shape == (fe.n_features,)


def test_update_refuses_out_of_order_and_invalid_candles(candles):
    fe = FeatureEngineer()
    inc = fe.incremental()
    inc.warm(candles.iloc[:100])
    last = candles.iloc[99]
    with pytest.raises(DataError, match="is not after the previous candle"):
        inc.update(last)
    bad = candles.iloc[100].copy()
    bad["close"] = 0.0
    with pytest.raises(DataError, match="close must be finite and > 0"):
        inc.update(bad)
    with pytest.raises(DataError, match="a candle needs"):
        inc.update({"timestamp": 1})
    # nothing was consumed by the refused updates
    np.testing.assert_array_equal(inc.update(candles.iloc[100]), fe.transform(candles.iloc[:101]).to_numpy()[-1])


def test_gap_detection_needs_the_bar_length(candles):
    inc = FeatureEngineer().incremental()
    inc.update(candles.iloc[0])
    with pytest.raises(DataError, match="timeframe"):
        inc.update(candles.iloc[1])


def test_a_long_gap_restarts_the_warm_up(candles):
    fe = FeatureEngineer(windows=(5, 10))
    inc = fe.incremental(timeframe="1h")
    inc.warm(candles.iloc[:200])
    assert inc.is_warm
    after_gap = candles.iloc[260]  # 59 bars missing: more than max_fill_bars
    assert np.isnan(inc.update(after_gap)).all() and not inc.is_warm
    for i in range(261, 261 + fe.warmup_bars):
        row = inc.update(candles.iloc[i])
    assert np.isfinite(row).all()

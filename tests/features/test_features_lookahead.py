"""No look-ahead, proven: truncation invariance for every feature, on synthetic and on real candles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from features_data import REAL_FILES, flat_volume_candles, load_real

from trader.features import FeatureEngineer


def assert_truncation_invariant(fe: FeatureEngineer, df: pd.DataFrame, n_cuts: int, seed: int) -> int:
    """For random cut points t, row t of transform(df[:t+1]) equals row t of transform(df), feature by feature.

    Returns how many (row, feature) values were finite, so callers can check the test was not vacuous.
    """
    full = fe.transform(df).to_numpy()
    names = fe.get_feature_names()
    rng = np.random.default_rng(seed)
    n = len(df)
    cuts = set(rng.integers(0, n, size=n_cuts).tolist())
    cuts |= {fe.warmup_bars, fe.warmup_bars + 1, n - 1}  # the first valid rows and the very last row
    checked = 0
    for t in sorted(c for c in cuts if c < n):
        row = fe.transform(df.iloc[: t + 1]).to_numpy()[t]
        same = (row == full[t]) | (np.isnan(row) & np.isnan(full[t]))
        if not same.all():
            bad = [f"{names[i]}: {row[i]!r} != {full[t, i]!r}" for i in np.flatnonzero(~same)[:5]]
            pytest.fail(f"look-ahead at row {t}: " + "; ".join(bad))
        checked += int(np.isfinite(row).sum())
    return checked


def test_every_feature_is_truncation_invariant_on_synthetic_candles(candles):
    fe = FeatureEngineer()
    checked = assert_truncation_invariant(fe, candles, n_cuts=40, seed=1)
    assert checked >= 40 * 86 * 0.9


def test_truncation_invariance_holds_across_gaps_and_flat_stretches(gappy_candles):
    fe = FeatureEngineer(timeframe="1m")
    assert assert_truncation_invariant(fe, gappy_candles, n_cuts=40, seed=2) > 0
    flat = flat_volume_candles(n=600)
    assert assert_truncation_invariant(FeatureEngineer(windows=(5, 12)), flat, n_cuts=40, seed=3) > 0


def test_changing_the_future_never_changes_past_features(candles):
    """Scramble every candle after row t: rows up to t are bit for bit unchanged."""
    fe = FeatureEngineer()
    df = candles.iloc[:3000]
    full = fe.transform(df).to_numpy()
    rng = np.random.default_rng(4)
    for t in rng.integers(fe.warmup_bars, len(df) - 2, size=5):
        future = df.copy()
        tail = future.index > t
        for col in ("open", "high", "low", "close"):
            future.loc[tail, col] *= rng.uniform(0.5, 2.0, size=int(tail.sum()))
        future.loc[tail, "high"] = future.loc[tail, ["open", "high", "low", "close"]].max(axis=1)
        future.loc[tail, "low"] = future.loc[tail, ["open", "high", "low", "close"]].min(axis=1)
        future.loc[tail, "volume"] = rng.uniform(0, 1e6, size=int(tail.sum()))
        changed = fe.transform(future).to_numpy()
        np.testing.assert_array_equal(changed[: t + 1], full[: t + 1])
        assert not np.array_equal(changed[t + 1:], full[t + 1:])


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_every_feature_is_truncation_invariant_on_real_candles(name):
    df, timeframe = load_real(name)
    fe = FeatureEngineer()
    checked = assert_truncation_invariant(fe, df, n_cuts=25, seed=5)
    assert checked > 0
    # the same holds with the bar length given explicitly (as the run loop does)
    assert assert_truncation_invariant(FeatureEngineer(timeframe=timeframe), df, n_cuts=5, seed=6) > 0


def test_the_truncation_check_catches_a_leaking_feature(candles, monkeypatch):
    """Guard against a vacuous check: a feature that peeks one bar ahead is reported by name."""
    from trader.features import engineer

    honest = engineer.compute_matrix

    def leaky(*args, **kwargs):
        out = honest(*args, **kwargs)
        out[19, :-1] = out[19, 1:]  # row 19 is sma_ratio_10: now it reads the next bar
        return out

    monkeypatch.setattr(engineer, "compute_matrix", leaky)
    with pytest.raises(pytest.fail.Exception, match="look-ahead at row .*sma_ratio_10"):
        assert_truncation_invariant(FeatureEngineer(), candles.iloc[:500], n_cuts=10, seed=7)

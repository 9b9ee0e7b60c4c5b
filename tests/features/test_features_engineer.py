"""FeatureEngineer: names, count formula, warm-up, scale-freeness, gap policy, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from features_data import flat_volume_candles
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.errors import DataError
from trader.features import FeatureEngineer, feature_count, feature_names
from trader.features.specs import BAR_FEATURES, WINDOW_FEATURES


def test_default_feature_set_has_86_named_features_and_documented_formula():
    fe = FeatureEngineer()
    names = fe.get_feature_names()
    assert fe.windows == (5, 10, 20, 50)
    assert len(names) == fe.n_features == 86 == 18 * 4 + 14
    assert len(set(names)) == 86
    assert names[:3] == ["ret_1", "ret_1_lag1", "ret_1_lag2"]
    assert names[14:18] == ["ret_5", "ret_10", "ret_20", "ret_50"]
    assert fe.warmup_bars == 50


@pytest.mark.parametrize("windows", [(3,), (2, 7), (4, 8, 16, 32, 64, 128)])
def test_feature_count_follows_the_formula_for_any_windows(windows, candles):
    fe = FeatureEngineer(windows=list(windows))
    expected = len(WINDOW_FEATURES) * len(windows) + len(BAR_FEATURES)
    assert fe.n_features == feature_count(len(windows)) == expected
    frame = fe.transform(candles.iloc[:400])
    assert list(frame.columns) == fe.get_feature_names() == feature_names(tuple(windows))
    assert fe.warmup_bars == max(3, max(windows))


def test_windows_are_sorted_and_validated():
    assert FeatureEngineer(windows=[50, 5, 20, 10]).windows == (5, 10, 20, 50)
    for bad in ([], [1], [5, 5], [2.5], ["10"]):
        with pytest.raises(ValueError, match="window"):
            FeatureEngineer(windows=bad)
    with pytest.raises(ValueError, match="horizon"):
        FeatureEngineer(horizon=0)
    with pytest.raises(ValueError, match="threshold"):
        FeatureEngineer(threshold=-0.1)
    with pytest.raises(ValueError, match="timeframe"):
        FeatureEngineer(timeframe="7x")


def test_transform_is_indexed_like_candles_and_nan_only_during_warm_up(candles):
    df = candles.iloc[:1000].copy()
    df.index = pd.RangeIndex(5000, 6000)
    fe = FeatureEngineer()
    frame = fe.transform(df)
    assert frame.index.equals(df.index)
    assert list(frame.columns) == fe.get_feature_names()
    assert (frame.dtypes == np.float64).all()
    values = frame.to_numpy()
    assert np.isnan(values[: fe.warmup_bars]).all()
    assert np.isfinite(values[fe.warmup_bars:]).all()


def test_include_target_appends_only_the_target(candles):
    df = candles.iloc[:800]
    plain = FeatureEngineer().transform(df)
    with_target = FeatureEngineer(include_target=True, horizon=3).transform(df)
    assert list(with_target.columns) == [*plain.columns, "target"]
    assert FeatureEngineer(include_target=True).get_feature_names(exclude_target=False)[-1] == "target"
    pd.testing.assert_frame_equal(with_target.drop(columns="target"), plain)
    assert with_target["target"].iloc[-3:].isna().all()
    assert set(with_target["target"].iloc[:-3].unique()) == {0.0, 1.0}


def test_features_are_scale_free(candles):
    """Prices x 1000 and volume x 37 give the same features: a model transfers across price levels."""
    df = candles.iloc[:2000]
    scaled = df.copy()
    scaled[["open", "high", "low", "close"]] *= 1000.0
    scaled["volume"] *= 37.0
    fe = FeatureEngineer()
    a, b = fe.transform(df).to_numpy(), fe.transform(scaled).to_numpy()
    np.testing.assert_allclose(b, a, rtol=1e-7, atol=1e-9, equal_nan=True)


def test_flat_zero_volume_stretches_give_finite_neutral_values():
    df = flat_volume_candles()
    fe = FeatureEngineer(windows=(5, 10, 20))
    frame = fe.transform(df)
    values = frame.iloc[fe.warmup_bars:]
    assert np.isfinite(values.to_numpy()).all()
    # inside a 30-bar flat, zero-volume stretch the 5- and 10-bar windows see no movement at all
    flat = frame.loc[(df["volume"] == 0) & (df["volume"].shift(10) == 0) & (df.index > 70)]
    assert len(flat) > 0
    for name, neutral in (("rvol_10", 0.0), ("rsi_10", 0.0), ("volume_ratio_10", 1.0), ("obv_ratio_10", 0.0),
                          ("stoch_5", 0.0), ("range_5", 0.0), ("atr_5", 0.0), ("efficiency_10", 0.0)):
        assert (flat[name] == neutral).all(), name


def test_small_gaps_are_filled_with_flat_bars_and_large_gaps_restart_warm_up(gappy_candles):
    fe = FeatureEngineer(timeframe="1m")
    frame = fe.transform(gappy_candles)
    assert len(frame) == len(gappy_candles)
    seg = fe.segments(gappy_candles)
    assert seg.max() == 2  # the 12- and 80-bar holes split; the 1-, 2- and 5-bar holes are filled
    values = frame.to_numpy()
    for s in range(3):
        rows = np.flatnonzero(seg == s)
        assert np.isnan(values[rows[: fe.warmup_bars]]).all()
        assert np.isfinite(values[rows[fe.warmup_bars:]]).all()

    # a filled gap equals explicitly inserting flat zero-volume bars
    ts = gappy_candles["timestamp"].to_numpy()
    step = 60_000
    full_ts = np.arange(ts[0], ts[-1] + step, step)
    explicit = gappy_candles.set_index("timestamp").reindex(full_ts)
    missing = explicit["close"].isna()
    explicit["close"] = explicit["close"].ffill()
    for col in ("open", "high", "low"):
        explicit[col] = explicit[col].fillna(explicit["close"])
    explicit["volume"] = explicit["volume"].fillna(0.0)
    explicit = explicit.reset_index().rename(columns={"index": "timestamp"})
    first_split = gappy_candles.index[seg == 1][0]
    upto = int(np.searchsorted(full_ts, ts[first_split]))
    expected = fe.transform(explicit.iloc[:upto])[~missing.to_numpy()[:upto]].to_numpy()
    np.testing.assert_array_equal(values[:first_split], expected)


def test_gap_policy_respects_max_fill_bars(gappy_candles):
    strict = FeatureEngineer(timeframe="1m", max_fill_bars=0)
    assert strict.segments(gappy_candles).max() == 5  # every hole splits
    lenient = FeatureEngineer(timeframe="1m", max_fill_bars=100)
    assert lenient.segments(gappy_candles).max() == 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.drop(columns="volume"), r"lacks column\(s\) volume"),
        (lambda d: d.assign(close=d["close"].where(d.index != 17, -1.0)), "row 17: close must be finite and > 0"),
        (lambda d: d.assign(high=d["high"].where(d.index != 3, np.nan)), "row 3: high"),
        (lambda d: d.assign(volume=d["volume"].where(d.index != 9, -5.0)), "row 9: volume"),
        (lambda d: d.iloc[[0, 2, 1, 3]], "row 2 .* is not after row 1"),
        (lambda d: d.assign(timestamp=d["timestamp"].astype(float)), "integer milliseconds"),
    ],
)
def test_bad_candles_are_refused_with_one_line_naming_the_problem(candles, mutate, message):
    with pytest.raises(DataError, match=message) as info:
        FeatureEngineer().transform(mutate(candles.iloc[:100].copy()))
    assert "\n" not in str(info.value)


def test_empty_and_short_frames(candles):
    fe = FeatureEngineer()
    empty = fe.transform(candles.iloc[:0])
    assert empty.shape == (0, 86)
    short = fe.transform(candles.iloc[:10])
    assert short.shape == (10, 86) and short.isna().all().all()


def test_as_dict_round_trip_and_refusal_of_foreign_feature_lists():
    fe = FeatureEngineer(windows=(3, 9), horizon=4, threshold=0.01, timeframe="5m", max_fill_bars=2)
    data = fe.as_dict()
    assert FeatureEngineer.from_dict(data) == fe
    assert data["feature_names"] == fe.get_feature_names()
    tampered = dict(data, feature_names=list(reversed(data["feature_names"])))
    with pytest.raises(ValueError, match="feature names differ"):
        FeatureEngineer.from_dict(tampered)
    with pytest.raises(ValueError, match="version"):
        FeatureEngineer.from_dict(dict(data, version=99))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-3, 300), min_size=0, max_size=6))
def test_window_lists_are_accepted_exactly_when_valid(windows):
    valid = len(windows) > 0 and len(set(windows)) == len(windows) and min(windows) >= 2
    if valid:
        fe = FeatureEngineer(windows=windows)
        assert fe.windows == tuple(sorted(windows))
        assert fe.n_features == 18 * len(windows) + 14 == len(fe.get_feature_names())
        assert fe.warmup_bars == max(3, *windows)
    else:
        with pytest.raises(ValueError, match="window"):
            FeatureEngineer(windows=windows)

"""DataPreprocessor: chronological splits purged at each boundary, scaler fit on training rows only."""

from __future__ import annotations

import numpy as np
import pytest

from trader.errors import DataError
from trader.features import DataPreprocessor, DataSplit, FeatureEngineer, FeatureScaler


@pytest.fixture(scope="module")
def labelled(candles):
    return FeatureEngineer(include_target=True, horizon=3).transform(candles.iloc[:3000])


def test_parts_are_chronological_and_purged_by_the_horizon(labelled):
    prep = DataPreprocessor(horizon=3, embargo=2, window=1).prepare(labelled)
    split = prep.split
    assert (split.val_start, split.test_start) == (2100, 2550)
    train, val, test = prep.ends["train"], prep.ends["val"], prep.ends["test"]
    assert train.max() < val.min() < val.max() < test.min()
    # no training label reads a validation close: t + horizon < val_start
    assert train.max() + 3 < split.val_start and val.max() + 3 < split.test_start
    assert val.min() >= split.val_start + 2 and test.min() >= split.test_start + 2  # embargo
    assert train.max() == split.val_start - 4
    # every sample row has finite features and a label
    for part in ("train", "val", "test"):
        x, y = prep.arrays(part)
        assert np.isfinite(x).all() and np.isfinite(y).all()
        assert x.dtype == np.float32 and x.shape[1] == 86


def test_scaler_is_fit_on_training_rows_only(labelled):
    shifted = labelled.copy()
    shifted.iloc[2100:, :86] += 1000.0  # validation and test rows live elsewhere: must not move the scaler
    prep = DataPreprocessor(horizon=3).prepare(shifted)
    expected = FeatureScaler().fit(labelled.iloc[: prep.split.bounds("train")[1], :86])
    np.testing.assert_allclose(prep.scaler.center, expected.center, rtol=1e-12)
    np.testing.assert_allclose(prep.scaler.scale, expected.scale, rtol=1e-12)
    assert prep.values[prep.ends["test"]].mean() > 100  # scaled with the train scaler, not refit


def test_windows_respect_warm_up_labels_and_segments(labelled):
    segments = np.zeros(len(labelled), dtype=int)
    segments[1200:] = 1
    prep = DataPreprocessor(horizon=3, window=40).prepare(labelled, segments=segments)
    ends = np.concatenate(list(prep.ends.values()))
    assert ends.min() == 50 + 39  # the first window lies after the 50-bar warm-up
    assert not ((ends >= 1200) & (ends < 1200 + 39)).any()  # no window spans the segment boundary
    x, y = prep.arrays("val")
    assert x.shape == (len(prep.ends["val"]), 40, 86)
    np.testing.assert_array_equal(x[0], prep.values[prep.ends["val"][0] - 39: prep.ends["val"][0] + 1])


def test_split_by_timestamps(candles, labelled):
    ts = candles["timestamp"].to_numpy()[:3000]
    pp = DataPreprocessor(val_start=int(ts[1000]), test_start=int(ts[2000]) + 1, horizon=3)
    split = pp.split(3000, ts)
    assert (split.val_start, split.test_start) == (1000, 2001)
    prep = pp.prepare(labelled, timestamps=ts)
    assert prep.ends["train"].max() < 1000 - 3
    with pytest.raises(DataError, match="needs the candle timestamps"):
        pp.split(3000)


def test_split_bounds_and_manifest_dict():
    split = DataSplit(n_rows=100, val_start=70, test_start=85, purge=5, embargo=1)
    assert split.bounds("train") == (0, 65) and split.bounds("val") == (71, 80) and split.bounds("test") == (86, 100)
    assert split.as_dict()["val_rows"] == [71, 80]
    with pytest.raises(ValueError):
        DataSplit(n_rows=100, val_start=90, test_start=80)


@pytest.mark.parametrize("kwargs", [{"train_fraction": 1.2}, {"train_fraction": 0.9, "val_fraction": 0.2},
                                    {"val_start": 5}, {"scaler_kind": "minmax"}, {"window": 0},
                                    {"horizon": -1}, {"val_start": 10, "test_start": 5}])
def test_invalid_preprocessor_settings(kwargs):
    with pytest.raises(ValueError):
        DataPreprocessor(**kwargs)


def test_labels_must_match_the_rows(labelled):
    with pytest.raises(DataError, match="one value per feature row"):
        DataPreprocessor().prepare(labelled.drop(columns="target"), labels=np.zeros(10))

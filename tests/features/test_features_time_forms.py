"""Candles keep their time in a timestamp column, a date column (freqtrade) or a UTC DatetimeIndex:
features and labels are the same for each, with rows aligned to the input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trader.errors import DataError
from trader.features import FeatureEngineer, LabelDefinition


def _forms(candles: pd.DataFrame) -> dict[str, pd.DataFrame]:
    dates = pd.to_datetime(candles["timestamp"], unit="ms", utc=True)
    date_column = candles.drop(columns="timestamp")
    date_column.insert(0, "date", dates)
    indexed = candles.drop(columns="timestamp").set_index(pd.DatetimeIndex(dates.dt.tz_convert("Asia/Tokyo")))
    return {"timestamp": candles, "date": date_column, "index": indexed}


def test_features_and_labels_are_the_same_for_every_time_form_and_aligned_to_the_input(gappy_candles):
    candles = gappy_candles.iloc[:3500]
    engineer = FeatureEngineer(windows=(5, 20), timeframe="1m")
    reference = engineer.transform(candles)
    labels = LabelDefinition().compute(candles, "1m")
    assert labels.isna().sum() > 1  # the gaps matter: a label never reaches over one
    for name, frame in _forms(candles).items():
        features = engineer.transform(frame)
        assert features.index.equals(frame.index), name
        np.testing.assert_array_equal(features.to_numpy(), reference.to_numpy(), err_msg=name)
        np.testing.assert_array_equal(LabelDefinition().compute(frame, "1m").to_numpy(), labels.to_numpy(), err_msg=name)


def test_a_time_without_a_zone_or_no_time_at_all_is_one_clear_line(candles):
    naive = candles.drop(columns="timestamp").set_index(pd.to_datetime(candles["timestamp"], unit="ms"))
    with pytest.raises(DataError, match=r"without a time zone; make them UTC first"):
        FeatureEngineer().transform(naive)
    with pytest.raises(DataError, match=r"has no time: it needs a timestamp column"):
        FeatureEngineer().transform(candles.drop(columns="timestamp"))

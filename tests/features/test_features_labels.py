"""Labels: forward return direction against a fee-aware threshold; the only thing that looks forward."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.features import DEFAULT_THRESHOLD, FeatureEngineer, LabelDefinition, make_labels, round_trip_threshold


def frame(closes, step=3_600_000, missing=()):
    n = len(closes)
    ts = [i * step for i in range(n + len(missing)) if i not in set(missing)][:n]
    c = np.asarray(closes, dtype=float)
    return pd.DataFrame({"timestamp": np.asarray(ts, dtype=np.int64), "open": c, "high": c, "low": c, "close": c,
                         "volume": np.ones(n)})


def test_binary_label_is_up_beyond_the_round_trip_fee():
    closes = [100.0, 100.1, 100.5, 100.2, 99.0, 99.5]
    labels = make_labels(frame(closes), horizon=1)  # default: 0.1 % fee each way
    assert DEFAULT_THRESHOLD == pytest.approx(-2 * math.log(0.999))
    # 100 -> 100.1 is +0.1 %: not enough to pay 0.2 % of fees; 100.1 -> 100.5 is +0.4 %
    assert labels.tolist()[:5] == [0.0, 1.0, 0.0, 0.0, 1.0]
    assert math.isnan(labels.iloc[-1])
    assert labels.name == "target"


def test_horizon_and_threshold():
    closes = [100.0, 101.0, 102.0, 101.0, 100.0, 103.0]
    labels = LabelDefinition(horizon=2, threshold=0.015).compute(frame(closes))
    # ln(102/100) = 0.0198 > 0.015; ln(101/101) = 0; ln(100/102) < 0; ln(103/101) = 0.0196
    assert labels.tolist()[:4] == [1.0, 0.0, 0.0, 1.0]
    assert labels.iloc[-2:].isna().all()
    zero = LabelDefinition(horizon=1, threshold=0.0).compute(frame(closes))
    assert zero.tolist()[:5] == [1.0, 1.0, 0.0, 0.0, 1.0]


def test_ternary_labels():
    closes = [100.0, 103.0, 100.0, 100.5, 104.0]
    labels = LabelDefinition(threshold=0.02, kind="ternary").compute(frame(closes))
    assert labels.tolist()[:4] == [1.0, -1.0, 0.0, 1.0]


def test_no_label_when_the_horizon_spans_missing_bars():
    closes = [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]
    labels = LabelDefinition(horizon=1, threshold=0.0).compute(frame(closes, missing=(3,)), timeframe="1h")
    # rows 0..5 have timestamps 0,1,2,4,5,6 hours: the label of row 2 would span the missing hour 3
    assert np.isnan(labels.iloc[2]) and labels.iloc[:2].tolist() == [1.0, 1.0] and labels.iloc[3] == 1.0


def test_a_future_close_changes_only_the_labels_that_read_it():
    rng = np.random.default_rng(0)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200)))
    base = make_labels(frame(closes), horizon=3, threshold=0.0).to_numpy()
    bumped = closes.copy()
    bumped[100] *= 1.5
    changed = make_labels(frame(bumped), horizon=3, threshold=0.0).to_numpy()
    differs = np.flatnonzero(~((base == changed) | (np.isnan(base) & np.isnan(changed))))
    assert set(differs) <= {97, 100} and 97 in differs


def test_fee_aware_definition_and_manifest_round_trip():
    d = LabelDefinition.fee_aware(fee_rate=0.00075, horizon=4)
    assert d.threshold == pytest.approx(round_trip_threshold(0.00075))
    assert LabelDefinition.from_dict(d.as_dict()) == d
    assert d.as_dict() == {"kind": "binary", "horizon": 4, "threshold": d.threshold, "return": "log"}
    fe = FeatureEngineer(horizon=4, threshold=d.threshold)
    assert fe.label_definition == d


@pytest.mark.parametrize("kwargs", [{"horizon": 0}, {"horizon": 1.5}, {"threshold": -0.01},
                                    {"threshold": float("nan")}, {"kind": "up"}])
def test_invalid_label_definitions_cannot_be_built(kwargs):
    with pytest.raises(ValueError):
        LabelDefinition(**kwargs)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.0, 1e6, allow_nan=False), min_size=2, max_size=40),
       st.integers(1, 5), st.floats(0.0, 0.1))
def test_labels_match_their_definition(closes, horizon, threshold):
    labels = LabelDefinition(horizon=horizon, threshold=threshold).compute(frame(closes)).to_numpy()
    assert np.isnan(labels[-horizon:]).all()
    for t in range(len(closes) - horizon):
        assert labels[t] == float(math.log(closes[t + horizon] / closes[t]) > threshold)


def test_training_settings_give_fee_aware_labels_unless_a_threshold_is_set():
    assert LabelDefinition.from_settings(None, 0.001, horizon=3) == LabelDefinition.fee_aware(0.001, horizon=3)
    assert LabelDefinition.from_settings(0.002, 0.001, kind="ternary").threshold == 0.002
    with pytest.raises(ValueError, match="horizon"):
        LabelDefinition.from_settings(None, 0.001, horizon=0)

"""From P(up) to Signals: thresholds, warm-up, lags without look-ahead, and clear errors for bad settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ensemble_helpers import candles, train_request
from hypothesis import given
from hypothesis import strategies as st

from trader.errors import ConfigError, ModelNotFoundError
from trader.features import FeatureEngineer
from trader.types import SignalAction, SignalRequest
from trader_ensemble import trader_generate_signals, trader_train
from trader_ensemble.params import EnsembleParams, SignalThresholds, signal_thresholds
from trader_ensemble.signals import WARMUP_REASON, signal_from_probability, signals_from_probabilities


def request(data, at, model, features=None, **params):
    return SignalRequest(strategy="ensemble", symbol="SYN/USDT", timeframe="1h", candles=data, at=list(at),
                         features=features, model=model, params=params)


# ---------------------------------------------------------------------- thresholds


@given(
    p=st.floats(0.0, 1.0),
    sell=st.floats(0.0, 1.0),
    gap=st.floats(0.0, 1.0),
    size=st.floats(0.01, 1.0),
    by_confidence=st.booleans(),
)
def test_every_probability_gives_a_valid_signal_on_the_right_side_of_the_thresholds(p, sell, gap, size, by_confidence):
    buy = min(1.0, sell + gap)
    thresholds = SignalThresholds(buy_threshold=buy, sell_threshold=sell, position_size=size, size_by_confidence=by_confidence)
    signal = signal_from_probability(p, thresholds)
    assert signal.probability == p
    assert math.isclose(signal.confidence, abs(2 * p - 1), abs_tol=1e-12)
    if signal.action is SignalAction.BUY:
        assert p >= buy and math.isclose(signal.size, size * (signal.confidence if by_confidence else 1.0))
    elif signal.action is SignalAction.SELL:
        assert p <= sell and p < buy and signal.size == 1.0
    else:  # HOLD: between the thresholds, or a BUY whose confidence-scaled size is 0 (p = 0.5)
        assert signal.size == 0.0
        assert sell < p < buy or (p >= buy and by_confidence and signal.confidence == 0)


def test_default_thresholds_buy_above_055_sell_below_045():
    defaults = SignalThresholds()
    actions = [signal_from_probability(p, defaults).action for p in (0.7, 0.55, 0.5, 0.45, 0.2)]
    assert actions == [SignalAction.BUY, SignalAction.BUY, SignalAction.HOLD, SignalAction.SELL, SignalAction.SELL]
    assert signals_from_probabilities([math.nan], defaults)[0].reason == WARMUP_REASON


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"buy_threshold": 0.4, "sell_threshold": 0.6}, "sell_threshold (0.6) must not be above buy_threshold (0.4)"),
        ({"position_size": 0}, "position_size must be > 0.0, got 0"),
        ({"buy_threshold": "high"}, "buy_threshold must be a finite number, got 'high'"),
        ({"size_by_confidence": "yes"}, "size_by_confidence"),
    ],
)
def test_bad_signal_settings_are_refused_naming_the_setting(params, message):
    with pytest.raises(ConfigError, match=r"^\[plugins.ensemble\]: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        signal_thresholds(params)


def test_training_settings_are_checked_and_epochs_sets_the_boosting_rounds():
    assert EnsembleParams.from_mapping({"epochs": 7}).hgb_max_iter == 7
    with pytest.raises(ConfigError, match=r"unknown setting 'tress' \(known: .*trees"):
        EnsembleParams.from_mapping({"tress": 10})
    with pytest.raises(ConfigError, match="members: unknown model 'svm'"):
        EnsembleParams.from_mapping({"members": ["hgb", "svm"]})
    with pytest.raises(ConfigError, match=r"weights needs one weight per member \(3\), got 2"):
        EnsembleParams.from_mapping({"weights": [1, 2]})
    with pytest.raises(ConfigError, match="lags must be integers from 1 to 50"):
        EnsembleParams.from_mapping({"lags": [0]})


# ---------------------------------------------------------------------- with a model


@pytest.fixture(scope="module")
def data():
    return candles(bars=1200, seed=11)


@pytest.fixture(scope="module")
def lagged(data):
    """A model reading the features of the row and of the two rows before it."""
    return trader_train(train_request(data, lags=[1, 2], members=["hgb", "logistic"])).model


def test_rows_without_complete_features_hold_and_the_rest_carry_a_probability(data, lagged):
    signals = trader_generate_signals(request(data, range(len(data)), lagged))
    assert len(signals) == len(data)
    # features need 50 bars; the lags need two more rows of complete features
    assert all(s.action is SignalAction.HOLD and s.reason == WARMUP_REASON for s in signals[:52])
    assert all(s.probability is not None for s in signals[52:])
    assert {s.action for s in signals[52:]} == {SignalAction.BUY, SignalAction.SELL, SignalAction.HOLD}


def test_a_signal_depends_only_on_candles_up_to_its_row_and_not_on_the_batch(data, lagged):
    features = FeatureEngineer(timeframe="1h").transform(data)
    batch = trader_generate_signals(request(data, range(len(data)), lagged, features))
    for row in (52, 300, 777, len(data) - 1):
        cut = data.iloc[: row + 1]
        alone = trader_generate_signals(request(cut, [row], lagged))  # features computed by the plugin itself
        assert alone == [batch[row]], row


def test_thresholds_come_from_the_plugin_table(data, lagged):
    rows = range(100, 400)
    always_buy = trader_generate_signals(request(data, rows, lagged, buy_threshold=0.0, sell_threshold=0.0))
    assert {s.action for s in always_buy} == {SignalAction.BUY}
    never_trade = trader_generate_signals(request(data, rows, lagged, buy_threshold=1.0, sell_threshold=0.0))
    assert {s.action for s in never_trade} <= {SignalAction.HOLD}


def test_without_a_model_the_error_says_how_to_train_one(data):
    with pytest.raises(ModelNotFoundError, match="trader train --plugin ensemble --symbol SYN/USDT --timeframe 1h"):
        trader_generate_signals(request(data, [len(data) - 1], None))


def test_an_empty_request_gives_no_signals(data, lagged):
    assert trader_generate_signals(request(data, np.array([], dtype=int), lagged)) == []

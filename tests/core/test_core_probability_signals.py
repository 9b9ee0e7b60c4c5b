"""One rule turns P(up) into a signal: the deep-learning plugins and the ensemble read the same
``[plugins.NAME]`` keys, refuse the same values and give the same signal for the same probability."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trader.errors import ConfigError
from trader.ml.thresholds import SequenceSignalSettings
from trader.ml.thresholds import signal_from_probability as sequence_signal
from trader.probability_signals import SignalThresholds, signal_from_probability
from trader.types import SignalAction
from trader_ensemble.params import signal_thresholds
from trader_ensemble.signals import signal_from_probability as ensemble_signal
from trader_ensemble.signals import signals_from_probabilities

VALUES = st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0, 1, True, "0.6", math.nan, math.inf]))
TABLES = st.fixed_dictionaries({}, optional={
    "buy_threshold": VALUES, "sell_threshold": VALUES, "position_size": VALUES,
    "size_by_confidence": st.sampled_from([True, False, 1, "yes"]),
})


def _outcome(build, table):
    try:
        return build(table), None
    except ConfigError as exc:
        return None, str(exc)


@given(table=TABLES, p=st.floats(0.0, 1.0))
def test_both_plugin_families_accept_refuse_and_signal_alike(table, p):
    dl, dl_error = _outcome(SequenceSignalSettings.from_params, table)
    ens, ens_error = _outcome(signal_thresholds, table)
    assert (dl is None) == (ens is None)
    if dl is None:
        assert ens_error == f"[plugins.ensemble]: {dl_error}"  # the same words; the ensemble names its table
        return
    assert sequence_signal(p, dl) == ensemble_signal(p, ens) == signal_from_probability(p, ens)


def test_a_crossed_pair_of_thresholds_is_one_line_naming_both():
    with pytest.raises(ConfigError, match=r"^sell_threshold \(0.6\) must not be above buy_threshold \(0.4\)"):
        SequenceSignalSettings.from_params({"buy_threshold": 0.4, "sell_threshold": 0.6})


def test_a_confidence_scaled_buy_of_size_zero_is_a_hold_and_nan_is_never_a_trade():
    even = SignalThresholds(buy_threshold=0.5, sell_threshold=0.5, size_by_confidence=True)
    assert signal_from_probability(0.5, even).action is SignalAction.HOLD
    assert signal_from_probability(math.nan, SignalThresholds()).action is SignalAction.HOLD
    held = signals_from_probabilities([math.nan, 0.9], SignalThresholds())
    assert [s.action for s in held] == [SignalAction.HOLD, SignalAction.BUY]


def test_sequence_settings_add_only_inference_threads():
    assert SequenceSignalSettings.from_params({"inference_threads": 2}).inference_threads == 2
    with pytest.raises(ConfigError, match="inference_threads must be an integer >= 1, got 0"):
        SequenceSignalSettings.from_params({"inference_threads": 0})

"""Calibrated probabilities into Signals, by the rule every probability model shares
(:mod:`trader.probability_signals`); the ensemble adds only its warm-up reason."""

from __future__ import annotations

from collections.abc import Iterable

from trader.probability_signals import SignalThresholds, signal_from_probability
from trader.probability_signals import signals_from_probabilities as _signals_from_probabilities
from trader.types import Signal

__all__ = ["signal_from_probability", "signals_from_probabilities", "WARMUP_REASON"]

#: Reason of the HOLD given for a row whose features are not complete yet (warm-up, after a gap).
WARMUP_REASON = "warm-up: features incomplete"


def signals_from_probabilities(probabilities: Iterable[float], thresholds: SignalThresholds) -> list[Signal]:
    """One Signal per probability; NaN (a row without complete features) gives HOLD (:data:`WARMUP_REASON`)."""
    return _signals_from_probabilities(probabilities, thresholds, WARMUP_REASON)

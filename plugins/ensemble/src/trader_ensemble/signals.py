"""Calibrated probabilities into Signals (see :class:`~trader_ensemble.params.SignalThresholds`)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from trader.types import Signal, SignalAction
from trader_ensemble.params import SignalThresholds

__all__ = ["signal_from_probability", "signals_from_probabilities", "WARMUP_REASON"]

#: Reason of the HOLD given for a row whose features are not complete yet (warm-up, after a gap).
WARMUP_REASON = "warm-up: features incomplete"


def signal_from_probability(probability: float, thresholds: SignalThresholds) -> Signal:
    """The Signal for the calibrated probability ``probability`` that the price goes up."""
    p = min(1.0, max(0.0, float(probability)))
    confidence = min(1.0, abs(2.0 * p - 1.0))
    reason = f"P(up)={p:.3f}"
    if p >= thresholds.buy_threshold:
        size = thresholds.position_size * (confidence if thresholds.size_by_confidence else 1.0)
        if size > 0:
            return Signal(SignalAction.BUY, confidence=confidence, size=size, probability=p, reason=reason)
    elif p <= thresholds.sell_threshold:
        return Signal(SignalAction.SELL, confidence=confidence, size=1.0, probability=p, reason=reason)
    return Signal(SignalAction.HOLD, confidence=confidence, size=0.0, probability=p, reason=reason)


def signals_from_probabilities(probabilities: Iterable[float], thresholds: SignalThresholds) -> list[Signal]:
    """One Signal per probability; NaN (a row without complete features) gives HOLD."""
    return [
        Signal.hold(WARMUP_REASON) if math.isnan(p) else signal_from_probability(p, thresholds)
        for p in map(float, probabilities)
    ]

"""How a sequence model's calibrated P(up) becomes a BUY, SELL or HOLD (keys of ``[plugins.NAME]``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from trader.errors import ConfigError
from trader.ml.settings import read_number
from trader.types import Signal, SignalAction

__all__ = ["SignalThresholds", "signal_from_probability", "warmup_signal"]


@attrs.frozen
class SignalThresholds:
    """How P(up) becomes a signal (keys of ``[plugins.NAME]``).

    BUY when ``P(up) >= buy_threshold``; SELL (close the position) when
    ``P(up) <= sell_threshold``; HOLD in between. ``confidence = |2 P(up) - 1|``.
    A BUY's size is ``position_size`` (times the confidence when
    ``size_by_confidence``). ``inference_threads`` (1) is the torch thread count of
    the one-window live path.
    """

    buy_threshold: float = 0.55
    sell_threshold: float = 0.45
    position_size: float = 1.0
    size_by_confidence: bool = False
    inference_threads: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SignalThresholds:
        buy = read_number(params, "buy_threshold", 0.55)
        sell = read_number(params, "sell_threshold", 0.45)
        size = read_number(params, "position_size", 1.0)
        by_conf = params.get("size_by_confidence", False)
        if not (0.0 <= sell <= buy <= 1.0):
            raise ConfigError(f"thresholds must satisfy 0 <= sell_threshold <= buy_threshold <= 1, got sell={sell}, buy={buy}")
        if not 0.0 < size <= 1.0:
            raise ConfigError(f"position_size must be within (0, 1], got {size}")
        if not isinstance(by_conf, bool):
            raise ConfigError(f"size_by_confidence must be true or false, got {by_conf!r}")
        threads = read_number(params, "inference_threads", 1, int)
        if threads < 1:
            raise ConfigError(f"inference_threads must be >= 1, got {threads}")
        return cls(buy, sell, size, by_conf, threads)


def signal_from_probability(p_up: float, thresholds: SignalThresholds) -> Signal:
    """BUY, SELL or HOLD for a calibrated P(up), as :class:`SignalThresholds` describes."""
    confidence = min(1.0, abs(2.0 * p_up - 1.0))
    if p_up >= thresholds.buy_threshold:
        size = thresholds.position_size * (confidence if thresholds.size_by_confidence else 1.0)
        return Signal(SignalAction.BUY, confidence=confidence, size=size, probability=p_up, reason=f"P(up)={p_up:.3f}")
    if p_up <= thresholds.sell_threshold:
        return Signal(SignalAction.SELL, confidence=confidence, size=1.0, probability=p_up, reason=f"P(up)={p_up:.3f}")
    return Signal(SignalAction.HOLD, confidence=confidence, size=0.0, probability=p_up, reason=f"P(up)={p_up:.3f}")


def warmup_signal(length: int) -> Signal:
    """The HOLD of a row whose window is not complete yet."""
    return Signal.hold(f"warm-up: needs {length} rows of complete features")


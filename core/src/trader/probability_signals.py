"""How a calibrated probability that the price goes up becomes a Signal: one rule for every model.

The deep-learning plugins (:mod:`trader.ml`) and the ``ensemble`` plugin read the same keys of
``[plugins.NAME]`` and map ``p = P(up)`` the same way:

- ``p >= buy_threshold``: BUY with size ``position_size`` (times the confidence when
  ``size_by_confidence``; a BUY whose size comes to 0 is a HOLD);
- ``p <= sell_threshold`` (and below ``buy_threshold``): SELL, closing the position;
- otherwise HOLD.

``confidence = |2p - 1|``: 0 for a coin flip, 1 for a certain call. ``p`` is clipped to [0, 1];
a NaN ``p`` (a row without complete features) is a HOLD.
Light module: attrs only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import attrs
from attrs import field, frozen

from trader.errors import ConfigError
from trader.types import ParamSpec, Signal, SignalAction
from trader.validators import boolean, number

__all__ = ["SignalThresholds", "THRESHOLD_PARAMS", "signal_from_probability", "signals_from_probabilities"]

_T = TypeVar("_T", bound="SignalThresholds")


@frozen
class SignalThresholds:
    """The keys of ``[plugins.NAME]`` that turn ``P(up)`` into a signal (see the module)."""

    buy_threshold: float = field(default=0.55, validator=number(0.0, 1.0))
    sell_threshold: float = field(default=0.45, validator=number(0.0, 1.0))
    position_size: float = field(default=1.0, validator=number(0.0, 1.0, low_open=True))
    size_by_confidence: bool = field(default=False, validator=boolean)

    def __attrs_post_init__(self) -> None:
        if self.sell_threshold > self.buy_threshold:
            raise ValueError(f"sell_threshold ({self.sell_threshold}) must not be above buy_threshold "
                             f"({self.buy_threshold}): 0 <= sell_threshold <= buy_threshold <= 1")

    @classmethod
    def from_params(cls: type[_T], params: Mapping[str, Any], where: str | None = None) -> _T:
        """The fields found in ``params`` (other keys are not this class's to judge: the core checks
        them against the strategy's declarations); ``ConfigError`` naming the field, after
        ``where:`` when given."""
        values = {a.name: params[a.name] for a in attrs.fields(cls) if a.name in params}
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None


#: The declarations of :class:`SignalThresholds`' keys, for a strategy's ``StrategyInfo.params``.
THRESHOLD_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("buy_threshold", "float", 0.55, low=0.0, high=1.0, tune=True, help="BUY when P(up) is at least this"),
    ParamSpec("sell_threshold", "float", 0.45, low=0.0, high=1.0, tune=True,
              help="SELL when P(up) is at most this (<= buy_threshold)"),
    ParamSpec("position_size", "float", 1.0, low=0.01, high=1.0, help="a BUY's target, as a fraction of the maximum position"),
    ParamSpec("size_by_confidence", "bool", False, help="scale a BUY's size by the confidence |2 P(up) - 1|"),
)


def signal_from_probability(probability: float, thresholds: SignalThresholds) -> Signal:
    """The Signal for the calibrated probability ``probability`` that the price goes up (HOLD for NaN)."""
    if math.isnan(probability):
        return Signal.hold("P(up) unknown")
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


def signals_from_probabilities(probabilities: Iterable[float], thresholds: SignalThresholds,
                               missing: str) -> list[Signal]:
    """One Signal per probability; a NaN (no complete features for that row) is ``Signal.hold(missing)``."""
    return [Signal.hold(missing) if math.isnan(p) else signal_from_probability(p, thresholds)
            for p in map(float, probabilities)]

"""Signals for many candles at once: features computed once, the strategy asked once.

A backtest asks ``trader_generate_signals`` for every row of its range in one call
(``request.at`` lists them all), which lets a model run batched. The helpers here
are shared by the backtest runner, walk-forward and ``trader check``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from trader.types import Signal, SignalAction, SignalRequest, StrategyInfo

if TYPE_CHECKING:
    import pandas as pd

    from trader.strategy import Strategy

__all__ = ["SignalArrays", "strategy_features", "request_signals", "signal_arrays", "signals_differ"]

ACTION_CODES = {SignalAction.HOLD: 0, SignalAction.BUY: 1, SignalAction.SELL: -1}


def strategy_features(info: StrategyInfo, candles: pd.DataFrame, timeframe: str | None = None) -> pd.DataFrame | None:
    """The core's features over ``candles`` for the windows the strategy reads, else ``None``.

    ``timeframe`` fixes the bar length for the gap policy (else it is inferred from the candles).
    """
    if not info.feature_windows:
        return None
    from trader.features import FeatureEngineer

    return FeatureEngineer(windows=list(info.feature_windows), timeframe=timeframe).transform(candles)


def request_signals(
    strategy: Strategy,
    candles: pd.DataFrame,
    at: Sequence[int] | np.ndarray,
    *,
    symbol: str,
    timeframe: str,
    features: pd.DataFrame | None = None,
    model: Any = None,
    params: Mapping[str, Any] | None = None,
    state: Mapping[str, Any] | None = None,
    keep_invalid: bool = False,
    workdir: Path | None = None,
) -> list[Signal]:
    """One call of the strategy's ``trader_generate_signals`` for the rows ``at``
    (``keep_invalid``: see :meth:`trader.strategy.Strategy.generate_signals`)."""
    rows = np.asarray(at, dtype=np.int64)
    request = SignalRequest(
        strategy=strategy.name,
        symbol=symbol,
        timeframe=timeframe,
        candles=candles,
        at=rows,
        features=features,
        model=model,
        state=dict(state or {}),
        params=dict(params or {}),
        workdir=workdir,
    )
    return strategy.generate_signals(request, keep_invalid=keep_invalid)


@attrs.frozen
class SignalArrays:
    """Signals as columns: ``action`` (1 buy, -1 sell, 0 hold), ``size``, ``confidence``,
    ``probability`` (NaN where the strategy gives none)."""

    action: np.ndarray
    size: np.ndarray
    confidence: np.ndarray
    probability: np.ndarray

    def __len__(self) -> int:
        return int(self.action.size)


def signal_arrays(signals: Sequence[Signal]) -> SignalArrays:
    n = len(signals)
    action = np.fromiter((ACTION_CODES[s.action] for s in signals), dtype=np.int8, count=n)
    size = np.fromiter((s.size for s in signals), dtype=np.float64, count=n)
    confidence = np.fromiter((s.confidence for s in signals), dtype=np.float64, count=n)
    probability = np.fromiter(
        (math.nan if s.probability is None else s.probability for s in signals), dtype=np.float64, count=n
    )
    return SignalArrays(action, size, confidence, probability)


def _num_differ(a: float | None, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    return abs(a - b) > tolerance


def signals_differ(a: Signal, b: Signal, tolerance: float = 1e-6) -> str | None:
    """What differs between two signals (``None`` when they agree within ``tolerance``)."""
    if a.action != b.action:
        return f"action {a.action.value} vs {b.action.value}"
    for name in ("size", "confidence", "probability"):
        x, y = getattr(a, name), getattr(b, name)
        if _num_differ(x, y, tolerance):
            return f"{name} {x!r} vs {y!r}"
    return None

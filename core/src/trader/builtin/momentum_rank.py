"""Momentum rank: a cross-sectional strategy that holds the basket's ``top_k`` strongest markets.

At each time of the basket's timeline it ranks the markets that have a candle then by their
return over their own last ``lookback`` candles (``close / close lookback candles earlier - 1``),
strongest first, ties broken by symbol. The top ``top_k`` get BUY with size 1.0, the other
ranked markets SELL everything. Each BUY's target is ``max_position_fraction`` of the account,
which this strategy sets to ``1 / top_k`` (0.5 for the default ``top_k`` 2) with
``max_open_positions = top_k``: with another ``top_k`` set both in ``[plugins.momentum_rank.risk]``.

- Only markets past the warm-up (more than ``warmup_bars`` = 199 candles of their own, so at
  least ``lookback + 1``) are ranked; the others get HOLD. The returns come from
  ``request.candles`` only: a market with no candle at a time is neither ranked nor given a
  signal then (its position waits for its next candle, and ``max_open_positions`` keeps the
  account at ``top_k`` markets meanwhile).
- On one market (``trader run``/``backtest`` with one ``--symbol``, ``trader check``) there is
  nothing to rank: ``trader_generate_signals`` falls back to absolute momentum, BUY while the
  market's own return over ``lookback`` candles is positive, SELL all otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trader import __version__
from trader.errors import ConfigError
from trader.hookspecs import hookimpl
from trader.types import BasketRequest, ParamSpec, RiskLimits, Signal, SignalAction, SignalRequest, StrategyInfo

NAME = "momentum_rank"
MAX_LOOKBACK = 199
WARMUP_BARS = MAX_LOOKBACK
DEFAULT_TOP_K = 2

PARAMS = (
    ParamSpec("lookback", "int", 24, low=1, high=MAX_LOOKBACK, tune=True, help="candles of a market's own return"),
    ParamSpec("top_k", "int", DEFAULT_TOP_K, low=1, high=100,
              help="markets held at once (set risk.max_position_fraction to 1/top_k and risk.max_open_positions to top_k)"),
)

_HOLD_WARM = Signal.hold("not ranked: too few candles")
_SELL_FLAT = Signal(SignalAction.SELL, confidence=1.0, size=1.0, reason="own return over lookback not positive")
_BUY_UP = Signal(SignalAction.BUY, confidence=1.0, size=1.0, reason="own return over lookback positive")


def settings(params: Mapping[str, Any]) -> tuple[int, int]:
    """``(lookback, top_k)`` of ``[plugins.momentum_rank]``."""
    lookback, top_k = params.get("lookback", 24), params.get("top_k", DEFAULT_TOP_K)
    for key, value, high in (("lookback", lookback, MAX_LOOKBACK), ("top_k", top_k, 100)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise ConfigError(f"[plugins.{NAME}] {key} must be a whole number within [1, {high}], got {value!r}")
    return lookback, top_k


@hookimpl
def trader_strategy_info() -> StrategyInfo:
    return StrategyInfo(
        name=NAME,
        version=__version__,
        description=f"Cross-sectional: hold the top_k markets by return over lookback candles (default top {DEFAULT_TOP_K}).",
        warmup_bars=WARMUP_BARS,
        requires_model=False,
        risk_limits=RiskLimits(max_position_fraction=1.0 / DEFAULT_TOP_K, max_open_positions=DEFAULT_TOP_K),
        params=PARAMS,
    )


@hookimpl
def trader_generate_signals(request: SignalRequest) -> Sequence[Signal]:
    lookback, _ = settings(request.params)
    closes = request.candles["close"].to_numpy(dtype=np.float64)
    at = request.at
    out: list[Signal] = [_HOLD_WARM] * at.size
    ready = np.flatnonzero(at >= WARMUP_BARS)
    rows = at[ready]
    returns = closes[rows] / closes[rows - lookback] - 1.0
    for k, r in zip(ready.tolist(), returns.tolist(), strict=True):
        out[k] = _BUY_UP if r > 0 else _SELL_FLAT
    return out


@hookimpl
def trader_generate_basket_signals(request: BasketRequest) -> Sequence[dict[str, Signal]]:
    lookback, top_k = settings(request.params)
    symbols = sorted(request.symbols)  # the order ties are broken in, whatever the listing order
    times = request.timestamps[request.at]
    n, m = times.size, len(symbols)
    returns = np.full((n, m), np.nan)  # NaN: not ranked at that time
    trading = np.zeros((n, m), dtype=bool)
    for j, symbol in enumerate(symbols):
        frame = request.candles[symbol]
        ts = frame["timestamp"].to_numpy(dtype=np.int64)
        closes = frame["close"].to_numpy(dtype=np.float64)
        last = np.searchsorted(ts, times, side="right") - 1  # the market's last candle at or before each time
        has = last >= 0
        has[has] = ts[last[has]] == times[has]
        trading[:, j] = has
        ranked = has & (last >= WARMUP_BARS)
        rows = last[ranked]
        returns[ranked, j] = closes[rows] / closes[rows - lookback] - 1.0
    # Strongest first, then symbol order; unranked markets (NaN) last.
    key = np.where(np.isnan(returns), np.inf, -returns)
    order = np.lexsort((np.broadcast_to(np.arange(m), (n, m)), key), axis=-1)
    place = np.empty_like(order)
    np.put_along_axis(place, order, np.arange(m)[None, :].repeat(n, axis=0), axis=-1)
    buy = [Signal(SignalAction.BUY, confidence=1.0, size=1.0, reason=f"rank {p + 1}, in the top {top_k}") for p in range(m)]
    sell = [Signal(SignalAction.SELL, confidence=1.0, size=1.0, reason=f"rank {p + 1}, outside the top {top_k}")
            for p in range(m)]
    out: list[dict[str, Signal]] = []
    for i in range(n):
        answer: dict[str, Signal] = {}
        for j in np.flatnonzero(trading[i]).tolist():
            p = int(place[i, j])
            if returns[i, j] != returns[i, j]:
                answer[symbols[j]] = _HOLD_WARM
            else:
                answer[symbols[j]] = buy[p] if p < top_k else sell[p]
        out.append(answer)
    return out

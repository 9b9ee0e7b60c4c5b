"""SMA crossover: a per-market trend follower, the simplest strategy that is not a yardstick.

At each candle it compares the mean of the last ``fast`` closes with the mean of the last
``slow`` closes of the same market: BUY (its full allowed position) while the fast mean is
above, SELL everything while it is below, HOLD when they are equal or fewer than ``slow``
candles are known. On a basket it is asked once per market, over that market's own candles.

Each mean is summed over its own window (not a running sum), so a signal depends on the last
``slow`` closes and on nothing older, bit for bit. ``warmup_bars`` is 199, what the longest
allowed ``slow`` (200, the classic 50/200 cross) needs, so every allowed setting is warm after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trader import __version__
from trader.errors import ConfigError
from trader.hookspecs import hookimpl
from trader.types import ParamSpec, Signal, SignalAction, SignalRequest, StrategyInfo

NAME = "sma_cross"
MAX_SLOW = 200
WARMUP_BARS = MAX_SLOW - 1
#: Windows summed at once: bounds the memory of a long backtest (rows x slow floats per chunk).
_CHUNK = 2048

PARAMS = (
    ParamSpec("fast", "int", 20, low=1, high=MAX_SLOW - 1, tune=True, help="candles in the fast mean (< slow)"),
    ParamSpec("slow", "int", 50, low=2, high=MAX_SLOW, tune=True, help="candles in the slow mean"),
)

_BUY = Signal(SignalAction.BUY, confidence=1.0, size=1.0, reason="fast SMA above slow SMA")
_SELL = Signal(SignalAction.SELL, confidence=1.0, size=1.0, reason="fast SMA below slow SMA")
_EVEN = Signal.hold("fast SMA equals slow SMA")
_WARM = Signal.hold("fewer than slow candles")


def windows(params: Mapping[str, Any]) -> tuple[int, int]:
    """``(fast, slow)`` of ``[plugins.sma_cross]``; ``ConfigError`` unless ``fast < slow``."""
    fast, slow = int(params.get("fast", 20)), int(params.get("slow", 50))
    if not 1 <= fast < slow <= MAX_SLOW:
        raise ConfigError(f"[plugins.{NAME}] fast ({fast}) must be below slow ({slow}): 1 <= fast < slow <= {MAX_SLOW}")
    return fast, slow


def window_means(closes: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """The mean of the ``n`` closes ending at each of ``rows`` (each ``>= n - 1``), each summed on its own."""
    view = np.lib.stride_tricks.sliding_window_view(closes, n)
    out = np.empty(rows.size)
    for lo in range(0, rows.size, _CHUNK):
        part = rows[lo : lo + _CHUNK] - (n - 1)
        out[lo : lo + part.size] = np.ascontiguousarray(view[part]).sum(axis=1) / n
    return out


@hookimpl
def trader_strategy_info() -> StrategyInfo:
    return StrategyInfo(
        name=NAME,
        version=__version__,
        description="Per market: BUY while the fast SMA of closes is above the slow one, SELL all while below.",
        warmup_bars=WARMUP_BARS,
        requires_model=False,
        params=PARAMS,
    )


@hookimpl
def trader_generate_signals(request: SignalRequest) -> Sequence[Signal]:
    fast, slow = windows(request.params)
    closes = request.candles["close"].to_numpy(dtype=np.float64)
    at = request.at
    out: list[Signal] = [_WARM] * at.size
    ready = np.flatnonzero(at >= slow - 1)
    if ready.size == 0:
        return out
    rows = at[ready]
    difference = window_means(closes, rows, fast) - window_means(closes, rows, slow)
    for k, d in zip(ready.tolist(), difference.tolist(), strict=True):
        out[k] = _BUY if d > 0 else _SELL if d < 0 else _EVEN
    return out

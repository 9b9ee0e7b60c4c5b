"""Where ``trader run`` gets a basket's signals, one step of its timeline at a time.

The basket counterpart of :mod:`trader.engine.signals`, used in this process with
``--isolation inline`` and inside the strategy's worker with ``--isolation process``
(:mod:`trader.engine.worker`). Each market keeps its own recent candles and incremental
features (one :class:`~trader.engine.signals.StrategySignals` per market), and its warm-up
counts from its own first candle, as :func:`trader.portfolio.signals.basket_signals` counts
it for backtests:

- :class:`MarketSignals`: a per-market strategy, asked once for each market trading at the step;
- :class:`CrossSectionalSignals`: a cross-sectional strategy, asked once per step with every
  market's window (a :class:`~trader.types.BasketRequest` whose ``at`` is the step), for the
  markets trading at the step and past their warm-up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from trader.engine.factory import first_signal_row
from trader.engine.signals import StrategySignals
from trader.errors import StateError
from trader.types import BasketRequest, Candle, Signal

if TYPE_CHECKING:
    from pathlib import Path

    from trader.strategy import Strategy

__all__ = ["BasketSource", "BasketOutcome", "MarketSignals", "CrossSectionalSignals", "basket_source"]

#: One step's answer: symbol -> signal (or the exception of a failed market), and the ms the
#: strategy took (``None`` when no market was past its warm-up).
BasketOutcome = tuple[dict[str, "Signal | BaseException"], "float | None"]


class BasketSource(Protocol):
    """The two calls of the basket run loop: warm each market up, then one answer per step."""

    def warm(self, symbol: str, history: Any) -> None: ...

    def next(self, timestamp: int, candles: Mapping[str, Candle], state: Mapping[str, Any]) -> BasketOutcome: ...


class _Markets:
    """Each market's window, features and row count (its own candles seen so far)."""

    def __init__(self, strategy: Strategy, symbols: Sequence[str], timeframe: str, models: Mapping[str, Any],
                 params: Mapping[str, Any], workdir: Path | None) -> None:
        self.strategy = strategy
        self.symbols = tuple(sorted(symbols))
        self.timeframe = timeframe
        self.models = dict(models)
        self.params = params
        self.workdir = workdir
        self.markets = {s: StrategySignals(strategy, s, timeframe, self.models.get(s), params, workdir) for s in self.symbols}
        self.seen = dict.fromkeys(self.symbols, 0)
        self.first_row = first_signal_row(strategy.info)

    def market(self, symbol: str) -> StrategySignals:
        try:
            return self.markets[symbol]
        except KeyError:
            raise StateError(f"{symbol!r} is not a market of this basket ({', '.join(self.symbols)})") from None

    def warm(self, symbol: str, history: Any) -> None:
        """Load ``symbol``'s candles before the first step (a frame, oldest first)."""
        self.market(symbol).warm(history)
        self.seen[symbol] = len(history)

    def _row(self, symbol: str) -> int:
        """The row of ``symbol``'s next candle in its own series (counted from its first candle)."""
        row = self.seen[symbol]
        self.seen[symbol] = row + 1
        return row


class MarketSignals(_Markets):
    """A per-market strategy: its hook asked for each trading market, over that market's own window."""

    def next(self, timestamp: int, candles: Mapping[str, Candle], state: Mapping[str, Any]) -> BasketOutcome:
        out: dict[str, Signal | BaseException] = {}
        spent: float | None = None
        for symbol in sorted(candles):
            market = self.market(symbol)
            signal, ms = market.next(self._row(symbol), candles[symbol], state)
            if ms is not None:
                spent = ms if spent is None else spent + ms
            if signal is not None:
                out[symbol] = signal
        return out, spent


class CrossSectionalSignals(_Markets):
    """A cross-sectional strategy: one :class:`BasketRequest` per step, with every market's window."""

    def next(self, timestamp: int, candles: Mapping[str, Candle], state: Mapping[str, Any]) -> BasketOutcome:
        import numpy as np

        eligible = []
        for symbol in sorted(candles):
            row = self._row(symbol)
            self.market(symbol).push(candles[symbol])
            if row >= self.first_row:
                eligible.append(symbol)
        if not eligible:
            return {}, None
        frames = {s: self.markets[s].window.frames() for s in self.symbols}
        timeline = np.unique(np.concatenate([f[0]["timestamp"].to_numpy(dtype=np.int64) for f in frames.values()]))
        distinct = {id(m) for m in self.models.values()}
        request = BasketRequest(
            strategy=self.strategy.name, symbols=self.symbols, timeframe=self.timeframe, timestamps=timeline,
            candles={s: f[0] for s, f in frames.items()}, at=[timeline.size - 1],
            features={s: f[1] for s, f in frames.items()},
            model=next(iter(self.models.values())) if self.models and len(distinct) == 1 else None,
            state=state, params=self.params, workdir=self.workdir, models=dict(self.models),
        )
        started = time.perf_counter()
        try:
            (answer,) = self.strategy.generate_basket_signals(request, keep_invalid=True)
        except Exception as exc:  # every market asked at this step failed: counted once, never traded
            return dict.fromkeys(eligible, exc), (time.perf_counter() - started) * 1000
        spent = (time.perf_counter() - started) * 1000
        return {s: answer[s] for s in eligible if s in answer}, spent


def basket_source(strategy: Strategy, symbols: Sequence[str], timeframe: str, *, models: Mapping[str, Any] | None = None,
                  params: Mapping[str, Any] | None = None, workdir: Path | None = None) -> MarketSignals | CrossSectionalSignals:
    """The in-process source for ``strategy`` on ``symbols``: cross-sectional when it implements the basket hook."""
    kind = CrossSectionalSignals if strategy.cross_sectional else MarketSignals
    return kind(strategy, symbols, timeframe, models or {}, dict(params or {}), workdir)

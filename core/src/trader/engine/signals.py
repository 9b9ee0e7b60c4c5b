"""Where ``trader run`` gets a strategy's signal for each new candle.

:class:`StrategySignals` calls the strategy's hook in this process: it keeps the recent
candles (:class:`~trader.engine.history.CandleWindow`) and the incremental features, and
builds the :class:`~trader.types.SignalRequest` of each candle. With ``--isolation inline``
the engine uses it directly; with ``--isolation process`` the strategy's worker process
uses the very same class (:mod:`trader.engine.worker`) and the engine talks to it through
:class:`~trader.engine.isolation.WorkerSignals`, which has the same two methods.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from trader.engine.factory import first_signal_row
from trader.engine.history import CandleWindow
from trader.types import Candle, Signal, SignalRequest

if TYPE_CHECKING:
    from pathlib import Path

    from trader.strategy import Strategy
    from trader.types import StrategyInfo

__all__ = ["SignalSource", "StrategySignals", "history_bars", "window_size", "SignalOutcome"]

#: What a source gives for one candle: the signal (``None`` during warm-up, an exception when
#: the strategy failed) and how long it took in ms (``None`` when no signal was asked for).
SignalOutcome = tuple["Signal | BaseException | None", "float | None"]


def history_bars(info: StrategyInfo, feature_warmup: int = 0) -> int:
    """How many recent candles a strategy is shown at each step (at least 256)."""
    return max(256, 2 * (info.warmup_bars + feature_warmup) + 2)


def window_size(info: StrategyInfo) -> int:
    """:func:`history_bars` of ``info``, its core features' warm-up included."""
    if not info.feature_windows:
        return history_bars(info)
    from trader.features import FeatureEngineer

    return history_bars(info, int(FeatureEngineer(windows=list(info.feature_windows)).warmup_bars))


class SignalSource(Protocol):
    """The two calls of the run loop: warm up on history, then one signal per new candle."""

    def warm(self, history: Any) -> None: ...

    def next(self, index: int, candle: Candle, state: Mapping[str, Any]) -> SignalOutcome: ...


class StrategySignals:
    """The strategy's signals computed in this process (see the module docstring)."""

    def __init__(self, strategy: Strategy, symbol: str, timeframe: str, model: Any, params: Mapping[str, Any],
                 workdir: Path | None = None) -> None:
        info = strategy.info
        self.workdir = workdir
        self.strategy = strategy
        self.info = info
        self.symbol = symbol
        self.timeframe = timeframe
        self.model = model
        self.params = params
        self.engineer: Any = None
        names: list[str] = []
        feature_warmup = 0
        if info.feature_windows:
            from trader.features import FeatureEngineer

            self.engineer = FeatureEngineer(windows=list(info.feature_windows))
            names = self.engineer.get_feature_names()
            feature_warmup = int(self.engineer.warmup_bars)
        self.window = CandleWindow(history_bars(info, feature_warmup), names)
        self.updater = self.engineer.incremental(timeframe=timeframe) if self.engineer is not None else None
        self.first_row = first_signal_row(info)

    def warm(self, history: Any) -> None:
        """Load ``history`` (a candle frame, oldest first) into the window and the features."""
        if len(history) == 0:
            return
        features = None
        if self.engineer is not None:
            tail = history.iloc[-(self.window.size + int(self.engineer.warmup_bars) + 1) :].reset_index(drop=True)
            features = self.engineer.transform(tail)
            assert self.updater is not None  # built with the engineer
            self.updater.warm(history.reset_index(drop=True))
        self.window.extend(history, features)

    def push(self, candle: Candle) -> None:
        """Add ``candle`` to the window and the features without asking the strategy (a basket's
        cross-sectional source asks once for all its markets)."""
        features_row = self.updater.update(candle) if self.updater is not None else None
        self.window.append(candle, features_row)

    def next(self, index: int, candle: Candle, state: Mapping[str, Any]) -> SignalOutcome:
        """Add ``candle`` (row ``index`` of the series); the strategy's signal once warm-up is over."""
        self.push(candle)
        if index < self.first_row:
            return None, None
        candles_frame, features_frame = self.window.frames()
        request = SignalRequest(
            strategy=self.info.name,
            symbol=self.symbol,
            timeframe=self.timeframe,
            candles=candles_frame,
            at=[len(candles_frame) - 1],
            features=features_frame,
            model=self.model,
            state=state,
            params=self.params,
            workdir=self.workdir,
        )
        started = time.perf_counter()
        signal: Signal | BaseException
        try:
            signal = self.strategy.generate_signals(request)[0]
        except Exception as exc:  # counted by the breaker, never traded; the loop goes on
            signal = exc
        return signal, (time.perf_counter() - started) * 1000

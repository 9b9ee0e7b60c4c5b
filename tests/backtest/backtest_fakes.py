"""In-process strategies for the backtest tests: honest, leaky and broken ones.

Each is a small class instance registered with ``TraderPluginManager.registered``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trader import hookimpl
from trader.types import Signal, SignalAction, StrategyInfo, TrainResult


def _signal(action: str, size: float = 1.0, probability: float | None = None) -> Signal:
    if action == "hold":
        return Signal.hold()
    return Signal(SignalAction(action), confidence=1.0, size=size, probability=probability)


class SmaCross:
    """Long while the fast SMA is above the slow one: honest, causal, warm-up = slow window."""

    def __init__(self, name: str = "fake_sma", fast: int = 5, slow: int = 20, warmup: int | None = None) -> None:
        self.name, self.fast, self.slow = name, fast, slow
        self.warmup = slow if warmup is None else warmup

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0", warmup_bars=self.warmup)

    def _targets(self, close: np.ndarray) -> np.ndarray:
        cs = np.concatenate(([0.0], np.cumsum(close)))
        idx = np.arange(close.size)
        fast = np.where(idx >= self.fast - 1, (cs[idx + 1] - cs[np.maximum(idx + 1 - self.fast, 0)]) / self.fast, np.nan)
        slow = np.where(idx >= self.slow - 1, (cs[idx + 1] - cs[np.maximum(idx + 1 - self.slow, 0)]) / self.slow, np.nan)
        return fast > slow

    @hookimpl
    def trader_generate_signals(self, request):
        long = self._targets(request.candles["close"].to_numpy())
        return [_signal("buy") if long[i] else _signal("sell") for i in request.at]


class PeekNextClose:
    """Leaky on purpose: buys when the NEXT candle closes higher."""

    name = "fake_peek"

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0", warmup_bars=1)

    @hookimpl
    def trader_generate_signals(self, request):
        close = request.candles["close"]
        up = (close.shift(-1) > close).to_numpy()
        return [_signal("buy") if up[i] else _signal("sell") for i in request.at]


class PeekNextFeature:
    """Leaky on purpose through a core feature: buys when the NEXT row's one-bar return is positive."""

    name = "fake_peek_feature"

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0", warmup_bars=10, feature_windows=(5,))

    @hookimpl
    def trader_generate_signals(self, request):
        ret = request.features["ret_1"].to_numpy()
        return [_signal("hold") if i + 1 >= ret.size else _signal("buy" if ret[i + 1] > 0 else "sell") for i in request.at]


class BatchNormalised:
    """Scales its probability by the mean over the requested rows: depends on the batch."""

    name = "fake_batchnorm"

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0", warmup_bars=1)

    @hookimpl
    def trader_generate_signals(self, request):
        close = request.candles["close"].to_numpy()
        ret = np.diff(close, prepend=close[0]) / close
        picked = ret[np.asarray(request.at)]
        z = (picked - picked.mean()) / (picked.std() + 1e-12)
        prob = 1 / (1 + np.exp(-z))
        return [_signal("buy" if p > 0.5 else "sell", probability=float(p)) for p in prob]


class EmaTrend:
    """Long above a slow EMA; declares too little warm-up when ``warmup`` is small."""

    def __init__(self, name: str = "fake_ema", span: int = 50, warmup: int = 5) -> None:
        self.name, self.span, self.warmup = name, span, warmup

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0", warmup_bars=self.warmup)

    @hookimpl
    def trader_generate_signals(self, request):
        close = request.candles["close"]
        ema = close.ewm(span=self.span, adjust=False).mean()
        gap = (close / ema - 1.0).to_numpy()
        return [Signal(SignalAction.BUY if gap[i] > 0 else SignalAction.SELL, probability=float(1 / (1 + np.exp(-100 * gap[i]))))
                for i in request.at]


class Threshold:
    """A trainable strategy: the model is a threshold on the one-bar return, stored as JSON.

    With ``lossy=True`` it saves the threshold rounded to 2 decimals, so the reloaded model differs.
    """

    def __init__(self, name: str = "fake_threshold", lossy: bool = False) -> None:
        self.name, self.lossy = name, lossy
        self.trained = 0

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0", warmup_bars=1, requires_model=True)

    @hookimpl
    def trader_train(self, request):
        self.trained += 1
        close = request.candles["close"].to_numpy()
        ret = np.diff(close) / close[:-1]
        return TrainResult(model={"threshold": float(np.median(ret)) + 0.0012345}, label={"horizon": 1, "threshold": 0.0, "kind": "binary"})

    @hookimpl
    def trader_save_model(self, model, directory: Path):
        value = round(model["threshold"], 2) if self.lossy else model["threshold"]
        (Path(directory) / "threshold.json").write_text(json.dumps({"threshold": value}))
        return ["threshold.json"]

    @hookimpl
    def trader_load_model(self, directory: Path, manifest):
        return json.loads((Path(directory) / "threshold.json").read_text())

    @hookimpl
    def trader_generate_signals(self, request):
        close = request.candles["close"].to_numpy()
        ret = np.diff(close, prepend=close[0]) / close
        t = request.model["threshold"]
        out = []
        for i in request.at:
            p = float(1 / (1 + np.exp(-(ret[i] - t) * 200)))
            out.append(Signal(SignalAction.BUY if p > 0.5 else SignalAction.SELL, probability=p))
        return out


class DenyBuys:
    """A non-strategy risk plugin that denies every buy (the audit must hold in backtests too)."""

    name = "deny_buys"

    @hookimpl
    def trader_audit_order(self, order, portfolio, limits, context):
        from trader.types import RiskVerdict, Side

        if order.side is Side.BUY:
            return RiskVerdict.deny("deny_buys", "NO_BUYS_TODAY", "this test plugin denies every buy")
        return None


class RecordingThreshold(Threshold):
    """``Threshold`` that records what each training call and signal call was shown."""

    def __init__(self, name: str = "fake_recording") -> None:
        super().__init__(name)
        self.train_last_ts: list[int] = []
        self.train_rows: list[int] = []
        self.signal_last_ts: list[int] = []

    @hookimpl
    def trader_train(self, request):
        self.train_last_ts.append(int(request.candles["timestamp"].iloc[-1]))
        self.train_rows.append(len(request.candles))
        return Threshold.trader_train(self, request)

    @hookimpl
    def trader_generate_signals(self, request):
        self.signal_last_ts.append(int(request.candles["timestamp"].iloc[-1]))
        return Threshold.trader_generate_signals(self, request)


# Instances that the CLI tests expose as entry points (see test_backtest_cli.py).
PEEK = PeekNextClose()
SMA = SmaCross()
THRESHOLD = Threshold()

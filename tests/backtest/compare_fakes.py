"""Trainable test strategies for the ``trader compare`` / ``trader backtest`` twin tests.

``Regime`` learns a threshold on the one-bar return from the first 70% of the candles and
records, like the shipped models, a test split and the class counts of its training
labels. Those counts are planted on purpose: its "training regime" is the mirror image of
the held-out rows (the held-out minority class is the training majority), so a baseline
that peeked at the labels being scored would name the other class.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trader import hookimpl
from trader.types import RiskLimits, Signal, SignalAction, StrategyInfo, TrainResult

TRAIN_SHARE = 0.7


class Regime:
    """``peek=True`` buys when the NEXT close is higher (a leak: implausibly good); ``fragile=True`` keeps
    the default risk limits, so a run of losses halts it."""

    def __init__(self, name: str, horizon: int = 1, peek: bool = False, fragile: bool = False) -> None:
        self.name, self.horizon, self.peek, self.fragile = name, horizon, peek, fragile

    @hookimpl
    def trader_strategy_info(self):
        limits = RiskLimits(max_position_fraction=0.9, max_consecutive_losses=10_000, daily_loss_limit=0.5, max_drawdown=0.9)
        return StrategyInfo(name=self.name, version="1.0", warmup_bars=1, requires_model=True,
                            risk_limits=RiskLimits() if self.fragile else limits)

    @hookimpl
    def trader_train(self, request):
        close = request.candles["close"].to_numpy(dtype=np.float64)
        ts = request.candles["timestamp"].to_numpy(dtype=np.int64)
        split = int(len(close) * TRAIN_SHARE)
        ret = np.diff(close[:split]) / close[: split - 1]
        h = self.horizon
        held_out_up = np.log(close[split + h:] / close[split:-h]) > 0
        up_is_rare = held_out_up.mean() < 0.5
        counts = [300, 700] if up_is_rare else [700, 300]  # the held-out minority is the training majority
        label = {"kind": "binary", "horizon": h, "threshold": 0.0, "return": "log", "train_class_counts": counts}
        extra = {"split": {"train": {"first_end": int(ts[1]), "last_end": int(ts[split - 1 - h]), "windows": split - 1 - h},
                           "test": {"first_end": int(ts[split]), "last_end": int(ts[-1]), "windows": len(ts) - split}}}
        return TrainResult(model={"threshold": float(np.median(ret))}, label=label, extra=extra)

    @hookimpl
    def trader_save_model(self, model, directory: Path):
        (Path(directory) / "threshold.json").write_text(json.dumps(model))
        return ["threshold.json"]

    @hookimpl
    def trader_load_model(self, directory: Path, manifest):
        return json.loads((Path(directory) / "threshold.json").read_text())

    @hookimpl
    def trader_generate_signals(self, request):
        close = request.candles["close"].to_numpy(dtype=np.float64)
        ret = np.diff(close, prepend=close[0]) / close
        t = request.model["threshold"]
        out = []
        for i in request.at:
            if self.peek:  # the next bar's return: a leak
                ret[i] = close[i + 1] / close[i] - 1.0 if i + 1 < close.size else 0.0
            p = float(1 / (1 + np.exp(-(ret[i] - t) * 200)))
            out.append(Signal(SignalAction.BUY if p > 0.5 else SignalAction.SELL, probability=p))
        return out


REGIME_A = Regime("fake_regime_a")
REGIME_B = Regime("fake_regime_b")
REGIME_H3 = Regime("fake_regime_h3", horizon=3)
REGIME_PEEK = Regime("fake_regime_peek", peek=True)
REGIME_FRAGILE = Regime("fake_regime_fragile", fragile=True)

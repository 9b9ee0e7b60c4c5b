"""The run loop in process: what a strategy is shown, warm-up, models, and parity with a batched run."""

from __future__ import annotations

import json
import threading
import time
import types

import numpy as np
import pytest

from trader import Signal, SignalAction, StrategyInfo, hookimpl
from trader.config import TraderConfig
from trader.engine import MemoryState, PaperBroker, RiskAuditAgent, TradingSession, TradingState, first_signal_row
from trader.engine.runner import RunOptions, StrategyRunner
from trader.errors import ModelNotFoundError
from trader.types import RiskLimits, TrainResult

PATIENT = RiskLimits(max_consecutive_losses=10_000, max_drawdown=0.95, daily_loss_limit=0.95, max_inference_ms=20)


class Recorder:
    """Buys when the close is above the mean of the candles it is shown; records every request."""

    def __init__(self, name, windows=(), warmup=0, requires_model=False):
        self.name = name
        self.windows = windows
        self.warmup = warmup
        self.requires_model = requires_model
        self.requests = []
        self.slow_calls = set()  # call numbers that take longer than PATIENT's latency budget

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(
            name=self.name, version="1.0", warmup_bars=self.warmup, feature_windows=self.windows,
            requires_model=self.requires_model, risk_limits=PATIENT,
        )

    @hookimpl
    def trader_generate_signals(self, request):
        self.requests.append(request)
        if len(self.requests) in self.slow_calls:
            time.sleep(0.05)
        closes = request.candles["close"].to_numpy()
        out = []
        for i in request.at:
            recent = closes[max(0, i - 9) : i + 1]
            above = closes[i] > recent.mean()
            out.append(Signal(SignalAction.BUY if above else SignalAction.SELL, size=0.8))
        return out

    @hookimpl
    def trader_save_model(self, model, directory):
        (directory / "model.json").write_text(json.dumps(model))
        return ["model.json"]

    @hookimpl
    def trader_load_model(self, directory, manifest):
        return json.loads((directory / "model.json").read_text())


def runner(manager, home, name, **options):
    config = TraderConfig(home=home)
    return StrategyRunner(config, manager, RunOptions(strategy=name, synthetic_bars=400, **options), stop=threading.Event())


def test_the_strategy_sees_history_and_aligned_features_after_its_warm_up(manager, tmp_path):
    strategy = Recorder("featured", windows=(5, 10), warmup=30)
    with manager.registered(strategy, "featured"):
        summary = runner(manager, tmp_path, "featured", max_candles=120).run()
    assert summary.processed == 120
    assert len(strategy.requests) == 120 - 30  # rows 0..29 are warm-up: no request
    from trader.data import synthetic_candles
    from trader.features import FeatureEngineer

    candles = synthetic_candles("BTC/USDT", "1h", 400, 0)
    batch = FeatureEngineer(windows=[5, 10]).transform(candles.iloc[:120])
    for request in strategy.requests[::17] + strategy.requests[-1:]:
        frame, features = request.candles, request.features
        assert list(request.at) == [len(frame) - 1]
        assert len(features) == len(frame) and list(features.columns) == list(batch.columns)
        row = int(np.searchsorted(candles["timestamp"], frame["timestamp"].iloc[-1]))
        np.testing.assert_allclose(features.iloc[-1].to_numpy(), batch.iloc[row].to_numpy(), rtol=1e-9, atol=1e-12)
        assert frame["timestamp"].iloc[-1] == candles["timestamp"].iloc[row]  # never a candle from the future
        assert isinstance(request.state, types.MappingProxyType)  # the strategy's own state, read-only


def test_a_restarted_replay_decides_like_an_uninterrupted_one(manager, tmp_path):
    """Wall-clock latency must not change a replay: a slow signal is an alert there, never a veto."""
    strategy = Recorder("featured", windows=(5, 10), warmup=30)
    strategy.slow_calls = {10, 39, 40, 120}  # only in the uninterrupted run
    with manager.registered(strategy, "featured"):
        runner(manager, tmp_path / "a", "featured", max_candles=200).run()
        strategy.slow_calls = set()
        runner(manager, tmp_path / "b", "featured", max_candles=70).run()
        runner(manager, tmp_path / "b", "featured", max_candles=130).run()
    with TradingState.open("featured", tmp_path / "a" / "strategies" / "featured") as a, \
            TradingState.open("featured", tmp_path / "b" / "strategies" / "featured") as b:
        assert a.fills() == b.fills() and a.equity_curve() == b.equity_curve()
        # the four slow calls alert (a loaded machine may make another call slow too); none vetoed a trade
        assert len([e for e in a.risk_events("alert") if e["code"] == "INFERENCE_LATENCY"]) >= 4


def test_replay_run_and_a_batched_backtest_make_the_same_trades(manager, tmp_path):
    """The parity a backtest relies on: same candles, same signals, same step -> same trades."""
    strategy = Recorder("meanrev", warmup=12)
    with manager.registered(strategy, "meanrev"):
        runner(manager, tmp_path, "meanrev", max_candles=300).run()
        from trader.data import synthetic_candles

        candles = synthetic_candles("BTC/USDT", "1h", 400, 0).iloc[:300]
        info = manager.strategy("meanrev").info
        first = first_signal_row(info)
        from trader.types import SignalRequest

        request = SignalRequest("meanrev", "BTC/USDT", "1h", candles, list(range(first, 300)))
        signals = [None] * first + manager.strategy("meanrev").generate_signals(request)
        store = MemoryState("meanrev")
        session = TradingSession(
            "meanrev", "BTC/USDT", "1h", limits=info.risk_limits, broker=PaperBroker(), store=store,
            audit=RiskAuditAgent.for_strategy(manager, "meanrev", info.risk_limits),
        )
        session.run(candles["timestamp"].tolist(), candles["close"].tolist(), signals)
    with TradingState.open("meanrev", tmp_path / "strategies" / "meanrev") as replayed:
        fills = replayed.fills()
        assert len(fills) > 10
        assert fills == store.fills()
        assert [e for _, e in replayed.equity_curve()] == store.equities


def test_models_are_loaded_by_version_and_a_missing_one_names_the_train_command(manager, tmp_path):
    strategy = Recorder("modelled", requires_model=True)
    with manager.registered(strategy, "modelled"):
        with pytest.raises(ModelNotFoundError, match="trader train --plugin modelled --symbol BTC/USDT --timeframe 1h"):
            runner(manager, tmp_path, "modelled", max_candles=1).run()
        from trader.models import ModelPersistence

        persistence = ModelPersistence(tmp_path / "models")
        handle = manager.strategy("modelled")
        for threshold in (0.1, 0.2):
            persistence.save(handle, TrainResult(model={"threshold": threshold}), symbol="BTC/USDT", timeframe="1h",
                             data_range=(0, 1), data_hash="0" * 64, seed=0)
        runner(manager, tmp_path, "modelled", max_candles=2, model_version="1").run()
        assert strategy.requests[-1].model == {"threshold": 0.1}
        runner(manager, tmp_path, "modelled", max_candles=2).run()
        assert strategy.requests[-1].model == {"threshold": 0.2}
        with pytest.raises(ModelNotFoundError, match="v7"):
            runner(manager, tmp_path, "modelled", max_candles=1, model_version="7").run()


def test_a_stop_request_finishes_the_step_and_returns(manager, tmp_path):
    strategy = Recorder("meanrev")
    with manager.registered(strategy, "meanrev"):
        r = runner(manager, tmp_path, "meanrev", speed=360_000.0)  # 100 candles/s
        timer = threading.Timer(0.3, r.stop.set)
        timer.start()
        summary = r.run()
    assert summary.stopped_by == "a stop signal"
    assert 5 <= summary.processed < 400
    with TradingState.open("meanrev", tmp_path / "strategies" / "meanrev") as store:
        assert len(store.equity_curve()) == summary.processed

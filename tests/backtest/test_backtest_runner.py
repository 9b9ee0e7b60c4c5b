"""The batched backtest runs the engine's own step: same trades as a per-candle loop, same risk rules."""

from __future__ import annotations

import numpy as np
import pytest
from backtest_fakes import DenyBuys, RecordingThreshold, SmaCross

from trader.backtest.runner import BacktestSettings, effective_limits, run_backtest
from trader.backtest.signals import request_signals
from trader.backtest.walkforward import WalkForwardPlan, run_walk_forward
from trader.config import load_config
from trader.data import synthetic_candles
from trader.plugins import TraderPluginManager

FAST = BacktestSettings(n_resamples=200)


@pytest.fixture(scope="module")
def candles():
    return synthetic_candles("SYN/USDT", "1h", bars=1200, seed=11)


@pytest.fixture
def manager():
    return TraderPluginManager(load_entrypoints=False)


def _config(tmp_path, toml: str = ""):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "trader.toml").write_text(toml)
    return load_config(None, tmp_path)


def _fill_tuples(fills):
    return [(f["timestamp"], f["side"], round(f["quantity"], 10), round(f["price"], 8), round(f["fee"], 8)) for f in fills]


def test_batched_backtest_makes_the_same_trades_as_a_per_candle_loop(manager, candles, tmp_path):
    """The naive way (history up to the candle, one signal, one engine step) and the batched way agree."""
    from trader.engine.brokers.paper import PaperBroker
    from trader.engine.memory import MemoryState
    from trader.engine.risk import RiskAuditAgent
    from trader.engine.step import TradingSession

    config = _config(tmp_path, "[plugins.fake_sma.risk]\nmax_consecutive_losses = 1000\n")
    plugin = SmaCross(fast=3, slow=12)
    with manager.registered(plugin, plugin.name):
        result = run_backtest(manager, config, plugin.name, candles, symbol="SYN/USDT", timeframe="1h", settings=FAST)
        strategy = manager.strategy(plugin.name)
        limits = effective_limits(strategy, config)
        store = MemoryState(plugin.name)
        session = TradingSession(plugin.name, "SYN/USDT", "1h", limits=limits, broker=PaperBroker(), store=store,
                                 audit=RiskAuditAgent.for_strategy(manager, plugin.name, limits), initial_cash=10_000.0)
        for t in range(len(candles)):
            signal = None
            if t >= plugin.warmup:
                history = candles.iloc[: t + 1]
                signal = request_signals(strategy, history, [t], symbol="SYN/USDT", timeframe="1h")[0]
            session.step(int(candles["timestamp"].iloc[t]), float(candles["close"].iloc[t]), signal)
    assert len(result.run.fills) > 20  # a strategy that trades, so the comparison means something
    assert _fill_tuples(result.run.fills) == _fill_tuples(store.fills())
    assert result.run.equity[-1] == pytest.approx(store.equities[-1], rel=1e-12)
    assert result.run.metrics.fees_paid == pytest.approx(sum(f["fee"] for f in store.fills()))


def test_config_risk_limits_bind_the_backtest(manager, candles, tmp_path):
    plugin = SmaCross(fast=3, slow=12)
    with manager.registered(plugin, plugin.name):
        loose = run_backtest(manager, _config(tmp_path / "a", ""), plugin.name, candles, symbol="SYN/USDT",
                             timeframe="1h", settings=FAST)
        tight = run_backtest(manager, _config(tmp_path / "b", "[plugins.fake_sma.risk]\nmax_position_fraction = 0.2\n"),
                             plugin.name, candles, symbol="SYN/USDT", timeframe="1h", settings=FAST)
    def at_buys(run):  # position over equity right after each buy (prices move it afterwards)
        bought = {f["timestamp"] - 3_600_000 for f in run.fills if f["side"] == "buy"}
        return run.exposure[np.isin(run.timestamps, list(bought))]

    assert at_buys(loose.run).max() > 0.4
    assert 0.1 < at_buys(tight.run).max() <= 0.2 * 1.001  # fees and slippage shave the equity it is measured against
    assert tight.settings["max_position_fraction"] == 0.2


def test_a_risk_plugin_that_denies_buys_stops_every_trade(manager, candles, tmp_path):
    plugin = SmaCross(fast=3, slow=12)
    with manager.registered(plugin, plugin.name), manager.registered(DenyBuys(), "deny_buys"):
        result = run_backtest(manager, _config(tmp_path), plugin.name, candles, symbol="SYN/USDT", timeframe="1h",
                              settings=FAST)
    assert result.run.fills == ()
    assert result.run.denied_orders()["NO_BUYS_TODAY"] > 0
    assert result.benchmark is not None and result.benchmark.fills == ()  # the baseline is under the same audit
    assert result.run.metrics.total_return == 0.0


def test_fees_and_slippage_are_charged(manager, candles, tmp_path):
    plugin = SmaCross(fast=3, slow=12)
    config = _config(tmp_path, "[plugins.fake_sma.risk]\nmax_consecutive_losses = 1000\n")
    with manager.registered(plugin, plugin.name):
        free = run_backtest(manager, config, plugin.name, candles, symbol="SYN/USDT", timeframe="1h",
                            settings=BacktestSettings(fee_bps=0, slippage_bps=0, n_resamples=200))
        costly = run_backtest(manager, config, plugin.name, candles, symbol="SYN/USDT", timeframe="1h",
                              settings=BacktestSettings(fee_bps=25, slippage_bps=5, n_resamples=200))
    assert free.run.metrics.fees_paid == 0.0
    assert costly.run.metrics.final_equity < free.run.metrics.final_equity
    notional = sum(f["quantity"] * f["price"] for f in costly.run.fills)
    assert costly.run.metrics.fees_paid == pytest.approx(notional * 0.0025, rel=1e-9)
    buys = [f for f in costly.run.fills if f["side"] == "buy"]
    closes = dict(zip(candles["timestamp"], candles["close"], strict=True))
    # filled at the deciding candle's close (the fill is stamped at its close time) plus slippage
    assert all(f["price"] == pytest.approx(closes[f["timestamp"] - 3_600_000] * 1.0005) for f in buys)


def test_range_warmup_and_no_candle_after_the_range_is_shown(manager, candles, tmp_path):
    plugin = RecordingThreshold()
    ts = candles["timestamp"].to_numpy()
    with manager.registered(plugin, plugin.name):
        strategy = manager.strategy(plugin.name)
        from trader.types import TrainRequest

        trained = strategy.train(TrainRequest(plugin.name, "SYN/USDT", "1h", candles.iloc[:300]))

        class Loaded:  # what ModelPersistence.load returns, reduced to what the runner reads
            model = trained.model
            manifest = {"label": {"horizon": 1, "threshold": 0.0, "kind": "binary"},
                        "data": {"range": {"start": int(ts[0]), "end": int(ts[299]), "rows": 300}}}
            version = "v1"

        result = run_backtest(manager, _config(tmp_path), plugin.name, candles, symbol="SYN/USDT", timeframe="1h",
                              start=int(ts[500]), end=int(ts[899]), settings=FAST, loaded_model=Loaded())
    assert result.run.timestamps[0] == ts[500] and result.run.timestamps[-1] == ts[899]
    assert max(plugin.signal_last_ts) == ts[899]  # the strategy never saw a candle after the range
    assert result.model == {"version": "v1", "trained_on": {"start": int(ts[0]), "end": int(ts[299]), "rows": 300},
                            "purge_bars": 1, "sample": "out_of_sample", "in_sample": False, "overlap_fraction": 0.0,
                            "before_fraction": 0.0, "after_fraction": 1.0}
    cls = result.classification
    assert cls["n_samples"] == 399  # the last candle of the range has no label inside the data shown
    assert set(cls["model"]) == {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss"}


def test_walk_forward_trains_only_on_candles_before_each_test_window(manager, candles, tmp_path):
    plugin = RecordingThreshold()
    plan = WalkForwardPlan(train_bars=300, test_bars=200, purge=10, embargo=5)
    ts = candles["timestamp"].to_numpy()
    calls = []
    with manager.registered(plugin, plugin.name):
        result = run_walk_forward(manager, _config(tmp_path), plugin.name, candles, plan, symbol="SYN/USDT",
                                  timeframe="1h", settings=FAST, progress=lambda *a: calls.append(a[0]))
    folds = result.folds
    assert len(folds) == 5  # (1200 - 315) / 200 rounded up: the last one partial
    assert plugin.train_rows == [300] * 5
    for fold, last_seen in zip(folds, plugin.train_last_ts, strict=True):
        assert last_seen == ts[fold["test_start"] - 16]  # purge 10 + embargo 5: the trainer stops before the gap
        assert last_seen < fold["test_start_time"]
    assert result.run.timestamps[0] == ts[315] and result.run.timestamps[-1] == ts[-1]
    assert calls.count("train") == calls.count("done") == 5
    cls = result.classification
    assert cls["n_samples"] == len(candles) - 315 - 1
    assert all(f["classification"]["baseline"]["roc_auc"] == pytest.approx(0.5) for f in folds)  # a constant score
    returns = [f["test_return"] for f in folds]
    assert np.prod([1 + r for r in returns]) == pytest.approx(result.run.metrics.final_equity / 10_000.0, rel=1e-9)

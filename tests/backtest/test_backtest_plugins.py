"""The three shipped strategies through walk-forward and the look-ahead checks (tiny models, small data)."""

from __future__ import annotations

import pytest

from trader.backtest.lookahead import CheckContext, run_checks
from trader.backtest.runner import BacktestSettings
from trader.backtest.walkforward import WalkForwardPlan, run_walk_forward
from trader.config import load_config
from trader.data import synthetic_candles
from trader.plugins import TraderPluginManager
from trader.types import TrainRequest

TINY = {
    "dl_lstm": {"epochs": 1, "max_batches_per_epoch": 3, "hidden_size": 8, "head_hidden": 8, "sequence_length": 16},
    "dl_transformer": {"epochs": 1, "max_batches_per_epoch": 3, "d_model": 8, "nhead": 2, "num_layers": 1,
                       "dim_feedforward": 16, "sequence_length": 16},
    "ensemble": {"hgb_max_iter": 10, "trees": 5, "members": ["hgb", "logistic"]},
}


@pytest.fixture(scope="module")
def manager():
    manager = TraderPluginManager()
    missing = [name for name in TINY if name not in manager.strategy_names()]
    if missing:
        pytest.skip(f"plugins not installed: {', '.join(missing)}")
    return manager


@pytest.fixture(scope="module")
def candles():
    return synthetic_candles("SYN/USDT", "1h", bars=1100, seed=21, planted_signal=0.3)


@pytest.mark.parametrize("plugin", sorted(TINY))
def test_walk_forward_and_checks_work_for_the_shipped_strategies(plugin, manager, candles, tmp_path):
    plan = WalkForwardPlan(train_bars=500, test_bars=250, purge=5, train_params=TINY[plugin])
    result = run_walk_forward(manager, load_config(None, tmp_path), plugin, candles, plan, symbol="SYN/USDT",
                              timeframe="1h", settings=BacktestSettings(n_resamples=100))
    assert len(result.folds) == 3  # rows 505.., 755.., 1005..1099
    assert result.run.timestamps.size == 1100 - 505
    cls = result.classification
    assert cls is not None and cls["n_samples"] > 400  # every out-of-sample candle after the warm-up is scored
    assert result.benchmark is not None and result.significance is not None

    strategy = manager.strategy(plugin)
    data = candles.iloc[:500]
    trained = strategy.train(TrainRequest(plugin, "SYN/USDT", "1h", data, params=TINY[plugin]))
    ctx = CheckContext(strategy, data, "SYN/USDT", "1h", model=trained.model, train_result=trained, samples=4)
    checks = {c.name: c for c in run_checks(ctx)}
    assert {name: c.status for name, c in checks.items()} == {
        "truncation": "pass", "batch": "pass", "determinism": "pass", "warmup": "pass", "persistence": "pass",
        "isolation": "skip"}, checks

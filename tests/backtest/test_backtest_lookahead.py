"""``trader.backtest.lookahead``: honest strategies pass, leaky and broken ones are caught by name."""

from __future__ import annotations

import pytest
from backtest_fakes import BatchNormalised, EmaTrend, PeekNextClose, PeekNextFeature, SmaCross, Threshold

from trader.backtest.lookahead import CheckContext, run_checks
from trader.data import synthetic_candles
from trader.plugins import TraderPluginManager
from trader.types import TrainRequest


@pytest.fixture(scope="module")
def candles():
    return synthetic_candles("SYN/USDT", "1h", bars=400, seed=3)


@pytest.fixture
def manager():
    return TraderPluginManager(load_entrypoints=False)


def _results(manager, plugin, candles, **kwargs):
    with manager.registered(plugin, plugin.name):
        ctx = CheckContext(manager.strategy(plugin.name), candles, "SYN/USDT", "1h", **kwargs)
        return {r.name: r for r in run_checks(ctx)}


def test_buy_and_hold_passes_every_check_and_skips_persistence(manager, candles):
    ctx = CheckContext(manager.strategy("buy_and_hold"), candles, "SYN/USDT", "1h")
    results = {r.name: r for r in run_checks(ctx)}
    assert [results[n].status for n in ("truncation", "batch", "determinism", "warmup")] == ["pass"] * 4
    assert results["persistence"].status == "skip"


def test_honest_sma_crossover_passes(manager, candles):
    results = _results(manager, SmaCross(), candles)
    assert {r.status for r in results.values()} <= {"pass", "skip"}, results


def test_leaky_strategy_fails_truncation_naming_the_candle(manager, candles):
    results = _results(manager, PeekNextClose(), candles, samples=10)
    trunc = results["truncation"]
    assert trunc.status == "fail"
    # every offending entry names a candle by row and UTC time
    assert trunc.offending and all(line.startswith("candle ") and "UTC" in line for line in trunc.offending)
    # the look-ahead does not depend on the batch, so that check passes: the report separates the two causes
    assert results["batch"].status == "pass"
    # a leak is never turned into warm-up advice: the warm-up check is not judged
    assert results["warmup"].status == "skip" and "not judged" in results["warmup"].detail


def test_truncation_names_the_candle_column_that_leaks(manager, candles):
    trunc = _results(manager, PeekNextClose(), candles, samples=10)["truncation"]
    assert "candle column 'close'" in trunc.detail and "'open'" not in trunc.detail
    assert "the signal depends on later candles" in trunc.offending[0]
    assert "it changes when candle column 'close' after row" in " ".join(trunc.offending)


def test_truncation_names_the_feature_that_leaks(manager, candles):
    trunc = _results(manager, PeekNextFeature(), candles, samples=10)["truncation"]
    assert trunc.status == "fail"
    # the strategy reads the feature, not the candles: perturbing a candle column alone changes nothing
    assert "feature 'ret_1'" in trunc.detail and "candle column" not in trunc.detail
    # the core's features themselves are causal: no row reports a feature reading later candles
    assert not any("features that read later candles" in line for line in trunc.offending)


def test_batch_dependent_strategy_fails_the_batch_check(manager, candles):
    results = _results(manager, BatchNormalised(), candles)
    assert results["batch"].status == "fail"
    assert "asked alone" in " ".join(results["batch"].offending)


def test_too_short_warmup_is_caught_and_enough_warmup_passes(manager, candles):
    short = _results(manager, EmaTrend(span=50, warmup=5), candles)["warmup"]
    assert short.status == "fail"
    assert "warmup_bars=5" in short.detail and short.offending[0].startswith("candle ")
    enough = _results(manager, EmaTrend(name="fake_ema_ok", span=10, warmup=120), candles, samples=6)["warmup"]
    assert enough.status == "pass", enough


def test_persistence_round_trip_passes_and_a_lossy_save_fails(manager, candles):
    for plugin, expected in ((Threshold(), "pass"), (Threshold("fake_lossy", lossy=True), "fail")):
        with manager.registered(plugin, plugin.name):
            strategy = manager.strategy(plugin.name)
            result = strategy.train(TrainRequest(plugin.name, "SYN/USDT", "1h", candles))
            ctx = CheckContext(strategy, candles, "SYN/USDT", "1h", model=result.model, train_result=result)
            check = {r.name: r for r in run_checks(ctx)}["persistence"]
        assert check.status == expected, check
        if expected == "fail":
            assert "reloaded model" in check.offending[0]

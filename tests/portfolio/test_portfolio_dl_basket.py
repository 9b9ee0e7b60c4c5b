"""dl_lstm and dl_transformer on a basket: one batched forward pass per step gives each market the per-market hook's signal.

Markets with different histories (one listed later, one with a gap, one with no candle at
the step), tiny networks trained for one epoch, a pooled model and one model per market.
"""

from __future__ import annotations

import numpy as np
import pytest

from trader.backtest.runner import batch_signals
from trader.backtest.signals import strategy_features
from trader.data.synth import synthetic_candles
from trader.plugins import TraderPluginManager
from trader.portfolio import align
from trader.portfolio.signals import basket_signals
from trader.types import BasketRequest, SignalRequest, TrainRequest

SYMBOLS = ("AAA/USDT", "BBB/USDT", "CCC/USDT", "DDD/USDT")
TINY = {"epochs": 1, "hidden_size": 8, "head_hidden": 0, "sequence_length": 8, "batch_size": 128, "threads": 1,
        "d_model": 8, "nhead": 2, "num_layers": 1, "dim_feedforward": 16}


def _frames(bars: int = 500) -> dict:
    a = synthetic_candles("AAA/USDT", "1h", bars, seed=1)
    b = synthetic_candles("BBB/USDT", "1h", bars, seed=2).iloc[150:].reset_index(drop=True)  # listed later
    c = synthetic_candles("CCC/USDT", "1h", bars, seed=3).drop(index=range(300, 340)).reset_index(drop=True)  # a gap
    d = synthetic_candles("DDD/USDT", "1h", bars, seed=4).iloc[:-1].reset_index(drop=True)  # no candle at the last step
    return {"AAA/USDT": a, "BBB/USDT": b, "CCC/USDT": c, "DDD/USDT": d}


@pytest.fixture(scope="module", params=["dl_lstm", "dl_transformer"])
def trained(request):
    manager = TraderPluginManager()
    strategy = manager.strategy(request.param)
    assert strategy.cross_sectional  # the basket hook: one call for every market
    frames = _frames()
    info = strategy.info
    params = {k: v for k, v in TINY.items() if any(p.name == k for p in info.params)}
    models = [strategy.train(TrainRequest(strategy=strategy.name, symbol=s, timeframe="1h", candles=frames[s].iloc[:300],
                                          params=params, seed=i)).model for i, s in enumerate(("AAA/USDT", "BBB/USDT"))]
    return strategy, frames, models


def _live_request(strategy, frames, models: dict, cut: int) -> tuple[BasketRequest, dict]:
    """A live step: each market's candles up to the timeline's position ``cut``."""
    timeline = np.unique(np.concatenate([f["timestamp"].to_numpy() for f in frames.values()]))[: cut + 1]
    candles = {s: f[f["timestamp"] <= timeline[-1]].reset_index(drop=True) for s, f in frames.items()}
    features = {s: strategy_features(strategy.info, c, "1h") for s, c in candles.items()}
    shared = {id(m) for m in models.values()}
    request = BasketRequest(strategy=strategy.name, symbols=SYMBOLS, timeframe="1h", timestamps=timeline, candles=candles,
                            at=[timeline.size - 1], features=features, models=models,
                            model=next(iter(models.values())) if len(shared) == 1 else None)
    return request, features


@pytest.mark.slow
@pytest.mark.parametrize("pooled", [True, False])
def test_one_step_gives_each_market_the_per_market_signal(trained, pooled):
    strategy, frames, (first, second) = trained
    models = dict.fromkeys(SYMBOLS, first) if pooled else {"AAA/USDT": first, "BBB/USDT": second,
                                                             "CCC/USDT": first, "DDD/USDT": second}
    warm = strategy.info.warmup_bars
    forwards: list[int] = []
    hooks = [model.module.register_forward_hook(lambda module, args, out: forwards.append(args[0].shape[0]))
             for model in {id(m): m for m in models.values()}.values()]
    for cut in (130, 260, 320, 499):  # BBB not listed, in warm-up, then trading; CCC in its gap; DDD without the last candle
        request, features = _live_request(strategy, frames, models, cut)
        forwards.clear()
        (answer,) = strategy.generate_basket_signals(request)
        batches = list(forwards)
        expected = {}
        for symbol in SYMBOLS:
            candles = request.candles[symbol]
            row = len(candles) - 1
            if row < warm or candles["timestamp"].iat[row] != request.timestamps[-1]:
                continue  # no candle at the step, or still warming up: not asked
            expected[symbol] = strategy.generate_signals(SignalRequest(
                strategy=strategy.name, symbol=symbol, timeframe="1h", candles=candles, at=[row],
                features=features[symbol], model=models[symbol]))[0]
        assert set(answer) == set(expected)
        for symbol, signal in expected.items():
            got = answer[symbol]
            assert got.action == signal.action and got.reason == signal.reason
            assert got.probability == pytest.approx(signal.probability, abs=1e-6)
            assert got.confidence == pytest.approx(signal.confidence, abs=1e-6)
        # one batched pass per distinct model among the markets asked, not one per market
        assert len(batches) == len({id(models[s]) for s in expected})
        assert sum(batches) == len(expected)
    for hook in hooks:
        hook.remove()


@pytest.mark.slow
def test_a_basket_backtest_gives_the_per_market_signals_bit_for_bit(trained):
    strategy, frames, (first, second) = trained
    models = {"AAA/USDT": first, "BBB/USDT": second, "CCC/USDT": first, "DDD/USDT": second}
    basket = align(frames, "1h")
    start, last = 100, len(basket) - 1
    answers, _ = basket_signals(strategy, basket, start, last, models=models)
    compared = 0
    for j, symbol in enumerate(basket.symbols):
        rows = basket.rows[start : last + 1, j]
        present = np.flatnonzero(rows >= 0)
        r_first, r_last = int(rows[present[0]]), int(rows[present[-1]])
        per_market = batch_signals(strategy, frames[symbol], r_first, r_last, symbol=symbol, timeframe="1h",
                                   features=strategy_features(strategy.info, frames[symbol], "1h"), model=models[symbol])
        for k in present:
            expected = per_market.signals[int(rows[k]) - r_first]
            if expected is None:
                assert symbol not in answers[int(k)]
            else:
                assert answers[int(k)][symbol] == expected
                compared += 1
    assert compared > 1000

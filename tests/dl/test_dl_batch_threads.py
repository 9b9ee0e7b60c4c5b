"""Backtests' batched forward pass on every core: batches side by side, the same signals bit for bit."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from dl_helpers import manager, random_walk, train

from trader.errors import ConfigError
from trader.features import FeatureEngineer
from trader.ml.inference import INFERENCE_BATCH_SIZE
from trader.ml.seeding import default_batch_threads
from trader.ml.thresholds import SequenceSignalSettings
from trader.types import SignalRequest

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def plugins():
    return manager()


@pytest.fixture(scope="module")
def candles():
    return random_walk(2600, seed=11)


@pytest.fixture(scope="module")
def features(candles):
    return FeatureEngineer().transform(candles)


@pytest.fixture(scope="module", params=["dl_lstm", "dl_transformer"])
def trained(request, plugins, candles):
    return request.param, train(plugins.strategy(request.param), candles.iloc[:500], epochs=1).model


def _signals(plugins, name, model, candles, features, rows, **params):
    return plugins.strategy(name).generate_signals(SignalRequest(
        strategy=name, symbol="SYN/USDT", timeframe="1h", candles=candles, at=rows, features=features, model=model,
        params=params))


def test_backtest_signals_are_identical_with_one_two_and_three_threads(plugins, trained, candles, features):
    name, model = trained
    rows = list(range(40, len(candles)))  # 2,560 windows: ten batches of 256, the warm-up rows included
    one = _signals(plugins, name, model, candles, features, rows, batch_threads=1)
    assert sum(s.probability is not None for s in one) > 2048
    assert INFERENCE_BATCH_SIZE == 256
    for threads in (2, 3):
        assert _signals(plugins, name, model, candles, features, rows, batch_threads=threads) == one
    assert _signals(plugins, name, model, candles, features, rows) == one  # the default: every core


def test_batches_run_side_by_side_on_one_torch_thread_each(trained, features):
    _, model = trained
    scaled = model.scale(model.feature_matrix(features, 0, len(features)))
    ends = np.arange(100, len(features))
    seen: list[tuple[str, int]] = []
    hook = model.module.register_forward_pre_hook(
        lambda *_: seen.append((threading.current_thread().name, torch.get_num_threads())))
    try:
        torch.set_num_threads(2)
        reference = model.predict_windows(scaled, ends, batch_size=128, threads=1)
        threads_one = set(seen)
        seen.clear()
        for threads in (2, 4):
            assert np.array_equal(model.predict_windows(scaled, ends, batch_size=128, threads=threads), reference)
        assert torch.get_num_threads() == 2  # the caller's count is restored
    finally:
        hook.remove()
        torch.set_num_threads(1)
    assert threads_one == {(threading.current_thread().name, 1)}  # one thread: the caller's own, one torch thread
    names = {name for name, _ in seen}
    assert len(names) >= 2 and all(name.startswith("trader-forward") for name in names)
    assert {count for _, count in seen} == {1}  # no OpenMP team: nothing spins while another batch runs


def test_one_batch_runs_on_the_callers_thread(trained, features):
    _, model = trained
    scaled = model.scale(model.feature_matrix(features, 0, len(features)))
    seen: list[str] = []
    hook = model.module.register_forward_pre_hook(lambda *_: seen.append(threading.current_thread().name))
    try:
        model.predict_windows(scaled, np.arange(100, 356), threads=4)  # 256 windows: one batch
    finally:
        hook.remove()
    assert seen == [threading.current_thread().name]


def test_a_failing_batch_raises_in_the_caller(trained, features):
    _, model = trained
    scaled = model.scale(model.feature_matrix(features, 0, len(features)))
    calls = []

    def fail_third(*_):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("batch three broke")

    hook = model.module.register_forward_pre_hook(fail_third)
    try:
        with pytest.raises(RuntimeError, match="batch three broke"):
            model.predict_windows(scaled, np.arange(100, len(features)), batch_size=256, threads=2)
    finally:
        hook.remove()


def test_batch_threads_is_a_positive_integer_and_defaults_to_every_core(monkeypatch):
    assert SequenceSignalSettings.from_params({}).batch_threads is None
    assert SequenceSignalSettings.from_params({"batch_threads": 2}).batch_threads == 2
    with pytest.raises(ConfigError, match="batch_threads must be an integer >= 1, got 0"):
        SequenceSignalSettings.from_params({"batch_threads": 0})
    monkeypatch.delenv("TRADER_TASK_THREADS", raising=False)
    from trader.config_rules import usable_cores

    assert default_batch_threads() == usable_cores()
    monkeypatch.setenv("TRADER_TASK_THREADS", "3")  # inside an executor's task: the task's share
    assert default_batch_threads() == 3

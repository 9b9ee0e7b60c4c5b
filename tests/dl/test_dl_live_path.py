"""The one-window live path gives exactly what the general path gives (same probabilities, bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dl_helpers import manager, random_walk, train
from torch.func import functional_call

from trader.features import FeatureEngineer
from trader.types import SignalRequest
from trader_dl_lstm.model import BiLSTMClassifier

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def plugins():
    return manager()


@pytest.fixture(scope="module")
def candles():
    return random_walk(700, seed=5)


@pytest.fixture(scope="module")
def features(candles):
    return FeatureEngineer().transform(candles)


@pytest.fixture(scope="module", params=["dl_lstm", "dl_transformer"])
def model(request, plugins, candles):
    return train(plugins.strategy(request.param), candles.iloc[:500], epochs=1).model


def _reference(model, features, end: int) -> float | None:
    """The general path: a fresh scaled window, ``predict_window``."""
    window = model.scaled_window(features, end - model.sequence_length + 1, end + 1)
    if not np.isfinite(window).all():
        return None
    return float(model.predict_window(window)[model.up_class])


def test_live_probability_equals_the_fresh_window_path_bit_for_bit(model, features):
    before = features.copy()
    ends = [model.sequence_length - 1, 55, 60, 61, 200, 480, 699, 200]  # warm-up rows, the end, a repeat
    got = [model.live_probability(features, end) for end in ends]
    want = [_reference(model, features, end) for end in ends]
    assert got == want
    assert got[0] is None and all(p is not None for p in got[3:])  # NaN feature rows make no probability
    assert len({p for p in got[3:]}) > 1  # different windows, different probabilities (the buffer is refilled)
    assert features.equals(before)  # the frame is only read


def test_the_live_path_reads_columns_by_name_and_falls_back_while_busy(model, features):
    shuffled = features[list(reversed(features.columns))]
    assert model.live_probability(shuffled, 300) == _reference(model, features, 300)
    assert model._live_lock.acquire(blocking=False)  # another caller holds the buffer: the fresh path answers
    try:
        assert model.live_probability(features, 301) == _reference(model, features, 301)
    finally:
        model._live_lock.release()
    short = features.iloc[:295]  # a frame that ends inside the window: the window it has, as before
    assert model.live_probability(short, 300) == _reference(model, short, 300)


def test_the_plugin_live_signal_uses_the_same_probability(plugins, model, candles, features):
    name = "dl_lstm" if isinstance(model.module, BiLSTMClassifier) else "dl_transformer"
    strategy = plugins.strategy(name)
    request = SignalRequest(strategy=name, symbol="SYN/USDT", timeframe="1h", candles=candles, at=[640],
                            features=features, model=model)
    live = strategy.generate_signals(request)[0]
    batch = strategy.generate_signals(SignalRequest(strategy=name, symbol="SYN/USDT", timeframe="1h", candles=candles,
                                                    at=[639, 640], features=features, model=model))[1]
    assert live.probability == _reference(model, features, 640)
    assert live.action == batch.action and live.probability == pytest.approx(batch.probability, abs=1e-6)


@pytest.mark.parametrize("kwargs", [
    {},
    {"bidirectional": False},
    {"num_layers": 2, "dropout": 0.1},
    {"head_hidden": 0, "hidden_size": 16},
])
@pytest.mark.parametrize("batch", [1, 5])
def test_bilstm_inference_forward_equals_the_module_path(kwargs, batch):
    torch.manual_seed(3)
    net = BiLSTMClassifier(input_size=7, **kwargs).eval()
    x = torch.randn(batch, 11, 7)
    with torch.no_grad():  # the modules' own path
        want = net.head(net.norm(_last_hidden(net, net.lstm(x)[1][0])))
    with torch.inference_mode():
        assert torch.equal(net(x), want)
    with torch.no_grad():
        assert torch.equal(net(x), want)


def _last_hidden(net: BiLSTMClassifier, hidden: torch.Tensor) -> torch.Tensor:
    return torch.cat([hidden[-2], hidden[-1]], dim=1) if net.config["bidirectional"] else hidden[-1]


def _module_path(net: BiLSTMClassifier, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.head(net.norm(_last_hidden(net, net.lstm(x)[1][0])))


def test_bilstm_inference_forward_follows_swapped_and_converted_weights():
    torch.manual_seed(4)
    net = BiLSTMClassifier(input_size=5, hidden_size=8).eval()
    x = torch.randn(1, 9, 5)
    with torch.no_grad():
        before = net(x)
        swapped = {name: value + 0.25 for name, value in net.named_parameters()}
        got = functional_call(net, swapped, (x,))
    assert not torch.equal(got, before)
    with torch.no_grad():
        for name, value in swapped.items():
            net.get_parameter(name).copy_(value)
    assert torch.equal(got, _module_path(net, x))  # the swapped weights were used, not the stale flat list
    double = BiLSTMClassifier(input_size=5, hidden_size=8).eval().double()
    with torch.no_grad():
        assert torch.equal(double(x.double()), _module_path(double, x.double()))

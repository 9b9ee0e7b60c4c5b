"""Small models and markets for the deep-learning tests (tiny networks, a few thousand candles)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader.plugins import TraderPluginManager
from trader.types import TrainRequest

#: Tiny architectures: the tests are about behaviour, not capacity.
TINY = {
    "dl_lstm": {"hidden_size": 12, "head_hidden": 0, "dropout": 0.0},
    "dl_transformer": {"d_model": 16, "nhead": 2, "num_layers": 1, "dim_feedforward": 32, "dropout": 0.0},
}
#: Short windows, one thread, balanced labels (sign of the next return) so accuracy is meaningful.
FAST = {"sequence_length": 12, "threads": 1, "batch_size": 64, "label_threshold": 0.0, "learning_rate": 3e-3}


def random_walk(bars: int, seed: int) -> pd.DataFrame:
    """A pure geometric random walk: i.i.d. returns, nothing to learn."""
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0, 0.006, bars)
    close = 100.0 * np.exp(np.cumsum(returns))
    open_ = np.concatenate(([100.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.002, (2, bars)))
    return pd.DataFrame({
        "timestamp": (1_704_067_200_000 + 3_600_000 * np.arange(bars)).astype(np.int64),
        "open": open_,
        "high": np.maximum(open_, close) * (1 + wick[0]),
        "low": np.minimum(open_, close) * (1 - wick[1]),
        "close": close,
        "volume": rng.lognormal(3.0, 0.5, bars),
    })


def manager() -> TraderPluginManager:
    return TraderPluginManager(disabled=())


def train(strategy, candles, *, epochs: int = 3, seed: int = 0, **params):
    name = strategy.name
    request = TrainRequest(
        strategy=name, symbol="SYN/USDT", timeframe="1h", candles=candles,
        params={"epochs": epochs, **FAST, **TINY[name], **params}, seed=seed,
    )
    return strategy.train(request)

"""Data helpers for the feature tests (imported by name; fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from trader.data import synthetic_candles

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# file name -> (timeframe, base currency for files with several volume columns)
REAL_FILES = {
    "Binance_BTCUSDT_1h.csv": ("1h", "BTC"),
    "ETH_BTC-5m.feather": ("5m", None),
    "ADA_BTC-5m.feather": ("5m", None),
    "UNITTEST_BTC-1m.feather": ("1m", None),
}


def load_real(name: str) -> tuple[pd.DataFrame, str]:
    """A real candle file through the project's importer, or skip naming what is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"real data {path} is absent (see ../shared/data/README.md); synthetic tests still ran")
    from trader.data.importers import read_candle_file
    from trader.data.validate import validate_candles

    timeframe, base = REAL_FILES[name]
    clean = validate_candles(read_candle_file(path, base_currency=base), timeframe)
    return clean.candles, timeframe



def flat_volume_candles(n: int = 400, seed: int = 3) -> pd.DataFrame:
    """Candles with flat stretches (no price change, zero volume): the all-zero-window cases."""
    df = synthetic_candles("FLAT/USDT", "1m", bars=n, seed=seed).copy()
    for start in range(80, n - 40, 80):
        stop = start + 30
        price = df.loc[start - 1, "close"]
        df.loc[start:stop, ["open", "high", "low", "close"]] = price
        df.loc[start:stop, "volume"] = 0.0
    return df

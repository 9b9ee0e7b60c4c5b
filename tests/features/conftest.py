"""Fixtures for the feature tests: synthetic candles, candles with gaps, and the shared real data."""

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


@pytest.fixture(scope="session")
def candles() -> pd.DataFrame:
    """6,000 synthetic one-hour candles (no gaps)."""
    return synthetic_candles("SYN/USDT", "1h", bars=6000, seed=7)


@pytest.fixture(scope="session")
def gappy_candles() -> pd.DataFrame:
    """Synthetic 1m candles with missing bars: 1, 2 and 5 missing (filled) and 12 and 80 missing (splits)."""
    df = synthetic_candles("GAP/USDT", "1m", bars=6000, seed=11)
    drop = [700, 1500, 1501, 2300, 2301, 2302, 2303, 2304, *range(3000, 3012), *range(4100, 4180)]
    return df.drop(index=drop).reset_index(drop=True)


def flat_volume_candles(n: int = 400, seed: int = 3) -> pd.DataFrame:
    """Candles with flat stretches (no price change, zero volume): the all-zero-window cases."""
    df = synthetic_candles("FLAT/USDT", "1m", bars=n, seed=seed).copy()
    for start in range(80, n - 40, 80):
        stop = start + 30
        price = df.loc[start - 1, "close"]
        df.loc[start:stop, ["open", "high", "low", "close"]] = price
        df.loc[start:stop, "volume"] = 0.0
    return df

"""Fixtures for the feature tests: synthetic candles and candles with gaps."""

from __future__ import annotations

import pandas as pd
import pytest

from trader.data import synthetic_candles


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

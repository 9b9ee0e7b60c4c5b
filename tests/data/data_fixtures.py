"""Fixture builders for the data tests: candle files in every supported format, written by the tests."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

from trader.data import synthetic_candles


def candles(bars: int = 300, seed: int = 1, symbol: str = "BTC/USDT", timeframe: str = "1h", start: str = "2024-01-01") -> pd.DataFrame:
    """Synthetic candles rounded to 8 decimals, so text formats round-trip exactly."""
    df = synthetic_candles(symbol=symbol, timeframe=timeframe, bars=bars, seed=seed, start=start)
    for name in ("open", "high", "low", "close", "volume"):
        df[name] = df[name].round(8)
    return df


def write_ohlcv_json(df: pd.DataFrame, path: Path, compress: bool = False) -> Path:
    rows = [[int(t), o, h, low, c, v] for t, o, h, low, c, v in df.itertuples(index=False)]
    text = json.dumps(rows)
    if compress:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def write_freqtrade_feather(df: pd.DataFrame, path: Path) -> Path:
    out = df.drop(columns="timestamp")
    out.insert(0, "date", pd.to_datetime(df["timestamp"], unit="ms", utc=True))
    out.to_feather(path)
    return path


def write_cdd_csv(df: pd.DataFrame, path: Path, symbol: str = "BTC/USDT", preamble: bool = True) -> Path:
    """A CryptoDataDownload-style CSV like the real one: newest first, ms for the newer half and
    float seconds for the older, ``05-AM`` dates for seconds rows, NULL tradecounts."""
    base, quote = symbol.split("/")
    lines = ["https://www.CryptoDataDownload.com"] if preamble else []
    lines.append(f"unix,date,symbol,open,high,low,close,Volume {base},Volume {quote},tradecount")
    half = len(df) // 2
    for i in range(len(df) - 1, -1, -1):
        t, o, h, low, c, v = df.iloc[i]
        when = pd.Timestamp(int(t), unit="ms")
        if i >= half:
            unix, date, trades = str(int(t)), when.strftime("%Y-%m-%d %H:%M:%S"), "1234"
        else:
            unix, date, trades = f"{int(t) / 1000:.1f}", when.strftime("%Y-%m-%d %I-%p"), "NULL"
        lines.append(f"{unix},{date},{symbol},{o!r},{h!r},{low!r},{c!r},{v!r},{v * c:.2f},{trades}")
    path.write_text("\n".join(lines) + "\n")
    return path


def cdd_line_of(df_len: int, index: int, preamble: bool = True) -> int:
    """The line number of candle *index* in :func:`write_cdd_csv`'s newest-first file."""
    return (2 if preamble else 1) + (df_len - 1 - index) + 1


def shuffled_with_duplicates(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    extra = df.sample(n=max(1, len(df) // 10), random_state=seed)
    mixed = pd.concat([df, extra], ignore_index=True)
    return mixed.iloc[rng.permutation(len(mixed))].reset_index(drop=True)

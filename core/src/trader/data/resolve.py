"""Which candles a run, a training or a backtest uses: stored data, else the synthetic market."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from trader.data.frame import check_symbol, check_timeframe
from trader.data.store import CandleStore
from trader.data.synth import synthetic_candles, synthetic_source
from trader.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["resolve_candles"]


def resolve_candles(
    home: str | os.PathLike,
    symbol: str,
    timeframe: str,
    exchange: str | None = None,
    synthetic_bars: int = 5000,
    seed: int = 0,
) -> tuple[pd.DataFrame, str]:
    """``(candles, source)``: the stored dataset for *symbol*/*timeframe*, else the synthetic market.

    With ``exchange=None`` any exchange's dataset is used; when several exchanges hold one, a
    :class:`DataError` asks the caller to name one. Without stored data the result is
    ``synthetic_candles(symbol, timeframe, synthetic_bars, seed)`` and the source says so
    (``"synthetic market (seed 0)"``); a stored dataset's source is like
    ``"stored binance BTC/USDT 1h (36,062 bars)"``.
    """
    symbol = check_symbol(symbol)
    check_timeframe(timeframe)
    store = CandleStore(home)
    if exchange is not None:
        candidates = [exchange] if store.exists(exchange, symbol, timeframe) else []
    else:
        candidates = store.exchanges_with(symbol, timeframe)
    if len(candidates) > 1:
        raise DataError(
            f"stored {symbol} {timeframe} data exists for several exchanges ({', '.join(candidates)}); "
            "name one (--exchange or [exchange] id in trader.toml)"
        )
    if candidates:
        found = candidates[0]
        df = store.read(found, symbol, timeframe)
        if len(df) == 0:
            raise DataError(f"stored {found} {symbol} {timeframe} dataset is empty")
        return df, f"stored {found} {symbol} {timeframe} ({len(df):,} bars)"
    df = synthetic_candles(symbol=symbol, timeframe=timeframe, bars=synthetic_bars, seed=seed)
    return df, synthetic_source(seed)

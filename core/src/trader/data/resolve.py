"""Which candles a run, a training or a backtest uses: stored data, else the synthetic market."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from trader.data.frame import validate_market
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
    :class:`DataError` asks the caller to name one. A named exchange must hold the dataset: the
    synthetic market never stands in for data the user asked for by name. Without stored data the result is
    ``synthetic_candles(symbol, timeframe, synthetic_bars, seed)`` and the source says so
    (``"synthetic market (seed 0)"``); a stored dataset's source is like
    ``"stored binance BTC/USDT 1h (36,062 bars)"``.
    """
    symbol, timeframe = validate_market(symbol, timeframe)
    store = CandleStore(home)
    if exchange is not None:
        if not store.exists(exchange, symbol, timeframe):
            stored = store.exchanges_with(symbol, timeframe)
            where = f"stored for: {', '.join(stored)}" if stored else "nothing is stored for it"
            raise DataError(
                f"no stored {exchange} {symbol} {timeframe} candles ({where}); import or download them "
                "(`trader data import` / `trader data download`), or leave out --exchange to use any stored "
                "dataset or, when none is stored, the synthetic market"
            )
        candidates = [exchange]
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
    _warn_if_others_stored(store, symbol, timeframe, seed)
    df = synthetic_candles(symbol=symbol, timeframe=timeframe, bars=synthetic_bars, seed=seed)
    return df, synthetic_source(seed)


def _warn_if_others_stored(store: CandleStore, symbol: str, timeframe: str, seed: int) -> None:
    """A store holding other markets but not this one: most likely a mistyped symbol or timeframe, so say
    what is stored before the synthetic market stands in (an empty store is the tour's synthetic case)."""
    import logging

    stored = store.list()
    if not stored:
        return
    shown = ", ".join(f"{d.symbol} {d.timeframe}" for d in stored[:6]) + (f" and {len(stored) - 6} more" if len(stored) > 6 else "")
    logging.getLogger("trader.data").warning(
        "no stored %s %s candles (the store holds %s): using the synthetic market (seed %d)", symbol, timeframe, shown, seed)

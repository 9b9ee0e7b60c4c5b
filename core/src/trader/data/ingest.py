"""Importing a candle file into the store: read, validate, then write (only when valid)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs

from trader.data.frame import check_exchange, validate_market
from trader.data.importers import guess_from_filename, read_candle_file
from trader.data.limits import ImportLimits
from trader.data.store import CandleStore, MergeResult
from trader.data.validate import ImportPolicy, ValidationReport, validate_candles
from trader.errors import ConfigError, DataError

__all__ = ["ImportResult", "import_candle_file", "DEFAULT_IMPORT_EXCHANGE"]

#: The exchange label of imported data when neither ``--exchange`` nor the file name names one.
DEFAULT_IMPORT_EXCHANGE = "imported"


@attrs.frozen
class ImportResult:
    exchange: str
    symbol: str
    timeframe: str
    report: ValidationReport
    merge: MergeResult | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "report": self.report.as_dict(),
            "store": self.merge.as_dict() if self.merge else None,
        }


def import_candle_file(
    home: str | os.PathLike,
    path: str | os.PathLike,
    symbol: str | None = None,
    timeframe: str | None = None,
    exchange: str | None = None,
    policy: ImportPolicy | None = None,
    dry_run: bool = False,
    limits: ImportLimits | None = None,
) -> ImportResult:
    """Validate *path* and merge it into the store under ``home``; nothing is written when it fails.

    *symbol*, *timeframe* and *exchange* default to what the file name tells
    (``ETH_BTC-5m.feather``, ``Binance_BTCUSDT_1h.csv``); the exchange otherwise to ``imported``.
    The file is checked against *limits* before its rows are read.
    """
    path = Path(path)
    guess = guess_from_filename(path)
    symbol = symbol or guess.get("symbol")
    timeframe = timeframe or guess.get("timeframe")
    if not symbol:
        raise ConfigError(f"{path}: --symbol is required (the file name does not tell)")
    if not timeframe:
        raise ConfigError(f"{path}: --timeframe is required (the file name does not tell)")
    try:
        symbol, timeframe = validate_market(symbol, timeframe)
        exchange = check_exchange(exchange or guess.get("exchange") or DEFAULT_IMPORT_EXCHANGE)
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    raw = read_candle_file(path, base_currency=symbol.split("/")[0], limits=limits)
    clean = validate_candles(raw, timeframe, policy or ImportPolicy(), symbol=symbol)
    merge = None
    if not dry_run:
        merge = CandleStore(home).write(exchange, symbol, timeframe, clean.candles, filled=clean.filled)
    return ImportResult(exchange=exchange, symbol=symbol, timeframe=timeframe, report=clean.report, merge=merge)

"""Importing a candle file into the store: read, validate, then write (only when valid).

The symbol is ``--symbol``, else the file's own symbol column, else what the file name
tells. A final bar whose volume is far below the bars before it (:data:`FORMING_VOLUME_RATIO`)
may still have been forming when the file was written: it is flagged in the report and,
by default, dropped (``drop_incomplete=False`` keeps it, flagged).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs

from trader.data.frame import check_exchange, validate_market
from trader.data.importers import RawCandles, guess_from_filename, read_candle_file, symbol_from_column
from trader.data.limits import ImportLimits
from trader.data.store import CandleStore, MergeResult
from trader.data.validate import CleanCandles, Finding, ImportPolicy, ValidationReport, validate_candles
from trader.errors import ConfigError, DataError, ValidationError

__all__ = ["ImportResult", "import_candle_file", "forming_bar", "DEFAULT_IMPORT_EXCHANGE", "FORMING_VOLUME_RATIO"]

#: The exchange label of imported data when neither ``--exchange`` nor the file name names one.
DEFAULT_IMPORT_EXCHANGE = "imported"
#: A final bar with this many times less volume than the median of the bars before it may still have been forming.
FORMING_VOLUME_RATIO = 5.0
#: How many bars before the final one that median is taken over.
FORMING_WINDOW = 24


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
    drop_incomplete: bool = True,
) -> ImportResult:
    """Validate *path* and merge it into the store under ``home``; nothing is written when it fails.

    *symbol* defaults to the file's symbol column, then to what the file name tells;
    *timeframe* and *exchange* to what the file name tells (``ETH_BTC-5m.feather``,
    ``Binance_BTCUSDT_1h.csv``), the exchange otherwise to ``imported``. A final bar that
    may still have been forming is flagged, and dropped unless *drop_incomplete* is false.
    The file is checked against *limits* before its rows are read.
    """
    path = Path(path)
    guess = guess_from_filename(path)
    timeframe = timeframe or guess.get("timeframe")
    if not timeframe:
        raise ConfigError(f"{path}: --timeframe is required (the file name does not tell)")
    origin = None
    if symbol:
        raw = read_candle_file(path, base_currency=symbol.split("/")[0], limits=limits)
    else:
        raw = _read_without_symbol(path, guess.get("symbol"), limits)
        from_file = symbol_from_column(raw.symbol_in_file) if raw.symbol_in_file else None
        symbol, origin = (from_file, "the file's symbol column") if from_file else (guess.get("symbol"), "the file name")
        if not symbol:
            raise ConfigError(f"{path}: --symbol is required (the file has no symbol column and its name does not tell)")
    try:
        symbol, timeframe = validate_market(symbol, timeframe)
        exchange = check_exchange(exchange or guess.get("exchange") or DEFAULT_IMPORT_EXCHANGE)
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    clean = validate_candles(raw, timeframe, policy or ImportPolicy(), symbol=symbol)
    clean = _flag_forming_bar(clean, drop_incomplete)
    report = clean.report
    if origin is not None:
        note = Finding("symbol", "info", 1, f"symbol {symbol} from {origin} (--symbol overrides)")
        report = attrs.evolve(report, findings=(note, *report.findings))
    merge = None
    if not dry_run:
        merge = CandleStore(home).write(exchange, symbol, timeframe, clean.candles, filled=clean.filled)
    return ImportResult(exchange=exchange, symbol=symbol, timeframe=timeframe, report=report, merge=merge)


def _read_without_symbol(path: Path, named: str | None, limits: ImportLimits | None) -> RawCandles:
    """Read a file no ``--symbol`` was given for: its symbol column picks the volume column, else the file name's."""
    try:
        return read_candle_file(path, base_currency=None, limits=limits)
    except ValidationError:
        if not named:
            raise
        return read_candle_file(path, base_currency=named.split("/")[0], limits=limits)


def forming_bar(volume: Any) -> float | None:
    """How many times less volume the final bar has than the median of the :data:`FORMING_WINDOW`
    bars before it, when that is at least :data:`FORMING_VOLUME_RATIO` (else ``None``)."""
    import numpy as np

    values = np.asarray(volume, dtype=np.float64)
    if values.size < 4:
        return None
    before = np.median(values[-FORMING_WINDOW - 1 : -1])
    last = values[-1]
    if not before > 0 or not np.isfinite(last):
        return None
    ratio = float(before / last) if last > 0 else float("inf")
    return ratio if ratio >= FORMING_VOLUME_RATIO else None


def _flag_forming_bar(clean: CleanCandles, drop: bool) -> CleanCandles:
    from trader.data.frame import format_ms

    candles = clean.candles
    ratio = forming_bar(candles["volume"].to_numpy())
    if ratio is None:
        return clean
    stamp = int(candles["timestamp"].iloc[-1])
    times = "no" if ratio == float("inf") else f"{ratio:,.0f}x less"
    action = "dropped (--keep-incomplete keeps it)" if drop else "kept (--drop-incomplete drops it)"
    finding = Finding(
        "incomplete_last_bar", "warning", 1,
        f"the last bar ({format_ms(stamp)}) has {times} volume than the median of the {FORMING_WINDOW} bars before it: "
        f"it may still have been forming when the file was written; {action}",
        details={"timestamp": format_ms(stamp), "volume_ratio": None if ratio == float("inf") else round(ratio, 2),
                 "dropped": drop},
    )
    report = clean.report
    if drop:
        candles = candles.iloc[:-1].reset_index(drop=True)
        filled = clean.filled[:-1] if clean.filled is not None else None
        last = int(candles["timestamp"].iloc[-1]) if len(candles) else None
        report = attrs.evolve(report, rows_kept=report.rows_kept - 1, last=last)
        return CleanCandles(candles, filled, attrs.evolve(report, findings=(*report.findings, finding)))
    return CleanCandles(candles, clean.filled, attrs.evolve(report, findings=(*report.findings, finding)))

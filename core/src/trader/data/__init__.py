"""Market data: the candle store, importers, validation, downloads and the synthetic market.

Importing this package is light; pandas, pyarrow and ccxt load when a function needs them.
"""

from __future__ import annotations

from trader.data.download import DownloadResult, RetryPolicy, download_candles, make_exchange
from trader.data.frame import CANDLE_COLUMNS, check_candles, empty_candles, format_ms, parse_time_ms, validate_market
from trader.data.ingest import ImportResult, import_candle_file
from trader.data.limits import ImportLimits
from trader.data.resolve import resolve_candles
from trader.data.store import CandleStore, DatasetInfo, MergeResult
from trader.data.synth import synthetic_candles
from trader.data.validate import Finding, ImportPolicy, ValidationReport, validate_candles

__all__ = [
    "CANDLE_COLUMNS",
    "CandleStore",
    "DatasetInfo",
    "DownloadResult",
    "Finding",
    "ImportLimits",
    "ImportPolicy",
    "ImportResult",
    "MergeResult",
    "RetryPolicy",
    "ValidationReport",
    "check_candles",
    "download_candles",
    "empty_candles",
    "format_ms",
    "import_candle_file",
    "make_exchange",
    "parse_time_ms",
    "resolve_candles",
    "synthetic_candles",
    "validate_candles",
    "validate_market",
]

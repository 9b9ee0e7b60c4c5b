"""The canonical candle frame: column names, dtypes, invariants and time parsing.

A candle frame has exactly the columns ``timestamp`` (int64, UTC milliseconds,
bar open time), ``open``, ``high``, ``low``, ``close`` and ``volume`` (float64),
rows sorted by ``timestamp`` with no duplicates, and a ``RangeIndex``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from trader.errors import DataError
from trader.timeframes import format_ms, normalize_timeframe, timeframe_to_ms

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CANDLE_COLUMNS",
    "PRICE_COLUMNS",
    "empty_candles",
    "check_candles",
    "parse_time_ms",
    "format_ms",
    "check_symbol",
    "check_exchange",
    "check_timeframe",
    "validate_market",
    "MAX_SYMBOL_LENGTH",
    "MAX_EXCHANGE_LENGTH",
]

CANDLE_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")

#: Longest symbol accepted (ccxt's longest, option symbols like ``BTC/USD:BTC-240628-60000-C``, are ~30).
MAX_SYMBOL_LENGTH = 64
MAX_EXCHANGE_LENGTH = 64
# ASCII, full match: each part starts and ends with a letter or digit, so no part is ``..``,
# hidden (``.evil``) or empty, and a symbol never names a folder
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?"
_SYMBOL = re.compile(rf"{_PART}/{_PART}(?::{_PART})?")
_EXCHANGE = re.compile(r"[a-z0-9][a-z0-9_\-]*")
_WHITESPACE = " \t\r\n"


def empty_candles() -> pd.DataFrame:
    """A candle frame with no rows (right columns and dtypes)."""
    import numpy as np
    import pandas as pd

    data = {"timestamp": np.empty(0, dtype="int64")}
    data.update({name: np.empty(0, dtype="float64") for name in CANDLE_COLUMNS[1:]})
    return pd.DataFrame(data)


def check_candles(df: Any, where: str = "candles") -> None:
    """Raise :class:`DataError` unless *df* is a canonical candle frame (see module docstring)."""
    import numpy as np
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}")
    if tuple(df.columns) != CANDLE_COLUMNS:
        raise DataError(f"{where}: columns must be exactly {', '.join(CANDLE_COLUMNS)}; got {', '.join(map(str, df.columns))}")
    if df["timestamp"].dtype != np.int64:
        raise DataError(f"{where}: column timestamp must be int64 milliseconds, got {df['timestamp'].dtype}")
    for name in CANDLE_COLUMNS[1:]:
        if df[name].dtype != np.float64:
            raise DataError(f"{where}: column {name} must be float64, got {df[name].dtype}")
    if len(df) == 0:
        return
    ts = df["timestamp"].to_numpy()
    steps = np.diff(ts)
    if (steps <= 0).any():
        row = int(np.argmax(steps <= 0)) + 1
        raise DataError(f"{where}: row {row}: timestamp not strictly increasing (sorted, unique required)")
    values = df[list(CANDLE_COLUMNS[1:])].to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"{where}: row {row}: {CANDLE_COLUMNS[1 + col]} is not a finite number")
    prices = values[:, :4]
    if (prices <= 0).any():
        row, col = np.argwhere(prices <= 0)[0]
        raise DataError(f"{where}: row {row}: {PRICE_COLUMNS[col]} must be > 0")
    if (values[:, 4] < 0).any():
        row = int(np.argmax(values[:, 4] < 0))
        raise DataError(f"{where}: row {row}: volume must be >= 0")
    o, h, low, c = prices.T
    bad_high = h < np.maximum(o, c)
    if bad_high.any():
        raise DataError(f"{where}: row {int(np.argmax(bad_high))}: high is below open or close")
    bad_low = low > np.minimum(o, c)
    if bad_low.any():
        raise DataError(f"{where}: row {int(np.argmax(bad_low))}: low is above open or close")


def parse_time_ms(value: Any, name: str = "time") -> int:
    """Milliseconds since the epoch (UTC) from an int (ms), a datetime, or a date/time string.

    Strings are ISO-8601 (``2024-01-01``, ``2024-01-01T12:00``, ``...Z``); naive times are UTC.
    """
    if isinstance(value, bool):
        raise DataError(f"invalid {name}: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(when.timestamp() * 1000)
    if isinstance(value, dt.date):
        return int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp() * 1000)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{12,14}", text):
            return int(text)
        try:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise DataError(f"invalid {name} {value!r} (expected e.g. 2024-01-01 or 2024-01-01T12:00)") from None
        return parse_time_ms(when, name)
    # pandas.Timestamp is a datetime subclass; numpy datetime64 and the rest end here
    try:
        import pandas as pd

        stamp = pd.Timestamp(value)
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize("UTC")
        return int(stamp.value // 1_000_000)
    except (TypeError, ValueError):
        raise DataError(f"invalid {name} {value!r}") from None


def check_symbol(symbol: Any) -> str:
    """A ccxt market symbol ``BASE/QUOTE[:SETTLE]`` (``BTC/USDT``, ``BTC/USDT:USDT``), ASCII, at most
    64 characters, surrounding whitespace removed; :class:`DataError` otherwise."""
    text = symbol.strip(_WHITESPACE) if isinstance(symbol, str) else None
    if text is None or len(text) > MAX_SYMBOL_LENGTH or not _SYMBOL.fullmatch(text):
        raise DataError(f"invalid symbol {_shown(symbol)} (expected BASE/QUOTE[:SETTLE] in ASCII letters, digits, '.' "
                        f"or '-', at most {MAX_SYMBOL_LENGTH} characters, e.g. BTC/USDT)")
    return text


def check_exchange(exchange: Any) -> str:
    """A lower-case exchange id like ``binance``, at most 64 characters; :class:`DataError` otherwise."""
    text = exchange.strip(_WHITESPACE) if isinstance(exchange, str) else None
    if text is None or len(text) > MAX_EXCHANGE_LENGTH or not _EXCHANGE.fullmatch(text):
        raise DataError(f"invalid exchange id {_shown(exchange)} (expected lower-case ASCII letters, digits, '-' or '_', "
                        f"at most {MAX_EXCHANGE_LENGTH} characters, e.g. binance)")
    return text


def _shown(value: Any) -> str:
    if not isinstance(value, str):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= 42 else f"{text[:40]}... ({len(value)} characters)"


def check_timeframe(timeframe: Any) -> int:
    """The timeframe's length in ms; :class:`DataError` when it is malformed."""
    try:
        return timeframe_to_ms(timeframe)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def validate_market(symbol: Any, timeframe: Any) -> tuple[str, str]:
    """``(symbol, timeframe)`` checked and in canonical form (``" 60m"`` -> ``"1h"``), before anything runs;
    :class:`DataError` naming the bad one."""
    symbol = check_symbol(symbol)
    try:
        return symbol, normalize_timeframe(timeframe)
    except ValueError as exc:
        raise DataError(str(exc)) from None

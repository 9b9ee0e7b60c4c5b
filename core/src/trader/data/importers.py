"""Reading candle files: format detection and column mapping, before validation.

Supported (detected from the content, the extension only breaks ties):

- **ccxt / freqtrade JSON**: a list of ``[timestamp, open, high, low, close, volume]`` lists
  (``.json``, ``.json.gz``, ``.jsongz``); also a list of objects or an object of columns with
  named fields.
- **freqtrade feather** (``date`` in UTC plus ``open, high, low, close, volume``) and any
  Arrow/feather file with such columns.
- **CryptoDataDownload CSV**: an optional URL line, then ``unix, date, symbol, open, high, low,
  close, Volume <BASE>, Volume <QUOTE>[, tradecount]``; the base-currency volume is used.
- **generic CSV / Parquet** with a time column and ``open, high, low, close, volume`` in any
  case, with common aliases (``timestamp``, ``time``, ``date``, ``datetime``, ``open_time``,
  ``unix``, ``o/h/l/c/v``, ``vol``, ``Volume BTC``); delimiters ``, ; tab |``; a CSV without
  a header is read as Binance kline columns (open time, open, high, low, close, volume, ...).

The result is a :class:`RawCandles`: the columns as read (nothing parsed or dropped yet),
which column plays which part, and how rows are named in messages (``line`` for CSV,
``row`` otherwise, both 1-based).
"""

from __future__ import annotations

import gzip
import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trader.errors import ValidationError

if TYPE_CHECKING:
    pass

__all__ = ["RawCandles", "read_candle_file", "raw_from_rows", "guess_from_filename", "FORMATS"]

#: Format names in reports: ``ohlcv-json`` is ccxt's and freqtrade's list-of-lists JSON.
FORMATS = ("ohlcv-json", "json", "freqtrade-feather", "feather", "cryptodatadownload-csv", "csv", "parquet")

_TIME_ALIASES = (
    "unix", "unixtimestamp", "timestamp", "opentime", "time", "ts", "t", "mts",
    "date", "datetime", "datetimeutc", "dateutc", "timeutc", "candlebegintime", "startTime", "start",
)
_FIELD_ALIASES = {
    "open": ("open", "o", "openprice", "priceopen"),
    "high": ("high", "h", "highprice", "pricehigh"),
    "low": ("low", "l", "lowprice", "pricelow"),
    "close": ("close", "c", "closeprice", "priceclose", "last"),
    "volume": ("volume", "vol", "v", "basevolume", "volumebase", "basevol", "baseassetvolume"),
}
_BINANCE_KLINE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")


@attrs.frozen
class RawCandles:
    """A candle file as read: ``frame`` holds the source columns untouched.

    ``columns`` maps the parts ``time``, ``open``, ``high``, ``low``, ``close``, ``volume``
    (and optionally ``time_fallback``, used where ``time`` is empty or unreadable) to
    column names of ``frame``; ``rows`` are the 1-based row (or line) numbers shown in messages.
    """

    source: str
    format: str
    frame: Any
    columns: Mapping[str, Any]
    rows: Any
    row_label: str = "row"
    symbol_in_file: str | None = None
    notes: tuple[str, ...] = ()

    def where(self, index: int) -> str:
        """``"file.csv: line 12"`` for the row at position *index* of ``frame``."""
        return f"{self.source}: {self.row_label} {int(self.rows[index])}"


def _norm(name: Any) -> str:
    return re.sub(r"[\s_\-().\[\]/]+", "", str(name)).lower()


def guess_from_filename(path: str | Path) -> dict[str, str]:
    """What a file's name tells: freqtrade ``ETH_BTC-5m.feather`` or CryptoDataDownload
    ``Binance_BTCUSDT_1h.csv`` -> some of ``symbol``, ``timeframe``, ``exchange``."""
    name = Path(path).name
    stem = re.sub(r"(\.json\.gz|\.jsongz|\.[A-Za-z0-9]+)$", "", name)
    guess: dict[str, str] = {}
    freqtrade = re.fullmatch(r"([A-Za-z0-9]+)_([A-Za-z0-9]+)(?:_([A-Za-z0-9]+))?-(\d+[smhdwM])(?:-(?:spot|futures|mark|index))?", stem)
    if freqtrade:
        base, quote, settle, tf = freqtrade.groups()
        guess["symbol"] = f"{base}/{quote}" + (f":{settle}" if settle else "")
        guess["timeframe"] = tf
        return guess
    cdd = re.fullmatch(r"([A-Za-z]+)_([A-Za-z0-9]+)_(\d+(?:m|h|d|w)|minute|hour|day|d|1h|1d)", stem, flags=re.IGNORECASE)
    if cdd:
        exchange, _pair, tf = cdd.groups()
        guess["exchange"] = exchange.lower()
        tf = {"minute": "1m", "hour": "1h", "day": "1d", "d": "1d"}.get(tf.lower(), tf.lower())
        guess["timeframe"] = tf
    return guess


def read_candle_file(path: str | Path, base_currency: str | None = None) -> RawCandles:
    """Detect the format of *path* and read it; :class:`ValidationError` naming the file when it cannot."""
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"{path}: no such file")
    if path.is_dir():
        raise ValidationError(f"{path}: is a folder, not a candle file")
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read: {exc.strerror}") from None
    if not head:
        raise ValidationError(f"{path}: file is empty")
    name = path.name.lower()
    if head.startswith(b"PAR1"):
        return _read_table(path, "parquet", base_currency)
    if head.startswith(b"ARROW1") or name.endswith((".feather", ".arrow", ".ipc")):
        return _read_table(path, "feather", base_currency)
    if head.startswith(b"\x1f\x8b"):
        return _read_json(path, gzip_compressed=True, base_currency=base_currency)
    stripped = head.lstrip()
    if stripped[:1] in (b"[", b"{"):
        return _read_json(path, gzip_compressed=False, base_currency=base_currency)
    if name.endswith((".parquet", ".pq")):
        return _read_table(path, "parquet", base_currency)
    return _read_csv(path, head, base_currency)


# ---------------------------------------------------------------------------- column mapping


def _map_columns(columns: list[Any], source: str, base_currency: str | None, symbol_in_file: str | None = None) -> dict[str, Any]:
    by_norm: dict[str, Any] = {}
    for col in columns:
        by_norm.setdefault(_norm(col), col)
    mapping: dict[str, Any] = {}
    times = [by_norm[_norm(alias)] for alias in _TIME_ALIASES if _norm(alias) in by_norm]
    if not times:
        raise ValidationError(f"{source}: no time column (expected one of timestamp, time, date, unix, open_time; found: {_list(columns)})")
    mapping["time"] = times[0]
    if len(times) > 1:
        mapping["time_fallback"] = times[1]
    for part, aliases in _FIELD_ALIASES.items():
        found = next((by_norm[a] for a in aliases if a in by_norm), None)
        if found is None and part == "volume":
            found = _volume_column(columns, source, base_currency, symbol_in_file)
        if found is None:
            raise ValidationError(f"{source}: no {part} column (found: {_list(columns)})")
        mapping[part] = found
    return mapping


def _volume_column(columns: list[Any], source: str, base_currency: str | None, symbol_in_file: str | None) -> Any:
    named = {_norm(c)[len("volume"):]: c for c in columns if _norm(c).startswith("volume") and len(_norm(c)) > len("volume")}
    if not named:
        return None
    if base_currency and base_currency.lower() in named:
        return named[base_currency.lower()]
    if len(named) == 1:
        return next(iter(named.values()))
    if symbol_in_file and base_currency:
        raise ValidationError(f"{source}: the file's symbol column says {symbol_in_file!r} but --symbol is a {base_currency} market; check --symbol")
    raise ValidationError(
        f"{source}: several volume columns ({_list(named.values())}) and none for the base currency "
        f"{base_currency or '?'}; check --symbol"
    )


def _list(names: Any) -> str:
    names = [str(n) for n in names]
    return ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")


def _symbol_in(frame: Any, columns: list[Any]) -> str | None:
    for col in columns:
        if _norm(col) in ("symbol", "pair", "market"):
            values = frame[col].dropna().astype(str).unique()[:2]
            if len(values) == 1:
                return str(values[0])
    return None


# ---------------------------------------------------------------------------- readers


def _read_csv(path: Path, head: bytes, base_currency: str | None) -> RawCandles:
    import numpy as np
    import pandas as pd

    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    lines = text.splitlines()
    preamble = 0
    notes: list[str] = []
    while preamble < len(lines) and (not lines[preamble].strip() or lines[preamble].lower().startswith(("http", "www."))) and preamble < 3:
        preamble += 1
    if preamble:
        notes.append(f"skipped {preamble} line(s) before the header")
    if preamble >= len(lines):
        raise ValidationError(f"{path}: no header or rows found")
    header_line = lines[preamble]
    delimiter = max([",", ";", "\t", "|"], key=header_line.count)
    if header_line.count(delimiter) == 0:
        raise ValidationError(f"{path}: not a CSV file with at least 6 columns (line {preamble + 1}: {header_line[:60]!r})")
    first_field = header_line.split(delimiter)[0].strip().strip('"')
    headerless = bool(re.fullmatch(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", first_field))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)  # mixed columns are parsed per value later
            frame = pd.read_csv(
                path,
                sep=delimiter,
                skiprows=preamble,
                header=None if headerless else 0,
                skip_blank_lines=False,
                encoding="utf-8-sig",
                na_values=["NULL", "null", "NaN", "nan", "None", ""],
                keep_default_na=False,
            )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"{path}: cannot read as CSV: {str(exc).splitlines()[0]}") from None
    except pd.errors.EmptyDataError:
        raise ValidationError(f"{path}: no rows") from None
    first_line = preamble + (1 if headerless else 2)
    rows = np.arange(first_line, first_line + len(frame), dtype=np.int64)
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        notes.append(f"skipped {int(blank.sum())} blank line(s)")
        frame, rows = frame[~blank].reset_index(drop=True), rows[~blank]
    if headerless:
        if frame.shape[1] < 6:
            raise ValidationError(f"{path}: a CSV without a header needs at least 6 columns (open time, open, high, low, close, volume)")
        frame.columns = [*_BINANCE_KLINE_COLUMNS, *(f"column_{i + 7}" for i in range(frame.shape[1] - 6))]
        notes.append("no header: read as Binance kline columns (open time, open, high, low, close, volume)")
    columns = list(frame.columns)
    symbol_in_file = _symbol_in(frame, columns)
    mapping = _map_columns(columns, str(path), base_currency, symbol_in_file)
    is_cdd = {"unix", "date", "symbol"} <= {_norm(c) for c in columns} and any(_norm(c).startswith("volume") for c in columns)
    return RawCandles(
        source=str(path),
        format="cryptodatadownload-csv" if is_cdd else "csv",
        frame=frame,
        columns=mapping,
        rows=rows,
        row_label="line",
        symbol_in_file=symbol_in_file,
        notes=tuple(notes),
    )


def _read_table(path: Path, kind: str, base_currency: str | None) -> RawCandles:
    import numpy as np
    import pandas as pd

    try:
        frame = pd.read_parquet(path) if kind == "parquet" else pd.read_feather(path)
    except Exception as exc:  # pyarrow raises a family of its own
        raise ValidationError(f"{path}: cannot read as {kind}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    columns = list(frame.columns)
    symbol_in_file = _symbol_in(frame, columns)
    mapping = _map_columns(columns, str(path), base_currency, symbol_in_file)
    fmt = kind
    if kind == "feather" and _norm(mapping["time"]) == "date" and {"open", "high", "low", "close", "volume"} <= set(columns):
        fmt = "freqtrade-feather"
    return RawCandles(
        source=str(path),
        format=fmt,
        frame=frame.reset_index(drop=True),
        columns=mapping,
        rows=np.arange(1, len(frame) + 1, dtype=np.int64),
        row_label="row",
        symbol_in_file=symbol_in_file,
    )


def _read_json(path: Path, gzip_compressed: bool, base_currency: str | None) -> RawCandles:
    import pandas as pd

    try:
        if gzip_compressed:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                data = json.load(fh)
        else:
            with path.open("r", encoding="utf-8-sig") as fh:
                data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError, EOFError, gzip.BadGzipFile, OSError) as exc:
        raise ValidationError(f"{path}: not valid JSON: {exc}") from None
    source = str(path)
    if isinstance(data, Mapping):
        if all(isinstance(v, (list, Mapping)) for v in data.values()) and data:
            try:
                frame = pd.DataFrame(data)
            except (ValueError, TypeError) as exc:
                raise ValidationError(f"{source}: JSON object is not a table of columns: {exc}") from None
            return _named_table(frame, source, "json", base_currency)
        raise ValidationError(f"{source}: JSON object is not a table of candle columns")
    if not isinstance(data, list):
        raise ValidationError(f"{source}: JSON must be a list of candles")
    if not data:
        raise ValidationError(f"{source}: no candles (empty list)")
    if all(isinstance(item, Mapping) for item in data):
        return _named_table(pd.DataFrame.from_records(data), source, "json", base_currency)
    return raw_from_rows(data, source, fmt="ohlcv-json")


def _named_table(frame: Any, source: str, fmt: str, base_currency: str | None) -> RawCandles:
    import numpy as np

    frame = frame.reset_index(drop=True)
    columns = list(frame.columns)
    symbol_in_file = _symbol_in(frame, columns)
    return RawCandles(
        source=source,
        format=fmt,
        frame=frame,
        columns=_map_columns(columns, source, base_currency, symbol_in_file),
        rows=np.arange(1, len(frame) + 1, dtype=np.int64),
        row_label="row",
        symbol_in_file=symbol_in_file,
    )


def raw_from_rows(rows: list[Any], source: str, fmt: str = "ohlcv-json") -> RawCandles:
    """Lists of ``[timestamp, open, high, low, close, volume, ...]`` (ccxt's OHLCV shape) as :class:`RawCandles`."""
    import numpy as np
    import pandas as pd

    bad = next((i for i, row in enumerate(rows) if not isinstance(row, (list, tuple)) or len(row) < 6), None)
    if bad is not None:
        raise ValidationError(
            f"{source}: row {bad + 1}: expected [timestamp, open, high, low, close, volume], got {str(rows[bad])[:80]}"
        )
    frame = pd.DataFrame([list(row[:6]) for row in rows], columns=["timestamp", "open", "high", "low", "close", "volume"], dtype=object)
    mapping = {name: name for name in ("open", "high", "low", "close", "volume")}
    mapping["time"] = "timestamp"
    return RawCandles(
        source=source,
        format=fmt,
        frame=frame,
        columns=mapping,
        rows=np.arange(1, len(frame) + 1, dtype=np.int64),
        row_label="row",
    )

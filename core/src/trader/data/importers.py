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

Before any rows are read, the file is checked against :class:`~trader.data.limits.ImportLimits`:
a CSV's size and line count, a Parquet file's declared row count and the declared uncompressed
size of the columns used, a feather file batch by batch, a JSON file's (decompressed) size,
nesting and integer digits. Only the columns that are used are read.

The result is a :class:`RawCandles`: the columns as read (nothing parsed or dropped yet),
which column plays which part, and how rows are named in messages (``line`` for CSV,
``row`` otherwise, both 1-based).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from trader.data.limits import ImportLimits, bytes_text
from trader.errors import ValidationError

__all__ = ["RawCandles", "read_candle_file", "raw_from_rows", "guess_from_filename", "symbol_from_column", "FORMATS"]

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
_HEAD_BYTES = 1 << 16  # the header line of a CSV must fit
_SYMBOL_COLUMNS = ("symbol", "pair", "market")


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


def read_candle_file(path: str | Path, base_currency: str | None = None, limits: ImportLimits | None = None) -> RawCandles:
    """Detect the format of *path* and read it within *limits*; :class:`ValidationError` naming the
    file when it cannot."""
    path = Path(path)
    limits = limits or ImportLimits()
    try:
        if not path.exists():
            raise ValidationError(f"{path}: no such file")
        if path.is_dir():
            raise ValidationError(f"{path}: is a folder, not a candle file")
        with path.open("rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError as exc:
        raise ValidationError(f"{str(path)[:200]}: cannot read: {exc.strerror or exc}") from None
    if not head:
        raise ValidationError(f"{path}: file is empty")
    name = path.name.lower()
    if head.startswith(b"PAR1"):
        return _read_parquet(path, base_currency, limits)
    if head.startswith(b"ARROW1") or name.endswith((".feather", ".arrow", ".ipc")):
        return _read_feather(path, base_currency, limits)
    if head.startswith(b"\x1f\x8b"):
        return _read_json(path, gzip_compressed=True, base_currency=base_currency, limits=limits)
    stripped = head.lstrip()
    if stripped[:1] in (b"[", b"{") or stripped.startswith(b"\xef\xbb\xbf") and stripped[3:].lstrip()[:1] in (b"[", b"{"):
        return _read_json(path, gzip_compressed=False, base_currency=base_currency, limits=limits)
    if name.endswith((".parquet", ".pq")):
        return _read_parquet(path, base_currency, limits)
    return _read_csv(path, head, base_currency, limits)


def _too_many_rows(source: Any, rows: int, limits: ImportLimits, declared: bool = True) -> ValidationError:
    what = "declares" if declared else "has"
    return ValidationError(f"{source}: {what} {rows:,} rows, more than the import limit of {limits.max_rows:,} "
                           "([data] max_import_rows raises it; or split the file)")


def _too_large(source: Any, size: int, limits: ImportLimits, what: str) -> ValidationError:
    return ValidationError(f"{source}: {what} {bytes_text(size)}, more than the import limit of "
                           f"{bytes_text(limits.max_bytes)} ([data] max_import_bytes raises it; or split the file)")


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
    if symbol_in_file and not base_currency:  # no --symbol: the file's own symbol picks its base volume
        market = symbol_from_column(symbol_in_file)
        if market and _norm(market.split("/")[0]) in named:
            return named[_norm(market.split("/")[0])]
    if symbol_in_file and base_currency:
        raise ValidationError(f"{source}: the file's symbol column says {symbol_in_file!r} but --symbol is a {base_currency} market; check --symbol")
    raise ValidationError(
        f"{source}: several volume columns ({_list(named.values())}) and none for the base currency "
        f"{base_currency or '?'}; check --symbol"
    )


#: quote currencies recognised at the end of a symbol written without a separator (``BTCUSDT``)
_QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "TRY", "BTC", "ETH", "BNB")


def symbol_from_column(value: str) -> str | None:
    """The market a file's symbol column names, as ``BASE/QUOTE``: ``BTC/USDT``, ``btc-usdt`` and
    ``BTCUSDT`` give ``BTC/USDT``; ``None`` when it cannot be split into a base and a quote."""
    text, _, settle = value.strip().upper().partition(":")
    suffix = f":{settle}" if settle else ""
    parts = [p for p in re.split(r"[/\-_ ]", text) if p]
    if len(parts) == 2:
        return f"{parts[0]}/{parts[1]}{suffix}"
    if len(parts) == 1:
        for quote in _QUOTES:
            if text.endswith(quote) and len(text) > len(quote):
                return f"{text[: -len(quote)]}/{quote}{suffix}"
    return None


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


def _read_csv(path: Path, head: bytes, base_currency: str | None, limits: ImportLimits) -> RawCandles:
    import numpy as np
    import pandas as pd

    size = path.stat().st_size
    if size > limits.max_bytes:
        raise _too_large(path, size, limits, "is")
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
    if len(lines) == preamble + 1 and len(head) == _HEAD_BYTES and not head.endswith(b"\n"):
        raise ValidationError(f"{path}: the first line is longer than {_HEAD_BYTES // 1024} KiB; not a candle CSV")
    header_line = lines[preamble]
    delimiter = max([",", ";", "\t", "|"], key=header_line.count)
    if header_line.count(delimiter) == 0:
        raise ValidationError(f"{path}: not a CSV file with at least 6 columns (line {preamble + 1}: {header_line[:60]!r})")
    line_count = _count_lines(path)
    if line_count - preamble - 1 > limits.max_rows:
        raise _too_many_rows(path, line_count - preamble - 1, limits, declared=False)
    first_field = header_line.split(delimiter)[0].strip().strip('"')
    headerless = bool(re.fullmatch(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", first_field))
    options: dict[str, Any] = dict(
        sep=delimiter,
        skiprows=preamble,
        skip_blank_lines=False,
        encoding="utf-8-sig",
        compression=None,  # a compressed file is never inflated unchecked
        na_values=["NULL", "null", "NaN", "nan", "None", ""],
        keep_default_na=False,
    )
    all_columns: list[Any]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)  # mixed columns are parsed per value later
            if headerless:
                width = header_line.count(delimiter) + 1
                if width < 6:
                    raise ValidationError(f"{path}: a CSV without a header needs at least 6 columns (open time, open, high, low, close, volume)")
                all_columns = list(_BINANCE_KLINE_COLUMNS)
                frame = pd.read_csv(path, header=None, usecols=range(6), names=all_columns, **options)
                notes.append("no header: read as Binance kline columns (open time, open, high, low, close, volume)")
                mapping = _map_columns(all_columns, str(path), base_currency)
            else:
                all_columns = list(pd.read_csv(path, header=0, nrows=0, **options).columns)
                symbol_columns = [c for c in all_columns if _norm(c) in _SYMBOL_COLUMNS]
                mapping = _map_columns(all_columns, str(path), base_currency, _symbol_hint(path, all_columns, symbol_columns, options))
                used = {*mapping.values(), *symbol_columns}
                frame = pd.read_csv(path, header=0, usecols=lambda c: c in used, **options)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"{path}: cannot read as CSV: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    except pd.errors.EmptyDataError:
        raise ValidationError(f"{path}: no rows") from None
    first_line = preamble + (1 if headerless else 2)
    rows = np.arange(first_line, first_line + len(frame), dtype=np.int64)
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        notes.append(f"skipped {int(blank.sum())} blank line(s)")
        frame, rows = frame[~blank].reset_index(drop=True), rows[~blank]
    symbol_in_file = _symbol_in(frame, list(frame.columns))
    if symbol_in_file and not headerless:
        mapping = _map_columns(all_columns, str(path), base_currency, symbol_in_file)
    norms = {_norm(c) for c in all_columns}
    is_cdd = {"unix", "date", "symbol"} <= norms and any(_norm(c).startswith("volume") for c in all_columns)
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


def _symbol_hint(path: Path, columns: list[Any], symbol_columns: list[Any], options: dict[str, Any]) -> str | None:
    """The file's symbol when the volume column must be chosen by it (several ``Volume X`` columns)."""
    import pandas as pd

    volumes = [c for c in columns if _norm(c).startswith("volume") and len(_norm(c)) > len("volume")]
    if len(volumes) < 2 or not symbol_columns:
        return None
    sample = pd.read_csv(path, header=0, nrows=1000, usecols=symbol_columns, **options)
    return _symbol_in(sample, symbol_columns)


def _count_lines(path: Path) -> int:
    count, last = 0, b"\n"
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def _read_parquet(path: Path, base_currency: str | None, limits: ImportLimits) -> RawCandles:
    import pandas  # noqa: F401 - loaded before any data, so its libraries map into an address space not yet in use
    import pyarrow.parquet as pq

    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise _too_large(path, size, limits, "is")
        parquet = pq.ParquetFile(path)
        meta = parquet.metadata
        if meta.num_rows > limits.max_rows:
            raise _too_many_rows(path, meta.num_rows, limits)
        schema = parquet.schema_arrow
        names = list(schema.names)
        index = [c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str) and c in names]
        used = list(dict.fromkeys([*_used_columns(names, str(path), base_currency), *index]))
        declared = 0
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                column = group.column(c)
                if any(column.path_in_schema == n or column.path_in_schema.startswith(f"{n}.") for n in used):
                    declared += max(column.total_uncompressed_size, 0)
        if declared > limits.max_bytes:
            raise _too_large(path, declared, limits, "declares columns of")
        # a dictionary page repeats one value for many rows: text is read as it is stored, then measured
        strings = [n for n in used if _is_text(schema.field(n).type)]
        table = pq.ParquetFile(path, read_dictionary=strings).read(columns=used, use_pandas_metadata=True)
    except ValidationError:
        raise
    except Exception as exc:  # pyarrow raises a family of its own
        raise ValidationError(f"{path}: cannot read as parquet: {_first_line(exc)}") from None
    return _from_arrow(table, path, "parquet", base_currency, limits)


def _read_feather(path: Path, base_currency: str | None, limits: ImportLimits) -> RawCandles:
    import pandas  # noqa: F401 - see _read_parquet
    import pyarrow as pa

    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise _too_large(path, size, limits, "is")
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_file(source)
            used = _used_columns(list(reader.schema.names), str(path), base_currency)
            batches, rows, nbytes = [], 0, 0
            for i in range(reader.num_record_batches):  # checked batch by batch as they are read
                batch = reader.get_batch(i).select(used)
                rows += batch.num_rows
                nbytes += batch.nbytes
                if rows > limits.max_rows:
                    raise _too_many_rows(path, rows, limits, declared=False)
                if nbytes > limits.max_bytes:
                    raise _too_large(path, nbytes, limits, "holds at least")
                batches.append(batch)
            table = pa.Table.from_batches(batches) if batches else reader.schema.empty_table().select(used)
    except ValidationError:
        raise
    except Exception as exc:  # pyarrow raises a family of its own
        raise ValidationError(f"{path}: cannot read as feather: {_first_line(exc)}") from None
    return _from_arrow(table, path, "feather", base_currency, limits)


def _used_columns(names: list[str], source: str, base_currency: str | None) -> list[str]:
    """The columns :func:`_map_columns` may choose from, and the symbol column: all that is read."""
    known = {_norm(a) for a in _TIME_ALIASES} | {a for aliases in _FIELD_ALIASES.values() for a in aliases}
    known |= set(_SYMBOL_COLUMNS)
    return [n for n in names if _norm(n) in known or _norm(n).startswith("volume")]


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _from_arrow(table: Any, path: Path, kind: str, base_currency: str | None, limits: ImportLimits) -> RawCandles:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows > limits.max_rows:
        raise _too_many_rows(path, table.num_rows, limits, declared=False)
    decoded = 0
    for column in table.columns:
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type) and _is_text(chunk.type.value_type):
                lengths = pc.binary_length(chunk.dictionary).fill_null(0)
                decoded += int(pc.sum(pc.take(lengths, chunk.indices.fill_null(0))).as_py() or 0)
            else:
                decoded += chunk.nbytes
    if decoded > limits.max_bytes:
        raise _too_large(path, decoded, limits, "decodes to")
    frame = table.to_pandas()
    if not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype(object)  # the same string objects, not copies
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


def _read_json(path: Path, gzip_compressed: bool, base_currency: str | None, limits: ImportLimits) -> RawCandles:
    import pandas as pd

    from trader.bounded_json import loads_bounded, read_json_bytes

    text = read_json_bytes(path, limits.max_json_bytes, gzip_compressed=gzip_compressed, error=ValidationError)
    data = loads_bounded(text, str(path), max_depth=limits.max_json_depth, max_int_digits=limits.max_int_digits,
                         error=ValidationError)
    del text
    source = str(path)
    if isinstance(data, Mapping):
        if all(isinstance(v, (list, Mapping)) for v in data.values()) and data:
            if any(len(v) > limits.max_rows for v in data.values()):
                raise _too_many_rows(source, max(len(v) for v in data.values()), limits, declared=False)
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
    if len(data) > limits.max_rows:
        raise _too_many_rows(source, len(data), limits, declared=False)
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

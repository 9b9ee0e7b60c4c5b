"""The candle store: one Parquet file per (exchange, symbol, timeframe) under ``HOME/data``.

Layout: ``HOME/data/<exchange>/<BASE>_<QUOTE>[_<SETTLE>]-<timeframe>.parquet``
(``BTC/USDT`` 1h on binance is ``data/binance/BTC_USDT-1h.parquet``). Each file
holds a canonical candle frame (see :mod:`trader.data.frame`), a boolean
``filled`` column marking bars that are filled gaps (``trader data import --fill-gaps``),
and, in its Parquet key-value metadata, the exchange, symbol, timeframe and summary
figures that ``trader data list`` shows.

Writes merge with what is stored (incoming rows replace stored rows with the
same timestamp), go to a temporary file in the same folder and are moved into
place with :func:`os.replace`, under an exclusive lock per dataset: a failed or
interrupted write leaves the previous file intact, and two writers never lose
each other's rows.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trader.data.frame import (
    CANDLE_COLUMNS,
    check_candles,
    check_exchange,
    check_timeframe,
    format_ms,
    parse_time_ms,
    validate_market,
)
from trader.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CandleStore", "DatasetInfo", "MergeResult", "count_gaps"]

_META_KEY = b"trader.dataset"
_FORMAT_VERSION = 1


@attrs.frozen
class DatasetInfo:
    """What ``trader data list`` shows for one stored dataset. Times are UTC milliseconds."""

    exchange: str
    symbol: str
    timeframe: str
    first: int | None
    last: int | None
    rows: int = attrs.field(validator=attrs.validators.ge(0))
    gaps: int = attrs.field(validator=attrs.validators.ge(0))
    missing_bars: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    filled_bars: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    path: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "first": format_ms(self.first) if self.first is not None else None,
            "last": format_ms(self.last) if self.last is not None else None,
            "first_ms": self.first,
            "last_ms": self.last,
            "rows": self.rows,
            "gaps": self.gaps,
            "missing_bars": self.missing_bars,
            "filled_bars": self.filled_bars,
            "path": str(self.path) if self.path else None,
        }


@attrs.frozen
class MergeResult:
    """The outcome of :meth:`CandleStore.write`.

    ``added``: new timestamps; ``replaced``: stored rows whose values the incoming rows
    changed; ``unchanged``: incoming rows identical to what was stored.
    """

    info: DatasetInfo
    rows_before: int = attrs.field(validator=attrs.validators.ge(0))
    added: int = attrs.field(validator=attrs.validators.ge(0))
    replaced: int = attrs.field(validator=attrs.validators.ge(0))
    unchanged: int = attrs.field(validator=attrs.validators.ge(0))

    @property
    def rows_after(self) -> int:
        return self.info.rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_before": self.rows_before,
            "added": self.added,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "rows_after": self.rows_after,
            "dataset": self.info.as_dict(),
        }


def count_gaps(timestamps: Any, step_ms: int) -> tuple[int, int]:
    """``(gaps, missing_bars)`` in sorted unique ms *timestamps* for bars *step_ms* apart."""
    import numpy as np

    ts = np.asarray(timestamps, dtype="int64")
    if len(ts) < 2:
        return 0, 0
    steps = np.diff(ts)
    holes = steps > step_ms
    missing = int(((steps[holes] + step_ms - 1) // step_ms - 1).sum())
    return int(holes.sum()), missing


def _file_stem(symbol: str, timeframe: str) -> str:
    base_quote, _, settle = symbol.partition(":")
    stem = base_quote.replace("/", "_") + (f"_{settle}" if settle else "")
    return f"{stem}-{timeframe}"


class CandleStore:
    """Stored candle datasets under ``home/"data"``."""

    def __init__(self, home: str | os.PathLike) -> None:
        self.home = Path(home)
        self.root = self.home / "data"

    def __repr__(self) -> str:
        return f"CandleStore({str(self.home)!r})"

    # ------------------------------------------------------------------ paths

    def path_for(self, exchange: str, symbol: str, timeframe: str) -> Path:
        """Where the dataset lives (whether or not it exists); the timeframe in canonical form, so
        ``60m`` and ``1h`` are one dataset."""
        exchange = check_exchange(exchange)
        symbol, timeframe = validate_market(symbol, timeframe)
        return self.root / exchange / f"{_file_stem(symbol, timeframe)}.parquet"

    def exists(self, exchange: str, symbol: str, timeframe: str) -> bool:
        return self.path_for(exchange, symbol, timeframe).is_file()

    def exchanges_with(self, symbol: str, timeframe: str) -> list[str]:
        """Exchanges that hold a dataset for *symbol* and *timeframe*, sorted."""
        name = f"{_file_stem(*validate_market(symbol, timeframe))}.parquet"
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{name}") if p.is_file())

    # ------------------------------------------------------------------ read

    def read(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: Any = None,
        end: Any = None,
    ) -> pd.DataFrame:
        """The stored candles with ``start <= timestamp < end`` (both optional: ms, datetime or ISO text)."""
        import pyarrow.parquet as pq

        path = self.path_for(exchange, symbol, timeframe)
        if not path.is_file():
            raise DataError(
                f"no stored data for {exchange} {symbol} {timeframe} "
                "(see `trader data list`; get some with `trader data download` or `trader data import`)"
            )
        filters = []
        if start is not None:
            filters.append(("timestamp", ">=", parse_time_ms(start, "start")))
        if end is not None:
            filters.append(("timestamp", "<", parse_time_ms(end, "end")))
        try:
            table = pq.read_table(path, columns=list(CANDLE_COLUMNS), filters=filters or None)
        except Exception as exc:  # pyarrow raises many types for a damaged file
            raise DataError(f"{path}: cannot read stored dataset: {exc}") from None
        df = table.to_pandas()
        df = df.reset_index(drop=True)
        check_candles(df, str(path))
        return df

    def info(self, exchange: str, symbol: str, timeframe: str) -> DatasetInfo:
        path = self.path_for(exchange, symbol, timeframe)
        if not path.is_file():
            raise DataError(f"no stored data for {exchange} {symbol} {timeframe}")
        return self._info_from_file(path)

    def list(self) -> list[DatasetInfo]:
        """Every stored dataset, sorted by exchange, symbol, timeframe. Damaged files are skipped with a warning."""
        import logging

        if not self.root.is_dir():
            return []
        infos = []
        for path in sorted(self.root.glob("*/*.parquet")):
            try:
                infos.append(self._info_from_file(path))
            except DataError as exc:
                logging.getLogger("trader.data").warning("%s", exc)
        return sorted(infos, key=lambda i: (i.exchange, i.symbol, check_timeframe(i.timeframe), i.timeframe))

    def _info_from_file(self, path: Path) -> DatasetInfo:
        import pyarrow.parquet as pq

        try:
            meta = pq.read_schema(path).metadata or {}
            fields = json.loads(meta[_META_KEY])
            return DatasetInfo(
                exchange=fields["exchange"],
                symbol=fields["symbol"],
                timeframe=fields["timeframe"],
                first=fields["first"],
                last=fields["last"],
                rows=fields["rows"],
                gaps=fields["gaps"],
                missing_bars=fields.get("missing_bars", 0),
                filled_bars=fields.get("filled_bars", 0),
                path=path,
            )
        except Exception as exc:
            raise DataError(f"{path}: not a trader dataset or damaged ({type(exc).__name__}: {exc})") from None

    # ------------------------------------------------------------------ write

    def write(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        df: pd.DataFrame,
        *,
        filled: Any = None,
        replace: bool = False,
    ) -> MergeResult:
        """Merge *df* (a canonical candle frame on the timeframe grid) into the dataset, atomically.

        Incoming rows replace stored rows with the same timestamp; ``replace=True``
        discards what was stored instead. *filled* (booleans, one per row) marks rows that
        are filled gaps rather than real bars; see :meth:`filled_timestamps`.
        """
        import numpy as np
        import pandas as pd

        path = self.path_for(exchange, symbol, timeframe)
        exchange = check_exchange(exchange)
        symbol, timeframe = validate_market(symbol, timeframe)
        step = check_timeframe(timeframe)
        check_candles(df, "incoming candles")
        incoming = df.reset_index(drop=True).copy()
        flags = np.zeros(len(incoming), dtype=bool) if filled is None else np.asarray(filled, dtype=bool)
        if flags.shape != (len(incoming),):
            raise DataError(f"filled flags: expected {len(incoming)} values, got {flags.shape}")
        incoming["filled"] = flags
        off_grid = incoming["timestamp"].to_numpy() % step != 0
        if off_grid.any():
            row = int(np.argmax(off_grid))
            raise DataError(
                f"incoming candles: row {row}: timestamp {format_ms(int(incoming['timestamp'].iloc[row]))} "
                f"is not on the {timeframe} grid"
            )
        with _writing(path), self._lock(path):
            if path.is_file() and not replace:
                stored = self._read_all(path)
            else:
                stored = incoming.iloc[:0]
            rows_before = len(stored)
            if rows_before:
                common = stored.merge(incoming, on="timestamp", how="inner", suffixes=("_old", "_new"))
            else:
                common = pd.DataFrame({f"{name}_{side}": [] for name in (*CANDLE_COLUMNS[1:], "filled") for side in ("old", "new")})
            same = np.ones(len(common), dtype=bool)
            for name in (*CANDLE_COLUMNS[1:], "filled"):
                same &= common[f"{name}_old"].to_numpy() == common[f"{name}_new"].to_numpy()
            unchanged = int(same.sum())
            replaced = len(common) - unchanged
            added = len(incoming) - len(common)
            if added == 0 and replaced == 0 and path.is_file() and not replace:
                info = self._info_from_file(path)
            else:
                kept = stored[~stored["timestamp"].isin(incoming["timestamp"])] if len(common) else stored
                merged = pd.concat([kept, incoming], ignore_index=True) if len(kept) else incoming
                if len(kept):
                    merged = merged.sort_values("timestamp", kind="stable", ignore_index=True)
                info = self._write_file(path, exchange, symbol, timeframe, merged, step)
        return MergeResult(info=info, rows_before=rows_before, added=added, replaced=replaced, unchanged=unchanged)

    def filled_timestamps(self, exchange: str, symbol: str, timeframe: str) -> Any:
        """Timestamps (int64 ms array) of the stored bars that are filled gaps, not real candles."""
        path = self.path_for(exchange, symbol, timeframe)
        if not path.is_file():
            raise DataError(f"no stored data for {exchange} {symbol} {timeframe}")
        df = self._read_all(path)
        return df.loc[df["filled"], "timestamp"].to_numpy()

    def _read_all(self, path: Path) -> pd.DataFrame:
        import numpy as np
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise DataError(f"{path}: cannot read stored dataset: {exc}") from None
        df = table.to_pandas()
        if "filled" not in df.columns:
            df["filled"] = np.zeros(len(df), dtype=bool)
        df = df[[*CANDLE_COLUMNS, "filled"]].reset_index(drop=True)
        check_candles(df[list(CANDLE_COLUMNS)], str(path))
        return df

    def delete(self, exchange: str, symbol: str, timeframe: str) -> bool:
        """Remove a dataset; ``False`` when there was none."""
        path = self.path_for(exchange, symbol, timeframe)
        with _writing(path), self._lock(path):
            if path.is_file():
                path.unlink()
                return True
        return False

    def _write_file(self, path: Path, exchange: str, symbol: str, timeframe: str, df: pd.DataFrame, step: int) -> DatasetInfo:
        import pyarrow as pa
        import pyarrow.parquet as pq

        ts = df["timestamp"].to_numpy()
        gaps, missing = count_gaps(ts, step)
        filled_bars = int(df["filled"].sum()) if "filled" in df.columns else 0
        info = DatasetInfo(
            exchange=exchange,
            symbol=symbol,
            timeframe=timeframe,
            first=int(ts[0]) if len(ts) else None,
            last=int(ts[-1]) if len(ts) else None,
            rows=len(df),
            gaps=gaps,
            missing_bars=missing,
            filled_bars=filled_bars,
            path=path,
        )
        meta = {k: v for k, v in info.as_dict().items() if k not in ("first", "last", "path")}
        meta.update(first=info.first, last=info.last, format=_FORMAT_VERSION)
        columns = [*CANDLE_COLUMNS, "filled"] if "filled" in df.columns else list(CANDLE_COLUMNS)
        table = pa.Table.from_pandas(df[columns], preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()})
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                # prices are high-cardinality floats: dictionaries and per-column statistics cost
                # time and buy nothing; timestamp statistics serve the range filters of read()
                pq.write_table(table, fh, compression="zstd", use_dictionary=False, write_statistics=["timestamp"])
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return info

    @contextlib.contextmanager
    def _lock(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = path.with_name(f".{path.name}.lock")
        with open(lock_path, "a+b") as fh:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows: single writer assumed
                yield
                return
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn what the file system can do to a write (read-only, full, too long a name) into one
    :class:`DataError` line with the cause and what to do; the stored file is unchanged."""
    try:
        yield
    except OSError as exc:
        raise DataError(write_error_text(path, exc)) from None


def write_error_text(path: Path, exc: OSError) -> str:
    """One line: where, why (the original error, not a later clean-up's) and what to do."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{path}: disk full ({reason}); nothing was changed: free some space and run the same command again"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"{path}: cannot write ({reason}); nothing was changed: make the trader home writable or choose "
                "another with --home / TRADER_HOME")
    if exc.errno == errno.ENAMETOOLONG:
        return f"{str(path)[:120]}...: name too long for the file system ({reason}); use a shorter --home"
    return f"{path}: cannot write ({reason}); nothing was changed"


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

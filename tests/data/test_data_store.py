"""The candle store: merge without duplicates, atomic writes, listing, reading ranges."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_fixtures import candles

from trader.data import CANDLE_COLUMNS, CandleStore, DatasetInfo
from trader.errors import DataError


def test_write_then_read_round_trips_exactly(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    df = candles(500)
    result = store.write("binance", "BTC/USDT", "1h", df)
    assert (result.added, result.replaced, result.unchanged, result.rows_after) == (500, 0, 0, 500)
    assert store.exists("binance", "BTC/USDT", "1h")
    back = store.read("binance", "BTC/USDT", "1h")
    pd.testing.assert_frame_equal(back, df)
    assert list(back.columns) == list(CANDLE_COLUMNS)
    assert isinstance(back.index, pd.RangeIndex)
    assert (tmp_path / "data" / "binance" / "BTC_USDT-1h.parquet").is_file()


def test_overlapping_writes_merge_without_duplicates_and_newer_rows_win(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    df = candles(400)
    store.write("binance", "BTC/USDT", "1h", df.iloc[:250])
    newer = df.iloc[200:].copy()
    newer.loc[newer.index[0], "close"] = newer["close"].iloc[0]  # same
    newer.loc[newer.index[1], "volume"] = 999.0  # changed
    result = store.write("binance", "BTC/USDT", "1h", newer.reset_index(drop=True))
    assert (result.rows_before, result.added, result.replaced, result.unchanged) == (250, 150, 1, 49)
    back = store.read("binance", "BTC/USDT", "1h")
    assert len(back) == 400 and back["timestamp"].is_unique and back["timestamp"].is_monotonic_increasing
    assert back["volume"].iloc[201] == 999.0
    # writing the same rows again changes nothing
    again = store.write("binance", "BTC/USDT", "1h", newer.reset_index(drop=True))
    assert (again.added, again.replaced, again.unchanged) == (0, 0, 200)


def test_read_range_is_half_open_and_accepts_dates(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    df = candles(100)
    store.write("kraken", "ETH/USD", "1h", df)
    part = store.read("kraken", "ETH/USD", "1h", start="2024-01-02", end=int(df["timestamp"].iloc[50]))
    assert part["timestamp"].iloc[0] == df["timestamp"].iloc[24]
    assert part["timestamp"].iloc[-1] == df["timestamp"].iloc[49]
    assert isinstance(part.index, pd.RangeIndex) and part.index[0] == 0


def test_list_reports_gaps_rows_and_range(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    df = candles(100)
    holed = df.drop(index=[10, 11, 12, 50]).reset_index(drop=True)
    store.write("binance", "BTC/USDT", "1h", holed)
    store.write("binance", "BTC/USDT:USDT", "4h", candles(10, timeframe="4h"))
    infos = store.list()
    assert [(i.symbol, i.timeframe) for i in infos] == [("BTC/USDT", "1h"), ("BTC/USDT:USDT", "4h")]
    first = infos[0]
    assert isinstance(first, DatasetInfo)
    assert (first.rows, first.gaps, first.missing_bars) == (96, 2, 4)
    assert (first.first, first.last) == (int(df["timestamp"].iloc[0]), int(df["timestamp"].iloc[-1]))


def test_invalid_frames_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    df = candles(20)
    bad_high = df.copy()
    bad_high.loc[5, "high"] = bad_high.loc[5, "low"] / 2
    off_grid = df.copy()
    off_grid.loc[3, "timestamp"] += 1
    for frame, text in ((bad_high, "row 5: high"), (off_grid, "grid"), (df[::-1].reset_index(drop=True), "increasing"),
                        (df.drop(columns="volume"), "columns")):
        with pytest.raises(DataError, match=text):
            store.write("binance", "BTC/USDT", "1h", frame)
    assert not store.exists("binance", "BTC/USDT", "1h")
    with pytest.raises(DataError, match="no stored data"):
        store.read("binance", "BTC/USDT", "1h")
    with pytest.raises(DataError, match="invalid symbol"):
        store.write("binance", "BTCUSDT", "1h", df)


def test_a_write_failing_midway_leaves_the_previous_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq

    store = CandleStore(tmp_path)
    df = candles(100)
    store.write("binance", "BTC/USDT", "1h", df.iloc[:50])
    path = store.path_for("binance", "BTC/USDT", "1h")
    before = path.read_bytes()
    real_write = pq.write_table

    def write_half_then_fail(table, where, **kwargs):
        real_write(table.slice(0, 10), where, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", write_half_then_fail)
    with pytest.raises(DataError, match="BTC_USDT-1h.parquet: disk full .No space left on device.; nothing was changed"):
        store.write("binance", "BTC/USDT", "1h", df.iloc[40:].reset_index(drop=True))
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.undo()
    assert len(store.read("binance", "BTC/USDT", "1h")) == 50


def test_concurrent_writers_lose_no_rows(tmp_path: Path) -> None:
    df = candles(800)
    chunks = [df.iloc[i : i + 100].reset_index(drop=True) for i in range(0, 800, 100)]
    errors: list[BaseException] = []

    def write(chunk: pd.DataFrame) -> None:
        try:
            CandleStore(tmp_path).write("binance", "BTC/USDT", "1h", chunk)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    pd.testing.assert_frame_equal(CandleStore(tmp_path).read("binance", "BTC/USDT", "1h"), df)


def test_filled_flags_survive_merges(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    df = candles(10)
    flags = np.zeros(10, dtype=bool)
    flags[[3, 4]] = True
    result = store.write("binance", "BTC/USDT", "1h", df, filled=flags)
    assert result.info.filled_bars == 2
    assert list(store.filled_timestamps("binance", "BTC/USDT", "1h")) == list(df["timestamp"].iloc[[3, 4]])
    # a real bar arriving for a filled slot clears the flag
    store.write("binance", "BTC/USDT", "1h", df.iloc[[3]].reset_index(drop=True))
    assert list(store.filled_timestamps("binance", "BTC/USDT", "1h")) == [df["timestamp"].iloc[4]]
    assert store.list()[0].filled_bars == 1


def test_damaged_file_is_reported_not_crashing(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.write("binance", "BTC/USDT", "1h", candles(10))
    path = store.path_for("binance", "BTC/USDT", "1h")
    path.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read"):
        store.read("binance", "BTC/USDT", "1h")
    assert store.list() == []  # skipped with a warning, the rest of the store stays usable


def test_package_exports_exactly_its_public_names() -> None:
    import trader.data

    modules = {"annotations", "download", "export", "frame", "importers", "ingest", "limits", "report", "resolve", "store", "synth", "validate"}
    public = {n for n in vars(trader.data) if n.isidentifier() and not n.startswith("_")} - modules
    assert public == set(trader.data.__all__)

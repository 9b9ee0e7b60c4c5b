"""Every supported file format imports to the same canonical series (fixtures are generated here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_fixtures import candles, write_cdd_csv, write_freqtrade_feather, write_ohlcv_json

from trader.data.importers import guess_from_filename, read_candle_file
from trader.data.ingest import import_candle_file
from trader.data.store import CandleStore
from trader.data.validate import validate_candles
from trader.errors import ConfigError, ValidationError


def _clean(path: Path, timeframe: str = "1h", base: str = "BTC") -> pd.DataFrame:
    return validate_candles(read_candle_file(path, base_currency=base), timeframe).candles


def _writers(df: pd.DataFrame, tmp: Path) -> dict[str, Path]:
    named = df.assign(date=pd.to_datetime(df["timestamp"], unit="ms", utc=True))
    files = {
        "ccxt json": write_ohlcv_json(df, tmp / "ohlcv.json"),
        "freqtrade json.gz": write_ohlcv_json(df, tmp / "BTC_USDT-1h.json.gz", compress=True),
        "freqtrade feather": write_freqtrade_feather(df, tmp / "BTC_USDT-1h.feather"),
        "cryptodatadownload csv": write_cdd_csv(df, tmp / "Binance_BTCUSDT_1h.csv"),
    }
    generic = df.rename(columns={"timestamp": "Open Time", "open": "O", "high": "High", "low": "LOW", "close": "close", "volume": "Volume BTC"})
    generic.to_csv(tmp / "generic.csv", index=False)
    files["generic csv aliases"] = tmp / "generic.csv"
    iso = named.drop(columns="timestamp")[["date", "open", "high", "low", "close", "volume"]]
    iso.assign(date=iso["date"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(tmp / "iso.csv", sep=";", index=False)
    files["iso dates ; csv"] = tmp / "iso.csv"
    no_header = df.assign(close_time=df["timestamp"] + 3_599_999, quote=1.0, trades=5)
    no_header.to_csv(tmp / "BTCUSDT-1h-2024-01.csv", index=False, header=False)
    files["binance headerless csv"] = tmp / "BTCUSDT-1h-2024-01.csv"
    named.set_index("date").drop(columns="timestamp").to_parquet(tmp / "indexed.parquet")
    files["parquet with datetime index"] = tmp / "indexed.parquet"
    (tmp / "records.json").write_text(json.dumps(df.rename(columns={"timestamp": "time"}).to_dict("records")))
    files["json records"] = tmp / "records.json"
    seconds = df.assign(timestamp=df["timestamp"] // 1000).rename(columns={"timestamp": "unix"})
    seconds.to_parquet(tmp / "seconds.parquet", index=False)
    files["parquet seconds"] = tmp / "seconds.parquet"
    micros = df.assign(timestamp=df["timestamp"] * 1000)
    micros.to_csv(tmp / "micros.csv", index=False)
    files["csv microseconds"] = tmp / "micros.csv"
    return files


def test_every_format_gives_the_same_series(tmp_path: Path) -> None:
    df = candles(120)
    for name, path in _writers(df, tmp_path).items():
        got = _clean(path)
        pd.testing.assert_frame_equal(got, df, check_exact=True, obj=name)


def test_formats_are_named_in_the_report(tmp_path: Path) -> None:
    df = candles(30)
    files = _writers(df, tmp_path)
    formats = {name: read_candle_file(path, "BTC").format for name, path in files.items()}
    assert formats["cryptodatadownload csv"] == "cryptodatadownload-csv"
    assert formats["freqtrade feather"] == "freqtrade-feather"
    assert formats["ccxt json"] == "ohlcv-json"
    assert formats["parquet seconds"] == "parquet"


def test_cryptodatadownload_file_like_the_real_one(tmp_path: Path) -> None:
    """Newest first, mixed ms/seconds, duplicated hours in both styles, a spike: all named in the report."""
    df = candles(400)
    spike_at = 2
    df.loc[spike_at, ["open", "high"]] = df.loc[spike_at, "open"] * 3.7
    df.loc[spike_at, "high"] = df.loc[spike_at, ["open", "close"]].max() * 1.001
    path = write_cdd_csv(df, tmp_path / "Binance_BTCUSDT_1h.csv")
    lines = path.read_text().splitlines()
    # duplicate ten hours the way the real file does: the same hour in the other timestamp style
    extra = []
    for i in range(150, 160):
        t, o, h, low, c, v = df.iloc[i]
        volume = round(v, 2) if i % 2 else v  # half differ only by rounding
        extra.append(f"{t / 1000:.1f},x,BTC/USDT,{o!r},{h!r},{low!r},{c!r},{volume!r},1.0,NULL")
    path.write_text("\n".join(lines[:50] + extra + lines[50:]) + "\n")
    # and a gap of three hours
    text = [ln for ln in path.read_text().splitlines() if not ln.startswith(tuple(str(int(df["timestamp"].iloc[k])) for k in (300, 301, 302)))]
    path.write_text("\n".join(text) + "\n")

    result = import_candle_file(tmp_path / "home", path, "BTC/USDT", "1h")
    report = result.report
    assert result.exchange == "binance"  # from the file name
    assert report.format == "cryptodatadownload-csv"
    units = report.finding("mixed-time-units")
    assert units is not None and set(units.details) == {"seconds", "milliseconds"}
    assert report.finding("reverse-order") is not None
    dups = report.finding("duplicates")
    assert dups.count == 10 and dups.details["identical_dropped"] == 5 and dups.details["volume_only"] == 5
    gaps = report.finding("gaps")
    assert gaps.count == 1 and gaps.details["missing_bars"] == 3
    outliers = report.finding("outliers")
    assert outliers.count == 1 and outliers.details["timestamps"] == [int(df["timestamp"].iloc[spike_at])]
    assert "2024-01-01 02:00" in outliers.examples[0] and "line" in outliers.examples[0]
    stored = CandleStore(tmp_path / "home").read("binance", "BTC/USDT", "1h")
    assert len(stored) == 397 and stored["timestamp"].is_monotonic_increasing and stored["timestamp"].is_unique
    assert stored.loc[stored["timestamp"] == df["timestamp"].iloc[spike_at], "open"].item() == df["open"].iloc[spike_at]


def test_file_names_tell_symbol_timeframe_exchange() -> None:
    assert guess_from_filename("user_data/ETH_BTC-5m.feather") == {"symbol": "ETH/BTC", "timeframe": "5m"}
    assert guess_from_filename("BTC_USDT_USDT-1h-futures.feather") == {"symbol": "BTC/USDT:USDT", "timeframe": "1h"}
    assert guess_from_filename("Binance_BTCUSDT_1h.csv") == {"exchange": "binance", "timeframe": "1h"}
    assert guess_from_filename("Kraken_ETHUSD_d.csv") == {"exchange": "kraken", "timeframe": "1d"}
    assert guess_from_filename("prices.csv") == {}


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "file is empty"),
        ("just some words\n", "not a CSV"),
        ("a,b,c\n1,2,3\n", "no time column"),
        ("time,open,high,low,close\n1704067200000,1,1,1,1\n", "no volume column"),
        ("[[1704067200000, 1, 2]]", "row 1: expected"),
        ("{\"a\": 1}", "not a table"),
        ("[1, 2", "not valid JSON"),
        ("PAR1garbage", "cannot read as parquet"),
    ],
)
def test_unreadable_files_are_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "input.dat"
    path.write_text(content)
    with pytest.raises(ValidationError, match=message) as info:
        validate_candles(read_candle_file(path), "1h")
    assert str(path) in str(info.value)


def test_missing_file_and_missing_symbol_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no such file"):
        read_candle_file(tmp_path / "nope.csv")
    path = write_ohlcv_json(candles(5), tmp_path / "x.json")
    with pytest.raises(ConfigError, match="--symbol is required"):
        import_candle_file(tmp_path, path, timeframe="1h")


def test_several_volume_columns_pick_the_base_currency(tmp_path: Path) -> None:
    df = candles(20)
    frame = df.rename(columns={"volume": "Volume ETH"}).assign(**{"Volume USDT": df["volume"] * 1000})
    frame.to_csv(tmp_path / "two.csv", index=False)
    pd.testing.assert_frame_equal(_clean(tmp_path / "two.csv", base="ETH"), df)
    with pytest.raises(ValidationError, match="several volume columns"):
        read_candle_file(tmp_path / "two.csv", base_currency="BTC")
    assert np.isfinite(_clean(tmp_path / "two.csv", base="ETH")["volume"]).all()

"""Crafted data files, names and a hostile world: one clear line, a non-zero exit, bounded memory,
and the store byte-identical afterwards."""

from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_runner import TRADER_EXE, run_trader
from data_fixtures import candles, write_ohlcv_json
from hypothesis import given
from hypothesis import strategies as st

from trader.data import CandleStore, validate_market
from trader.data.frame import check_symbol
from trader.errors import DataError
from trader.timeframes import TIMEFRAME_UNITS_MS, normalize_timeframe, timeframe_to_ms

ADDRESS_SPACE = 1 << 30  # RLIMIT_AS of the import subprocesses below: 1 GiB


def _snapshot(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file() and p.name != "trader.toml"}


@pytest.fixture
def stocked_home(trader_home: Path) -> Path:
    CandleStore(trader_home).write("imported", "BTC/USDT", "1h", candles(50))
    return trader_home


def _refused(result, *fragments: str, code: int = 1) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Internal error" not in lines[0] and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------- names


_PART = r"[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?"
_VALID = __import__("re").compile(rf"{_PART}/{_PART}(?::{_PART})?")


@given(st.text(st.characters(codec="utf-8"), max_size=80) | st.from_regex(r"[A-Za-z0-9./:\-_ ]{0,70}", fullmatch=True))
def test_a_symbol_is_accepted_exactly_when_it_is_ccxt_form_ascii_and_short(text):
    stripped = text.strip(" \t\r\n")
    ok = bool(_VALID.fullmatch(stripped)) and len(stripped) <= 64
    try:
        assert check_symbol(text) == stripped and ok
    except DataError as exc:
        assert not ok
        assert len(str(exc)) < 300 and "\n" not in str(exc)


@given(st.integers(1, 400), st.sampled_from(sorted(TIMEFRAME_UNITS_MS)), st.sampled_from(["", " ", "\n", "\t", " \r\n"]),
       st.sampled_from(["", " ", "0", "00"]))
def test_timeframes_have_one_canonical_form(n, unit, pad, zeros):
    raw = f"{pad.strip() and pad}{zeros.strip()}{n}{unit}{pad}" if zeros.strip() else f"{pad}{n}{unit}{pad}"
    ms = n * TIMEFRAME_UNITS_MS[unit]
    if ms > 365 * 86_400_000:
        with pytest.raises(ValueError):
            normalize_timeframe(raw)
        return
    canonical = normalize_timeframe(raw)
    assert timeframe_to_ms(canonical) == ms and normalize_timeframe(canonical) == canonical
    # the largest unit that divides it, as ccxt spells it
    size = max(s for s in TIMEFRAME_UNITS_MS.values() if ms % s == 0)
    assert canonical == f"{ms // size}{next(u for u, s in TIMEFRAME_UNITS_MS.items() if s == size)}"


@pytest.mark.parametrize("timeframe", ["1٣h", "١h", "1H", "1M", "0h", "1h1", "", "9999999999m", "1.5h", "1 h"])
def test_malformed_timeframes_are_refused(timeframe):
    with pytest.raises(DataError, match="invalid timeframe"):
        validate_market("BTC/USDT", timeframe)


def test_bad_symbols_are_one_line_before_anything_runs(stocked_home: Path, tmp_path: Path) -> None:
    before = _snapshot(stocked_home)
    path = write_ohlcv_json(candles(30), tmp_path / "c.json")
    for symbol in (".evil/USDT", "../..", "A" * 150 + "/" + "B" * 150, "BTC/USDT\n/x", "ＢＴＣ/USDT"):
        result = run_trader("data", "import", str(path), "--symbol", symbol, "--timeframe", "1h", home=stocked_home)
        line = _refused(result, "--symbol: invalid symbol", "BASE/QUOTE", code=2)
        assert len(line) < 300
    for args in (["backtest", "--plugin", "buy_and_hold"], ["train", "--plugin", "buy_and_hold"]):
        result = run_trader(*args, "--symbol", "../..", home=stocked_home)
        _refused(result, "--symbol: invalid symbol '../..'", code=2)
    long_exchange = run_trader("data", "import", str(path), "--symbol", "BTC/USDT", "--timeframe", "1h",
                               "--exchange", "x" * 300, home=stocked_home)
    _refused(long_exchange, "invalid exchange id", "(300 characters)", code=2)
    assert _snapshot(stocked_home) == before


def test_spellings_of_one_timeframe_are_one_dataset(trader_home: Path, tmp_path: Path) -> None:
    path = write_ohlcv_json(candles(40), tmp_path / "c.json")
    for timeframe in ("1h", " 1h", "1h\n", "60m", "3600s"):
        result = run_trader("data", "import", str(path), "--symbol", "BTC/USDT", "--timeframe", timeframe, home=trader_home)
        assert result.returncode == 0, result.stderr
    listed = json.loads(run_trader("data", "list", "--json", home=trader_home).stdout)
    assert [(d["symbol"], d["timeframe"], d["rows"]) for d in listed] == [("BTC/USDT", "1h", 40)]
    assert sorted(p.name for p in (trader_home / "data" / "imported").glob("*.parquet")) == ["BTC_USDT-1h.parquet"]


# ---------------------------------------------------------------------------- JSON


def test_crafted_json_is_one_line_and_changes_nothing(stocked_home: Path, tmp_path: Path) -> None:
    before = _snapshot(stocked_home)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    huge_int = tmp_path / "int.json"
    huge_int.write_text("[[1" + "0" * 5000 + ", 1, 1, 1, 1, 1]]")
    corrupt = tmp_path / "corrupt.json.gz"
    corrupt.write_bytes(gzip.compress(json.dumps([[1, 2, 3, 4, 5, 6]] * 100).encode())[:-20] + b"\x00" * 20)
    garbage = tmp_path / "garbage.json.gz"
    garbage.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(200))
    expected = {deep: "JSON nested 100000 levels deep (at most 32 allowed)",
                huge_int: "a JSON integer has 5,001 digits (at most 40 allowed)",
                corrupt: "not a readable gzip file", garbage: "not a readable gzip file"}
    for path, fragment in expected.items():
        result = run_trader("data", "import", str(path), "--symbol", "BTC/USDT", "--timeframe", "1h", home=stocked_home)
        _refused(result, f"{path}: {fragment}")
    assert _snapshot(stocked_home) == before


# ---------------------------------------------------------------------------- limits


def test_limits_from_the_config_refuse_csv_parquet_and_fill_gaps(stocked_home: Path, tmp_path: Path) -> None:
    (stocked_home / "trader.toml").write_text("[data]\nmax_import_rows = 100\nmax_fill_bars = 5\nmax_import_bytes = 20000\n")
    before = _snapshot(stocked_home)
    df = candles(150)
    df.to_csv(tmp_path / "rows.csv", index=False)
    df.to_parquet(tmp_path / "rows.parquet")
    gappy = candles(60).drop(index=range(20, 30))
    write_ohlcv_json(gappy, tmp_path / "gappy.json")
    cases = {
        "rows.csv": ["has 150 rows, more than the import limit of 100", "[data] max_import_rows"],
        "rows.parquet": ["declares 150 rows, more than the import limit of 100"],
        "gappy.json": ["--fill-gaps would create 10 bars", "more than the limit of 5 ([data] max_fill_bars raises it)"],
    }
    for name, fragments in cases.items():
        extra = ["--fill-gaps"] if name == "gappy.json" else []
        result = run_trader("data", "import", str(tmp_path / name), "--symbol", "BTC/USDT", "--timeframe", "1h", *extra,
                            home=stocked_home)
        _refused(result, f"{tmp_path / name}: ", *fragments)
    (stocked_home / "trader.toml").write_text("[data]\nmax_import_bytes = 2000\n")
    big = run_trader("data", "import", str(tmp_path / "rows.csv"), "--symbol", "BTC/USDT", "--timeframe", "1h", home=stocked_home)
    _refused(big, "rows.csv: is ", "more than the import limit of 1.95 KiB ([data] max_import_bytes raises it")
    (stocked_home / "trader.toml").unlink()
    assert _snapshot(stocked_home) == before


def _craft_bombs(folder: Path) -> dict[str, tuple[list[str], str]]:
    """Small files that would cost GiBs to read: (extra CLI args, expected refusal)."""
    n = 1_000_000
    block = pa.table({"timestamp": pa.array(np.full(n, 1_704_067_200_000, dtype=np.int64)),
                      **{c: pa.array(np.ones(n)) for c in ("open", "high", "low", "close", "volume")}})
    with pq.ParquetWriter(folder / "rows.parquet", block.schema, compression="zstd") as writer:
        for _ in range(11):  # 11M rows of 6 columns: 528 MB as numbers, far more as a DataFrame being validated
            writer.write_table(block)
    text = pa.DictionaryArray.from_arrays(pa.array(np.zeros(5000, dtype=np.int32)), pa.array(["2024-01-01" + " " * (1 << 20)]))
    pq.write_table(pa.table({"date": text, **{c: pa.array(np.ones(5000)) for c in ("open", "high", "low", "close", "volume")}}),
                   folder / "dictionary.parquet", compression="zstd")
    with gzip.open(folder / "bomb.json.gz", "wb", compresslevel=9) as fh:
        fh.write(b"[")
        for _ in range(64):
            fh.write(b" " * (1 << 24))  # 1 GiB of spaces
        fh.write(b"]")
    far = [[631_152_000_000, 1, 1, 1, 1, 1], [631_152_000_000 + 109 * 365 * 86_400_000, 1, 1, 1, 1, 1]]
    (folder / "far.json").write_text(json.dumps(far))
    return {
        "rows.parquet": ([], "declares 11,000,000 rows, more than the import limit of 10,000,000"),
        "dictionary.parquet": ([], "decodes to 4.88 GiB, more than the import limit of 1 GiB"),
        "bomb.json.gz": ([], "decompresses to more than 256 MiB of JSON"),
        "far.json": (["--timeframe", "1m", "--fill-gaps"], "--fill-gaps would create 57,290,399 bars"),
    }


@pytest.mark.slow
def test_crafted_files_are_refused_before_they_are_allocated(stocked_home: Path, tmp_path: Path) -> None:
    """Under a 1 GiB address-space limit each crafted file is refused in one line; reading any of
    them (57M bars to fill, 4.9 GiB of decoded text, 1 GiB of JSON) would not fit."""
    before = _snapshot(stocked_home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")} | {"TRADER_HOME": str(stocked_home)}

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    for name, (extra, fragment) in _craft_bombs(tmp_path).items():
        args = ["data", "import", str(tmp_path / name), "--symbol", "BTC/USDT", *(extra or ["--timeframe", "1h"])]
        result = subprocess.run([str(TRADER_EXE), *args], capture_output=True, text=True, env=env, preexec_fn=limit,
                                timeout=120)
        _refused(result, fragment)
    ok = write_ohlcv_json(candles(300), tmp_path / "ok.json")
    fine = subprocess.run([str(TRADER_EXE), "data", "import", str(ok), "--symbol", "BTC/USDT", "--timeframe", "1h", "--dry-run"],
                          capture_output=True, text=True, env=env, preexec_fn=limit, timeout=120)
    assert fine.returncode == 0, fine.stderr  # the limit leaves room for an ordinary import
    assert _snapshot(stocked_home) == before


# ---------------------------------------------------------------------------- the world


def test_an_offline_download_is_one_line(trader_home: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    (trader_home / "trader.toml").write_text(
        f'[exchange]\nid = "binance"\n[exchange.ccxt]\ntimeout = 2000\n[exchange.ccxt.urls.api]\npublic = "{url}/api/v3"\n'
        f'private = "{url}/api/v3"\nv1 = "{url}/api/v1"\nsapi = "{url}/sapi/v1"\n'
        '[exchange.ccxt.options]\nfetchCurrencies = false\nfetchMarkets = {types = ["spot"]}\n'
    )
    result = run_trader("data", "download", "--symbol", "BTC/USDT", "--timeframe", "1h", "--since", "2024-01-01",
                        "--max-retries", "0", home=trader_home)
    _refused(result, "binance: cannot reach the exchange", "NetworkError" if "NetworkError" in result.stderr else "Error",
             "check the network connection")
    assert not (trader_home / "data").exists()


def _in_a_small_mount(home: Path, options: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``trader ARGS`` with ``HOME/data`` on a tmpfs mounted with *options*, in a user namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare")
    (home / "data").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")} | {"TRADER_HOME": str(home)}
    script = f'mount -t tmpfs -o {options} tmpfs "{home / "data"}" && exec "$0" "$@"'
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user namespaces with mounts are not available here")
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, str(TRADER_EXE), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_a_full_disk_is_one_line_with_the_real_cause(trader_home: Path) -> None:
    result = _in_a_small_mount(trader_home, "size=64k", "data", "synth", "--bars", "20000")
    _refused(result, "SYN_USDT-1h.parquet: disk full (No space left on device); nothing was changed: free some space")


def test_a_read_only_home_is_one_line(trader_home: Path) -> None:
    result = _in_a_small_mount(trader_home, "ro", "data", "synth", "--bars", "100")
    _refused(result, "cannot write (Read-only file system); nothing was changed", "--home / TRADER_HOME")


def test_a_long_home_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / ("h" * 300)
    result = run_trader("data", "synth", "--bars", "10", home=home)
    _refused(result, "cannot read: File name too long; use a shorter --home / TRADER_HOME", code=2)

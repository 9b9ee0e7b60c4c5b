"""`trader data` as a user runs it: real subprocesses, a temporary TRADER_HOME, the loopback exchange."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
from cli_runner import TRADER_EXE, run_trader
from data_fixtures import candles, write_cdd_csv

from trader.data import CandleStore, synthetic_candles
from trader.testing.fake_binance import FakeBinance, Fault, toml_for_ccxt


def test_import_messy_cryptodatadownload_csv_and_list(trader_home: Path, tmp_path: Path) -> None:
    df = candles(300)
    df.loc[5, ["open", "high"]] = df.loc[5, "close"] * 4
    path = write_cdd_csv(df, tmp_path / "Binance_BTCUSDT_1h.csv")
    lines = path.read_text().splitlines()
    lines.insert(10, lines[12].replace(lines[12].split(",")[0], str(float(lines[12].split(",")[0]) / 1000) if "." not in lines[12].split(",")[0] else lines[12].split(",")[0]))
    path.write_text("\n".join(lines) + "\n")
    result = run_trader("data", "import", str(path), "--symbol", "BTC/USDT", "--timeframe", "1h", home=trader_home)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "cryptodatadownload-csv" in out and "300 bars kept" in out
    assert "mixed units" in out and "newest first" in out and "1 timestamp occur" in out
    assert "1 extreme spike" in out and "2024-01-01 05:00" in out
    assert "stored binance BTC/USDT 1h: 300 added" in out
    listed = run_trader("data", "list", "--json", home=trader_home)
    [entry] = json.loads(listed.stdout)
    assert (entry["exchange"], entry["symbol"], entry["timeframe"], entry["rows"], entry["gaps"]) == ("binance", "BTC/USDT", "1h", 300, 0)
    assert entry["first"] == "2024-01-01 00:00" and entry["last"] == "2024-01-13 11:00"


def test_bad_file_is_one_line_nonzero_exit_and_store_unchanged(trader_home: Path, tmp_path: Path) -> None:
    store = CandleStore(trader_home)
    store.write("imported", "BTC/USDT", "1h", candles(50))
    before = store.path_for("imported", "BTC/USDT", "1h").read_bytes()
    bad = candles(80)
    bad.loc[60, "high"] = bad.loc[60, "low"] * 0.5
    bad.to_csv(tmp_path / "bad.csv", index=False)
    result = run_trader("data", "import", str(tmp_path / "bad.csv"), "--symbol", "BTC/USDT", "--timeframe", "1h", home=trader_home)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'bad.csv'}: line 62: high: high below open or close (open {bad.loc[60, 'open']:.10g} "
        f"high {bad.loc[60, 'high']:.10g} low {bad.loc[60, 'low']:.10g} close {bad.loc[60, 'close']:.10g}) "
        "(--on-invalid drop skips invalid rows)"
    ]
    assert store.path_for("imported", "BTC/USDT", "1h").read_bytes() == before
    dropped = run_trader("data", "import", str(tmp_path / "bad.csv"), "--symbol", "BTC/USDT", "--timeframe", "1h",
                         "--on-invalid", "drop", "--fill-gaps", "--json", home=trader_home)
    report = json.loads(dropped.stdout)
    codes = {f["code"]: f for f in report["report"]["findings"]}
    assert codes["invalid"]["count"] == 1 and codes["filled"]["count"] == 1
    assert report["store"]["dataset"]["filled_bars"] == 1 and report["store"]["rows_after"] == 80


def test_synth_is_reproducible_and_stored(trader_home: Path, tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        result = run_trader("data", "synth", "--bars", "500", "--seed", "3", "--output", str(tmp_path / name), home=trader_home)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    stored = run_trader("data", "synth", "--symbol", "SYN/USDT", "--timeframe", "4h", "--bars", "200", "--seed", "3", home=trader_home)
    assert "stored synthetic SYN/USDT 4h: 200 bars (seed 3" in stored.stdout
    listed = run_trader("data", "list", home=trader_home).stdout.splitlines()
    assert listed[0].split() == ["exchange", "symbol", "timeframe", "first", "last", "rows", "gaps"]
    assert listed[1].split() == ["synthetic", "SYN/USDT", "4h", "2024-01-01", "00:00", "2024-02-03", "04:00", "200", "0"]
    pd.testing.assert_frame_equal(
        CandleStore(trader_home).read("synthetic", "SYN/USDT", "4h"), synthetic_candles("SYN/USDT", "4h", bars=200, seed=3)
    )


def _config(home: Path, server: FakeBinance, timeout_ms: int = 1000) -> None:
    (home / "trader.toml").write_text(toml_for_ccxt(server.ccxt_options(timeout=timeout_ms)))


def test_download_end_to_end_with_faults_and_secret_never_shown(trader_home: Path) -> None:
    market = candles(2500, seed=9)
    with FakeBinance({"BTC/USDT": market}) as server:
        _config(trader_home, server, timeout_ms=500)
        server.inject("/api/v3/klines", Fault.rate_limited(retry_after=0), Fault.server_error(), Fault.slow(1.5), Fault.malformed())
        secret = "s3cr3t-api-key-value"
        result = run_trader("--debug", "data", "download", "--symbol", "BTC/USDT", "--timeframe", "1h", "--since", "2024-01-01",
                            "--backoff", "0.01", "--json", home=trader_home, env={"TRADER_API_KEY": secret, "TRADER_API_SECRET": secret})
        assert result.returncode == 0, result.stderr
        assert secret not in result.stdout + result.stderr
        assert all(r.api_key is None for r in server.requests)
        payload = json.loads(result.stdout)
        assert payload["pages"] == 4 and payload["added"] == 2500
        assert payload["retries"] == {"DDoSProtection": 1, "ExchangeNotAvailable": 1, "RequestTimeout": 1, "Malformed": 1}
        assert "retry 3/5" in result.stderr
        refused = run_trader("data", "download", "--symbol", "DOGE/USDT", "--timeframe", "1h", "--since", "2024-01-01", home=trader_home)
        assert refused.returncode == 1 and refused.stderr.startswith("Error: binance has no market DOGE/USDT (1 market; ")
    pd.testing.assert_frame_equal(CandleStore(trader_home).read("binance", "BTC/USDT", "1h"), market)


def test_interrupted_download_resumes_without_gaps_or_duplicates(trader_home: Path) -> None:
    market = candles(3000, seed=11)
    with FakeBinance({"BTC/USDT": market}) as server:
        _config(trader_home, server, timeout_ms=30_000)
        server.inject("/api/v3/klines", Fault.slow(0), Fault.slow(0), Fault.slow(25))  # the third page hangs
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
        env["TRADER_HOME"] = str(trader_home)
        proc = subprocess.Popen([str(TRADER_EXE), "data", "download", "--symbol", "BTC/USDT", "--timeframe", "1h",
                                 "--since", "2024-01-01"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while server.pending_faults("/api/v3/klines") and time.monotonic() < deadline:
            time.sleep(0.05)  # until the third request has arrived: two pages are in hand, however loaded the machine
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        partial = CandleStore(trader_home).read("binance", "BTC/USDT", "1h")
        pd.testing.assert_frame_equal(partial, market.iloc[:2000])
        server.requests.clear()
        result = run_trader("data", "download", "--symbol", "BTC/USDT", "--timeframe", "1h", "--since", "2024-01-01", home=trader_home)
        assert result.returncode == 0, result.stderr
        assert int(server.requests_to("/api/v3/klines")[0].params["startTime"]) == int(market["timestamp"].iloc[1999])
    pd.testing.assert_frame_equal(CandleStore(trader_home).read("binance", "BTC/USDT", "1h"), market)

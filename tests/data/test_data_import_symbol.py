"""``trader data import``: the symbol from the file's own symbol column, and a final bar that was still forming.

The fixture is shaped like CryptoDataDownload's ``Binance_BTCUSDT_1h.csv``: a URL line,
``unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT,tradecount``, newest row first.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_trader

from trader.data import CandleStore

HOUR_MS = 3_600_000
START_MS = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS


def cdd_csv(path: Path, symbol: str = "BTC/USDT", bars: int = 60, last_volume: float | None = None,
            volume_names: tuple[str, str] = ("Volume BTC", "Volume USDT"), seed: int = 0) -> Path:
    """A CryptoDataDownload-style hourly file, newest first; ``last_volume`` replaces the newest bar's base volume."""
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.004, bars)))
    volume = rng.uniform(600, 1400, bars)
    if last_volume is not None:
        volume[-1] = last_volume
    lines = ["https://www.CryptoDataDownload.com",
             f"unix,date,symbol,open,high,low,close,{volume_names[0]},{volume_names[1]},tradecount"]
    for i in reversed(range(bars)):
        ts = START_MS + i * HOUR_MS
        o = close[i - 1] if i else close[0]
        c = close[i]
        date = np.datetime64(ts, "ms").astype("datetime64[s]").astype(str).replace("T", " ")
        lines.append(f"{ts},{date},{symbol},{o:.2f},{max(o, c) * 1.001:.2f},{min(o, c) * 0.999:.2f},{c:.2f},"
                     f"{volume[i]:.6f},{volume[i] * c:.2f},{int(volume[i] * 10)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def import_json(path: Path, home: Path, *args: str):
    proc = run_trader("data", "import", str(path), "--timeframe", "1h", "--json", *args, home=home)
    return proc, (json.loads(proc.stdout) if proc.returncode == 0 else None)


def findings(result: dict) -> dict[str, dict]:
    return {f["code"]: f for f in result["report"]["findings"]}


def test_the_symbol_comes_from_the_files_own_symbol_column(tmp_path, trader_home):
    path = cdd_csv(tmp_path / "hourly_prices.csv")  # the name tells nothing
    proc, result = import_json(path, trader_home)
    assert proc.returncode == 0, proc.stderr
    assert result["symbol"] == "BTC/USDT"
    assert findings(result)["symbol"]["message"] == "symbol BTC/USDT from the file's symbol column (--symbol overrides)"
    stored = CandleStore(trader_home).read(result["exchange"], "BTC/USDT", "1h")
    assert 550 < stored["volume"].median() < 1450  # the base-currency (BTC) volume, not the USDT one


def test_a_symbol_written_without_a_separator_picks_its_base_volume(tmp_path, trader_home):
    path = cdd_csv(tmp_path / "export.csv", symbol="ETHBTC", volume_names=("Volume ETH", "Volume BTC"))
    proc, result = import_json(path, trader_home, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert result["symbol"] == "ETH/BTC"


def test_symbol_option_overrides_and_a_contradiction_is_one_line(tmp_path, trader_home):
    path = cdd_csv(tmp_path / "Binance_BTCUSDT_1h.csv")
    proc, result = import_json(path, trader_home, "--symbol", "BTC/USDT", "--dry-run")
    assert proc.returncode == 0 and "symbol" not in findings(result)
    bad = run_trader("data", "import", str(path), "--symbol", "ETH/USDT", "--dry-run", home=trader_home)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "symbol column says 'BTC/USDT'" in bad.stderr


def test_without_a_symbol_column_the_file_name_tells_and_else_it_is_refused(tmp_path, trader_home):
    plain = "timestamp,open,high,low,close,volume\n" + "\n".join(
        f"{START_MS + i * HOUR_MS},100,101,99,100.5,{50 + i % 7}" for i in range(40)) + "\n"
    named = tmp_path / "ETH_BTC-1h.csv"
    named.write_text(plain)
    proc, result = import_json(named, trader_home, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert result["symbol"] == "ETH/BTC" and "from the file name" in findings(result)["symbol"]["message"]
    anonymous = tmp_path / "candles.csv"
    anonymous.write_text(plain)
    refused = run_trader("data", "import", str(anonymous), "--timeframe", "1h", home=trader_home)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "--symbol is required (the file has no symbol column and its name does not tell)" in refused.stderr


@pytest.mark.parametrize("keep", [False, True])
def test_a_final_bar_still_forming_is_flagged_and_dropped_by_default(tmp_path, trader_home, keep):
    path = cdd_csv(tmp_path / "Binance_BTCUSDT_1h.csv", bars=60, last_volume=25.0)  # ~40x below its neighbours
    proc, result = import_json(path, trader_home, *(["--keep-incomplete"] if keep else []))
    assert proc.returncode == 0, proc.stderr
    flag = findings(result)["incomplete_last_bar"]
    assert flag["severity"] == "warning" and flag["details"]["dropped"] is (not keep)
    assert "may still have been forming" in flag["message"] and "x less volume than the median" in flag["message"]
    assert result["report"]["rows_kept"] == (60 if keep else 59)
    stored = CandleStore(trader_home).read(result["exchange"], "BTC/USDT", "1h")
    assert len(stored) == result["report"]["rows_kept"]
    assert int(stored["timestamp"].iloc[-1]) == START_MS + (59 if keep else 58) * HOUR_MS


def test_a_normal_final_bar_is_kept_without_a_word(tmp_path, trader_home):
    path = cdd_csv(tmp_path / "Binance_BTCUSDT_1h.csv", bars=60, last_volume=900.0)
    proc, result = import_json(path, trader_home, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "incomplete_last_bar" not in findings(result) and result["report"]["rows_kept"] == 60
    text = run_trader("data", "import", str(cdd_csv(tmp_path / "x_BTCUSDT_1h.csv", last_volume=10.0)), "--dry-run",
                      home=trader_home)
    assert text.returncode == 0 and "[warn] the last bar (" in text.stdout and "dropped (--keep-incomplete keeps it)" in text.stdout

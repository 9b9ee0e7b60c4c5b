"""Train on a past range, then paper-trade only what the model never saw (`train --until`, `run --from`)."""

from __future__ import annotations

import json

from cli_runner import run_trader

SPLIT = "2024-01-15"
SPLIT_MS = 1705276800000  # 2024-01-15 00:00 UTC


def test_train_until_and_run_from_keep_the_model_out_of_sample(trader_home):
    synth = run_trader("data", "synth", "--symbol", "SYN/USDT", "--timeframe", "1h", "--bars", "800",
                       "--planted-signal", "0.3", home=trader_home)
    assert synth.returncode == 0, synth.stderr
    train = run_trader("train", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--timeframe", "1h", "--until", SPLIT,
                       "--epochs", "1", "--param", "hidden_size=8", "--param", "sequence_length=8", "--json",
                       home=trader_home, timeout=300)
    assert train.returncode == 0, train.stderr
    manifest = json.loads(run_trader("models", "show", "--plugin", "dl_lstm", "--symbol", "SYN/USDT",
                                     "--timeframe", "1h", home=trader_home).stdout)
    data = manifest["data"]["range"]
    assert data["end"] < SPLIT_MS <= data["end"] + 3_600_000, data

    run = run_trader("run", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--timeframe", "1h", "--from", SPLIT,
                     "--json", "--quiet", home=trader_home, timeout=300)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["first_ts"] == SPLIT_MS
    assert summary["processed"] == 800 - 14 * 24  # 2024-01-01 .. 01-14 warm up only


def test_train_range_with_too_few_candles_is_one_line(trader_home):
    result = run_trader("train", "--plugin", "dl_lstm", "--until", "2000-01-01", home=trader_home)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Error: only 0 candles of synthetic market")

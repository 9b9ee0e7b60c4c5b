"""`trader train`, `trader models` and `trader compare` as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import shutil

import pytest
from cli_runner import run_trader

SMALL = ["--synthetic-bars", "1500", "--epochs", "1", "--no-progress",
         "--param", "hidden_size=8", "--param", "head_hidden=0", "--param", "sequence_length=12", "--param", "threads=1"]


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("dl_cli") / "home"
    home.mkdir()
    result = run_trader("train", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--timeframe", "1h", *SMALL, home=home,
                        timeout=300)
    return home, result


def test_train_stores_weights_manifest_and_a_loss_curve_report(trained_home):
    home, result = trained_home
    assert result.returncode == 0, result.stderr
    version_dir = home / "models" / "dl_lstm" / "SYN-USDT_1h" / "v1"
    assert f"stored dl_lstm v1 in {version_dir}" in result.stdout
    assert "majority" in result.stdout and "balanced_accuracy" in result.stdout
    assert "synthetic market" in result.stderr  # says where the candles came from
    assert sorted(p.name for p in version_dir.iterdir()) == ["manifest.json", "training_report.png", "weights.safetensors"]
    assert (version_dir / "training_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["data"]["range"]["rows"] == 1500 and manifest["data"]["range"]["source"].startswith("synthetic")
    assert manifest["data"]["sha256"].startswith("sha256:")
    assert {f["name"] for f in manifest["files"]} == {"weights.safetensors", "training_report.png"}
    assert manifest["architecture"]["hidden_size"] == 8 and manifest["history"]["epoch"] == [1]


def test_train_if_missing_keeps_the_existing_model(trained_home):
    home, _ = trained_home
    again = run_trader("train", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--if-missing", *SMALL, home=home)
    assert again.returncode == 0, again.stderr
    assert "already has model v1" in again.stdout
    assert sorted(p.name for p in (home / "models/dl_lstm/SYN-USDT_1h").iterdir()) == ["v1"]


def test_models_list_shows_the_version(trained_home):
    home, _ = trained_home
    listed = run_trader("models", "list", "--json", home=home)
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert (entry["plugin"], entry["symbol"], entry["timeframe"], entry["version"]) == ("dl_lstm", "SYN/USDT", "1h", "v1")
    assert entry["metrics"]["test"]["baseline"]["balanced_accuracy"] == 0.5
    text = run_trader("models", "list", home=home)
    assert "dl_lstm" in text.stdout and "SYN/USDT" in text.stdout and "v1" in text.stdout


def test_compare_scores_models_beside_baseline_and_reports_untrained_ones(trained_home):
    home, _ = trained_home
    result = run_trader("compare", "--plugin", "dl_lstm", "--plugin", "dl_transformer", "--symbol", "SYN/USDT",
                        "--json", home=home, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {row["plugin"]: row for row in data["strategies"]}
    assert list(rows) == ["dl_lstm", "dl_transformer", "buy_and_hold"]
    lstm = rows["dl_lstm"]
    assert lstm["status"] == "ok" and lstm["version"] == "v1"
    assert set(lstm["classification"]["model"]) == {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss"}
    assert lstm["classification"]["baseline"]["roc_auc"] == 0.5
    assert rows["dl_transformer"]["status"] == "no model"
    assert "trader train --plugin dl_transformer" in rows["dl_transformer"]["message"]
    assert rows["buy_and_hold"]["trading"]["trades"] == 1
    # the held-out range is the model's test split: the same windows its training report scored
    manifest = json.loads((home / "models/dl_lstm/SYN-USDT_1h/v1/manifest.json").read_text())
    assert data["held_out"]["start"] == manifest["extra"]["split"]["test"]["first_end"]
    assert lstm["classification"]["model"]["accuracy"] == pytest.approx(manifest["metrics"]["test"]["model"]["accuracy"])
    text = run_trader("compare", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", home=home, timeout=300)
    assert "majority baseline" in text.stdout and "buy_and_hold" in text.stdout


def test_a_backtest_trades_the_same_on_one_thread_and_on_every_core(trained_home):
    home, _ = trained_home
    config = home / "trader.toml"
    results = {}
    try:
        for threads in (1, 2):
            config.write_text(f"[plugins.dl_lstm]\nbatch_threads = {threads}\n")
            result = run_trader("backtest", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--synthetic-bars", "2600",
                                "--bootstrap", "100", "--json", home=home, timeout=300)
            assert result.returncode == 0, result.stderr
            data = json.loads(result.stdout)
            data.pop("timings", None)
            results[threads] = data
    finally:
        config.unlink()
    assert results[1]["metrics"]["trades"] > 0  # 2,600 candles: ten batches of windows, run side by side
    assert results[2] == results[1]


def test_a_tampered_model_is_refused_by_verify_and_reported_by_compare(trained_home, tmp_path):
    home, _ = trained_home
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    weights = copy / "models/dl_lstm/SYN-USDT_1h/v1/weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x80\x7f")
    verify = run_trader("models", "verify", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", home=copy, timeout=300)
    assert verify.returncode == 1
    assert verify.stderr.strip().startswith("Error: ") and "does not match the manifest" in verify.stderr
    assert len(verify.stderr.strip().splitlines()) == 1 and "Traceback" not in verify.stderr
    compare = run_trader("compare", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--json", "--from", "2024-02-20",
                         home=copy, timeout=300)
    assert compare.returncode == 0, compare.stderr
    row = json.loads(compare.stdout)["strategies"][0]
    assert row["status"] == "refused" and "sha256" in row["message"]


def test_train_refusals_are_one_line(trader_home):
    no_model = run_trader("train", "--plugin", "buy_and_hold", home=trader_home)
    assert no_model.returncode == 2
    assert no_model.stderr.strip() == "Error: strategy 'buy_and_hold' has no model to train"
    typo = run_trader("train", "--plugin", "dl_lstm", "--param", "hiden_size=3", "--synthetic-bars", "500",
                      home=trader_home, timeout=300)
    assert typo.returncode == 2
    assert "--param: unknown key hiden_size in [plugins.dl_lstm.train]; did you mean 'hidden_size'?" in typo.stderr
    assert "Traceback" not in typo.stderr
    assert not (trader_home / "models").exists() or not any((trader_home / "models").rglob("manifest.json"))


def test_run_says_how_to_train_then_trades_with_the_trained_model(trader_home):
    missing = run_trader("run", "--plugin", "dl_transformer", "--symbol", "SYN/USDT", "--max-candles", "5",
                         home=trader_home, timeout=300)
    assert missing.returncode == 2
    assert "trader train --plugin dl_transformer --symbol SYN/USDT --timeframe 1h" in missing.stderr
    trained = run_trader("train", "--plugin", "dl_transformer", "--symbol", "SYN/USDT", "--synthetic-bars", "1500",
                         "--epochs", "1", "--no-progress", "--param", "d_model=8", "--param", "nhead=2",
                         "--param", "num_layers=1", "--param", "dim_feedforward=16", "--param", "sequence_length=12",
                         home=trader_home, timeout=300)
    assert trained.returncode == 0, trained.stderr
    run = run_trader("run", "--plugin", "dl_transformer", "--symbol", "SYN/USDT", "--bars", "1500",
                     "--max-candles", "200", "--quiet", "--json", home=trader_home, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "model v1 loaded" in run.stderr
    summary = json.loads(run.stdout)
    assert summary["processed"] == 200 and summary["status"] == "active"
    status = run_trader("status", "--plugin", "dl_transformer", "--json", home=trader_home)
    assert status.returncode == 0, status.stderr
    [record] = json.loads(status.stdout)
    # every candle past the warm-up (60-row window + 50-bar features) got a signal from the model
    assert record["latency"]["samples"] == 200 - 109 and record["risk"]["model_failures"] == 0

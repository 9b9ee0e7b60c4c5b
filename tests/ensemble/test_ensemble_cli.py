"""`trader train`, `trader run` and `trader compare` with the ensemble, as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_runner import run_trader

SMALL = ["--no-progress", "--param", "threads=1", "--param", "trees=30", "--param", "tree_min_samples_leaf=30"]


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    """A home with a stored synthetic market that has a learnable pattern, and an ensemble trained on it."""
    home = tmp_path_factory.mktemp("ensemble_cli") / "home"
    home.mkdir()
    synth = run_trader("data", "synth", "--symbol", "SYN/USDT", "--timeframe", "1h", "--bars", "1500",
                       "--planted-signal", "0.3", home=home)
    assert synth.returncode == 0, synth.stderr
    result = run_trader("train", "--plugin", "ensemble", "--symbol", "SYN/USDT", "--epochs", "40", *SMALL, home=home,
                        timeout=300)
    return home, result


def test_train_stores_a_skops_model_and_prints_the_held_out_metrics(trained_home):
    home, result = trained_home
    assert result.returncode == 0, result.stderr
    version_dir = home / "models" / "ensemble" / "SYN-USDT_1h" / "v1"
    assert f"stored ensemble v1 in {version_dir}" in result.stdout
    assert "roc_auc" in result.stdout and "majority" in result.stdout
    assert "stored synthetic SYN/USDT 1h" in result.stderr  # trained on the stored candles
    assert sorted(p.name for p in version_dir.iterdir()) == ["ensemble.json", "ensemble.skops", "manifest.json"]
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["architecture"]["hyperparameters"]["hgb_max_iter"] == 40  # --epochs is the boosting rounds
    assert manifest["extra"]["params"]["trees"] == 30


def test_run_trades_with_the_stored_model(trained_home):
    home, _ = trained_home
    result = run_trader("run", "--plugin", "ensemble", "--symbol", "SYN/USDT", "--max-candles", "150", "--quiet",
                        "--json", home=home, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "ensemble: model v1 loaded" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["processed"] == 150 and summary["trades"] > 0
    assert (home / "strategies" / "ensemble").is_dir()
    assert not (home / "strategies" / "dl_lstm").exists()


def test_compare_shows_the_ensemble_beside_the_deep_learning_strategies_and_the_baselines(trained_home):
    home, _ = trained_home
    result = run_trader("compare", "--plugin", "ensemble", "--plugin", "dl_lstm", "--plugin", "dl_transformer",
                        "--symbol", "SYN/USDT", "--json", home=home, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {row["plugin"]: row for row in data["strategies"]}
    assert list(rows) == ["ensemble", "dl_lstm", "dl_transformer", "buy_and_hold"]
    ensemble = rows["ensemble"]
    assert ensemble["status"] == "ok" and ensemble["version"] == "v1"
    assert ensemble["classification"]["model"]["roc_auc"] > 0.6 > ensemble["classification"]["baseline"]["roc_auc"]
    for name in ("dl_lstm", "dl_transformer"):
        assert rows[name]["status"] == "no model" and f"trader train --plugin {name}" in rows[name]["message"]
    # compare scores the model's own test split and agrees with what training reported
    manifest = json.loads((home / "models/ensemble/SYN-USDT_1h/v1/manifest.json").read_text())
    assert data["held_out"]["start"] == manifest["extra"]["split"]["test"]["first_end"]
    assert ensemble["classification"]["model"]["roc_auc"] == pytest.approx(manifest["metrics"]["test"]["model"]["roc_auc"])


def test_a_bad_training_setting_is_one_line_and_exit_2(tmp_path):
    result = run_trader("train", "--plugin", "ensemble", "--param", "tress=5", "--synthetic-bars", "500", home=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("Error: --param: unknown key tress in [plugins.ensemble.train]; did you mean 'trees'?")
    assert "Traceback" not in result.stderr


def test_the_entry_module_imports_nothing_heavy():
    code = "import sys, trader_ensemble; print(sorted(m for m in ('numpy', 'pandas', 'sklearn', 'skops', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

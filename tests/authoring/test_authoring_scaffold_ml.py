"""`trader new-plugin --template ml` -> pip install into a fresh environment -> its tests pass,
`trader plugins` lists it, `trader train` stores a verified model, `trader backtest` and
`trader run` (paper) use it.
See conftest.py for the environment."""

from __future__ import annotations

import json
import re


def test_ml_plugin_from_scaffold_to_backtest(tmp_path, fresh_venv, main_env_plugins):
    created = fresh_venv.trader("new-plugin", "dip_buyer", "--dir", tmp_path, "--template", "ml")
    assert created.returncode == 0, created.stderr
    project = tmp_path / "trader-dip-buyer"
    assert "trader train --plugin dip_buyer" in created.stdout

    installed = fresh_venv.trader("install", project)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "Installed strategy dip_buyer (trader-dip-buyer 0.1.0)" in installed.stdout

    listed = fresh_venv.trader("plugins")
    assert re.search(r"^dip_buyer\s+trader-dip-buyer 0\.1\.0\s+\[loaded, strategy\]", listed.stdout, re.M), listed.stdout
    assert "trader_load_model, trader_save_model, trader_strategy_info, trader_train" in listed.stdout
    assert "dip_buyer" not in main_env_plugins(fresh_venv.home)

    tests = fresh_venv.run("-m", "pytest", project / "tests", "-q", "-p", "no:cacheprovider", cwd=tmp_path)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert re.search(r"\b10 passed\b", tests.stdout), tests.stdout  # six conformance checks, none skipped

    trained = fresh_venv.trader("train", "--plugin", "dip_buyer", "--synthetic-bars", "1500", "--no-progress", "--json")
    assert trained.returncode == 0, trained.stderr
    model_dir = fresh_venv.home / "models" / "dip_buyer" / "BTC-USDT_1h" / "v1"
    assert sorted(p.name for p in model_dir.iterdir()) == ["manifest.json", "weights.safetensors"]
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["plugin"] == {"name": "dip_buyer", "version": "0.1.0", "distribution": "trader-dip-buyer"}
    assert manifest["features"]["count"] == 86 and "validation_auc" in manifest["metrics"]

    backtest = fresh_venv.trader("backtest", "--plugin", "dip_buyer", "--synthetic-bars", "1500", "--bootstrap", "100", "--json")
    assert backtest.returncode == 0, backtest.stderr
    result = json.loads(backtest.stdout)
    assert result["strategy"] == "dip_buyer" and result["model"]["version"] == "v1"
    assert result["classification"]  # the model's probabilities were scored

    run = fresh_venv.trader("run", "--plugin", "dip_buyer", "--bars", "300", "--max-candles", "80", "--quiet", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["strategy"] == "dip_buyer" and summary["processed"] == 80
    assert "model v1 loaded" in run.stderr

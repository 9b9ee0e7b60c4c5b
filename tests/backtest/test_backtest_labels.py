"""Labels that match the truth: out of sample, in-sample with its overlap, trained on later data; the halt
reason and the fold table; the same words in the terminal, the HTML report and the JSON."""

from __future__ import annotations

import json

import pytest
from backtest_fakes import Threshold
from cli_runner import run_trader

from trader.backtest.report import write_report
from trader.backtest.runner import BacktestSettings, run_backtest
from trader.cli.backtest_cmd import render_result
from trader.config import load_config
from trader.data import synthetic_candles
from trader.plugins import TraderPluginManager
from trader.types import TrainRequest


@pytest.fixture(scope="module")
def candles():
    return synthetic_candles("SYN/USDT", "1h", bars=1200, seed=11)


def _backtest(candles, tmp_path, train_rows: slice, start_row: int, end_row: int):
    ts = candles["timestamp"].to_numpy()
    plugin = Threshold(name="label_threshold")
    manager = TraderPluginManager()
    with manager.registered(plugin, plugin.name):
        trained = manager.strategy(plugin.name).train(
            TrainRequest(plugin.name, "SYN/USDT", "1h", candles.iloc[train_rows]))

        class Loaded:  # what ModelPersistence.load returns, reduced to what the runner reads
            model = trained.model
            manifest = {"label": {"horizon": 3, "threshold": 0.0, "kind": "binary"},
                        "data": {"range": {"start": int(ts[train_rows.start]), "end": int(ts[train_rows.stop - 1]),
                                           "rows": train_rows.stop - train_rows.start}}}
            version = "v7"

        return run_backtest(manager, load_config(None, tmp_path), plugin.name, candles, symbol="SYN/USDT",
                            timeframe="1h", start=int(ts[start_row]), end=int(ts[end_row]),
                            settings=BacktestSettings(n_resamples=100), loaded_model=Loaded())


def _everywhere(result, tmp_path) -> tuple[str, str, dict]:
    write_report(result, tmp_path / "report")
    html = (tmp_path / "report" / "report.html").read_text()
    return "\n".join(render_result(result)), html, json.loads((tmp_path / "report" / "results.json").read_text())


def test_out_of_sample_only_after_the_training_range_and_its_purge(candles, tmp_path):
    after = _backtest(candles, tmp_path, slice(0, 400), 403, 700)  # the labels of the last training rows read 3 bars on
    text, html, data = _everywhere(after, tmp_path / "a")
    assert data["sample"] == "out_of_sample" and data["model"]["after_fraction"] == 1.0
    assert "model v7: out of sample" in text and "model v7: out of sample" in html
    assert "IN-SAMPLE" not in text and "NOT out of sample" not in text
    assert "Out-of-sample classification" in html

    within_purge = _backtest(candles, tmp_path, slice(0, 400), 401, 700)  # starts inside the 3-bar purge
    text, html, data = _everywhere(within_purge, tmp_path / "b")
    assert data["sample"] == "in_sample" and data["model"]["in_sample"] is True
    assert data["model"]["overlap_fraction"] == pytest.approx(2 / 300)
    for out in (text, html):
        assert "IN-SAMPLE: 1% of the range overlaps the training data (plus the 3-bar purge)" in out
    assert "Out-of-sample classification" not in html and "NOT out-of-sample classification" in html
    assert "NOT out of sample" in text


def test_overlap_is_reported_as_a_fraction(candles, tmp_path):
    result = _backtest(candles, tmp_path, slice(200, 600), 400, 799)  # half of the 400 candles lie in training
    text, html, data = _everywhere(result, tmp_path)
    assert data["model"]["overlap_fraction"] == pytest.approx(203 / 400)  # 200 training rows + the 3-bar purge
    assert data["model"]["before_fraction"] == 0.0
    assert "IN-SAMPLE: 51% of the range overlaps the training data" in text
    assert "IN-SAMPLE: 51% of the range overlaps the training data" in html
    assert "optimistic" in text


def test_a_model_trained_on_later_data_is_flagged(candles, tmp_path):
    result = _backtest(candles, tmp_path, slice(800, 1200), 100, 500)
    text, html, data = _everywhere(result, tmp_path)
    assert data["sample"] == "trained_later" and data["model"]["in_sample"] is True
    assert data["model"]["before_fraction"] == 1.0
    for out in (text, html):
        assert "NOT out of sample: the model was TRAINED ON LATER DATA" in out
    assert "Out-of-sample classification" not in html

    straddling = _backtest(candles, tmp_path, slice(400, 800), 200, 599)  # half before training, half inside
    text, _, data = _everywhere(straddling, tmp_path / "s")
    assert data["sample"] == "in_sample" and data["model"]["before_fraction"] == pytest.approx(0.5)
    assert "50% lies before it (the model was trained on later data)" in text


@pytest.mark.slow
def test_the_summary_says_why_trading_halted_and_shows_the_folds(tmp_path, fake_env):
    home = tmp_path / "home"
    home.mkdir()
    (home / "trader.toml").write_text("[plugins.fake_sma.risk]\nmax_drawdown = 0.02\n")
    proc = run_trader("backtest", "--plugin", "fake_sma", "--synthetic-bars", "1500", "--bootstrap", "100", home=home,
                      env=fake_env)
    assert proc.returncode == 0, proc.stderr
    risk = next(line for line in proc.stdout.splitlines() if line.startswith("risk:"))
    assert risk.startswith("risk: final status halted since ") and "MAX_DRAWDOWN" in risk and "denied orders:" in risk
    data = json.loads(run_trader("backtest", "--plugin", "fake_sma", "--synthetic-bars", "1500", "--bootstrap", "100",
                                 "--json", home=home, env=fake_env).stdout)
    assert data["halt"]["code"] in risk and data["halt"]["message"] in risk

    wf = run_trader("backtest", "--plugin", "fake_threshold", "--walk-forward", "--train-bars", "300", "--test-bars",
                    "200", "--purge-bars", "5", "--synthetic-bars", "1000", "--bootstrap", "100", "--no-progress",
                    home=tmp_path / "wf", env=fake_env)
    assert wf.returncode == 0, wf.stderr
    lines = wf.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:3] == ["fold", "train", "test"])
    assert [line.split()[0] for line in lines[head + 1 : head + 5]] == ["0", "1", "2", "3"]
    assert "out of sample: walk-forward" in wf.stdout

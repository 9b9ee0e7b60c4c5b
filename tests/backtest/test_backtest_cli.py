"""``trader backtest`` and ``trader check`` as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run_trader


def test_backtest_buy_and_hold_json_and_report(trader_home: Path, tmp_path: Path):
    report = tmp_path / "report"
    proc = run_trader("backtest", "--plugin", "buy_and_hold", "--synthetic-bars", "800", "--bootstrap", "200",
                      "--json", "--report", str(report), home=trader_home)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["strategy"] == "buy_and_hold" and data["range"]["bars"] == 800
    assert data["source"].startswith("synthetic market")
    metrics = data["metrics"]
    for key in ("total_return", "annual_return", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
                "max_drawdown_days", "trades", "win_rate", "profit_factor", "exposure", "turnover", "fees_paid"):
        assert key in metrics
    assert metrics["trades"] == 1 and metrics["fees_paid"] > 0
    assert data["significance"]["sharpe"]["low"] <= data["significance"]["sharpe"]["estimate"] <= data["significance"]["sharpe"]["high"]
    for name in ("equity.png", "drawdown.png", "position.png"):
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (report / name).stat().st_size > 10_000
    assert json.loads((report / "results.json").read_text()) == data
    html = (report / "report.html").read_text()
    assert "Sharpe" in html and 'src="equity.png"' in html and "verdict: NO EVIDENCE OF SKILL" in html
    rows = (report / "equity.csv").read_text().splitlines()
    assert len(rows) == 801 and rows[0].startswith("timestamp,close,equity")


def test_backtest_text_output_beside_the_baseline(trader_home: Path, fake_env):
    proc = run_trader("backtest", "--plugin", "fake_sma", "--synthetic-bars", "800", "--bootstrap", "200",
                      "--fee-bps", "5", home=trader_home, env=fake_env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "fake_sma" in out and "buy_and_hold" in out and "fees 5 bps" in out
    assert "Sharpe minus buy_and_hold's" in out
    assert "\nverdict: " in out and "beats random timing" in out  # the verdict, whichever way it goes


def test_check_fails_the_leaky_plugin_naming_candles_and_passes_an_honest_one(trader_home: Path, fake_env):
    leaky = run_trader("check", "--plugin", "fake_peek", "--bars", "400", home=trader_home, env=fake_env)
    assert leaky.returncode == 1
    assert "FAIL  truncation" in leaky.stdout
    assert "- candle " in leaky.stdout and "UTC" in leaky.stdout
    assert "candle column 'close'" in leaky.stdout  # the input that leaks, found as the conformance suite finds it
    honest = run_trader("check", "--plugin", "fake_sma", "--bars", "400", "--json", home=trader_home, env=fake_env)
    assert honest.returncode == 0, honest.stdout + honest.stderr
    data = json.loads(honest.stdout)
    assert data["passed"] is True
    assert {c["name"]: c["status"] for c in data["checks"]} == {
        "truncation": "pass", "batch": "pass", "determinism": "pass", "warmup": "pass", "persistence": "skip",
        "isolation": "pass"}


def test_check_round_trips_a_model_it_trains(trader_home: Path, fake_env):
    proc = run_trader("check", "--plugin", "fake_threshold", "--bars", "300", "--only", "persistence", home=trader_home,
                      env=fake_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS  persistence" in proc.stdout and "temporary model" in proc.stdout


def test_walk_forward_from_the_command_line(trader_home: Path, fake_env, tmp_path: Path):
    proc = run_trader("backtest", "--plugin", "fake_threshold", "--walk-forward", "--train-bars", "300",
                      "--test-bars", "200", "--purge-bars", "5", "--synthetic-bars", "1200", "--bootstrap", "200",
                      "--json", "--report", str(tmp_path / "wf"), home=trader_home, env=fake_env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["settings"]["walk_forward"] is True and len(data["folds"]) == 5
    assert data["range"]["bars"] == 1200 - 305
    assert data["classification"]["n_samples"] > 800
    assert "fold" in (tmp_path / "wf" / "report.html").read_text()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--plugin", "no_such_strategy"], "unknown strategy 'no_such_strategy'"),
        (["--plugin", "buy_and_hold", "--walk-forward"], "--walk-forward needs --train-bars and --test-bars"),
        (["--plugin", "buy_and_hold", "--train-bars", "10"], "need --walk-forward"),
        (["--plugin", "buy_and_hold", "--walk-forward", "--train-bars", "9", "--test-bars", "9", "--model-version", "v1"],
         "--model-version does not apply"),
        (["--plugin", "buy_and_hold", "--walk-forward", "--train-bars", "900", "--test-bars", "9"], "walk-forward: 300 candles"),
        (["--plugin", "buy_and_hold", "--from", "2024-03-01", "--to", "2024-02-01"], "--from must not be after --to"),
        (["--plugin", "buy_and_hold", "--from", "yesterday-ish"], "--from"),
        (["--plugin", "buy_and_hold", "--from", "2030-01-01"], "no candles between"),
        (["--plugin", "fake_threshold"], "trader train --plugin fake_threshold"),
    ],
)
def test_bad_backtest_input_is_one_clear_line(trader_home: Path, fake_env, args, needle):
    proc = run_trader("backtest", *args, "--synthetic-bars", "300", home=trader_home, env=fake_env)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_command_modules_and_the_package_stay_light():
    """`trader --help` must not pay for pandas, torch or matplotlib because of these commands."""
    import subprocess
    import sys

    code = (
        "import sys, trader.cli.backtest_cmd, trader.cli.check_cmd, trader.backtest as b;"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'torch', 'matplotlib', 'sklearn', 'ccxt'));"
        "print(heavy, sorted(b.__all__) == sorted(n for n in vars(b) if not n.startswith('_') and n != 'annotations'"
        " and not isinstance(vars(b)[n], type(sys))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[] True"

"""Parity: `trader backtest` and `trader run --feed replay` (paper broker, real SQLite) make the same trades."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_trader

from trader.engine import TradingState

BARS = "700"
CONFIG = """
[plugins.fake_sma.risk]
max_consecutive_losses = 1000
"""


def _replay(home: Path, plugin: str, env: dict[str, str]) -> tuple[list[dict], list[tuple[int, float]]]:
    proc = run_trader("run", "--plugin", plugin, "--feed", "replay", "--bars", BARS, "--quiet", home=home, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = TradingState.open(plugin, home / "strategies" / plugin, readonly=True)
    try:
        return state.fills(), state.equity_curve()
    finally:
        state.close()


def _backtest(home: Path, plugin: str, env: dict[str, str], report: Path) -> tuple[list[dict], list[tuple[int, float]]]:
    proc = run_trader("backtest", "--plugin", plugin, "--synthetic-bars", BARS, "--bootstrap", "100", "--report",
                      str(report), home=home, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(report / "fills.csv", newline="") as fh:
        fills = list(csv.DictReader(fh))
    with open(report / "equity.csv", newline="") as fh:
        curve = [(int(r["timestamp"]), float(r["equity"])) for r in csv.DictReader(fh)]
    return fills, curve


def _key(fill: dict) -> tuple:
    return (int(fill["timestamp"]), fill["side"], float(fill["quantity"]), float(fill["price"]), float(fill["fee"]),
            fill["client_order_id"])


@pytest.mark.parametrize("plugin", ["buy_and_hold", "fake_sma"])
def test_backtest_and_replay_run_make_the_same_trades(tmp_path: Path, fake_env, plugin):
    home = tmp_path / "home"
    home.mkdir()
    (home / "trader.toml").write_text(CONFIG)
    replay_fills, replay_curve = _replay(home, plugin, fake_env)
    test_fills, test_curve = _backtest(home, plugin, fake_env, tmp_path / "report")
    assert len(replay_fills) >= (1 if plugin == "buy_and_hold" else 20)
    assert [_key(f) for f in test_fills] == [_key(f) for f in replay_fills]
    assert [ts for ts, _ in test_curve] == [ts for ts, _ in replay_curve]
    assert [e for _, e in test_curve] == pytest.approx([e for _, e in replay_curve], rel=1e-12)


def test_parity_holds_for_a_stored_model(tmp_path: Path, fake_env):
    """Train once (`trader train`), then the replay and the backtest both load that model version."""
    home = tmp_path / "home"
    home.mkdir()
    trained = run_trader("train", "--plugin", "fake_threshold", "--synthetic-bars", BARS, home=home, env=fake_env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    replay_fills, replay_curve = _replay(home, "fake_threshold", fake_env)
    test_fills, test_curve = _backtest(home, "fake_threshold", fake_env, tmp_path / "report")
    assert len(replay_fills) >= 20
    assert [_key(f) for f in test_fills] == [_key(f) for f in replay_fills]
    assert [e for _, e in test_curve] == pytest.approx([e for _, e in replay_curve], rel=1e-12)


def test_parity_holds_with_an_estimated_spread(tmp_path: Path, fake_env):
    """On a market with a bid-ask bounce both pay the same estimated spread on every fill (trader.costs)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "trader.toml").write_text(CONFIG)
    made = run_trader("data", "synth", "--bounce-bps", "40", "--bars", BARS, home=home, env=fake_env)
    assert made.returncode == 0, made.stderr
    market = ("--symbol", "SYN/USDT")
    proc = run_trader("run", "--plugin", "fake_sma", "--feed", "replay", "--quiet", *market, home=home, env=fake_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = TradingState.open("fake_sma", home / "strategies" / "fake_sma", readonly=True)
    try:
        replay_fills, replay_curve = state.fills(), state.equity_curve()
    finally:
        state.close()
    report = tmp_path / "report"
    proc = run_trader("backtest", "--plugin", "fake_sma", "--bootstrap", "100", "--report", str(report), *market,
                      home=home, env=fake_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(report / "fills.csv", newline="") as fh:
        test_fills = list(csv.DictReader(fh))
    with open(report / "equity.csv", newline="") as fh:
        test_curve = [(int(r["timestamp"]), float(r["equity"])) for r in csv.DictReader(fh)]
    assert len(replay_fills) >= 20
    assert [_key(f) for f in test_fills] == [_key(f) for f in replay_fills]
    assert [e for _, e in test_curve] == pytest.approx([e for _, e in replay_curve], rel=1e-12)
    from trader.data.store import CandleStore

    close = dict(zip(*(CandleStore(home).read("synthetic", "SYN/USDT", "1h")[k].tolist() for k in ("timestamp", "close")),
                     strict=True))
    bar = 3_600_000  # a fill is stamped at the close time of the candle whose close it trades at
    paid = [abs(float(f["price"]) / close[int(f["timestamp"]) - bar] - 1) * 1e4 - 2 for f in test_fills[5:]]  # less slippage
    assert np.median(paid) == pytest.approx(20, rel=0.2)  # half of the 40 bps spread

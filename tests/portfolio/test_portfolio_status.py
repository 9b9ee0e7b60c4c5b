"""``trader status`` of an account trading several markets, as a user meets it: a real SQLite store
stepped by :class:`PortfolioSession`, read by real ``trader status`` subprocesses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_runner import run_trader

from trader import Signal, SignalAction
from trader.config import load_config
from trader.engine import RiskAuditAgent, TradingState, paper_broker, strategy_limits
from trader.plugins import TraderPluginManager
from trader.portfolio import PORTFOLIO, BasketPaperBroker, PortfolioSession

NAME = "buy_and_hold"
HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MARKETS = ("AAA/USDT", "BBB/USDT", "CCC/USDT")
RISK = """[plugins.buy_and_hold.risk]
max_open_positions = 2
max_gross_exposure = 0.5
max_position_fraction = 0.4
max_drawdown = 0.2
daily_loss_limit = 0.5
"""


def buy(size: float) -> Signal:
    return Signal(SignalAction.BUY, size=size)


def _session(home: Path, name: str = NAME, fee_bps: float = 0) -> PortfolioSession:
    """A session on the strategy's real state file, with the limits ``trader run`` would resolve (no fees by default)."""
    config = load_config(home=home)
    manager = TraderPluginManager()
    info = manager.strategy(NAME).info
    limits = strategy_limits(info, config)
    broker = BasketPaperBroker.like(paper_broker(config, fee_bps=fee_bps, slippage_bps=0, spread_bps=0), MARKETS)
    store = TradingState.open(name, config.strategy_dir(name))
    return PortfolioSession(name, MARKETS, "1h", limits=limits, broker=broker, store=store,
                            audit=RiskAuditAgent.for_strategy(manager, name, limits), initial_cash=10_000.0,
                            latency_denies=False)


def _first_two_candles(session: PortfolioSession) -> None:
    # 0:00: AAA 30% of equity, BBB 12% (CCC is not listed yet)
    session.step(T0, {"AAA/USDT": 100.0, "BBB/USDT": 10.0}, {"AAA/USDT": buy(0.75), "BBB/USDT": buy(0.3)})
    # 1:00: AAA to 40% would take the positions to 52% of equity (max 50%); CCC would be a third market (max 2)
    session.step(T0 + HOUR, {"AAA/USDT": 100.0, "BBB/USDT": 10.0, "CCC/USDT": 1.0},
                 {"AAA/USDT": buy(1.0), "CCC/USDT": buy(0.1)})


def _crash(session: PortfolioSession) -> None:
    # 2:00: AAA -60% (-1,800) and BBB -50% (-600): neither market alone loses 20% of the account, together they do
    session.step(T0 + 2 * HOUR, {"AAA/USDT": 40.0, "BBB/USDT": 5.0}, {})


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    (home / "trader.toml").write_text(RISK, encoding="utf-8")
    return home


def status(home: Path, *args: str):
    return run_trader("--home", str(home), "status", "--plugin", NAME, *args)


def test_the_status_readers_know_the_portfolio_symbol():
    from trader.engine.summary import ACCOUNT_STREAM

    assert ACCOUNT_STREAM == PORTFOLIO


def test_status_shows_each_market_the_totals_the_limits_and_the_denials_then_the_drawdown_halt(home):
    session = _session(home)
    _first_two_candles(session)
    session.store.close()

    result = status(home, "--json")
    assert result.returncode == 0, result.stderr
    [summary] = json.loads(result.stdout)
    account = summary["account"]
    assert account["equity"] == pytest.approx(10_000) and account["cash"] == pytest.approx(5_800)
    assert summary["risk"]["status"] == "active"
    markets = {m["symbol"]: m for m in summary["markets"]}
    assert list(markets) == list(MARKETS)
    assert markets["AAA/USDT"]["quantity"] == pytest.approx(30) and markets["AAA/USDT"]["share"] == pytest.approx(0.3)
    assert markets["BBB/USDT"]["value"] == pytest.approx(1_200) and markets["BBB/USDT"]["fills"] == 1
    assert markets["CCC/USDT"]["quantity"] == 0 and markets["CCC/USDT"]["mark"] == 1.0
    assert markets["CCC/USDT"]["denied_orders"] == 1 and markets["AAA/USDT"]["denied_orders"] == 1
    assert markets["BBB/USDT"]["last_candle"] == "2024-01-01 01:00 UTC"
    limits = summary["limits"]
    assert limits["max_gross_exposure"] == {"value": pytest.approx(0.42), "limit": 0.5, "code": "GROSS_EXPOSURE_EXCEEDED",
                                            "state": "ok"}
    assert limits["max_open_positions"]["value"] == 2 and limits["max_open_positions"]["state"] == "at"
    assert limits["max_position_fraction"]["value"] == pytest.approx(0.3)
    assert summary["portfolio"]["largest_position"] == "AAA/USDT"
    assert limits["max_drawdown"]["state"] == "ok"
    assert summary["denials"]["counts"] == {"GROSS_EXPOSURE_EXCEEDED": 1, "MAX_OPEN_POSITIONS": 1}
    assert [(d["symbol"], d["code"]) for d in summary["denials"]["recent"]] == [
        ("AAA/USDT", "GROSS_EXPOSURE_EXCEEDED"), ("CCC/USDT", "MAX_OPEN_POSITIONS")]

    text = status(home)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "buy_and_hold  [ACTIVE]" in out and "equity 10,000.00  cash 5,800.00" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip().startswith(MARKETS)}
    assert rows["AAA/USDT"][1:5] == ["30", "100", "3,000.00", "30.00%"]
    assert rows["BBB/USDT"][1:5] == ["120", "10", "1,200.00", "12.00%"]
    assert rows["CCC/USDT"][1:5] == ["0", "1", "0.00", "0.00%"]
    assert "gross exposure    42.00%" in out and "max_gross_exposure 50.00%" in out
    assert "max_open_positions 2  AT THE LIMIT (MAX_OPEN_POSITIONS)" in out
    assert "largest position  AAA/USDT 30.00%" in out
    assert "denied orders: GROSS_EXPOSURE_EXCEEDED x1, MAX_OPEN_POSITIONS x1" in out
    assert "2024-01-01 01:00 UTC AAA/USDT buy GROSS_EXPOSURE_EXCEEDED: positions would be worth" in out
    assert "2024-01-01 01:00 UTC CCC/USDT buy MAX_OPEN_POSITIONS: 2 markets already hold a position" in out
    assert "last candle of the account 1h: 2024-01-01 01:00 UTC" in out
    assert "last candle *" not in out and "position: flat" not in out

    session = _session(home)  # a later run of the same account
    _crash(session)
    session.store.close()
    [summary] = json.loads(status(home, "--json").stdout)
    assert summary["risk"]["status"] == "halted" and summary["risk"]["reason"].startswith("MAX_DRAWDOWN")
    assert summary["account"]["equity"] == pytest.approx(7_600)
    assert summary["portfolio"]["drawdown"] == pytest.approx(0.24)
    assert summary["limits"]["max_drawdown"]["state"] == "over"
    assert {m["symbol"]: round(m["share"], 4) for m in summary["markets"]} == {
        "AAA/USDT": round(1_200 / 7_600, 4), "BBB/USDT": round(600 / 7_600, 4), "CCC/USDT": 0.0}
    out = status(home).stdout
    assert "buy_and_hold  [HALTED]" in out and "risk halted: MAX_DRAWDOWN: " in out
    assert "drawdown          24.00%                 max_drawdown 20.00%  OVER THE LIMIT (MAX_DRAWDOWN)" in out
    assert "status MAX_DRAWDOWN" in out  # the breaker's event, with the other recent events


def test_a_basket_of_an_uninstalled_strategy_shows_its_markets_and_says_its_limits_are_unknown(tmp_path):
    gone = "gone_strategy"
    (tmp_path / "trader.toml").write_text(RISK, encoding="utf-8")
    session = _session(tmp_path, gone)
    _first_two_candles(session)
    session.store.close()
    result = run_trader("--home", str(tmp_path), "status", "--plugin", gone)
    assert result.returncode == 0, result.stderr
    assert "portfolio limits: unknown (the strategy is not installed)" in result.stdout
    assert "gross exposure    42.00%" in result.stdout and "AAA/USDT" in result.stdout
    assert "max_gross_exposure" not in result.stdout
    [summary] = json.loads(run_trader("--home", str(tmp_path), "status", "--plugin", gone, "--json").stdout)
    assert summary["limits"] is None and summary["limits_error"] == "the strategy is not installed"
    assert [m["symbol"] for m in summary["markets"]] == list(MARKETS)


def test_the_dashboard_lists_a_basket_with_its_positions_and_the_account_s_last_candle(tmp_path):
    import signal
    import subprocess

    import httpx
    from cli_runner import TRADER_EXE

    (tmp_path / "trader.toml").write_text(RISK, encoding="utf-8")
    session = _session(tmp_path)
    _first_two_candles(session)
    session.store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")} | {"TRADER_HOME": str(tmp_path)}
    proc = subprocess.Popen([str(TRADER_EXE), "serve", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        url = ""
        while not url:  # the address is printed once the socket listens
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if line.startswith("trader serve: http://"):
                url = line.split()[2].rstrip("/")
        row = httpx.get(f"{url}/api/strategies/{NAME}", timeout=20).json()
        page = httpx.get(f"{url}/", timeout=20).text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    assert "error" not in row and row["account"]["equity"] == pytest.approx(10_000)
    assert [(p["symbol"], p["quantity"]) for p in row["positions"]] == [("AAA/USDT", 30.0), ("BBB/USDT", 120.0)]
    assert row["last_candle"] == "2024-01-01 01:00 UTC" and row["model"] is None
    assert "AAA/USDT 30, BBB/USDT 120" in page and "unreadable" not in page


def test_the_basket_report_is_one_self_contained_page_with_each_market_s_contribution_and_exposure(tmp_path):
    import csv
    import re

    from trader.data.synth import synthetic_candles
    from trader.portfolio import align, run_basket_backtest
    from trader.portfolio.report import write_basket_report

    (tmp_path / "trader.toml").write_text("[plugins.sma_cross.risk]\nmax_gross_exposure = 0.6\n", encoding="utf-8")
    frames = {
        "AAA/USDT": synthetic_candles("AAA/USDT", "1h", 600, seed=1),
        "BBB/USDT": synthetic_candles("BBB/USDT", "1h", 500, seed=2).iloc[100:].reset_index(drop=True),  # listed later
        "CCC/USDT": synthetic_candles("CCC/USDT", "1h", 600, seed=3).drop(index=range(200, 250)).reset_index(drop=True),
    }
    result = run_basket_backtest(TraderPluginManager(), load_config(home=tmp_path), "sma_cross", align(frames, "1h"))
    files = write_basket_report(result, tmp_path / "report")
    assert sorted(p.name for p in files) == ["equity.csv", "fills.csv", "report.html", "results.json"]

    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    for section in ('id="equity"', 'id="contribution"', 'id="exposure"', 'id="drawdown"', "<h2>Verdict</h2>",
                    'id="markets"', 'id="denied"', "equal-weight basket"):
        assert section in page
    markets = page.split('id="markets"')[1].split("</table>")[0]
    for symbol in MARKETS:
        assert f"<td>{symbol}</td>" in markets
    denied = page.split('<table id="denied">')[1].split("</table>")[0]
    assert "<td>GROSS_EXPOSURE_EXCEEDED</td>" in denied
    # self-contained: every image is inline PNG data, nothing is fetched from anywhere
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 4
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert "//" not in text and "<script" not in text and "url(" not in text
    assert re.findall(r'src="([^"]{0,22})', page) == ["data:image/png;base64,"] * 4

    with open(tmp_path / "report" / "equity.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 600
    for row in rows:  # the markets' shares add up to the account's exposure
        assert sum(float(row[f"share {s}"]) for s in MARKETS) == pytest.approx(float(row["exposure"]), abs=1e-6)
    assert all(float(row["share BBB/USDT"]) == 0 for row in rows[:100])  # nothing held before BBB is listed
    # the contributions add up to the account's PnL
    final = result.run.equity[-1]
    assert sum(m["pnl"] for m in result.result.markets.values()) == pytest.approx(final - 10_000, abs=1e-6)


@pytest.mark.slow
def test_status_after_a_real_basket_run_shows_the_market_the_open_positions_limit_kept_out(tmp_path):
    (tmp_path / "trader.toml").write_text("[plugins.buy_and_hold.risk]\nmax_open_positions = 2\n", encoding="utf-8")
    for seed, symbol in enumerate(MARKETS, 1):
        made = run_trader("data", "synth", "--symbol", symbol, "--bars", "200", "--seed", str(seed), home=tmp_path)
        assert made.returncode == 0, made.stderr
    basket = [arg for symbol in MARKETS for arg in ("--symbol", symbol)]
    run = run_trader("run", "--plugin", NAME, *basket, "--isolation", "inline", "--max-candles", "100", "--quiet",
                     home=tmp_path)
    assert run.returncode == 0, run.stderr

    [summary] = json.loads(status(tmp_path, "--json").stdout)
    markets = {m["symbol"]: m for m in summary["markets"]}
    assert [markets[s]["fills"] for s in MARKETS] == [1, 1, 0]  # 1/3 each, but a third market may not open
    assert markets["CCC/USDT"]["denied_orders"] == 100 and markets["CCC/USDT"]["quantity"] == 0
    assert all(m["last_candle"] == "2024-01-05 03:00 UTC" for m in summary["markets"])
    assert summary["limits"]["max_open_positions"] == {"value": 2, "limit": 2, "code": "MAX_OPEN_POSITIONS", "state": "at"}
    assert summary["denials"]["counts"] == {"MAX_OPEN_POSITIONS": 100}
    assert {d["symbol"] for d in summary["denials"]["recent"]} == {"CCC/USDT"}
    total = summary["account"]["cash"] + sum(m["value"] for m in summary["markets"])
    assert total == pytest.approx(summary["account"]["equity"])

    out = status(tmp_path).stdout
    assert "markets (3, one account):" in out and "max_open_positions 2  AT THE LIMIT (MAX_OPEN_POSITIONS)" in out
    assert "denied orders: MAX_OPEN_POSITIONS x100" in out
    assert "2024-01-05 03:00 UTC CCC/USDT buy MAX_OPEN_POSITIONS: 2 markets already hold a position" in out


def test_the_breaker_s_drawdown_counts_from_the_peak_marked_before_a_step_s_orders(tmp_path):
    """docs/portfolios.md: the drawdown beside ``max_drawdown`` can exceed the account's maximum drawdown by a
    step's costs, because the breaker's peak is marked at the close before that step's orders."""
    session = _session(tmp_path, fee_bps=100)  # 1 % fees
    session.step(T0, {"AAA/USDT": 100.0, "BBB/USDT": 10.0}, {"AAA/USDT": buy(0.4), "BBB/USDT": buy(0.4)})
    session.step(T0 + HOUR, {"AAA/USDT": 100.0, "BBB/USDT": 10.0}, {})
    session.store.close()
    [summary] = json.loads(status(tmp_path, "--json").stdout)
    equity = summary["account"]["equity"]
    assert summary["account"]["peak_equity"] == 10_000.0 and equity < 10_000.0  # the fees of the first step's buys
    assert summary["account"]["max_drawdown"] == 0.0  # the equity after each step's orders never fell
    assert summary["portfolio"]["drawdown"] == pytest.approx(1 - equity / 10_000.0)  # the breaker's, from the peak

"""Costs include the spread: EDGE (and its cross-checks) from past candles only, the paper broker's
fills, and a bounce-harvesting strategy that is profitable before the spread and not after it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_trader
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.costs import (
    MIN_BARS,
    CostModel,
    SpreadTable,
    _edge_rows,
    _logs,
    abdi_ranaldo,
    corwin_schultz,
    edge,
    rolling_spread,
    spread_series,
)
from trader.data.synth import synthetic_candles
from trader.engine import PaperBroker
from trader.types import OrderRequest, Side

HERE = Path(__file__).parent

# The first ten rows of the EDGE authors' test data (github.com/eguidotti/bidask, pseudocode/ohlc.csv: a
# simulated market with a 1 % spread); their test expects the signed estimate -0.016889917516422.
AUTHORS_ROWS = np.array([
    [1.00240075994025, 1.00935878365403, 0.976061138469904, 0.976061138469904],
    [0.929743096395543, 0.929774737723069, 0.928919694164385, 0.929774737723069],
    [0.943911414384193, 0.968140794511406, 0.943911414384193, 0.968140794511406],
    [0.977605378856722, 0.977605378856722, 0.977605378856722, 0.977605378856722],
    [0.961535370407048, 0.99982474278851, 0.961535370407048, 0.986215329667607],
    [0.982409003083975, 0.992213437101346, 0.982409003083975, 0.992213437101346],
    [1.03435413274433, 1.03435413274433, 1.03435413274433, 1.03435413274433],
    [1.0201424300403, 1.04025465277235, 1.0201424300403, 1.03219266262805],
    [1.03650094499406, 1.03650094499406, 1.03650094499406, 1.03650094499406],
    [1.05368509087896, 1.05368509087896, 1.02605242183949, 1.02798086837104],
])


def test_edge_matches_the_authors_example():
    assert edge(*AUTHORS_ROWS.T, signed=True) == pytest.approx(-0.016889917516422, rel=1e-12)
    assert edge(*AUTHORS_ROWS.T) == 0.0  # negative estimates are 0 unless asked for the sign
    flat = [17.61, 17.61, 17.61]
    assert np.isnan(edge([18.21, 17.61, 17.61], [18.21, 17.61, 17.61], flat, flat))  # prices that never move


@pytest.mark.parametrize("bounce", [10.0, 50.0, 100.0])
def test_the_estimators_recover_a_planted_spread(bounce):
    candles = synthetic_candles(bars=20_000, seed=3, bounce_bps=bounce)
    ohlc = [candles[k] for k in ("open", "high", "low", "close")]
    assert edge(*ohlc) * 1e4 == pytest.approx(bounce, rel=0.05)
    assert abdi_ranaldo(*ohlc) * 1e4 == pytest.approx(bounce, abs=max(3.0, 0.1 * bounce))  # noisier at 1h
    assert corwin_schultz(*ohlc) * 1e4 == pytest.approx(bounce, abs=10.0)  # biased up by the volatility
    assert np.nanmedian(spread_series(candles)) == pytest.approx(bounce, rel=0.05)


def test_no_spread_is_estimated_where_none_was_planted():
    assert np.nanmax(spread_series(synthetic_candles(bars=3000, seed=4))) == 0.0


def test_the_rolling_series_is_the_estimator_on_each_past_window():
    candles = synthetic_candles(bars=1500, seed=5, bounce_bps=30)
    window = 200
    series = rolling_spread(candles, window)
    logs = _logs(*(candles[k] for k in ("open", "high", "low", "close")))
    assert np.isnan(series[:MIN_BARS]).all()
    for end in (MIN_BARS, 77, 199, 200, 201, 1000, 1499):
        start = max(0, end - window)
        direct = max(_edge_rows(*(x[None, start:end] for x in logs))[0], 0.0)
        assert series[end] == pytest.approx(direct, rel=1e-9, abs=1e-12)
    assert (series[MIN_BARS:] >= 0).all()


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(min_value=1, max_value=599), seed=st.integers(0, 10_000), scale=st.floats(0.5, 2.0))
def test_changing_future_candles_never_changes_a_past_estimate(cut, seed, scale):
    candles = synthetic_candles(bars=600, seed=1, bounce_bps=40)
    before = spread_series(candles, window=100)
    changed = candles.copy()
    rng = np.random.default_rng(seed)
    tail = rng.uniform(0.9, 1.1, size=len(candles) - cut) * scale
    for key in ("open", "high", "low", "close"):
        changed.loc[cut:, key] = changed.loc[cut:, key].to_numpy() * tail
    after = spread_series(changed, window=100)
    assert np.array_equal(before[: cut + 1], after[: cut + 1], equal_nan=True)  # row `cut` sees rows before it only
    assert np.array_equal(spread_series(candles.iloc[: cut + 1], window=100), before[: cut + 1], equal_nan=True)


def _order(side: Side, ts: int, price: float = 100.0) -> OrderRequest:
    return OrderRequest(strategy="s", symbol="SYN/USDT", side=side, quantity=10.0, price=price,
                        client_order_id=f"c{ts}{side.value}", timestamp=ts)


def test_paper_fills_pay_half_the_spread_plus_slippage_plus_fees():
    broker = PaperBroker(fee_bps=10, slippage_bps=2, lot_size=1e-8, min_notional=1)
    fixed = broker.with_spreads(SpreadTable(CostModel(10, 2, 40.0)))
    buy = fixed.execute(_order(Side.BUY, 1), cash=1e9, now=2).fills[0]
    sell = fixed.execute(_order(Side.SELL, 1), cash=1e9, now=2).fills[0]
    assert buy.price == pytest.approx(100 * (1 + 22 / 1e4)) and sell.price == pytest.approx(100 * (1 - 22 / 1e4))
    assert buy.fee == pytest.approx(10 * buy.price * 10 / 1e4)
    assert broker.execute(_order(Side.BUY, 1), cash=1e9, now=2).fills[0].price == pytest.approx(100.02)  # no spread
    doubled = fixed.with_spreads(fixed.spreads.scaled(2.0)).execute(_order(Side.BUY, 1), cash=1e9, now=2).fills[0]
    assert doubled.price == pytest.approx(100 * (1 + 42 / 1e4))


def test_the_paper_broker_charges_each_candle_its_estimate():
    candles = synthetic_candles(bars=800, seed=6, bounce_bps=60)
    expected = spread_series(candles)
    table = SpreadTable(CostModel(0, 0))
    table.watch(candles.iloc[:700])
    for row in range(700, 800):  # a live feed: one candle at a time
        c = candles.iloc[row]
        if row % 7 == 0:  # priced before the candle is learnt: from the candles before it
            assert table.bps(int(c.timestamp)) == pytest.approx(expected[row], rel=1e-9)
        table.watch_candle(int(c.timestamp), c.open, c.high, c.low, c.close)
    ts = candles["timestamp"].to_numpy()
    assert table.bps(int(ts[650])) == expected[650]  # the replay's frame: exactly the backtest's numbers
    assert table.bps(int(ts[5])) == 0.0  # too few candles before it: no spread


# ---------------------------------------------------------------------------- the CLI on a bounce market

ENTRY_POINTS = "[trader.plugins]\nfake_bounce = costs_fakes:BOUNCE\n"


@pytest.fixture(scope="module")
def bounce_home(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A home holding a synthetic 1h market with a 100 bps bid-ask bounce, and the bounce strategy installed."""
    root = tmp_path_factory.mktemp("costs")
    dist = root / "site" / "trader_costs_fakes-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: trader-costs-fakes\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    env = {"PYTHONPATH": f"{root / 'site'}:{HERE}"}
    home = root / "home"
    home.mkdir()
    made = run_trader("data", "synth", "--bounce-bps", "100", "--bars", "1500", "--seed", "2", home=home, env=env)
    assert made.returncode == 0, made.stderr
    return home, env


def _backtest(home: Path, env: dict[str, str], *args: str) -> dict:
    proc = run_trader("backtest", "--plugin", "fake_bounce", "--symbol", "SYN/USDT", "--bootstrap", "100", "--json",
                      *args, home=home, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_bounce_harvesting_pays_before_the_spread_and_not_after(bounce_home):
    home, env = bounce_home
    free = _backtest(home, env, "--fee-bps", "0", "--slippage-bps", "0", "--spread-bps", "0")
    assert free["metrics"]["total_return"] > 1.0  # more than doubles: the bounce is free money at the close
    assert free["settings"]["spread_source"] == "fixed by --spread-bps"
    costed = _backtest(home, env, "--fee-bps", "0", "--slippage-bps", "0")
    settings = costed["settings"]
    assert settings["spread_bps"] is None and settings["spread_source"].startswith("estimated per candle: EDGE")
    assert settings["spread_bps_median"] == pytest.approx(100, rel=0.1)
    for name in ("corwin_schultz", "abdi_ranaldo"):
        assert settings["spread_cross_checks_bps_median"][name] == pytest.approx(100, rel=0.2)
    assert costed["fills"] > 500  # the same rule, trading as often ...
    assert costed["metrics"]["total_return"] < 0  # ... loses money once its fills cross the spread


@pytest.mark.slow
def test_every_report_prints_the_costs_it_assumed(bounce_home, tmp_path):
    home, env = bounce_home
    report = tmp_path / "report"
    proc = run_trader("backtest", "--plugin", "fake_bounce", "--symbol", "SYN/USDT", "--bootstrap", "100",
                      "--report", str(report), home=home, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("costs:"))
    assert "fees 10 bps, slippage 2 bps, spread " in line and "bps median, estimated per candle: EDGE" in line
    assert "Corwin-Schultz" in line and "Abdi-Ranaldo" in line and "a fill pays half the spread" in line
    html = (report / "report.html").read_text()
    assert "spread_bps_median" in html and "EDGE over the 500 candles before it" in html
    saved = json.loads((report / "results.json").read_text())["settings"]
    assert saved["spread_bps_median"] == pytest.approx(100, rel=0.1)

    (home / "trader.toml").write_text("[broker]\nspread_bps = 25\n")
    try:
        fixed = _backtest(home, env)
        assert fixed["settings"]["spread_bps"] == 25 and fixed["settings"]["spread_source"] == "fixed by [broker] spread_bps"
        flag = _backtest(home, env, "--spread-bps", "5")  # the flag wins over the table
        assert flag["settings"]["spread_bps_median"] == 5
        (home / "trader.toml").write_text('[broker]\nspread_bps = "wide"\n')
        bad = run_trader("backtest", "--plugin", "fake_bounce", "--symbol", "SYN/USDT", home=home, env=env)
        assert bad.returncode != 0 and "spread_bps" in bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
    finally:
        (home / "trader.toml").unlink()

    run = run_trader("run", "--plugin", "fake_bounce", "--symbol", "SYN/USDT", "--max-candles", "5", "--quiet",
                     home=home, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "costs: fees 10 bps, slippage 2 bps, spread " in run.stderr and "EDGE" in run.stderr
    fixed_run = run_trader("run", "--plugin", "fake_bounce", "--symbol", "SYN/USDT", "--max-candles", "5", "--quiet",
                           "--spread-bps", "7", home=home, env=env)
    assert fixed_run.returncode == 0, fixed_run.stderr[-2000:]
    assert "spread 7 bps, fixed by --spread-bps" in fixed_run.stderr

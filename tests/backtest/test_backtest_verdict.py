"""The verdict: skill against buy-and-hold, against random timing and against costs; the plausibility guard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_trader
from hypothesis import given, settings
from hypothesis import strategies as st
from verdict_fakes import bounce_market, bull_market, plugin_env, write_csv

from trader.backtest.verdict import (
    ALPHA,
    _retimed_log_total,
    beats_buy_and_hold,
    beats_random_timing,
    format_p,
    judge,
    p_floor,
    random_timings,
    robust_to_costs,
    trade_runs,
)

LOOSE = """
[plugins.{name}.risk]
max_position_fraction = 1.0
max_drawdown = 1.0
daily_loss_limit = 1.0
max_consecutive_losses = 1000000
"""


def test_p_values_at_their_floor_print_as_bounds():
    assert p_floor(200) == pytest.approx(1 / 201)
    assert format_p(1 / 201, 1 / 201) == "< 0.005"
    assert format_p(1 / 1001, p_floor(1000)) == "< 0.001"
    assert format_p(1 / 501, p_floor(500)) == "< 0.002"
    assert format_p(0.0412, p_floor(1000)) == "0.041"
    assert format_p(0.006, p_floor(200)) == "0.006"  # above the floor: a value, not a bound
    assert format_p(None) == format_p(float("nan")) == "n/a"


@st.composite
def _positions(draw):
    n = draw(st.integers(5, 300))
    held = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    sizes = np.array(draw(st.lists(st.floats(0.1, 2.0), min_size=n, max_size=n)))
    return np.where(held, sizes, 0.0)


@given(_positions(), st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_random_timing_keeps_the_trades_their_holding_times_and_the_long_flat_mix(exposure, seed):
    starts, lengths = trade_runs(exposure)
    if starts.size == 0:
        return
    n = exposure.size
    profiles = sorted(tuple(exposure[s : s + ln]) for s, ln in zip(starts, lengths, strict=True))
    for src, new_starts, _order in random_timings(n, starts, lengths, 5, seed):
        moved = np.where(src >= 0, exposure[np.where(src >= 0, src, 0)], 0.0)
        s2, l2 = trade_runs(moved)
        assert s2.size == starts.size  # the same number of trades, none merged
        assert sorted(l2) == sorted(lengths) and (moved > 0).sum() == (exposure > 0).sum()  # holding times, mix
        assert sorted(tuple(moved[s : s + ln]) for s, ln in zip(s2, l2, strict=True)) == profiles  # sizes travel along
        assert np.array_equal(np.sort(new_starts), s2)


def test_random_timing_draws_the_entry_times_uniformly():
    exposure = np.zeros(40)
    exposure[5:9] = 1.0  # one 4-bar trade: 37 possible entries
    starts, lengths = trade_runs(exposure)
    entries = np.array([ns[0] for _, ns, _ in random_timings(40, starts, lengths, 7400, seed=3)])
    counts = np.bincount(entries, minlength=37)
    assert counts.size == 37 and counts.min() > 120 and counts.max() < 280  # about 200 each


def test_the_strategys_own_timing_reproduces_its_returns():
    rng = np.random.default_rng(1)
    market = rng.normal(0, 0.01, 500)
    exposure = np.repeat(rng.random(50) < 0.5, 10) * rng.uniform(0.5, 1.0)
    costs = np.abs(np.diff(np.concatenate(([0.0], exposure)))) * 0.002  # paid where the position changes
    returns = np.concatenate(([0.0], exposure[:-1])) * market - costs
    starts, lengths = trade_runs(exposure)
    ends = starts + lengths
    exit_costs = np.where(ends < 500, costs[np.minimum(ends, 499)], 0.0)
    order = np.arange(starts.size)
    src = np.full(500, -1)
    for s, ln in zip(starts, lengths, strict=True):
        src[s : s + ln] = np.arange(s, s + ln)
    total = _retimed_log_total(src, starts, order, exposure, market, costs, exit_costs, lengths)
    assert total == pytest.approx(np.log1p(returns).sum(), abs=1e-12)


def _bull(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0006, 0.01, n)  # a planted bull market: per-bar Sharpe 0.06


def test_leveraged_buy_and_hold_in_a_bull_market_is_not_skilful():
    market = _bull()
    hold = market.copy()
    hold[0] = 0.0
    leverage = np.full(market.size, 2.0)  # twice buy-and-hold's position, all the time
    returns = np.concatenate(([0.0], leverage[:-1])) * market
    verdict = judge(returns, leverage, market, hold, returns * 1.0, n_resamples=500)
    timing = verdict.question("beats_random_timing")
    assert verdict.question("beats_buy_and_hold").holds  # it made more money than holding ...
    assert timing.holds is False and timing.p_value == 1.0  # ... by exposure alone: every re-timing does the same
    assert not verdict.skilful
    assert "NO EVIDENCE OF SKILL" in verdict.line and "exposure, not timing" in verdict.line


def test_mostly_long_at_random_times_in_a_bull_market_is_not_skilful_although_its_sharpe_is_positive():
    from trader.backtest.bootstrap import significance

    market = _bull(seed=2)
    rng = np.random.default_rng(5)
    exposure = np.repeat(rng.random(market.size // 40) < 0.85, 40).astype(float)
    returns = np.concatenate(([0.0], exposure[:-1])) * market
    assert significance(returns, 8760, n_resamples=500).beats_chance  # what the old verdict called skill
    verdict = judge(returns, exposure, market, market, n_resamples=500)
    assert not verdict.question("beats_random_timing").holds and not verdict.skilful


def test_planted_skill_is_skilful():
    rng = np.random.default_rng(3)
    market = rng.normal(0.0, 0.01, 6000)
    hint = market + rng.normal(0, 0.02, market.size)  # a noisy forecast of each next bar
    exposure = np.zeros(market.size)
    exposure[:-1] = hint[1:] > 0  # long before the bars the forecast calls up
    changes = np.abs(np.diff(np.concatenate(([0.0], exposure))))
    returns = np.concatenate(([0.0], exposure[:-1])) * market - 0.0004 * changes
    wide = returns - 0.0004 * changes
    verdict = judge(returns, exposure, market, market, wide, n_resamples=500)
    assert verdict.skilful, verdict.line
    assert verdict.line.startswith("verdict: SKILL: beats buy-and-hold: yes (p < 0.002)")


@pytest.mark.parametrize("seed", range(12))
def test_p_values_and_intervals_tell_the_same_story(seed):
    """One sidedness convention: a question holds (p < 0.025) exactly when its 95 % interval lies above zero."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0, 0.01, 800)
    strategy = market + rng.normal(0.0003 * (seed % 4), 0.004, 800)
    for q in (beats_buy_and_hold(strategy, market, n_resamples=400, seed=seed),
              robust_to_costs(strategy, strategy - 0.0002, n_resamples=400, seed=seed)):
        near = abs(q.p_value - ALPHA) <= 2 * q.p_floor  # the interval's quantile and p may straddle by a resample
        assert near or (q.holds == (q.low > 0)), q


def test_a_strategy_that_never_trades_has_nothing_to_time():
    market = _bull(300)
    q = beats_random_timing(np.zeros(300), np.zeros(300), market, n_resamples=100)
    assert q.holds is False and q.p_value == 1.0 and q.detail["why"] == "no trades"


# --------------------------------------------------------------------------- as users see it


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "trader.toml").write_text("".join(LOOSE.format(name=n) for n in ("buy_and_hold", "mostly_long", "reverter",
                                                                          "bounce_buyer")))
    return home


def _import(home: Path, tmp_path: Path, candles, symbol: str, timeframe: str) -> None:
    proc = run_trader("data", "import", str(write_csv(candles, tmp_path / "candles.csv")), "--symbol", symbol,
                      "--timeframe", timeframe, home=home)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_backtest_does_not_call_exposure_in_a_bull_market_skill(home, tmp_path):
    _import(home, tmp_path, bull_market(8000, 0.0002, seed=3), "BULL/USDT", "1h")
    proc = run_trader("backtest", "--plugin", "mostly_long", "--symbol", "BULL/USDT", "--timeframe", "1h",
                      "--bootstrap", "500", "--json", home=home, env=plugin_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["significance"]["beats_chance"]  # the Sharpe interval lies above zero ...
    questions = {q["name"]: q for q in data["verdict"]["questions"]}
    assert questions["beats_random_timing"]["holds"] is False  # ... but random re-timings do as well
    assert data["verdict"]["skilful"] is False and "NO EVIDENCE OF SKILL" in data["verdict"]["line"]
    text = run_trader("backtest", "--plugin", "mostly_long", "--symbol", "BULL/USDT", "--timeframe", "1h",
                      "--bootstrap", "500", home=home, env=plugin_env(tmp_path)).stdout
    assert data["verdict"]["line"] in text.splitlines()  # the terminal prints the JSON's verdict


@pytest.mark.slow
def test_backtest_calls_planted_skill_skill(home, tmp_path):
    from trader.data import synthetic_candles

    _import(home, tmp_path, synthetic_candles("REV/USDT", "1h", bars=15000, seed=4, planted_signal=0.08), "REV/USDT",
            "1h")
    proc = run_trader("backtest", "--plugin", "reverter", "--symbol", "REV/USDT", "--timeframe", "1h", "--bootstrap",
                      "500", "--fee-bps", "1", "--slippage-bps", "1", "--json", home=home, env=plugin_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["plausibility"]["warning"] is False, data["plausibility"]
    assert data["verdict"]["skilful"] is True, data["verdict"]["line"]
    assert [q["holds"] for q in data["verdict"]["questions"]] == [True, True, True]
    assert data["wide_spread"]["spread_multiplier"] == 2.0


@pytest.mark.slow
def test_the_bounce_pays_only_without_the_spread_and_its_sharpe_triggers_the_guard(home, tmp_path):
    _import(home, tmp_path, bounce_market(3000, 30, seed=5), "BNC/USDT", "5m")
    env = plugin_env(tmp_path)
    base = ("backtest", "--plugin", "bounce_buyer", "--symbol", "BNC/USDT", "--timeframe", "5m", "--bootstrap", "300",
            "--fee-bps", "0", "--slippage-bps", "0")
    free = run_trader(*base, "--spread-bps", "0", "--json", home=home, env=env)
    assert free.returncode == 0, free.stderr
    data = json.loads(free.stdout)
    assert data["metrics"]["sharpe"] > 4 and data["metrics"]["total_return"] > 0.3
    guard = data["plausibility"]
    assert guard["warning"] is True and any("Sharpe" in r for r in guard["reasons"])
    assert "bid-ask bounce" in guard["line"] and "look-ahead" in guard["line"] and "too little data" in guard["line"]
    assert "trader check --plugin bounce_buyer --symbol BNC/USDT --timeframe 5m" in guard["line"]
    assert data["verdict"]["skilful"] is False and "NOT TRUSTWORTHY" in data["verdict"]["line"]
    assert data["annualised_caveat"] and "10.4 days" in data["annualised_caveat"]
    text = run_trader(*base, "--spread-bps", "0", home=home, env=env).stdout
    assert "WARNING: implausible result" in text and "Sharpe" in text
    assert "Annualised return" in text and "*" in next(line for line in text.splitlines()
                                                      if line.startswith("Annualised return"))
    paid = json.loads(run_trader(*base, "--json", home=home, env=env).stdout)  # the spread estimated from the candles
    assert paid["metrics"]["total_return"] < 0.02
    assert paid["verdict"]["skilful"] is False
    assert {q["name"]: q["holds"] for q in paid["verdict"]["questions"]}["robust_to_costs"] is False

"""The float-only basket backtest (``trader.portfolio.fastbasket``) gives exactly what one step at a time gives.

Random baskets of one to four markets (listed late, gaps of hours and days, delisted before
the end, or every market on one clock; crashes that trip the drawdown and daily-loss breakers),
random signal streams per market (none, HOLD, BUY and SELL of random sizes, strategy failures,
forged signals), random limits, tight ones included (position fraction and notional, order
notional, gross exposure, one or two open positions, breakers, consecutive losses), fees,
slippage, spreads, lots and minimum notionals: :func:`run_floats` gives the same equity curve,
cash and position values, market rows, streams, orders, fills (client id, market, side,
quantity, price, fee), risk events (denials and status changes included) and final account as
``PortfolioSession.run(..., fast=False)``, the per-step reference. Exactly, float for float:
the float path sums the same float64 products in the same order as the step (the book's
positions in the order of their first fills), so no tolerance is needed.
"""

from __future__ import annotations

import logging
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from basket_draws import HOUR, MANAGER, SYMBOLS, T0, baskets, brokers, outcome, session
from basket_draws import limits as limits_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.backtest.runner import BacktestSettings
from trader.engine import PaperBroker
from trader.portfolio import fastbasket
from trader.portfolio.align import align
from trader.portfolio.backtest import basket_broker, simulate_basket
from trader.portfolio.broker import BasketPaperBroker
from trader.portfolio.fastbasket import run_floats
from trader.types import RiskLimits, RiskVerdict, Signal, SignalAction, TradingStatus

_KINDS = ["none", "hold", "hold", "buy", "buy", "buy", "buy", "buy", "sell", "sell", "invalid", "crash", "forged"]


def _picky_rule(order, portfolio, limits, context):
    """A plugin rule: denies orders above 2,000."""
    if order.quantity * order.price > 2_000:
        return [RiskVerdict.deny("picky", "TOO_BIG", "above 2,000", TradingStatus.REDUCING)]
    return []


def _session(basket, limits, make_broker, band, rule=False):
    return session(basket, limits, make_broker, band, [("picky", _picky_rule)] if rule else ())


_outcome = outcome


@pytest.fixture(autouse=True)
def _risk_log_as_in_a_backtest():
    """Backtests silence the audit's per-order log (``quiet_engine_logs``), which the float path needs; an
    earlier test in the same process may have left ``trader.risk`` at INFO."""
    risk = logging.getLogger("trader.risk")
    before = risk.level
    risk.setLevel(logging.WARNING)
    yield
    risk.setLevel(before)




@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(drawn=baskets(_KINDS, 200, delisted=True), limits=limits_of([1.0, 0.6, 0.3]), make_broker=brokers(), band=st.sampled_from([0.0, 0.1, 0.5]),
       chunk=st.sampled_from([4096, 1, 3, 16]))
def test_the_float_path_equals_one_step_at_a_time(drawn, limits, make_broker, band, chunk):
    """Committed a chunk of steps at a time, however small, or all at once."""
    basket, signals = drawn
    reference = _session(basket, limits, make_broker, band)
    assert reference.run(basket.timestamps, basket.closes, signals, fast=False) == len(basket)
    floats = _session(basket, limits, make_broker, band)
    with mock.patch.object(fastbasket, "_CHUNK", chunk):
        assert run_floats(floats, basket.timestamps, basket.closes, signals) == len(basket)
    assert _outcome(floats) == _outcome(reference)


def _trending_basket(n: int = 600, seed: int = 11):
    rng = np.random.default_rng(seed)
    frames = {}
    for j, symbol in enumerate(SYMBOLS):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.02, n - 7 * j)))
        frames[symbol] = pd.DataFrame({"timestamp": T0 + HOUR * np.arange(7 * j, n), "open": close, "high": close,
                                       "low": close, "close": close, "volume": 1.0})
    basket = align(frames, "1h")
    # buy while the last 5 closes rose, sell otherwise: many orders, both sides
    signals = []
    for i in range(len(basket)):
        row = {}
        for j, symbol in enumerate(basket.symbols):
            c = basket.closes[max(0, i - 5) : i + 1, j]
            if np.isnan(c[-1]) or np.isnan(c[0]):
                continue
            row[symbol] = Signal(SignalAction.BUY, size=0.9) if c[-1] > c[0] else Signal(SignalAction.SELL)
        signals.append(row)
    return basket, signals


@pytest.mark.parametrize(("gross", "denial"), [(1.0, "MAX_OPEN_POSITIONS"), (0.5, "GROSS_EXPOSURE_EXCEEDED")])
def test_tight_limits_deny_and_trip_both_breakers_as_the_reference_does(gross, denial):
    """Tight portfolio limits and breakers on a trending basket: denials, daily-loss REDUCING and its reset
    and a drawdown HALT happen on the float path exactly as on the reference."""
    basket, signals = _trending_basket()
    limits = RiskLimits(max_position_fraction=0.3, max_open_positions=2, max_gross_exposure=gross, max_drawdown=0.12,
                        daily_loss_limit=0.03, max_consecutive_losses=1000)

    def make(symbols):
        return BasketPaperBroker({s: PaperBroker(fee_bps=10.0, min_notional=5.0) for s in symbols})

    reference = _session(basket, limits, make, 0.1)
    reference.run(basket.timestamps, basket.closes, signals, fast=False)
    floats = _session(basket, limits, make, 0.1)
    assert run_floats(floats, basket.timestamps, basket.closes, signals) == len(basket)
    assert _outcome(floats) == _outcome(reference)
    codes = {e["code"] for e in floats.store.risk_events()}
    assert {"APPROVED", denial, "DAILY_LOSS_LIMIT", "DAILY_RESET", "MAX_DRAWDOWN"} <= codes
    assert floats.status is TradingStatus.HALTED


def test_a_plugin_risk_rule_takes_the_full_path():
    """With a plugin's risk rule the float path declines (the audit runs with its value objects on every order),
    and a basket backtest still gives the per-step reference's denials."""
    basket, signals = _trending_basket(300)
    limits = RiskLimits(max_position_fraction=0.5, max_drawdown=1.0, daily_loss_limit=1.0)

    def make(symbols):
        return BasketPaperBroker({s: PaperBroker(fee_bps=10.0) for s in symbols})

    picky = _session(basket, limits, make, 0.1, rule=True)
    assert run_floats(picky, basket.timestamps, basket.closes, signals) is None
    assert picky.store.equities == [] and picky.last_timestamp is None  # nothing was done
    assert run_floats(_session(basket, limits, make, 0.1), basket.timestamps, basket.closes, signals) == len(basket)


def test_an_audit_log_at_info_takes_the_step_path():
    """With the audit's decisions logged (``trader.risk`` at INFO) the float path declines: the step logs them."""
    basket, signals = _trending_basket(100)
    limits = RiskLimits(max_position_fraction=0.5, max_drawdown=1.0, daily_loss_limit=1.0)

    def make(symbols):
        return BasketPaperBroker({s: PaperBroker(fee_bps=10.0) for s in symbols})

    logging.getLogger("trader.risk").setLevel(logging.INFO)  # the autouse fixture restores it
    logged = _session(basket, limits, make, 0.1)
    assert run_floats(logged, basket.timestamps, basket.closes, signals) is None
    assert logged.store.equities == [] and logged.last_timestamp is None


def test_simulate_basket_takes_the_float_path_and_matches_the_reference(monkeypatch):
    """``simulate_basket`` runs the float path where it applies and gives the reference's run."""
    basket, signals = _trending_basket(400, seed=5)
    limits = RiskLimits(max_position_fraction=0.4, max_drawdown=1.0, daily_loss_limit=1.0)
    first, last = 0, len(basket) - 1
    taken = []
    original = fastbasket.run_floats
    monkeypatch.setattr(fastbasket, "run_floats", lambda *a: taken.append(original(*a)) or taken[-1])

    def simulate(fast):
        broker = basket_broker(None, BacktestSettings(), basket, first, last)
        return simulate_basket(MANAGER, "bench", limits, basket, signals, first, last, broker=broker, cash=10_000.0,
                               rebalance_band=0.1, fast=fast)

    fast, reference = simulate(True), simulate(False)
    assert taken == [len(basket)]
    assert fast.run.fills == reference.run.fills and len(fast.run.fills) > 10
    assert fast.run.equity.tolist() == reference.run.equity.tolist()
    assert fast.run.events == reference.run.events
    assert fast.markets == reference.markets
    assert [(o.order, o.status) for o in fast.orders] == [(o.order, o.status) for o in reference.orders]
    assert {s: v.tolist() for s, v in fast.market_shares().items()} == \
        {s: v.tolist() for s, v in reference.market_shares().items()}

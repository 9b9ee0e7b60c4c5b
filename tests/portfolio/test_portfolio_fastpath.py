"""A basket backtest's fast path (``trader.portfolio.quiet``) gives exactly what one step at a time gives.

Random baskets of one to four markets (late listings, gaps of hours and days, or every market
on one clock; crashes that trip the drawdown and daily-loss breakers), random signal streams per market (none, HOLD,
BUY and SELL of random sizes, strategy failures, forged signals, signals for markets without
a candle), random limits (position fraction, gross exposure, open positions, breakers),
fees, slippage, spreads, lots and minimum notionals, with and without a plugin risk rule
that denies orders and asks for a stricter status: ``PortfolioSession.run(..., fast=True)``
gives the same equity curve, market rows, streams, orders, fills, risk events and final
account, float for float, as ``fast=False`` (the per-step reference).
"""

from __future__ import annotations

import numpy as np
from basket_draws import HOUR, SYMBOLS, T0, baskets, brokers, outcome, session
from basket_draws import limits as limits_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.engine import PaperBroker
from trader.portfolio.align import align
from trader.portfolio.broker import BasketPaperBroker
from trader.portfolio.signals import BasketAnswers
from trader.types import RiskLimits, RiskVerdict, Signal, SignalAction, TradingStatus

_KINDS = ["none", "hold", "hold", "buy", "buy", "buy", "buy", "sell", "sell", "invalid", "crash", "forged"]


def _picky_rule(order, portfolio, limits, context):
    """A plugin rule: denies orders above 2,000 and asks for REDUCING after the third loss in a row."""
    out = []
    if order.quantity * order.price > 2_000:
        out.append(RiskVerdict.deny("picky", "TOO_BIG", "above 2,000"))
    if context.consecutive_losses >= 3:
        out.append(RiskVerdict.deny("picky", "LOSING", "three losses", TradingStatus.REDUCING))
    return out


def _session(basket, limits, make_broker, band, rule):
    return session(basket, limits, make_broker, band, [("picky", _picky_rule)] if rule else ())


_outcome = outcome


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(drawn=baskets(_KINDS, 160), limits=limits_of([1.0, 0.6]), make_broker=brokers(), band=st.sampled_from([0.0, 0.1, 0.5]),
       rule=st.booleans())
def test_fast_path_equals_one_step_at_a_time(drawn, limits, make_broker, band, rule):
    basket, signals = drawn
    reference = _session(basket, limits, make_broker, band, rule)
    assert reference.run(basket.timestamps, basket.closes, signals, fast=False) == len(basket)
    fast = _session(basket, limits, make_broker, band, rule)
    assert fast.run(basket.timestamps, basket.closes, signals) == len(basket)
    assert _outcome(fast) == _outcome(reference)
    # the same signals kept per market (what basket_signals hands a backtest): the same outcome
    columnar = BasketAnswers(basket.symbols, len(basket))
    for k, step in enumerate(signals):
        for symbol, signal in step.items():
            columnar.columns[basket.symbols.index(symbol)][k] = signal
    assert [columnar[k] for k in range(len(basket))] == signals
    by_column = _session(basket, limits, make_broker, band, rule)
    assert by_column.run(basket.timestamps, basket.closes, columnar) == len(basket)
    assert _outcome(by_column) == _outcome(reference)


def test_a_quiet_basket_is_taken_in_bulk_and_matches_the_reference():
    """Buy once, then hold for a long stretch: the fast path commits the stretch without stepping."""
    import pandas as pd

    n = 3_000
    rng = np.random.default_rng(7)
    frames = {}
    for j, symbol in enumerate(SYMBOLS):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        frames[symbol] = pd.DataFrame({"timestamp": T0 + HOUR * np.arange(j * 10, n), "open": close[j * 10:],
                                       "high": close[j * 10:], "low": close[j * 10:], "close": close[j * 10:],
                                       "volume": 1.0})
    basket = align(frames, "1h")
    buy = Signal(SignalAction.BUY, size=0.25)
    signals = [dict.fromkeys(basket.symbols, buy) for _ in range(len(basket))]
    limits = RiskLimits(max_position_fraction=1.0, max_drawdown=1.0, daily_loss_limit=1.0)

    def make(symbols):
        return BasketPaperBroker({s: PaperBroker(fee_bps=10.0, min_notional=5.0) for s in symbols})

    reference = _session(basket, limits, make, 0.1, False)
    reference.run(basket.timestamps, basket.closes, signals, fast=False)
    fast = _session(basket, limits, make, 0.1, False)
    steps = []
    original = fast.step
    fast.step = lambda *a, **k: steps.append(a[0]) or original(*a, **k)  # type: ignore[method-assign]
    fast.run(basket.timestamps, basket.closes, signals)
    assert _outcome(fast) == _outcome(reference)
    assert len(fast.store.fills()) >= 4
    assert len(steps) < len(basket) // 10  # most steps went in bulk


def test_portfolio_limits_deny_the_same_orders_on_the_fast_path():
    """Three markets that each want 30% of the account (one of them sells in turn, then all buy), at
    most two open positions and 70% gross exposure: the fast path's orders, denials and fills are the reference's."""
    import pandas as pd

    n = 400
    rng = np.random.default_rng(3)
    frames = {}
    for symbol in SYMBOLS[:3]:
        close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        frames[symbol] = pd.DataFrame({"timestamp": T0 + HOUR * np.arange(n), "open": close, "high": close,
                                       "low": close, "close": close, "volume": 1.0})
    basket = align(frames, "1h")
    buy, sell = Signal(SignalAction.BUY, size=1.0), Signal(SignalAction.SELL, size=1.0)
    signals = [{s: (sell if (i // 40) % 4 == j else buy) for j, s in enumerate(basket.symbols)} for i in range(n)]
    limits = RiskLimits(max_position_fraction=0.3, max_open_positions=2, max_gross_exposure=0.7, max_drawdown=1.0,
                        daily_loss_limit=1.0)

    def make(symbols):
        return BasketPaperBroker({s: PaperBroker(fee_bps=10.0, min_notional=5.0) for s in symbols})

    reference = _session(basket, limits, make, 0.1, False)
    reference.run(basket.timestamps, basket.closes, signals, fast=False)
    fast = _session(basket, limits, make, 0.1, False)
    fast.run(basket.timestamps, basket.closes, signals)
    assert _outcome(fast) == _outcome(reference)
    codes = {e["code"] for e in fast.store.risk_events() if e["kind"] == "audit"}
    assert {"APPROVED", "MAX_OPEN_POSITIONS"} <= codes


def test_markets_on_one_clock_align_as_their_union():
    """Markets sharing every candle time take align's shortcut: the same timeline, closes and rows as the union."""
    import pandas as pd

    rng = np.random.default_rng(5)
    ts = T0 + HOUR * np.arange(50)
    frames = {s: pd.DataFrame({"timestamp": ts, "open": 1.0, "high": 1.0, "low": 1.0, "close": rng.uniform(1, 2, 50),
                               "volume": 1.0}) for s in SYMBOLS[:3]}
    shared = align(frames, "1h")
    late = dict(frames, **{SYMBOLS[3]: frames[SYMBOLS[0]].iloc[10:]})  # one market listed late: the union
    union = align(late, "1h")
    assert shared.timestamps.tolist() == union.timestamps.tolist() == ts.tolist()
    assert np.array_equal(shared.closes, union.closes[:, :3]) and np.array_equal(shared.rows, union.rows[:, :3])
    assert union.rows[:10, 3].tolist() == [-1] * 10 and union.rows[10:, 3].tolist() == list(range(40))

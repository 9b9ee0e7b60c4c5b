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

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.costs import CostModel, SpreadTable
from trader.engine import MemoryState, PaperBroker, RiskAuditAgent
from trader.errors import PluginError
from trader.plugins import TraderPluginManager
from trader.portfolio.align import align
from trader.portfolio.broker import BasketPaperBroker
from trader.portfolio.session import PortfolioSession
from trader.portfolio.signals import BasketAnswers
from trader.types import RiskLimits, RiskVerdict, Signal, SignalAction, TradingStatus

HOUR = 3_600_000
T0 = 1_704_067_200_000 + 5 * HOUR  # not on a day boundary
MANAGER = TraderPluginManager(load_entrypoints=False, disabled=())
SYMBOLS = ("AAA/USDT", "BBB/USDT", "CCC/USDT", "DDD/USDT")
_sizes = st.sampled_from([1.0, 0.5, 0.25, 0.999]) | st.floats(0.0, 1.0)
_KINDS = ["none", "hold", "hold", "buy", "buy", "buy", "buy", "sell", "sell", "invalid", "crash", "forged"]


def _forged() -> Signal:
    signal = Signal(SignalAction.BUY)
    object.__setattr__(signal, "size", 7.0)  # changed after construction: INVALID_SIGNAL
    return signal


def _signal(kind: str, size: float):
    return {
        "none": lambda: None,
        "hold": Signal.hold,
        "buy": lambda: Signal(SignalAction.BUY, size=size),
        "sell": lambda: Signal(SignalAction.SELL, size=size),
        "invalid": lambda: ValueError("bad signal"),
        "crash": lambda: PluginError("plugin crashed"),
        "forged": _forged,
    }[kind]()


@st.composite
def baskets(draw):
    """Frames of 1-4 markets on an hourly clock with day gaps, and each step's signals."""
    n = draw(st.integers(2, 160))
    gaps = dict(draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from([2, 30, 500])), max_size=3)))
    clock, t = [], T0
    for i in range(n):
        t += gaps.get(i, 1) * HOUR
        clock.append(t)
    m = draw(st.integers(1, 4))
    one_clock = draw(st.booleans())  # every market has every candle (align's shared timeline)
    frames = {}
    import pandas as pd

    for symbol in SYMBOLS[:m]:
        first = 0 if one_clock else draw(st.integers(0, n - 1))  # listed late
        holes = set() if one_clock else set(draw(st.lists(st.integers(first, n - 1), max_size=n // 3)))
        rows = [i for i in range(first, n) if i not in holes] or [first]
        price = draw(st.floats(0.5, 50_000.0))
        crashes = set(draw(st.lists(st.sampled_from(rows), max_size=2)))
        closes = []
        for i in rows:
            price *= math.exp(draw(st.floats(-0.03, 0.03))) * (0.5 if i in crashes else 1.0)
            closes.append(price)
        ts = [clock[i] for i in rows]
        frames[symbol] = pd.DataFrame({"timestamp": ts, "open": closes, "high": closes, "low": closes, "close": closes,
                                       "volume": 1.0})
    basket = align(frames, "1h")
    streams = {}
    for symbol in SYMBOLS[:m]:
        stretches = draw(st.lists(st.tuples(st.sampled_from(_KINDS), _sizes, st.integers(1, 40)), min_size=1, max_size=8))
        shared = draw(st.booleans())
        out = []
        for kind, size, count in stretches:
            count = 1 if kind in ("invalid", "crash", "forged") else count
            one = _signal(kind, size)
            out.extend(one if shared else _signal(kind, size) for _ in range(count))
        streams[symbol] = (out * (len(basket) // len(out) + 1))[: len(basket)]
    signals = [{s: streams[s][i] for s in streams if streams[s][i] is not None} for i in range(len(basket))]
    return basket, signals


limits_strategy = st.builds(
    RiskLimits,
    max_position_fraction=st.sampled_from([1.0, 0.5, 0.3]),
    max_position_notional=st.sampled_from([50_000.0, 3_000.0, 1e15]),
    max_order_notional=st.sampled_from([10_000.0, 1_000.0, 1e15]),
    daily_loss_limit=st.sampled_from([0.02, 0.1, 1.0]),
    max_drawdown=st.sampled_from([0.1, 0.3, 1.0]),
    max_consecutive_losses=st.sampled_from([2, 5, 1000]),
    max_model_failures=st.sampled_from([2, 3, 100]),
    max_errors=st.sampled_from([1, 5]),
    max_gross_exposure=st.sampled_from([1.0, 0.6]),
    max_open_positions=st.sampled_from([20, 2, 1]),
)


@st.composite
def brokers(draw):
    fee, slippage = draw(st.sampled_from([0.0, 10.0, 75.0])), draw(st.sampled_from([0.0, 2.0, 30.0]))
    template = PaperBroker(fee_bps=fee, slippage_bps=slippage, lot_size=draw(st.sampled_from([0.0, 1e-8, 0.01])),
                           min_notional=draw(st.sampled_from([0.0, 5.0, 200.0])))
    spread = draw(st.sampled_from([0.0, 8.0, 60.0]))
    return lambda symbols: BasketPaperBroker(
        {s: template.with_spreads(SpreadTable(CostModel(fee, slippage, spread))) for s in symbols})


def _picky_rule(order, portfolio, limits, context):
    """A plugin rule: denies orders above 2,000 and asks for REDUCING after the third loss in a row."""
    out = []
    if order.quantity * order.price > 2_000:
        out.append(RiskVerdict.deny("picky", "TOO_BIG", "above 2,000"))
    if context.consecutive_losses >= 3:
        out.append(RiskVerdict.deny("picky", "LOSING", "three losses", TradingStatus.REDUCING))
    return out


def _session(basket, limits, make_broker, band, rule):
    extra = [("picky", _picky_rule)] if rule else []
    audit = RiskAuditAgent(MANAGER.subset_hook("trader_audit_order", []), "bench", limits, extra_rules=extra)
    return PortfolioSession("bench", basket.symbols, "1h", limits=limits, broker=make_broker(basket.symbols),
                            store=MemoryState("bench"), audit=audit, rebalance_band=band, latency_denies=False)


def _outcome(session: PortfolioSession) -> dict:
    store = session.store
    store.flush()
    return {
        "steps": (store.timestamps, store.closes, store.equities, store.cash_values, store.position_values),
        "markets": store.market_history(),
        "fills": store.fills(),
        "orders": [(o.order, o.status, o.filled_quantity, o.message) for o in store.orders()],
        "events": store.risk_events(),
        "summary": store.summary(),
        "session": session.summary(),
        "market_last": dict(session.market_last),
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(drawn=baskets(), limits=limits_strategy, make_broker=brokers(), band=st.sampled_from([0.0, 0.1, 0.5]),
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

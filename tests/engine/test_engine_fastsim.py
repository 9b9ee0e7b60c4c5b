"""The float-only simulation (``trader.engine.fastsim``) gives exactly what the per-candle step gives.

Random signal streams (warm-up ``None``, HOLD, BUY and SELL of random sizes, strategy
failures, forged signals), random prices with crashes that trip the drawdown and
daily-loss breakers, gaps of days, random limits, fees, slippage, spreads (fixed or
estimated per candle), lots and minimum notionals, with and without a plugin risk rule
that denies orders and asks for a stricter status: the equity curve, every fill and risk
event, the final status and account are identical, float for float, to
``TradingSession.run(..., fast=False)`` (the reference).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from trader.costs import CostModel, SpreadTable
from trader.engine import MemoryState, PaperBroker, RiskAuditAgent, TradingSession
from trader.engine.fastsim import simulate_floats
from trader.errors import PluginError
from trader.plugins import TraderPluginManager
from trader.types import RiskLimits, RiskVerdict, Signal, SignalAction, TradingStatus

HOUR = 3_600_000
T0 = 1_704_067_200_000 + 5 * HOUR  # not on a day boundary
MANAGER = TraderPluginManager(load_entrypoints=False, disabled=())
_sizes = st.sampled_from([1.0, 0.5, 0.25, 0.999]) | st.floats(0.0, 1.0)


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
def markets(draw):
    kinds = ["none", "hold", "hold", "buy", "buy", "buy", "sell", "sell", "invalid", "crash", "forged"]
    stretches = draw(st.lists(st.tuples(st.sampled_from(kinds), _sizes, st.integers(1, 60)), min_size=1, max_size=16))
    shared = draw(st.booleans())
    signals = []
    for kind, size, count in stretches:
        count = 1 if kind in ("invalid", "crash", "forged") else count
        one = _signal(kind, size)
        signals.extend(one if shared else _signal(kind, size) for _ in range(count))
    n = len(signals)
    returns = draw(st.lists(st.floats(-0.03, 0.03, allow_nan=False), min_size=n, max_size=n))
    crashes = draw(st.lists(st.integers(0, n - 1), max_size=3))
    gaps = dict(draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from([2, 30, 500])), max_size=4)))
    closes, ts = [], []
    price, t = draw(st.floats(0.5, 50_000.0)), T0
    for i, r in enumerate(returns):
        price *= math.exp(r) * (0.5 if i in crashes else 1.0)
        closes.append(price)
        t += gaps.get(i, 1) * HOUR
        ts.append(t)
    return ts, closes, signals


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
)


@st.composite
def brokers(draw, closes):
    broker = PaperBroker(
        fee_bps=draw(st.sampled_from([0.0, 10.0, 75.0])),
        slippage_bps=draw(st.sampled_from([0.0, 2.0, 30.0])),
        lot_size=draw(st.sampled_from([0.0, 1e-8, 0.01])),
        min_notional=draw(st.sampled_from([0.0, 5.0, 200.0])),
    )
    spread = draw(st.sampled_from([None, 0.0, 8.0, 60.0]))
    return broker, spread


def _with_spreads(broker: PaperBroker, spread: float | None, ts: list[int], closes: list[float]) -> PaperBroker:
    model = CostModel(broker.fee_bps, broker.slippage_bps, spread)
    if spread is not None:
        return broker.with_spreads(SpreadTable(model))
    close = np.asarray(closes)
    opens = np.concatenate(([close[0]], close[:-1]))
    wiggle = 1 + 0.004 * (1 + np.sin(np.arange(close.size)))
    frame = pd.DataFrame({"timestamp": ts, "open": opens, "high": np.maximum(opens, close) * wiggle,
                          "low": np.minimum(opens, close) / wiggle, "close": close})
    return broker.with_spreads(SpreadTable.of(model, frame))  # estimated per candle (EDGE)


def _picky_rule(order, portfolio, limits, context):
    """A plugin rule: denies orders above 2,000 and asks for REDUCING after the third loss in a row."""
    out = []
    if order.quantity * order.price > 2_000:
        out.append(RiskVerdict.deny("picky", "TOO_BIG", "above 2,000"))
    if context.consecutive_losses >= 3:
        out.append(RiskVerdict.deny("picky", "LOSING", "three losses", TradingStatus.REDUCING))
    return out


def _session(limits, broker, band, rule):
    extra = [("picky", _picky_rule)] if rule else []
    audit = RiskAuditAgent(MANAGER.subset_hook("trader_audit_order", []), "bench", limits, extra_rules=extra)
    return TradingSession("bench", "BTC/USDT", "1h", limits=limits, broker=broker, store=MemoryState("bench"),
                          audit=audit, rebalance_band=band)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(market=markets(), limits=limits_strategy, costs=brokers(None), band=st.sampled_from([0.0, 0.1, 0.5]),
       rule=st.booleans())
def test_float_simulation_equals_the_per_candle_step(market, limits, costs, band, rule):
    ts, closes, signals = market
    broker = _with_spreads(costs[0], costs[1], ts, closes)
    reference = _session(limits, broker, band, rule)
    reference.run(ts, closes, signals, fast=False)
    store = reference.store
    store.flush()
    run = simulate_floats(_session(limits, broker, band, rule), ts, closes, signals)
    assert run is not None
    assert run.timestamps.tolist() == store.timestamps
    assert run.closes.tolist() == store.closes
    assert run.equities.tolist() == store.equities
    assert run.cash.tolist() == store.cash_values
    assert run.position_values.tolist() == store.position_values
    assert run.fills == store.fills()
    assert run.events == store.risk_events()
    saved = store.load("BTC/USDT", "1h")
    position = saved.positions["BTC/USDT"]
    assert (run.status, run.status_reason, run.status_since) == (saved.status, saved.status_reason, saved.status_since)
    assert (run.quantity, run.avg_price, run.realized_pnl) == (position.quantity, position.avg_price, position.realized_pnl)
    assert (run.fees_paid, run.peak_equity, run.day, run.day_start_equity) == (
        saved.fees_paid, saved.peak_equity, saved.day, saved.day_start_equity)
    assert (run.consecutive_losses, run.model_failures) == (saved.consecutive_losses, saved.model_failures)
    event(f"fills: {'none' if not run.fills else 'some' if len(run.fills) < 4 else 'many'}")
    event(f"final status: {run.status.value}")
    event(f"denials: {any(e['approved'] is False for e in run.events)}")
    event(f"errors: {any(e['kind'] == 'error' for e in run.events)}")


def test_long_quiet_stretches_and_a_crash_halt_as_the_step_does():
    """Thousands of candles (stretches found with numpy), default limits: a crash trips the drawdown breaker."""
    n = 20_000
    rng = np.random.default_rng(3)
    closes = (100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))).tolist()
    closes[14_300:] = [c * 0.5 for c in closes[14_300:]]  # while holding
    ts = [T0 + i * HOUR for i in range(n)]
    buy, sell, hold = Signal(SignalAction.BUY), Signal(SignalAction.SELL), Signal.hold()
    signals = [None] * 30 + [buy if (i // 500) % 2 == 0 else (sell if i % 500 == 0 else hold) for i in range(n - 30)]
    reference = _session(RiskLimits(), PaperBroker(), 0.1, False)
    reference.run(ts, closes, signals, fast=False)
    run = simulate_floats(_session(RiskLimits(), PaperBroker(), 0.1, False), ts, closes, signals)
    assert run is not None and run.status is reference.status is TradingStatus.HALTED
    assert run.equities.tolist() == reference.store.equities
    assert run.fills == reference.store.fills() and len(run.fills) > 10
    assert run.events == reference.store.risk_events()


def test_inputs_it_does_not_take_are_left_to_the_step():
    """Duplicate or out-of-order candles, float timestamps, a session that already traded: ``None``."""
    signals = [Signal.hold()] * 3
    session = _session(RiskLimits(), PaperBroker(), 0.1, False)
    assert simulate_floats(session, [T0, T0, T0 + HOUR], [1.0, 1.0, 1.0], signals) is None
    assert simulate_floats(session, [T0 + 0.5, T0 + HOUR, T0 + 2 * HOUR], [1.0, 1.0, 1.0], signals) is None
    session.run([T0], [1.0], [None])
    assert simulate_floats(session, [T0 + HOUR], [1.0], [None]) is None


def test_a_buy_every_candle_is_passed_in_bulk_and_still_rebalances_as_the_step_does():
    """Buy-and-hold's stream (a BUY on every candle) with a position fraction below 1 and a band: the
    candles whose BUY the position already meets are passed in bulk, the rebalancing buys a falling
    price calls for still happen, on the same candles, as in the per-candle step."""
    n = 6_000
    rng = np.random.default_rng(8)
    closes = (100 * np.exp(np.cumsum(rng.normal(-0.0004, 0.004, n)))).tolist()
    ts = [T0 + i * HOUR for i in range(n)]
    buy = Signal(SignalAction.BUY)
    signals = [None] * 3 + [buy] * (n - 3)
    limits = RiskLimits(max_position_fraction=0.5, max_drawdown=1.0, daily_loss_limit=1.0)
    reference = _session(limits, PaperBroker(fee_bps=10.0), 0.02, False)
    reference.run(ts, closes, signals, fast=False)
    run = simulate_floats(_session(limits, PaperBroker(fee_bps=10.0), 0.02, False), ts, closes, signals)
    assert run is not None
    assert run.equities.tolist() == reference.store.equities
    assert run.fills == reference.store.fills() and len(run.fills) > 20  # rebalancing buys along the way
    assert run.events == reference.store.risk_events()


def test_distinct_objects_names_each_object_once_in_order_of_first_appearance():
    from trader.engine.fastsim import distinct_objects

    buy, hold = Signal(SignalAction.BUY), Signal.hold()
    twin = Signal(SignalAction.BUY)  # equal to ``buy``, but another object: looked at on its own
    items = [None, hold, buy, hold, None, twin, buy]
    slots, objects = distinct_objects(items)
    assert [id(o) for o in objects] == [id(None), id(hold), id(buy), id(twin)]
    assert all(items[i] is objects[s] for i, s in enumerate(slots.tolist()))
    empty_slots, empty_objects = distinct_objects([])
    assert empty_slots.size == 0 and empty_objects == []


def test_spreads_looked_up_in_bulk_are_the_ones_bps_charges():
    n = 300
    rng = np.random.default_rng(4)
    closes = (100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))).tolist()
    ts = [T0 + i * HOUR for i in range(n)]
    table = _with_spreads(PaperBroker(), None, ts, closes).spreads  # estimated per candle, priced in bulk
    later = np.array([ts[-1] + HOUR, ts[-1] + 2 * HOUR])  # never priced: left to bps()
    bulk = table.known_bps(np.concatenate((np.asarray(ts), later)))
    assert bulk[:n].tolist() == [table.bps(t) for t in ts] and np.isnan(bulk[n:]).all()
    fixed = _with_spreads(PaperBroker(), 8.0, ts, closes).spreads
    assert fixed.known_bps(np.asarray(ts[:3])).tolist() == [fixed.bps(t) for t in ts[:3]]

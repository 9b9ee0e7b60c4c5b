"""The backtest fast path of ``TradingSession.run`` gives exactly what the per-candle step gives.

Random signal streams (warm-up ``None``, HOLD, BUY and SELL of random sizes, strategy
failures), random prices with crashes that trip the drawdown and daily-loss breakers,
duplicate and out-of-order candles, gaps of days, random limits, fees, slippage, lots
and minimum notionals: the equity curve, every order, fill and risk event, the final
status and the saved account are identical, float for float, with ``fast=True`` and with
``fast=False`` (the reference), whichever way the quiet stretches are marked (plain Python
or numpy windows).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from trader.engine import MemoryState, PaperBroker, RiskAuditAgent, TradingSession, quiet
from trader.errors import PluginError
from trader.plugins import TraderPluginManager
from trader.types import RiskLimits, Signal, SignalAction

HOUR = 3_600_000
T0 = 1_704_067_200_000 + 5 * HOUR  # not on a day boundary
MANAGER = TraderPluginManager(load_entrypoints=False, disabled=())

_sizes = st.sampled_from([1.0, 0.5, 0.25, 0.999]) | st.floats(0.0, 1.0)


def _signal(kind: str, size: float):
    if kind == "none":
        return None
    if kind == "hold":
        return Signal.hold()
    if kind == "buy":
        return Signal(SignalAction.BUY, size=size)
    if kind == "sell":
        return Signal(SignalAction.SELL, size=size)
    if kind == "invalid":
        return ValueError("bad signal")
    return PluginError("plugin crashed")


_stretch = st.tuples(
    st.sampled_from(["none", "hold", "hold", "buy", "buy", "buy", "sell", "sell", "invalid", "crash"]),
    _sizes,
    st.integers(1, 60),  # how many candles in a row carry this signal
)


@st.composite
def markets(draw):
    stretches = draw(st.lists(_stretch, min_size=1, max_size=16))
    shared = draw(st.booleans())  # the same Signal object repeated, or a new one per candle
    signals = []
    for kind, size, count in stretches:
        if kind in ("invalid", "crash"):
            count = 1
        one = _signal(kind, size)
        signals.extend(one if shared else _signal(kind, size) for _ in range(count))
    n = len(signals)
    returns = draw(st.lists(st.floats(-0.03, 0.03, allow_nan=False), min_size=n, max_size=n))
    crashes = draw(st.lists(st.integers(0, n - 1), max_size=3))
    gaps = draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from([0, -1, -3, 2, 30, 500])), max_size=4))
    step_hours = {i: g for i, g in gaps}
    closes, ts = [], []
    price, t = draw(st.floats(0.5, 50_000.0)), T0
    for i, r in enumerate(returns):
        price *= math.exp(r) * (0.5 if i in crashes else 1.0)
        closes.append(price)
        t += step_hours.get(i, 1) * HOUR
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
)
brokers = st.builds(
    PaperBroker,
    fee_bps=st.sampled_from([0.0, 10.0, 75.0]),
    slippage_bps=st.sampled_from([0.0, 2.0, 30.0]),
    lot_size=st.sampled_from([0.0, 1e-8, 0.01]),
    min_notional=st.sampled_from([0.0, 5.0, 200.0]),
)


def _session(limits, broker, band, timeframe="1h"):
    return TradingSession(
        "buy_and_hold",
        "BTC/USDT",
        timeframe,
        limits=limits,
        broker=broker,
        store=MemoryState("buy_and_hold"),
        audit=RiskAuditAgent.for_strategy(MANAGER, "buy_and_hold", limits),
        rebalance_band=band,
    )


def _outcome(session: TradingSession, processed: list[int]):
    store = session.store
    store.flush()
    return {
        "processed": processed,
        "timestamps": store.timestamps,
        "closes": store.closes,
        "equities": store.equities,
        "cash": store.cash_values,
        "position_values": store.position_values,
        "orders": store.orders(),
        "fills": store.fills(),
        "events": store.events,
        "saved": store.load("BTC/USDT", "1h"),
        "summary": session.summary(),
        "peak": session.peak_equity,
        "last": session.last_timestamp,
        "losses": session.consecutive_losses,
        "failures": session.model_failures,
    }


def _run(limits, broker, band, market, splits, fast):
    ts, closes, signals = market
    session = _session(limits, broker, band)
    processed = []
    bounds = [0, *sorted(splits), len(ts)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        processed.append(session.run(ts[a:b], closes[a:b], signals[a:b], fast=fast))
    return _outcome(session, processed)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    market=markets(),
    limits=limits_strategy,
    broker=brokers,
    band=st.sampled_from([0.0, 0.1, 0.5]),
    spans=st.sampled_from([(128, 512), (1, 1), (3, 2), (0, 4)]),
    split=st.floats(0.0, 1.0),
)
def test_fast_path_equals_the_per_candle_step(market, limits, broker, band, spans, split):
    splits = [int(split * len(market[0]))]
    reference = _run(limits, broker, band, market, splits, fast=False)
    saved = quiet._PYTHON_SPAN, quiet._MIN_WINDOW
    quiet._PYTHON_SPAN, quiet._MIN_WINDOW = spans
    try:
        fast = _run(limits, broker, band, market, splits, fast=True)
    finally:
        quiet._PYTHON_SPAN, quiet._MIN_WINDOW = saved
    for key, value in reference.items():
        assert fast[key] == value, key
    event(f"fills: {'none' if not reference['fills'] else 'some' if len(reference['fills']) < 4 else 'many'}")
    event(f"final status: {reference['summary']['status']}")
    event(f"status changes: {sum(e.kind == 'status' for e in reference['events']) > 0}")


def test_fast_path_marks_long_quiet_stretches_in_bulk():
    """A long HOLD stretch after one BUY: one full step with an order, the rest marked in bulk, same curve."""
    n = 5_000
    ts = [T0 + i * HOUR for i in range(n)]
    closes = [100.0 * (1 + 0.0001 * (i % 50)) for i in range(n)]
    signals = [None] * 10 + [Signal(SignalAction.BUY)] + [Signal.hold()] * (n - 12) + [Signal(SignalAction.SELL)]
    limits = RiskLimits()
    slow = _session(limits, PaperBroker(), 0.1)
    slow.run(ts, closes, signals, fast=False)
    fast = _session(limits, PaperBroker(), 0.1)
    steps = []
    original = fast.step
    fast.step = lambda *a, **k: steps.append(a[0]) or original(*a, **k)  # count the full steps
    assert fast.run(ts, closes, signals) == n
    assert steps == [ts[10], ts[-1]]  # the BUY and the SELL; everything else was quiet
    assert fast.store.equities == slow.store.equities
    assert fast.store.fills() == slow.store.fills() and len(fast.store.fills()) == 2


def test_stores_without_bulk_commits_take_every_candle(tmp_path):
    """SQLite stores and stores that keep every step record get one commit per candle, as before."""
    store = MemoryState("buy_and_hold", keep_steps=True)
    limits = RiskLimits()
    session = TradingSession("buy_and_hold", "BTC/USDT", "1h", limits=limits, broker=PaperBroker(), store=store,
                             audit=RiskAuditAgent.for_strategy(MANAGER, "buy_and_hold", limits))
    assert not quiet.supports_fast_path(session)
    session.run([T0 + i * HOUR for i in range(50)], [100.0] * 50, [Signal.hold()] * 50)
    assert len(store.steps) == 50


@pytest.mark.parametrize("timestamps", [[T0 + 0.5, T0 + HOUR], ["a", "b"]])
def test_fast_path_leaves_unusual_inputs_to_the_step(timestamps):
    """Float or odd timestamps take the per-candle path (which converts or refuses them as before)."""
    session = _session(RiskLimits(), PaperBroker(), 0.1)
    try:
        done = session.run(timestamps, [100.0, 101.0], [Signal.hold()] * 2)
    except ValueError:
        return
    assert done == 2 and session.store.timestamps == [int(t) for t in timestamps]

"""Accounting properties of the decision step: whatever the signals and prices, the books balance."""

from __future__ import annotations

import math
import sqlite3

import pytest
from engine_testkit import HOUR, T0, make_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.engine import Book, MemoryState, PaperBroker
from trader.errors import StateError
from trader.types import Fill, RiskLimits, Signal, SignalAction

LOOSE = RiskLimits(
    max_position_fraction=1.0,
    max_position_notional=1e12,
    max_order_notional=1e12,
    daily_loss_limit=1.0,
    max_drawdown=1.0,
    max_consecutive_losses=10_000,
    max_errors=10_000,
)

signals = st.one_of(
    st.none(),
    st.builds(
        Signal,
        action=st.sampled_from(list(SignalAction)),
        size=st.floats(0.0, 1.0),
        confidence=st.floats(0.0, 1.0),
    ),
)
moves = st.floats(-0.2, 0.2)


def close_enough(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def check_books(session, store: MemoryState, close: float) -> None:
    fills = store.fill_records
    bought = sum(fr.fill.quantity for fr in fills if fr.fill.side.value == "buy")
    sold = sum(fr.fill.quantity for fr in fills if fr.fill.side.value == "sell")
    assert session.cash >= 0
    assert close_enough(session.position, bought - sold)
    assert session.position >= 0
    assert close_enough(session.equity, session.cash + session.position * close)
    slot = session.book.slot("BTC/USDT")
    unrealized = slot[0] * (close - slot[1])
    assert close_enough(session.equity - session.book.initial_cash, session.book.realized_pnl + unrealized)
    assert close_enough(session.book.fees_paid, sum(fr.fill.fee for fr in fills))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(st.tuples(moves, signals), min_size=1, max_size=60),
    fee_bps=st.floats(0, 100),
    slippage_bps=st.floats(0, 100),
    lot=st.sampled_from([0.0, 1e-8, 1e-3, 0.1, 1.0]),
    cash=st.floats(1.0, 1e7),
    band=st.floats(0.0, 0.5),
)
def test_positions_equal_fills_cash_never_negative_equity_marks(manager, steps, fee_bps, slippage_bps, lot, cash, band):
    store = MemoryState("buy_and_hold")
    broker = PaperBroker(fee_bps=fee_bps, slippage_bps=slippage_bps, lot_size=lot, min_notional=0.0)
    session = make_session(manager, None, limits=LOOSE, broker=broker, cash=cash, band=band, store=store)
    price = 100.0
    for i, (move, signal) in enumerate(steps):
        price = max(1e-3, price * (1 + move))
        session.step(T0 + i * HOUR, price, signal)
        check_books(session, store, price)
    assert len(store.equities) == len(steps)  # one equity snapshot per candle


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(moves, signals), min_size=1, max_size=25), cut=st.integers(0, 25))
def test_sqlite_store_reloads_exactly_what_the_session_holds(manager, tmp_path_factory, steps, cut):
    """Closing and reopening the store at any candle continues exactly like one uninterrupted session."""
    directory = tmp_path_factory.mktemp("state")
    reference = make_session(manager, None, limits=LOOSE, store=MemoryState("buy_and_hold"))
    session = make_session(manager, directory, limits=LOOSE)
    price = 100.0
    for i, (move, signal) in enumerate(steps):
        price = max(1e-3, price * (1 + move))
        if i == cut:
            session.store.close()
            session = make_session(manager, directory, limits=LOOSE)
        reference.step(T0 + i * HOUR, price, signal)
        session.step(T0 + i * HOUR, price, signal)
        assert session.cash == reference.cash
        assert session.position == reference.position
        assert session.equity == reference.equity
    path = session.store.path
    session.store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (qty,) = db.execute("SELECT quantity FROM positions WHERE symbol = 'BTC/USDT'").fetchone()
        fills = db.execute("SELECT side, quantity FROM fills ORDER BY id").fetchall()
        bought = sum(q for s, q in fills if s == "buy")
        sold = sum(q for s, q in fills if s == "sell")
        assert close_enough(qty, bought - sold)
        (cash,) = db.execute("SELECT cash FROM account").fetchone()
        assert cash >= 0
        curve = db.execute("SELECT equity, cash, position_value FROM equity ORDER BY timestamp").fetchall()
        assert len(curve) == len(steps)
        assert all(close_enough(e, c + p) for e, c, p in curve)


def test_book_refuses_what_would_break_the_account():
    book = Book(100.0)
    with pytest.raises(StateError, match="more than the cash"):
        book.apply_fill(Fill("c1", "BTC/USDT", "buy", 1.0, 100.0, fee=0.01))
    book.apply_fill(Fill("c2", "BTC/USDT", "buy", 0.5, 100.0, fee=0.5))
    assert book.cash == pytest.approx(49.5)
    assert book.slot("BTC/USDT")[1] == pytest.approx(101.0)  # the fee is in the cost basis
    with pytest.raises(StateError, match="more than the position"):
        book.apply_fill(Fill("c3", "BTC/USDT", "sell", 0.6, 100.0))
    realized = book.apply_fill(Fill("c4", "BTC/USDT", "sell", 0.5, 110.0, fee=0.55))
    assert realized == pytest.approx(0.5 * (110 - 101) - 0.55)
    assert book.quantity("BTC/USDT") == 0.0
    assert book.equity() == pytest.approx(100.0 + realized)

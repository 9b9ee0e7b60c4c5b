"""The portfolio step on a real SQLite store: one account, several markets, the core's portfolio rules."""

from __future__ import annotations

import sqlite3

import pytest

from trader import Signal, SignalAction
from trader.backtest.runner import BacktestSettings
from trader.engine import PaperBroker, RiskAuditAgent, TradingSession, TradingState, core_verdicts
from trader.errors import StateError
from trader.plugins import TraderPluginManager
from trader.portfolio import PORTFOLIO, BasketPaperBroker, PortfolioSession
from trader.types import AuditContext, OrderRequest, PortfolioSnapshot, Position, RiskLimits

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
BUY = Signal(SignalAction.BUY, size=1.0)
SELL = Signal(SignalAction.SELL, size=1.0)


def _session(tmp_path, symbols, *, limits=None, name="buy_and_hold", cash=10_000.0, store=None):
    manager = TraderPluginManager(load_entrypoints=False)
    limits = limits or RiskLimits(max_position_fraction=0.3)
    broker = BasketPaperBroker({s: PaperBroker(fee_bps=0, slippage_bps=0) for s in symbols})
    store = store or TradingState.open(name, tmp_path / name)
    return PortfolioSession(name, symbols, "1h", limits=limits, broker=broker, store=store,
                            audit=RiskAuditAgent.for_strategy(manager, name, limits), initial_cash=cash,
                            latency_denies=False)


def test_a_market_without_a_candle_is_not_traded_and_keeps_its_last_close(tmp_path):
    session = _session(tmp_path, ["AAA/USDT", "BBB/USDT"])
    session.step(T0, {"AAA/USDT": 100.0, "BBB/USDT": 10.0}, {"AAA/USDT": BUY, "BBB/USDT": BUY})
    record = session.step(T0 + HOUR, {"AAA/USDT": 110.0}, {"AAA/USDT": SELL, "BBB/USDT": SELL})
    assert [o.order.symbol for o in record.orders] == ["AAA/USDT"]  # BBB had no candle: its SELL waits
    assert [m.symbol for m in record.markets] == ["AAA/USDT"]
    assert session.book.marks["BBB/USDT"] == 10.0
    assert session.quantity("BBB/USDT") > 0
    assert record.equity == pytest.approx(session.book.cash + session.quantity("BBB/USDT") * 10.0)


def test_sizes_are_fractions_of_the_account_and_sells_free_cash_first(tmp_path):
    limits = RiskLimits(max_position_fraction=0.5, max_order_notional=1e9, max_position_notional=1e9)
    session = _session(tmp_path, ["AAA/USDT", "BBB/USDT"], limits=limits)
    session.step(T0, {"AAA/USDT": 100.0, "BBB/USDT": 10.0}, {"AAA/USDT": BUY, "BBB/USDT": BUY})
    assert session.quantity("AAA/USDT") * 100 == pytest.approx(5_000, rel=1e-9)
    assert session.quantity("BBB/USDT") * 10 == pytest.approx(5_000, rel=1e-9)
    assert session.book.cash == pytest.approx(0.0, abs=1e-6)
    # BBB is at its target: its BUY asks nothing more, even once AAA's sale freed cash
    record = session.step(T0 + HOUR, {"AAA/USDT": 100.0, "BBB/USDT": 10.0}, {"AAA/USDT": SELL, "BBB/USDT": BUY})
    assert [o.order.side.value for o in record.orders] == ["sell"]
    assert session.book.cash == pytest.approx(5_000, rel=1e-9)


def test_orders_in_one_step_go_sells_first_then_buys_in_symbol_order(tmp_path):
    limits = RiskLimits(max_position_fraction=0.5, max_order_notional=1e9, max_position_notional=1e9)
    session = _session(tmp_path, ["ZZZ/USDT", "AAA/USDT", "MMM/USDT"], limits=limits)
    session.step(T0, {"ZZZ/USDT": 10.0, "AAA/USDT": 10.0, "MMM/USDT": 10.0}, {"ZZZ/USDT": BUY, "MMM/USDT": BUY})
    record = session.step(
        T0 + HOUR,
        {"ZZZ/USDT": 10.0, "AAA/USDT": 10.0, "MMM/USDT": 10.0},
        {"ZZZ/USDT": SELL, "AAA/USDT": BUY, "MMM/USDT": SELL},
    )
    assert [(o.order.side.value, o.order.symbol) for o in record.orders] == [
        ("sell", "MMM/USDT"), ("sell", "ZZZ/USDT"), ("buy", "AAA/USDT"),
    ]
    # the buy was sized from the account (half of it), paid with the cash the sales freed
    assert session.quantity("AAA/USDT") * 10 == pytest.approx(0.5 * record.equity, rel=1e-6)


def test_the_listing_order_of_markets_does_not_matter(tmp_path):
    steps = [
        (T0, {"AAA/USDT": 100.0, "BBB/USDT": 10.0, "CCC/USDT": 1.0}, {"AAA/USDT": BUY, "BBB/USDT": BUY, "CCC/USDT": BUY}),
        (T0 + HOUR, {"AAA/USDT": 90.0, "CCC/USDT": 1.2}, {"AAA/USDT": SELL, "CCC/USDT": BUY}),
        (T0 + 2 * HOUR, {"BBB/USDT": 12.0, "CCC/USDT": 1.1}, {"BBB/USDT": SELL, "CCC/USDT": SELL}),
    ]
    results = []
    for i, order in enumerate((["AAA/USDT", "BBB/USDT", "CCC/USDT"], ["CCC/USDT", "AAA/USDT", "BBB/USDT"])):
        session = _session(tmp_path / str(i), order)
        for ts, closes, signals in steps:
            session.step(ts, dict(reversed(list(closes.items()))) if i else closes, signals)
        results.append([(f["client_order_id"], f["quantity"], f["price"]) for f in session.store.fills()])
    assert results[0] == results[1]
    assert results[0]


def test_a_stale_candle_is_never_replayed(tmp_path):
    session = _session(tmp_path, ["AAA/USDT", "BBB/USDT"])
    session.step(T0, {"AAA/USDT": 100.0, "BBB/USDT": 10.0})
    skipped = session.step(T0, {"AAA/USDT": 100.0, "BBB/USDT": 10.0}, {"AAA/USDT": BUY})
    assert skipped.skipped == "duplicate"
    assert not skipped.orders


def test_a_failed_signal_counts_once_per_step_however_many_markets_failed(tmp_path):
    limits = RiskLimits(max_model_failures=2)
    session = _session(tmp_path, ["AAA/USDT", "BBB/USDT", "CCC/USDT"], limits=limits)
    boom = RuntimeError("boom")
    session.step(T0, {"AAA/USDT": 1.0, "BBB/USDT": 1.0, "CCC/USDT": 1.0}, {"AAA/USDT": boom, "BBB/USDT": boom, "CCC/USDT": boom})
    assert session.model_failures == 1
    assert session.status.value == "active"
    session.step(T0 + HOUR, {"AAA/USDT": 1.0}, {"AAA/USDT": boom})
    assert session.status.value == "halted"


def test_a_basket_shares_one_quote_currency(tmp_path):
    with pytest.raises(StateError, match="quoted in BTC, USDT"):
        _session(tmp_path, ["ETH/BTC", "SOL/USDT"])
    with pytest.raises(StateError, match="listed twice"):
        _session(tmp_path, ["ETH/BTC", "ETH/BTC"])


def test_a_single_market_account_becomes_a_basket_without_losing_anything(tmp_path):
    manager = TraderPluginManager(load_entrypoints=False)
    limits = RiskLimits(max_position_fraction=0.3)
    store = TradingState.open("buy_and_hold", tmp_path / "buy_and_hold")
    single = TradingSession("buy_and_hold", "AAA/USDT", "1h", limits=limits, broker=PaperBroker(fee_bps=0, slippage_bps=0),
                            store=store, audit=RiskAuditAgent.for_strategy(manager, "buy_and_hold", limits),
                            initial_cash=10_000.0, latency_denies=False)
    single.step(T0, 100.0, BUY)
    single.step(T0 + HOUR, 105.0, None)
    cash, held, equity = single.cash, single.position, single.equity
    store.close()

    store = TradingState.open("buy_and_hold", tmp_path / "buy_and_hold")
    basket = _session(tmp_path, ["AAA/USDT", "BBB/USDT"], limits=limits, store=store)
    assert basket.last_timestamp == T0 + HOUR
    assert basket.quantity("AAA/USDT") == held
    assert basket.book.cash == cash
    assert basket.equity == pytest.approx(equity)
    old = basket.step(T0 + HOUR, {"AAA/USDT": 105.0, "BBB/USDT": 5.0}, {"AAA/USDT": BUY})
    assert old.skipped == "duplicate"  # AAA's candle was processed by the single-market account
    basket.step(T0 + 2 * HOUR, {"AAA/USDT": 106.0, "BBB/USDT": 5.0}, {"BBB/USDT": BUY})
    assert basket.quantity("BBB/USDT") > 0
    assert len(store.fills()) == 2
    assert store.equity_curve("AAA/USDT")[0][0] == T0  # the single-market history is still there
    assert store.equity_curve(PORTFOLIO)[-1][0] == T0 + 2 * HOUR
    assert {row[1] for row in store.market_history()} == {"AAA/USDT", "BBB/USDT"}


def test_a_crash_inside_a_step_loses_only_that_step(tmp_path):
    session = _session(tmp_path, ["AAA/USDT", "BBB/USDT"])
    session.step(T0, {"AAA/USDT": 100.0, "BBB/USDT": 10.0}, {"AAA/USDT": BUY, "BBB/USDT": BUY})
    path = session.store.path
    session.store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == 2
        assert {r[0] for r in db.execute("SELECT symbol FROM streams")} == {"*", "AAA/USDT", "BBB/USDT"}
    reopened = _session(tmp_path, ["AAA/USDT", "BBB/USDT"])
    assert reopened.last_timestamp == T0
    assert reopened.market_last == {"AAA/USDT": T0, "BBB/USDT": T0}


def _order(symbol, quantity, price, side="buy"):
    return OrderRequest("s", symbol, side, quantity, price, "cid-1", T0)


def _portfolio(cash, **held):
    positions = {s: Position(s, q, p) for s, (q, p) in held.items()}
    marks = {s: p for s, (_, p) in held.items()}
    equity = cash + sum(q * p for q, p in held.values())
    return PortfolioSnapshot(cash=cash, equity=equity, positions=positions, peak_equity=equity,
                             day_start_equity=equity, marks=marks)


def _codes(verdicts):
    return {r.code for v in verdicts for r in v.reasons if not v.approved}


def test_the_core_denies_a_buy_over_the_gross_exposure_limit():
    limits = RiskLimits(max_gross_exposure=0.6, max_position_fraction=0.5)
    portfolio = _portfolio(5_000, **{"AAA/USDT": (40.0, 100.0)})  # 4,000 of 9,000 held
    context = AuditContext(strategy="s", now=T0 + HOUR, timeframe_ms=HOUR, last_candle_ts=T0)
    assert "GROSS_EXPOSURE_EXCEEDED" in _codes(core_verdicts(_order("BBB/USDT", 200, 10.0), portfolio, limits, context))
    assert "GROSS_EXPOSURE_EXCEEDED" not in _codes(core_verdicts(_order("BBB/USDT", 100, 10.0), portfolio, limits, context))
    # a sale never counts against it
    sell = _order("AAA/USDT", 10, 100.0, side="sell")
    assert not _codes(core_verdicts(sell, _portfolio(0, **{"AAA/USDT": (95.0, 100.0)}), limits, context))


def test_the_core_denies_a_buy_that_opens_one_position_too_many():
    limits = RiskLimits(max_open_positions=2)
    portfolio = _portfolio(8_000, **{"AAA/USDT": (1.0, 100.0), "BBB/USDT": (10.0, 10.0)})
    context = AuditContext(strategy="s", now=T0 + HOUR, timeframe_ms=HOUR, last_candle_ts=T0)
    assert "MAX_OPEN_POSITIONS" in _codes(core_verdicts(_order("CCC/USDT", 1, 10.0), portfolio, limits, context))
    assert "MAX_OPEN_POSITIONS" not in _codes(core_verdicts(_order("AAA/USDT", 1, 100.0), portfolio, limits, context))


def test_portfolio_limits_deny_in_a_basket_and_are_recorded(tmp_path):
    limits = RiskLimits(max_position_fraction=0.3, max_open_positions=1)
    session = _session(tmp_path, ["AAA/USDT", "BBB/USDT"], limits=limits)
    record = session.step(T0, {"AAA/USDT": 100.0, "BBB/USDT": 10.0}, {"AAA/USDT": BUY, "BBB/USDT": BUY})
    assert [o.status for o in record.orders] == ["filled", "denied"]
    events = session.store.risk_events(kind="audit")
    assert any(e["code"] == "MAX_OPEN_POSITIONS" for e in events)


def test_buy_and_hold_on_a_basket_buys_each_market_at_its_first_candle_and_never_sells(tmp_path):
    from trader.config import load_config
    from trader.data.synth import synthetic_candles
    from trader.portfolio import align, run_basket_backtest

    frames = {
        "AAA/USDT": synthetic_candles("AAA/USDT", "1h", 600, seed=1),
        "BBB/USDT": synthetic_candles("BBB/USDT", "1h", 600, seed=2).iloc[100:].reset_index(drop=True),  # listed later
        "CCC/USDT": synthetic_candles("CCC/USDT", "1h", 600, seed=3),
    }
    basket = align(frames, "1h")
    result = run_basket_backtest(TraderPluginManager(load_entrypoints=False), load_config(home=tmp_path), "buy_and_hold",
                                 basket, settings=BacktestSettings(n_resamples=50, benchmark=False, spread_multiplier=None))
    orders = [o.order for o in result.result.orders if o.status == "filled"]
    assert orders and all(o.side.value == "buy" for o in orders)
    first = {s: int(f["timestamp"].iloc[0]) for s, f in frames.items()}
    for symbol, listed in first.items():
        assert min(o.timestamp for o in orders if o.symbol == symbol) == listed
    # each market about a third of the account when it was bought
    equity = dict(zip(result.run.timestamps.tolist(), result.run.equity[1:].tolist(), strict=True))
    for symbol, listed in first.items():
        bought = next(o for o in orders if o.symbol == symbol and o.timestamp == listed)
        assert bought.quantity * bought.price == pytest.approx(equity[listed] / 3, rel=0.02)


def test_when_cash_runs_short_buys_are_served_in_symbol_order(tmp_path):
    limits = RiskLimits(max_position_fraction=0.8, max_order_notional=1e9, max_position_notional=1e9)
    session = _session(tmp_path, ["ZZZ/USDT", "AAA/USDT"], limits=limits)
    record = session.step(T0, {"ZZZ/USDT": 10.0, "AAA/USDT": 10.0}, {"ZZZ/USDT": BUY, "AAA/USDT": BUY})
    assert session.quantity("AAA/USDT") * 10 == pytest.approx(8_000, rel=1e-9)  # its whole target, served first
    assert session.quantity("ZZZ/USDT") * 10 == pytest.approx(2_000, rel=1e-9)  # what was left
    assert [o.order.symbol for o in record.orders] == ["AAA/USDT", "ZZZ/USDT"]

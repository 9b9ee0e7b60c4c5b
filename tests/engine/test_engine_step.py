"""The decision step: signals become orders as documented, every breaker trips and is persisted."""

from __future__ import annotations

import math

import pytest
from engine_testkit import BUY, HOLD, HOUR, SELL, T0, make_session

from trader.engine import MemoryState, OrderStatus, PaperBroker, RiskCode, TradingState, client_order_id
from trader.engine.brokers.base import Execution
from trader.errors import PluginError
from trader.types import OrderRequest, RiskLimits, Signal, SignalAction, TradingStatus

DAY = 24 * HOUR


def codes(store, kind=None):
    return [e["code"] for e in store.risk_events(kind)]


def test_buy_targets_a_fraction_of_equity_and_sell_closes(manager, tmp_path):
    s = make_session(manager, tmp_path, limits=RiskLimits(max_position_fraction=0.5))
    r = s.step(T0, 100.0, BUY)
    assert r.fills and r.fills[0].fill.quantity == pytest.approx(50.0, rel=1e-3)  # 5,000 of 10,000 at 100
    assert s.cash == pytest.approx(10_000 - 5_000 - 5.0, rel=1e-3)
    r = s.step(T0 + HOUR, 100.0, BUY)
    assert not r.orders  # already at the target: BUY never over-buys
    r = s.step(T0 + 2 * HOUR, 100.0, Signal(SignalAction.SELL, size=0.5))
    assert r.fills[0].fill.quantity == pytest.approx(25.0, rel=1e-3)
    r = s.step(T0 + 3 * HOUR, 100.0, SELL)
    assert s.position == 0.0
    assert not s.step(T0 + 4 * HOUR, 100.0, SELL).orders  # nothing to sell


def test_buy_tops_up_only_beyond_the_rebalance_band(manager, tmp_path):
    limits = RiskLimits(max_position_fraction=0.5, max_drawdown=0.9, daily_loss_limit=0.9)
    s = make_session(manager, tmp_path, limits=limits, band=0.2)
    s.step(T0, 100.0, BUY)
    held = s.position
    assert not s.step(T0 + HOUR, 90.0, BUY).orders  # ~5% short of the target: within the band
    assert s.position == held
    r = s.step(T0 + 2 * HOUR, 60.0, BUY)  # 25% short of the target: top up to it
    assert r.fills and s.position * 60.0 == pytest.approx(0.5 * s.equity, rel=1e-2)


def test_a_large_position_is_built_over_several_candles(manager, tmp_path):
    s = make_session(manager, tmp_path, limits=RiskLimits(max_position_fraction=1.0, max_order_notional=2_000.0))
    notionals = []
    for i in range(8):
        r = s.step(T0 + i * HOUR, 100.0, BUY)
        notionals += [f.fill.notional for f in r.fills]
    assert max(notionals) <= 2_000.0 + 1e-6
    assert len(notionals) == 5
    assert s.position * 100 == pytest.approx(9_990, rel=1e-2)
    assert s.cash >= 0


def test_client_order_ids_are_deterministic_and_unique_per_candle():
    a = client_order_id("s", "BTC/USDT", T0, 0)
    assert a == client_order_id("s", "BTC/USDT", T0, 0)
    assert len({a, client_order_id("s", "BTC/USDT", T0, 1), client_order_id("t", "BTC/USDT", T0, 0),
                client_order_id("s", "BTC/USDT", T0 + 1, 0)}) == 4
    assert len(a) <= 36 and a.replace("-", "").isalnum()


def test_duplicate_and_out_of_order_candles_are_skipped_with_a_warning(manager, tmp_path, caplog):
    s = make_session(manager, tmp_path)
    s.step(T0 + HOUR, 100.0, BUY)
    with caplog.at_level("WARNING", logger="trader.engine"):
        assert s.step(T0 + HOUR, 100.0, BUY).skipped == "duplicate"
        assert s.step(T0, 100.0, BUY).skipped == "out-of-order"
    # Count warnings only: another test in the same worker may have set the `trader` logger to INFO.
    assert [r.levelname for r in caplog.records if r.name == "trader.engine" and r.levelno >= 30] == ["WARNING"] * 2
    assert len(s.store.equity_curve()) == 1
    assert len(s.store.fills()) == 1
    assert codes(s.store, "data") == [RiskCode.DUPLICATE_CANDLE] * 2


def test_plugin_failures_are_recorded_never_traded_and_halt_after_the_limit(manager, tmp_path):
    s = make_session(manager, tmp_path, limits=RiskLimits(max_model_failures=3))
    invalid = PluginError("plugin 'x': trader_generate_signals raised ValueError: confidence must be finite")
    invalid.__cause__ = ValueError("confidence must be finite, got nan")
    crash = PluginError("plugin 'x': trader_generate_signals raised ZeroDivisionError: boom")
    crash.__cause__ = ZeroDivisionError("boom")
    s.step(T0, 100.0, invalid)
    s.step(T0 + HOUR, 100.0, crash)
    s.step(T0 + 2 * HOUR, 100.0, BUY)  # a good signal resets the count
    assert s.model_failures == 0 and s.position > 0
    for i in range(3):
        s.step(T0 + (3 + i) * HOUR, 100.0, "not a signal")
    assert s.status is TradingStatus.HALTED
    assert s.status_code == RiskCode.MODEL_FAILURES
    signal_codes = codes(s.store, "signal")
    assert signal_codes[:2] == [RiskCode.INVALID_SIGNAL, RiskCode.PLUGIN_ERROR]
    assert signal_codes[2:] == [RiskCode.INVALID_SIGNAL] * 3
    held = s.position
    s.step(T0 + 7 * HOUR, 100.0, SELL)
    assert s.position == held  # halted: nothing trades


def test_drawdown_halts_until_resume_and_resume_restarts_the_peak(manager, tmp_path):
    s = make_session(manager, tmp_path, limits=RiskLimits(max_position_fraction=1.0, max_drawdown=0.1, daily_loss_limit=1.0))
    s.step(T0, 100.0, BUY)
    s.step(T0 + HOUR, 85.0, HOLD)
    assert s.status is TradingStatus.HALTED and s.status_code == RiskCode.MAX_DRAWDOWN
    s.step(T0 + 2 * HOUR, 85.0, SELL)
    assert s.position > 0
    saved = TradingState.open("buy_and_hold", tmp_path / "buy_and_hold").load()
    assert saved.status is TradingStatus.HALTED and saved.status_reason.startswith("MAX_DRAWDOWN")
    s.resume("checked")
    assert s.status is TradingStatus.ACTIVE
    s.step(T0 + 3 * HOUR, 84.0, SELL)
    assert s.position == 0 and s.status is TradingStatus.ACTIVE
    assert "RESUMED" in codes(s.store, "control")


def test_daily_loss_allows_only_exits_until_the_next_utc_day(manager, tmp_path):
    limits = RiskLimits(max_position_fraction=1.0, daily_loss_limit=0.05, max_drawdown=0.9)
    s = make_session(manager, tmp_path, limits=limits)
    s.step(T0, 100.0, BUY)
    s.step(T0 + HOUR, 90.0, Signal(SignalAction.SELL, size=0.5))
    assert s.status is TradingStatus.REDUCING
    assert s.position > 0  # the exit in the same candle went through
    r = s.step(T0 + 2 * HOUR, 90.0, BUY)
    assert r.note == RiskCode.REDUCE_ONLY and not r.orders
    s.step(T0 + 3 * HOUR, 90.0, Signal(SignalAction.SELL, size=0.5))
    assert s.store.fills()[-1]["side"] == "sell"
    s.step(T0 + DAY, 90.0, HOLD)
    assert s.status is TradingStatus.ACTIVE
    assert [e["code"] for e in s.store.risk_events("status")] == [RiskCode.DAILY_LOSS_LIMIT, RiskCode.DAILY_RESET]


def test_consecutive_losses_halt(manager, tmp_path):
    s = make_session(manager, tmp_path, limits=RiskLimits(max_position_fraction=1.0, max_consecutive_losses=2, max_drawdown=0.9, daily_loss_limit=0.9))
    t = T0
    for price_in, price_out in [(100, 99), (100, 99)]:
        s.step(t, price_in, BUY)
        s.step(t + HOUR, price_out, SELL)
        t += 2 * HOUR
    assert s.status is TradingStatus.HALTED and s.status_code == RiskCode.CONSECUTIVE_LOSSES


class FailingBroker(PaperBroker):
    def execute(self, order, *, cash, now):
        return Execution.error("exchange unreachable")


def test_order_errors_trip_the_error_breaker(manager, tmp_path):
    s = make_session(manager, tmp_path, limits=RiskLimits(max_errors=3, error_window_s=3 * 3600), broker=FailingBroker())
    for i in range(3):
        s.step(T0 + i * HOUR, 100.0, BUY)
    assert s.status is TradingStatus.HALTED and s.status_code == RiskCode.ERROR_BREAKER
    assert codes(s.store, "error") == [RiskCode.ORDER_ERROR] * 3
    assert [o.status for o in s.store.orders()] == [OrderStatus.ERROR] * 3


def test_stale_data_and_slow_inference_deny_new_exposure(manager, tmp_path):
    s = make_session(manager, tmp_path, limits=RiskLimits(max_inference_ms=50))
    r = s.step(T0, 100.0, BUY, now=T0 + 4 * HOUR)
    assert [o.status for o in r.orders] == [OrderStatus.DENIED]
    assert RiskCode.STALE_DATA in codes(s.store, "audit")
    r = s.step(T0 + HOUR, 100.0, BUY, inference_ms=80.0)
    assert [o.status for o in r.orders] == [OrderStatus.DENIED]
    assert RiskCode.INFERENCE_LATENCY in codes(s.store, "audit")
    assert RiskCode.INFERENCE_LATENCY in codes(s.store, "alert")
    assert s.step(T0 + 2 * HOUR, 100.0, BUY, inference_ms=10.0).fills


def test_manual_orders_are_audited(manager, tmp_path):
    s = make_session(manager, tmp_path, limits=RiskLimits(max_order_notional=1_000))
    big = OrderRequest("buy_and_hold", "BTC/USDT", "buy", 20.0, 100.0, "manual-1", T0)
    r = s.submit(big)
    assert r.orders[0].status == OrderStatus.DENIED and s.position == 0
    assert codes(s.store, "audit") == [RiskCode.NOTIONAL_EXCEEDS_MAX_PER_ORDER]


def test_backtest_run_and_step_by_step_agree(manager, tmp_path):
    import numpy as np

    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 500)))
    actions = rng.choice([BUY, SELL, HOLD, None], size=500).tolist()
    timestamps = [T0 + i * HOUR for i in range(500)]
    batch = make_session(manager, None, store=MemoryState("buy_and_hold"))
    batch.run(timestamps, closes, actions)
    stepped = make_session(manager, tmp_path)
    for ts, close, signal in zip(timestamps, closes, actions, strict=True):
        stepped.step(ts, float(close), signal)
    assert [round(e, 9) for _, e in stepped.store.equity_curve()] == [round(e, 9) for e in batch.store.equities]
    assert [f["client_order_id"] for f in stepped.store.fills()] == [fr.fill.client_order_id for fr in batch.store.fill_records]
    assert math.isclose(stepped.equity, batch.equity, rel_tol=1e-12)


def test_errors_outside_the_window_do_not_count(manager, tmp_path):
    s = make_session(manager, tmp_path, limits=RiskLimits(max_errors=2, error_window_s=1800), broker=FailingBroker())
    for i in range(4):
        s.step(T0 + i * HOUR, 100.0, BUY)
    assert s.status is TradingStatus.ACTIVE
    assert len(codes(s.store, "error")) == 4

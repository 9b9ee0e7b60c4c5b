"""The ccxt broker against a loopback Binance (real ccxt, real HTTP on 127.0.0.1, real SQLite)."""

from __future__ import annotations

import math
import time

import ccxt
import numpy as np
import pytest
from engine_testkit import install_fake_strategies, start_trader, state_db, status_json, trader

from trader.data import synthetic_candles
from trader.engine import OrderStatus, RiskAuditAgent, RiskCode, TradingSession, TradingState
from trader.engine.brokers.ccxt_broker import CcxtBroker
from trader.engine.reconcile import reconcile
from trader.testing.fake_binance import FakeBinance, Fault, toml_for_ccxt
from trader.types import RiskLimits, Signal, SignalAction

LIMITS = RiskLimits(max_position_fraction=0.5, max_consecutive_losses=100, max_drawdown=0.9, daily_loss_limit=0.9)
BUY = Signal(SignalAction.BUY)
SELL = Signal(SignalAction.SELL)
HALF = Signal(SignalAction.SELL, size=0.5)


@pytest.fixture
def candles():
    return synthetic_candles("BTC/USDT", "1h", 48, 0)


def exchange_for(server: FakeBinance, timeout_ms: int = 3000):
    return ccxt.binance({**server.ccxt_options(timeout=timeout_ms), "apiKey": "key", "secret": "secret"})


def session_for(manager, tmp_path, server, *, timeout_ms=3000, lookup_s=5.0, name="buy_and_hold"):
    broker = CcxtBroker(exchange_for(server, timeout_ms), strategy=name, lookup_s=lookup_s)
    store = TradingState.open(name, tmp_path / name)
    return TradingSession(
        name, "BTC/USDT", "1h", limits=LIMITS, broker=broker, store=store,
        audit=RiskAuditAgent.for_strategy(manager, name, LIMITS), initial_cash=10_000.0,
    )


def step(session, candles, i, signal):
    row = candles.iloc[i]
    ts = int(row["timestamp"])
    return session.step(ts, float(row["close"]), signal, now=ts + 3_600_000)


def seconds_around_now(bars: int, seed: int, first_offset_s: int):
    """1-second candles whose first opens ``first_offset_s`` seconds before now (later ones lie ahead)."""
    df = synthetic_candles("BTC/USDT", "1s", bars, seed)
    df["timestamp"] = (np.arange(bars, dtype=np.int64) + int(time.time()) - first_offset_s) * 1000
    return df


def cli_home(tmp_path):
    """(home folder, env with the fake strategies installed) for ``trader`` subprocesses."""
    fakes = install_fake_strategies(tmp_path / "site")
    home = tmp_path / "home"
    home.mkdir()
    return home, fakes


def assert_books_match(server, session):
    usdt, btc = server.balance("USDT")[0], server.balance("BTC")[0]
    assert math.isclose(session.cash, usdt, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(session.position, btc, rel_tol=1e-9, abs_tol=1e-9)


def test_orders_carry_deterministic_client_ids_and_the_books_match_the_exchange(manager, tmp_path, candles):
    with FakeBinance(candles, balances={"USDT": 10_000}) as server:
        server.set_price("BTC/USDT", float(candles.iloc[10]["close"]))
        s = session_for(manager, tmp_path, server)
        bought = step(s, candles, 10, BUY)
        assert [o.status for o in bought.orders] == [OrderStatus.FILLED]
        cid = bought.orders[0].order.client_order_id
        (posted,) = server.requests_to("/api/v3/order", "POST")
        assert posted.params["newClientOrderId"] == cid and "quoteOrderQty" in posted.params
        assert_books_match(server, s)
        assert s.position * float(candles.iloc[10]["close"]) == pytest.approx(5_000, rel=0.01)
        step(s, candles, 11, HALF)
        step(s, candles, 12, SELL)
        assert s.position < 1e-5  # only dust below the lot size stays (the buy fee was taken in BTC)
        assert_books_match(server, s)
        fees = sum(f["fee"] for f in s.store.fills())
        assert fees == pytest.approx(3 * 5.0 * 0.5 + 0.0, rel=0.5)  # ~0.1% of each fill, valued in USDT
        orders = s.store.orders()
        assert len({o.order.client_order_id for o in orders}) == 3 == len(server.orders)


def test_partial_fills_are_booked_as_such(manager, tmp_path, candles):
    with FakeBinance(candles, balances={"USDT": 10_000}, market_fill_ratio=0.5) as server:
        s = session_for(manager, tmp_path, server)
        record = step(s, candles, 47, BUY)
        (order,) = record.orders
        assert order.status == OrderStatus.PARTIALLY_FILLED and "filled" in order.message
        assert_books_match(server, s)
        assert s.position * float(candles.iloc[47]["close"]) == pytest.approx(2_500, rel=0.01)


def test_rejections_are_recorded_and_counted(manager, tmp_path, candles):
    with FakeBinance(candles, balances={"USDT": 100}) as server:  # the books think there are 10,000
        s = session_for(manager, tmp_path, server)
        record = step(s, candles, 47, BUY)
        assert [o.status for o in record.orders] == [OrderStatus.REJECTED]
        assert "insufficient balance" in record.orders[0].message
        assert [e["code"] for e in s.store.risk_events("error")] == [RiskCode.ORDER_REJECTED]
        assert s.recent_errors() == 1 and s.position == 0 and s.cash == 10_000


def test_a_timed_out_order_that_reached_the_exchange_is_not_sent_again(manager, tmp_path, candles):
    with FakeBinance(candles, balances={"USDT": 10_000}) as server:
        s = session_for(manager, tmp_path, server, timeout_ms=800, lookup_s=8.0)
        server.inject("POST /api/v3/order", Fault.slow(2.0))
        record = step(s, candles, 47, BUY)
        assert [o.status for o in record.orders] == [OrderStatus.FILLED]
        assert len(server.orders) == 1 and len(server.requests_to("/api/v3/order", "POST")) == 1
        lookups = [r for r in server.requests_to("/api/v3/order", "GET") if "origClientOrderId" in r.params]
        assert len(lookups) >= 2  # asked before sending, and after the timeout until it showed up
        assert_books_match(server, s)


def test_a_lost_request_is_retried_once_it_is_known_not_to_exist(manager, tmp_path, candles):
    with FakeBinance(candles, balances={"USDT": 10_000}) as server:
        s = session_for(manager, tmp_path, server, lookup_s=0.5)
        server.inject("POST /api/v3/order", Fault.disconnect())
        record = step(s, candles, 47, BUY)
        assert [o.status for o in record.orders] == [OrderStatus.FILLED]
        assert len(server.orders) == 1 and len(server.requests_to("/api/v3/order", "POST")) == 2
        assert_books_match(server, s)


def test_a_restart_after_a_crash_mid_order_never_submits_twice(manager, tmp_path, candles):
    with FakeBinance(candles, balances={"USDT": 10_000}) as server:
        s = session_for(manager, tmp_path, server)
        step(s, candles, 40, BUY)
        # crash: the intent of the next order is committed and the order sent, the step never commits
        row = candles.iloc[41]
        ts = int(row["timestamp"])
        order = s._order_for(HALF, ts, float(row["close"]), s.equity)
        s.store.record_order_intent(order)
        s.broker.execute(order, cash=s.cash, now=ts + 3_600_000)
        s.store.close()
        assert len(server.orders) == 2

        restarted = session_for(manager, tmp_path, server)
        assert restarted.store.find_order(order.client_order_id).status == OrderStatus.SUBMITTING
        report = reconcile(restarted)
        assert any("its fills are booked" in line for line in report)
        assert_books_match(server, restarted)
        again = step(restarted, candles, 41, HALF)  # the same candle, the same client id
        assert len(server.orders) == 2 and len(server.requests_to("/api/v3/order", "POST")) == 2
        assert [o.status for o in again.orders] == [OrderStatus.FILLED] and not again.fills
        assert_books_match(server, restarted)
        with state_db_path(tmp_path) as db:
            assert db.execute("SELECT COUNT(*), COUNT(DISTINCT trade_id) FROM fills").fetchone() == (2, 2)


def test_reconcile_marks_unsent_intents_and_reports_balance_differences(manager, tmp_path, candles):
    with FakeBinance(candles, balances={"USDT": 6_000}) as server:
        s = session_for(manager, tmp_path, server)
        row = candles.iloc[47]
        order = s._order_for(BUY, int(row["timestamp"]), float(row["close"]), s.equity)
        s.store.record_order_intent(order)  # crashed before sending
        report = reconcile(s)
        assert any("never reached the exchange" in line for line in report)
        assert s.store.find_order(order.client_order_id).status == OrderStatus.CANCELED
        assert [e["code"] for e in s.store.risk_events("alert")] == ["BALANCE_MISMATCH"]
        assert len(server.orders) == 0


def state_db_path(tmp_path):
    import sqlite3

    return sqlite3.connect(tmp_path / "buy_and_hold" / "state.sqlite")


def test_trader_run_live_trades_through_the_exchange(tmp_path):
    """``trader run --feed live --live`` end to end: 1-second candles around now, keys from the environment."""
    home, fakes = cli_home(tmp_path)
    df = seconds_around_now(600, 1, 400)
    with FakeBinance(df, balances={"USDT": 10_000}) as server:
        (home / "trader.toml").write_text(toml_for_ccxt(server.ccxt_options(timeout=3000)))
        keys = {"TRADER_API_KEY": "test-key-123", "TRADER_API_SECRET": "test-secret-456", **fakes}
        result = trader(home, "run", "--plugin", "live_flipper", "--feed", "live", "--live", "--timeframe", "1s",
                        "--max-candles", "4", "--cash", "10000", env=keys, timeout=90)
        assert result.returncode == 0, result.stderr
        assert "4 new candles" in result.stdout
        assert "test-secret-456" not in result.stderr + result.stdout
        posted = server.requests_to("/api/v3/order", "POST")
        assert 2 <= len(posted) <= 4
        assert all(r.params["newClientOrderId"].startswith("trd-") for r in posted)
        with state_db(home, "live_flipper") as db:
            ids = [c for (c,) in db.execute("SELECT client_order_id FROM orders WHERE status = 'filled'")]
            (cash,) = db.execute("SELECT cash FROM account").fetchone()
            (held,) = db.execute("SELECT quantity FROM positions").fetchone()
        assert sorted(ids) == sorted(r.params["newClientOrderId"] for r in posted)
        assert math.isclose(cash, server.balance("USDT")[0], rel_tol=1e-9)
        assert math.isclose(held, server.balance("BTC")[0], rel_tol=1e-9, abs_tol=1e-9)


def test_a_slow_signal_on_a_live_feed_is_denied_new_exposure(tmp_path):
    """Live, the market moves while the model thinks: over ``max_inference_ms`` the core denies the order."""
    home, fakes = cli_home(tmp_path)
    hour_ms = 3_600_000
    df = synthetic_candles("BTC/USDT", "1h", 200, 2)
    last_closed = (int(time.time() * 1000) // hour_ms - 1) * hour_ms
    df["timestamp"] = last_closed - (len(df) - 1 - np.arange(len(df), dtype=np.int64)) * hour_ms
    with FakeBinance(df) as server:
        (home / "trader.toml").write_text(toml_for_ccxt(server.ccxt_options(timeout=3000)))
        result = trader(home, "run", "--plugin", "slowpoke", "--feed", "live", "--max-candles", "1", "--json",
                        env=fakes, timeout=90)
        assert result.returncode == 0, result.stderr
        assert "over the 20 ms budget" in result.stderr
        assert server.requests_to("/api/v3/order", "POST") == []  # paper broker: nothing sent either way
    with state_db(home, "slowpoke") as db:
        denied = db.execute("SELECT COUNT(*) FROM orders WHERE status = 'denied'").fetchone()[0]
        fills = db.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
        codes = {c for (c,) in db.execute("SELECT code FROM risk_events WHERE kind = 'audit'")}
    assert denied == 1 and fills == 0
    assert RiskCode.INFERENCE_LATENCY in codes


def test_the_live_feed_backs_off_on_errors_reports_them_and_yields_only_closed_candles(tmp_path):
    from trader.engine.feeds import LiveFeed

    df = seconds_around_now(300, 2, 200)
    errors = []
    with FakeBinance(df) as server:
        feed = LiveFeed(ccxt.binance(server.ccxt_options(timeout=2000)), "BTC/USDT", "1s",
                        on_error=lambda code, message: errors.append(code), min_backoff_s=0.05, max_backoff_s=0.2)
        history = feed.history(50)
        assert len(history) == 50 and history["timestamp"].iloc[-1] + 1000 <= time.time() * 1000
        server.inject("/api/v3/klines", Fault.server_error(503), Fault.disconnect(), Fault.rate_limited(0))
        items = feed.items(int(history["timestamp"].iloc[-1]), 50)
        got = [next(items) for _ in range(3)]
    assert errors == ["EXCHANGE_ERROR"] * 3
    stamps = [candle.timestamp for _, candle, _ in got]
    assert stamps == sorted(stamps) and stamps[0] > history["timestamp"].iloc[-1]
    assert all(candle.timestamp + 1000 <= now for _, candle, now in got)  # closed when yielded
    assert [index for index, _, _ in got] == [50, 51, 52]


def test_a_silent_live_feed_is_reported_as_stale_data_once_per_stale_period(tmp_path):
    """The exchange stops sending candles: STALE_DATA after ``stale_after_bars`` bars, repeated while it lasts."""
    import threading

    from trader.engine.feeds import LiveFeed

    df = seconds_around_now(100, 3, 105)  # the last one closed ~5 s ago
    errors: list[tuple[str, str]] = []
    stop = threading.Event()
    with FakeBinance(df) as server:
        feed = LiveFeed(ccxt.binance(server.ccxt_options(timeout=2000)), "BTC/USDT", "1s", stop=stop, poll_s=0.2,
                        on_error=lambda code, message: errors.append((code, message)), stale_after_bars=2)
        last = int(df["timestamp"].iloc[-1])
        consumer = threading.Thread(target=lambda: list(feed.items(last, 100)))
        consumer.start()
        deadline = time.monotonic() + 15
        while len(errors) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        consumer.join(10)
    assert [code for code, _ in errors[:2]] == ["STALE_DATA", "STALE_DATA"]
    assert "no new 1s candle for BTC/USDT" in errors[0][1] and "the feed is silent" in errors[0][1]
    first, second = (int(m.split(" for ")[2].split()[0]) for _, m in errors[:2])
    assert first > 2 and second >= first + 2  # once per stale period, not once per poll
    with pytest.raises(ValueError, match="stale_after_bars"):
        LiveFeed(None, "BTC/USDT", "1s", stale_after_bars=0)


def test_trader_run_on_a_silent_exchange_records_stale_data_and_stops_cleanly(tmp_path):
    import signal

    home, fakes = cli_home(tmp_path)
    df = seconds_around_now(300, 4, 305)  # silent for ~5 s already
    with FakeBinance(df) as server:
        (home / "trader.toml").write_text(
            toml_for_ccxt(server.ccxt_options(timeout=3000)) + "\n[plugins.live_flipper.risk]\nstale_after_bars = 3\n"
        )
        running = start_trader(home, "run", "--plugin", "live_flipper", "--feed", "live", "--timeframe", "1s", env=fakes)
        try:
            deadline = time.monotonic() + 60
            stale = 0
            while not stale and time.monotonic() < deadline and running.poll() is None:
                time.sleep(0.2)
                try:
                    with state_db(home, "live_flipper") as db:
                        stale = db.execute("SELECT COUNT(*) FROM risk_events WHERE code = 'STALE_DATA' AND kind = 'error'").fetchone()[0]
                except Exception:  # the store is not created yet
                    stale = 0
            running.send_signal(signal.SIGINT)
            _, err = running.communicate(timeout=30)
        finally:
            if running.poll() is None:
                running.kill()
    assert running.returncode == 0, err
    assert stale >= 1 and "the feed is silent" in err
    (summary,) = status_json(home, "live_flipper", env=fakes)
    assert summary["event_counts"]["STALE_DATA"] >= 1


def test_sigkilled_live_runs_restart_without_double_orders_and_match_the_exchange(tmp_path):
    """``trader run --feed live --live`` killed with SIGKILL at random moments, then restarted:
    no client order id is ever sent twice and the books end equal to the exchange's balances."""
    import random
    import signal

    home, fakes = cli_home(tmp_path)
    df = seconds_around_now(900, 5, 300)
    rng = random.Random(7)
    keys = {"TRADER_API_KEY": "test-key-123", "TRADER_API_SECRET": "test-secret-456", **fakes}
    args = ("run", "--plugin", "live_flipper", "--feed", "live", "--live", "--timeframe", "1s", "--cash", "10000")
    with FakeBinance(df, balances={"USDT": 10_000}) as server:
        (home / "trader.toml").write_text(toml_for_ccxt(server.ccxt_options(timeout=3000)))
        for _ in range(3):
            sent = len(server.requests_to("/api/v3/order", "POST"))
            running = start_trader(home, *args, env=keys)
            deadline = time.monotonic() + 60
            while len(server.requests_to("/api/v3/order", "POST")) < sent + 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.0))  # anywhere in a step, an order included
            running.send_signal(signal.SIGKILL)
            running.communicate(timeout=30)
            assert running.returncode == -signal.SIGKILL
        final = trader(home, *args, "--max-candles", "3", env=keys, timeout=90)
        assert final.returncode == 0, final.stderr
        posted = [r.params["newClientOrderId"] for r in server.requests_to("/api/v3/order", "POST")]
        assert len(posted) >= 6 and len(set(posted)) == len(posted)  # never sent twice
        with state_db(home, "live_flipper") as db:
            filled = [c for (c,) in db.execute("SELECT client_order_id FROM orders WHERE status = 'filled'")]
            (cash,) = db.execute("SELECT cash FROM account").fetchone()
            (held,) = db.execute("SELECT quantity FROM positions").fetchone()
            (integrity,) = db.execute("PRAGMA integrity_check").fetchone()
        assert integrity == "ok"
        assert sorted(filled) == sorted(posted)  # every order that reached the exchange is booked, once
        assert math.isclose(cash, server.balance("USDT")[0], rel_tol=1e-9)
        assert math.isclose(held, server.balance("BTC")[0], rel_tol=1e-9, abs_tol=1e-9)

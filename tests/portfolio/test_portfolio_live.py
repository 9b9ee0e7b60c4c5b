"""A basket live: the feed, the ccxt broker and reconciliation against a loopback Binance serving
several markets (real ccxt, real HTTP on 127.0.0.1, real SQLite)."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import threading
import time

import ccxt
import numpy as np
import pytest
from cli_runner import TRADER_EXE, run_trader
from plugin_packages import pip_install, plugin_env, write_plugin

from trader import Signal, SignalAction
from trader.data import synthetic_candles
from trader.engine import OrderStatus, RiskAuditAgent, TradingState
from trader.engine.brokers.ccxt_broker import CcxtBroker
from trader.engine.reconcile import reconcile
from trader.errors import ExchangeError
from trader.plugins import TraderPluginManager
from trader.portfolio import PortfolioSession
from trader.portfolio.feeds import BasketLiveFeed
from trader.testing.fake_binance import FakeBinance, Fault, toml_for_ccxt
from trader.types import RiskLimits

A, B, C = "AAA/USDT", "BBB/USDT", "CCC/USDT"
HOUR = 3_600_000
# 0.9 of the 0.3 slice: the first fill's fee lowers the equity the next market's full-size slice is audited against
BUY = Signal(SignalAction.BUY, size=0.9)
SELL = Signal(SignalAction.SELL)
LIMITS = RiskLimits(max_position_fraction=0.3, max_consecutive_losses=100, max_drawdown=0.9, daily_loss_limit=0.9)


def seconds_around_now(symbol: str, bars: int, seed: int, first_offset_s: int):
    """1-second candles whose first opens ``first_offset_s`` seconds before now (later ones lie ahead)."""
    df = synthetic_candles(symbol, "1s", bars, seed)
    df["timestamp"] = (np.arange(bars, dtype=np.int64) + int(time.time()) - first_offset_s) * 1000
    return df


def exchange_for(server: FakeBinance, **options):
    return ccxt.binance({**server.ccxt_options(timeout=3000), "apiKey": "key", "secret": "secret", **options})


def collect(feed: BasketLiveFeed, after, count: int, timeout_s: float = 30.0, each=None):
    """The first ``count`` items of ``feed.items(after)`` (stops the feed after them)."""
    got = []
    deadline = time.monotonic() + timeout_s
    for item in feed.items(after):
        got.append(item)
        if each is not None:
            each(item)
        if len(got) >= count or time.monotonic() > deadline:
            break
    feed.stop.set()
    return got


def rows_by_time(df) -> dict[int, float]:
    return {int(ts): round(float(close), 8) for ts, close in zip(df["timestamp"], df["close"], strict=True)}  # as served


# --------------------------------------------------------------------------- the feed


@pytest.mark.slow
def test_the_feed_yields_each_time_once_in_order_with_the_markets_that_have_a_closed_candle():
    a = seconds_around_now(A, 600, 1, 300)
    b = seconds_around_now(B, 600, 2, 300).iloc[303:]  # listed about 3 s from now
    c = seconds_around_now(C, 600, 3, 300)
    c = c[(c["timestamp"] // 1000) % 4 != 0]  # a gap every 4 s
    errors: list[tuple[str, str]] = []
    with FakeBinance({A: a, B: b, C: c}) as server:
        feed = BasketLiveFeed(exchange_for(server), [C, A, B], "1s", stop=threading.Event(),
                              on_error=lambda code, message: errors.append((code, message)), stale_after_bars=5)
        history = feed.history(20)
        assert len(history[A]) == 20 and history[B].empty
        assert all(int(history[s]["timestamp"].iloc[-1]) + 1000 <= time.time() * 1000 for s in (A, C))
        after = {A: int(history[A]["timestamp"].iloc[-1]), B: None, C: int(history[C]["timestamp"].iloc[-1])}
        items = collect(feed, after, 8)
    assert errors == []
    stamps = [ts for ts, _, _ in items]
    start = max(after[A], after[C])  # the markets' histories were read one after the other: a second may close between
    assert stamps == list(range(start + 1000, start + 9000, 1000))  # every time after them once, in order
    closes = {s: rows_by_time(df) for s, df in ((A, a), (B, b), (C, c))}
    for ts, candles, now in items:
        assert all(candle.timestamp == ts and ts + 1000 <= now for candle in candles.values())  # closed when yielded
        assert {s: k.close for s, k in candles.items() if s != B} == {s: closes[s][ts] for s in (A, C) if ts in closes[s]}
        assert list(candles) == sorted(candles)
        if B in candles:
            assert candles[B].close == closes[B][ts]
    listed = int(b["timestamp"].iloc[0])
    traded_b = [ts for ts, candles, _ in items if B in candles]
    assert traded_b and traded_b == [ts for ts in stamps if ts >= traded_b[0]]  # from its first candle on, every time
    assert traded_b[0] <= listed + 1000
    assert any(C not in candles for _, candles, _ in items)  # the gaps: C not traded, never invented


@pytest.mark.slow
def test_a_late_market_is_not_traded_at_that_time_and_its_late_candles_are_never_replayed():
    frames = {s: seconds_around_now(s, 600, seed, 300) for seed, s in enumerate((A, B, C))}
    with FakeBinance(frames) as server:
        server.set_lag(C, 3.0)  # the exchange publishes C's candles 3 s late
        errors: list[tuple[str, str]] = []
        feed = BasketLiveFeed(exchange_for(server), [A, B, C], "1s", stop=threading.Event(), poll_s=0.2, grace_s=0.5,
                              stale_after_bars=1, on_error=lambda code, message: errors.append((code, message)))
        last = (int(time.time() * 1000) // 1000 - 3) * 1000  # C's candles after it are not published yet
        after = dict.fromkeys((A, B, C), last)

        def on_time_again(item):
            if len(seen) == 4:
                server.set_lag(C, 0)  # its backlog of late candles is published at once
            seen.append(item)

        seen: list = []
        items = collect(feed, after, 9, each=on_time_again)
    stamps = [ts for ts, _, _ in items]
    assert stamps == sorted(set(stamps)) and stamps[0] == last + 1000
    with_c = [ts for ts, candles, _ in items if C in candles]
    without_c = [ts for ts, candles, _ in items if C not in candles]
    assert without_c and with_c and max(without_c) < min(with_c)  # late, then on time again
    assert all(set(candles) >= {A, B} for _, candles, _ in items)
    # the late candles of C were skipped, never yielded after a later time
    assert all(ts > max(without_c) for ts in with_c)
    assert errors and {code for code, _ in errors} == {"STALE_DATA"}
    assert all("candle for CCC/USDT" in message for _, message in errors)  # the silent market, named


def test_a_late_market_is_waited_for_twice_the_polling_interval_within_1_to_60_seconds():
    assert [BasketLiveFeed(None, [A], tf).grace_s for tf in ("1s", "1m", "5m", "1h")] == [1.0, 12.0, 60.0, 60.0]
    assert [BasketLiveFeed(None, [A], tf).poll_s for tf in ("1s", "1m", "5m", "1h")] == [0.5, 6.0, 30.0, 30.0]


@pytest.mark.slow
def test_the_feed_polls_within_the_exchange_rate_limit_and_only_when_a_candle_can_have_closed():
    frames = {s: seconds_around_now(s, 600, seed, 300) for seed, s in enumerate((A, B, C))}
    with FakeBinance(frames) as server:
        exchange = exchange_for(server, rateLimit=150, enableRateLimit=False)  # the feed's own pacing only
        feed = BasketLiveFeed(exchange, [A, B, C], "1s", stop=threading.Event())
        last = (int(time.time() * 1000) // 1000 - 3) * 1000
        items = collect(feed, dict.fromkeys((A, B, C), last), 6)
        polls = server.requests_to("/api/v3/klines")
    assert [ts for ts, _, _ in items] == list(range(last + 1000, last + 7000, 1000))
    seen = sorted(r.time_ms for r in polls)
    assert min(np.diff(seen)) >= 150 - 1  # never two requests closer than rateLimit, never a burst
    for symbol in (A, B, C):  # one poll per closed candle (and the first), not one per poll_s
        assert sum(1 for r in polls if r.params["symbol"] == symbol.replace("/", "")) <= len(items) + 2


def test_a_basket_feed_needs_a_market():
    with pytest.raises(ValueError, match="at least one market"):
        BasketLiveFeed(None, [], "1s")


# --------------------------------------------------------------------------- the broker and reconciliation


class Crash(BaseException):
    """The process dies here: nothing after it runs (a SIGKILL, in-process)."""


class DyingBroker(CcxtBroker):
    """Sends its orders, then dies after the ``dies_after``-th, before the step is committed."""

    def __init__(self, *args, dies_after: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dies_after = dies_after
        self.sent = 0

    def execute(self, order, *, cash, now):
        execution = super().execute(order, cash=cash, now=now)
        self.sent += 1
        if self.sent >= self.dies_after:
            raise Crash()
        return execution


@pytest.fixture
def hourly():
    return {s: synthetic_candles(s, "1h", 48, seed) for seed, s in enumerate((A, B, C))}


def basket_session(tmp_path, server, symbols=(A, B, C), *, broker=None, name="buy_and_hold"):
    manager = TraderPluginManager(load_entrypoints=False, disabled=())
    broker = broker or CcxtBroker(exchange_for(server), strategy=name, lookup_s=2.0)
    store = TradingState.open(name, tmp_path / name)
    return PortfolioSession(name, symbols, "1h", limits=LIMITS, broker=broker, store=store,
                            audit=RiskAuditAgent.for_strategy(manager, name, LIMITS), initial_cash=10_000.0)


def step(session, frames, i, signals):
    ts = int(frames[A]["timestamp"].iloc[i])
    closes = {s: float(df["close"].iloc[i]) for s, df in frames.items() if s in session.symbols}
    return session.step(ts, closes, signals, now=ts + HOUR)


def assert_books_match(server, session):
    assert math.isclose(session.cash, server.balance("USDT")[0], rel_tol=1e-9, abs_tol=1e-6)
    for symbol in session.symbols:
        base = symbol.split("/")[0]
        assert math.isclose(session.quantity(symbol), server.balance(base)[0], rel_tol=1e-9, abs_tol=1e-9), symbol


def test_each_market_is_ordered_on_the_exchange_and_the_books_match_it(tmp_path, hourly):
    with FakeBinance(hourly, balances={"USDT": 10_000}) as server:
        for symbol, df in hourly.items():
            server.set_price(symbol, float(df["close"].iloc[40]))
        s = basket_session(tmp_path, server)
        record = step(s, hourly, 40, {A: BUY, B: BUY, C: BUY})
        assert [(o.order.symbol, o.status) for o in record.orders] == [(x, OrderStatus.FILLED) for x in (A, B, C)]
        posted = server.requests_to("/api/v3/order", "POST")
        assert [r.params["symbol"] for r in posted] == [x.replace("/", "") for x in (A, B, C)]
        assert len({r.params["newClientOrderId"] for r in posted}) == 3
        assert_books_match(server, s)
        for symbol in (A, B, C):  # 0.9 of a 0.3 slice of the account each, at its own price
            assert s.quantity(symbol) * float(hourly[symbol]["close"].iloc[40]) == pytest.approx(2_700, rel=0.01)
        step(s, hourly, 41, {B: SELL})
        assert s.quantity(B) < 1e-4 and s.quantity(A) > 0  # only dust below the lot size stays
        assert_books_match(server, s)
        report = reconcile(s)
        assert [e["code"] for e in s.store.risk_events("alert")] == []
        assert any(line.startswith(f"{A}: ") and "AAA on the exchange" in line for line in report)
        assert any(line.startswith("cash: ") and "USDT free" in line for line in report)


def test_a_crash_with_orders_in_flight_on_two_markets_settles_both_once_on_restart(tmp_path, hourly):
    with FakeBinance(hourly, balances={"USDT": 10_000}) as server:
        dying = DyingBroker(exchange_for(server), strategy="buy_and_hold", lookup_s=2.0, dies_after=2)
        s = basket_session(tmp_path, server, broker=dying)
        with pytest.raises(Crash):  # both orders reached the exchange and filled; the step never committed
            step(s, hourly, 40, {A: BUY, B: BUY, C: BUY})
        s.store.close()
        assert len(server.orders) == 2

        restarted = basket_session(tmp_path, server)
        in_flight = restarted.store.orders([OrderStatus.SUBMITTING])
        assert sorted(o.order.symbol for o in in_flight) == [A, B]
        report = reconcile(restarted)
        assert sum("its fills are booked" in line for line in report) == 2
        assert_books_match(server, restarted)
        again = step(restarted, hourly, 40, {A: BUY, B: BUY, C: BUY})  # the same candle, the same client ids
        posted = server.requests_to("/api/v3/order", "POST")
        assert len(posted) == 3 and len({r.params["newClientOrderId"] for r in posted}) == 3  # only C is new
        assert {f.fill.symbol for f in again.fills} == {C}  # A's and B's fills were booked once, on restart
        assert_books_match(server, restarted)
        restarted.store.close()
    with sqlite3.connect(tmp_path / "buy_and_hold" / "state.sqlite") as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT trade_id) FROM fills").fetchone() == (3, 3)
        assert db.execute("SELECT COUNT(*) FROM orders WHERE status = 'submitting'").fetchone() == (0,)


def test_reconcile_names_the_market_whose_balance_is_short_and_compares_the_cash_once(tmp_path, hourly):
    with FakeBinance(hourly, balances={"USDT": 10_000}) as server:
        s = basket_session(tmp_path, server)
        step(s, hourly, 40, {A: BUY, B: BUY, C: BUY})
        outside = exchange_for(server)  # someone sells half the BBB and spends USDT on AAA outside trader
        outside.create_order(B, "market", "sell", round(s.quantity(B) / 2, 5))
        outside.create_order(A, "market", "buy", None, None, {"cost": 3_000})
        report = reconcile(s)
        alerts = s.store.risk_events("alert")
        assert [e["code"] for e in alerts] == ["BALANCE_MISMATCH", "BALANCE_MISMATCH"]
        texts = " | ".join(e["message"] for e in alerts)
        assert f"{B}: the exchange holds" in texts and "less than the books' cash" in texts
        assert A not in texts and C not in texts
        assert sum(line.startswith("cash: ") for line in report) == 1


def test_a_market_the_exchange_does_not_list_stops_the_basket_in_one_line(tmp_path, hourly):
    with FakeBinance(hourly) as server:
        with pytest.raises(ExchangeError, match=r"^binance does not list ZZZ/USDT$"):
            basket_session(tmp_path, server, (A, "ZZZ/USDT"))


def test_a_rejected_order_names_its_market(tmp_path, hourly):
    with FakeBinance(hourly, balances={"USDT": 3_500}) as server:  # the books think there are 10,000
        s = basket_session(tmp_path, server)
        record = step(s, hourly, 40, {A: BUY, B: BUY, C: BUY})
    statuses = {o.order.symbol: (o.status, o.message) for o in record.orders}
    assert statuses[A][0] == OrderStatus.FILLED
    assert statuses[B][0] == OrderStatus.REJECTED and statuses[B][1].startswith(f"{B}: ")
    assert "insufficient balance" in statuses[B][1]


# --------------------------------------------------------------------------- trader run --feed live --live on a basket

FLIPPER = """
from trader import Signal, SignalAction, StrategyInfo, hookimpl
from trader.types import RiskLimits


@hookimpl
def trader_strategy_info():
    return StrategyInfo(name="basket_flipper", version="1.0", timeframes=("1s",), risk_limits=RiskLimits(
        max_position_fraction=0.3, stale_after_bars=60, max_consecutive_losses=10_000, max_drawdown=0.9,
        daily_loss_limit=0.9, max_errors=1000))


@hookimpl
def trader_generate_signals(request):  # each market: buy on even seconds, sell on odd ones
    second = int(request.candles["timestamp"].iloc[-1]) // 1000
    return [Signal(SignalAction.BUY, size=0.9) if second % 2 == 0 else Signal(SignalAction.SELL)]
"""
KEYS = {"TRADER_API_KEY": "test-key-123", "TRADER_API_SECRET": "test-secret-456"}
LIVE = ("run", "--plugin", "basket_flipper", "--feed", "live", "--live", "--timeframe", "1s", "--cash", "10000",
        "--symbol", A, "--symbol", B, "--symbol", C)


@pytest.fixture(scope="module")
def flipper_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("basket_live_plugins")
    package = write_plugin(root / "src", "trader-basket-flipper", "basket_flipper", "basket_flipper", FLIPPER)
    return plugin_env(pip_install(root / "site", [package]), **KEYS)


def live_home(tmp_path, server):
    home = tmp_path / "home"
    home.mkdir()
    (home / "trader.toml").write_text(toml_for_ccxt(server.ccxt_options(timeout=3000)))
    return home


def start_trader(home, *args, env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    full.update(env, TRADER_HOME=str(home))
    return subprocess.Popen([str(TRADER_EXE), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full)


def live_frames():
    return {s: seconds_around_now(s, 900, seed, 300) for seed, s in enumerate((A, B, C))}


def books(home):
    path = home / "strategies" / "basket_flipper" / "state.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        (cash,) = db.execute("SELECT cash FROM account").fetchone()
        held = dict(db.execute("SELECT symbol, quantity FROM positions").fetchall())
        orders = db.execute("SELECT client_order_id, symbol, status FROM orders").fetchall()
        fills = db.execute("SELECT trade_id FROM fills").fetchall()
        (integrity,) = db.execute("PRAGMA integrity_check").fetchone()
    assert integrity == "ok"
    return cash, held, orders, [t for (t,) in fills]


def assert_exchange_books_match(server, home):
    cash, held, _, fills = books(home)
    assert math.isclose(cash, server.balance("USDT")[0], rel_tol=1e-9)
    for symbol in (A, B, C):
        assert math.isclose(held.get(symbol, 0.0), server.balance(symbol.split("/")[0])[0], rel_tol=1e-9, abs_tol=1e-9)
    assert sorted(fills) == sorted(str(t["id"]) for t in server.trades)  # every trade booked, once


@pytest.mark.slow
def test_trader_run_live_trades_every_market_of_a_basket_through_the_exchange(tmp_path, flipper_env):
    with FakeBinance(live_frames(), balances={"USDT": 10_000}) as server:
        home = live_home(tmp_path, server)
        result = run_trader(*LIVE, "--max-candles", "4", home=home, env=flipper_env, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "4 new steps" in result.stdout and "test-secret-456" not in result.stdout + result.stderr
        posted = server.requests_to("/api/v3/order", "POST")
        assert {r.params["symbol"] for r in posted} == {"AAAUSDT", "BBBUSDT", "CCCUSDT"}
        ids = [r.params["newClientOrderId"] for r in posted]
        assert len(ids) == len(set(ids)) and all(i.startswith("trd-") for i in ids)
        assert "cash: 10,000.00 USDT free on the exchange, 10,000.00 in the books" in result.stderr  # reconciled
        assert_exchange_books_match(server, home)
        _, _, orders, _ = books(home)
        assert sorted(cid for cid, _, status in orders if status == "filled") == sorted(ids)


@pytest.mark.slow
def test_sigkill_with_orders_in_flight_on_two_markets_settles_both_once_on_restart(tmp_path, flipper_env):
    """Killed while one step's orders are on their way: the exchange fills them while trader is dead;
    the restart books both once from the exchange, sends neither again, and the books match."""
    with FakeBinance(live_frames(), balances={"USDT": 10_000}) as server:
        home = live_home(tmp_path, server)
        running = start_trader(home, *LIVE, env=flipper_env)
        try:
            deadline = time.monotonic() + 60

            def last_order_on(symbol):
                posted = server.requests_to("/api/v3/order", "POST")
                return len(posted) >= 3 and posted[-1].params["symbol"] == symbol.replace("/", "")

            while not last_order_on(C) and time.monotonic() < deadline:
                time.sleep(0.005)  # a step's last order (each step orders A, B, C in that order) was answered
            # the next step's order on A passes, the one on B hangs at the exchange for 2.5 s
            server.inject("POST /api/v3/order", Fault.slow(0.0), Fault.slow(2.5))
            while server.pending_faults("POST /api/v3/order") and time.monotonic() < deadline:
                time.sleep(0.01)
            answered = len(server.requests_to("/api/v3/order", "POST"))
            running.send_signal(signal.SIGKILL)
            running.communicate(timeout=30)
        finally:
            if running.poll() is None:
                running.kill()
        assert running.returncode == -signal.SIGKILL
        while len(server.requests_to("/api/v3/order", "POST")) < answered + 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # the exchange fills the hanging order while trader is dead
        _, _, orders, _ = books(home)
        in_flight = [(cid, symbol) for cid, symbol, status in orders if status == "submitting"]
        assert len(in_flight) >= 2 and len({symbol for _, symbol in in_flight}) >= 2
        assert {cid for cid, _ in in_flight} <= {o.clientOrderId for o in server.orders.values()}  # all filled there

        final = run_trader(*LIVE, "--max-candles", "2", home=home, env=flipper_env, timeout=120)
        assert final.returncode == 0, final.stderr
        for cid, _ in in_flight:
            assert f"order {cid} was on the exchange (filled); its fills are booked" in final.stderr
        posted = [r.params["newClientOrderId"] for r in server.requests_to("/api/v3/order", "POST")]
        assert len(posted) == len(set(posted))  # nothing sent twice
        _, _, orders, _ = books(home)
        assert not [cid for cid, _, status in orders if status == "submitting"]
        assert sorted(cid for cid, _, status in orders if status == "filled") == sorted(posted)
        assert_exchange_books_match(server, home)

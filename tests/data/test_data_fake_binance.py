"""The loopback Binance server speaks what ccxt's binance class expects, orders included."""

from __future__ import annotations

import tomllib

import ccxt
import pytest
from data_fixtures import candles

from trader.testing.fake_binance import FakeBinance, Fault, toml_for_ccxt


@pytest.fixture
def fake():
    market = candles(100)
    with FakeBinance({"BTC/USDT": market}, balances={"USDT": 10_000.0, "BTC": 0.5}, fee_rate=0.001) as server:
        yield server, market


def _client(server: FakeBinance, **extra) -> ccxt.binance:
    options = {**server.ccxt_options(timeout=2000), "enableRateLimit": False, "apiKey": "test-key", "secret": "test-secret"}
    return ccxt.binance({**options, **extra})


def test_options_round_trip_through_trader_toml(fake) -> None:
    server, _ = fake
    options = server.ccxt_options(timeout=1500)
    parsed = tomllib.loads(toml_for_ccxt(options))
    assert parsed["exchange"] == {"id": "binance", "ccxt": options}


def test_markets_and_candles_as_ccxt_sees_them(fake) -> None:
    server, market = fake
    exchange = _client(server)
    exchange.load_markets()
    btc = exchange.market("BTC/USDT")
    assert btc["spot"] and btc["limits"]["cost"]["min"] == 5.0 and btc["precision"]["amount"] == 1e-05
    rows = exchange.fetch_ohlcv("BTC/USDT", "1h", since=int(market["timestamp"].iloc[10]), limit=5)
    assert [r[0] for r in rows] == list(market["timestamp"].iloc[10:15])
    assert rows[0][1:] == list(market.iloc[10, 1:])
    four_hour = exchange.fetch_ohlcv("BTC/USDT", "4h", since=int(market["timestamp"].iloc[0]), limit=2)
    assert four_hour[0][2] == market["high"].iloc[:4].max() and four_hour[0][4] == market["close"].iloc[3]
    assert abs(exchange.fetch_time() - exchange.milliseconds()) < 5000
    paths = {r.path for r in server.requests}
    assert paths == {"/api/v3/exchangeInfo", "/api/v3/klines", "/api/v3/time"}


def test_market_order_fills_at_last_close_with_fee_and_duplicate_ids_are_refused(fake) -> None:
    server, market = fake
    exchange = _client(server)
    order = exchange.create_order("BTC/USDT", "market", "buy", 0.1, params={"newClientOrderId": "strategy-1-0001"})
    price = market["close"].iloc[-1]
    assert order["status"] == "closed" and order["filled"] == 0.1 and order["average"] == pytest.approx(price)
    assert order["clientOrderId"] == "strategy-1-0001"
    assert order["fee"] == {"currency": "BTC", "cost": pytest.approx(0.0001)}
    with pytest.raises(ccxt.InvalidOrder, match="-2010.*Duplicate order sent"):
        exchange.create_order("BTC/USDT", "market", "buy", 0.1, params={"newClientOrderId": "strategy-1-0001"})
    balance = exchange.fetch_balance()
    assert balance["BTC"]["free"] == pytest.approx(0.5 + 0.1 - 0.0001)
    assert balance["USDT"]["free"] == pytest.approx(10_000 - 0.1 * price)
    trades = exchange.fetch_my_trades("BTC/USDT")
    assert len(trades) == 1 and trades[0]["order"] == order["id"]
    assert exchange.fetch_order(order["id"], "BTC/USDT")["status"] == "closed"
    assert server.requests_to("/api/v3/order", "POST")[0].api_key == "test-key"


def test_partial_fills_limit_orders_and_cancels(fake) -> None:
    server, market = fake
    server.market_fill_ratio = 0.5
    exchange = _client(server)
    partial = exchange.create_order("BTC/USDT", "market", "sell", 0.2)
    assert partial["status"] == "expired" and partial["filled"] == pytest.approx(0.1)
    resting = exchange.create_order("BTC/USDT", "limit", "buy", 1.0, market["close"].iloc[-1] * 0.5)
    assert resting["status"] == "open" and [o["id"] for o in exchange.fetch_open_orders("BTC/USDT")] == [resting["id"]]
    assert exchange.fetch_balance()["USDT"]["used"] == pytest.approx(1.0 * market["close"].iloc[-1] * 0.5)
    server.fill_order(int(resting["id"]), 0.4)
    assert exchange.fetch_order(resting["id"], "BTC/USDT")["filled"] == pytest.approx(0.4)
    cancelled = exchange.cancel_order(resting["id"], "BTC/USDT")
    assert cancelled["status"] == "canceled" and exchange.fetch_open_orders() == []
    assert exchange.fetch_balance()["USDT"]["used"] == pytest.approx(0.0)
    with pytest.raises(ccxt.OrderNotFound):
        exchange.cancel_order(resting["id"], "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        exchange.fetch_order("424242", "BTC/USDT")


def test_refusals_and_faults_on_private_endpoints(fake) -> None:
    server, _ = fake
    exchange = _client(server)
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.create_order("BTC/USDT", "market", "buy", 500)
    with pytest.raises(ccxt.ExchangeError, match="NOTIONAL"):
        exchange.create_order("BTC/USDT", "market", "buy", 0.00002)
    server.inject("POST /api/v3/order", Fault.server_error(500))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        exchange.create_order("BTC/USDT", "market", "buy", 0.1, params={"newClientOrderId": "retry-me"})
    assert exchange.create_order("BTC/USDT", "market", "buy", 0.1, params={"newClientOrderId": "retry-me"})["status"] == "closed"
    anonymous = ccxt.binance(server.ccxt_options())
    with pytest.raises(ccxt.AuthenticationError):
        anonymous.fetch_balance()

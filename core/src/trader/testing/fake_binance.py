"""A loopback Binance spot REST server for tests: real ccxt talks to it, nothing is mocked.

Start one, point ccxt's ``binance`` class at it with :meth:`FakeBinance.ccxt_options`
(the same table a user writes under ``[exchange.ccxt]`` in ``trader.toml``), and
assert on :attr:`FakeBinance.requests`::

    from trader.testing.fake_binance import FakeBinance, Fault

    with FakeBinance({"BTC/USDT": candles}, balances={"USDT": 10_000}) as server:
        exchange = ccxt.binance({**server.ccxt_options(), "apiKey": "k", "secret": "s"})
        server.inject("/api/v3/klines", Fault.rate_limited(retry_after=1), Fault.server_error())
        exchange.fetch_ohlcv("BTC/USDT", "1h", since=0, limit=1000)

It listens on ``127.0.0.1`` on an ephemeral port (:attr:`url`), one thread per
request, and holds its state in memory behind one lock.

Endpoints (response shapes as Binance documents them; numbers are strings where Binance sends strings)
--------------------------------------------------------------------------------------------------

Public:

- ``GET /api/v3/ping`` -> ``{}``; ``GET /api/v3/time`` -> ``{"serverTime": ms}``.
- ``GET /api/v3/exchangeInfo``: one ``TRADING`` spot market per symbol given (candles or
  ``symbols=``), with ``PRICE_FILTER`` (tick from the price level), ``LOT_SIZE``
  (``step_size``, default 0.00001), ``MARKET_LOT_SIZE`` and ``NOTIONAL`` (``min_notional``,
  default 5 for USD quotes, 0.0001 otherwise) filters.
- ``GET /api/v3/klines?symbol&interval[&startTime][&endTime][&limit]``: 12-field kline rows
  from the candles given; ``startTime``/``endTime`` are inclusive bounds on the open time;
  ``limit`` defaults to 500, at most 1000; without ``startTime`` the latest bars are sent.
  Intervals that are multiples of the candles' timeframe are aggregated; others give ``[]``.
  Every symbol given is served (a basket's markets, each with its own candles, listing date
  and gaps); a symbol's candles can be published late with :meth:`FakeBinance.set_lag`.
  Errors: ``-1121 Invalid symbol.``, ``-1120 Invalid interval.``, ``-1102`` missing parameter,
  ``-1130`` bad limit.

Private (``X-MBX-APIKEY`` header and ``timestamp`` + ``signature`` parameters required; any
signature is accepted; parameters come from the query string or a form body):

- ``GET /api/v3/account``: ``balances`` as ``{"asset", "free", "locked"}``, commission rates.
- ``POST /api/v3/order`` (``symbol, side, type, quantity | quoteOrderQty, price, timeInForce,
  newClientOrderId, newOrderRespType``): ``MARKET`` orders fill at once at the market price
  (the last close of the symbol's candles, or :meth:`set_price`), partially when
  ``market_fill_ratio < 1`` (the rest expires: status ``EXPIRED``, as Binance does);
  ``LIMIT`` orders fill at once at the market price when marketable, else rest (``NEW``) and
  lock their balance until :meth:`fill_order` or a cancel; ``LIMIT_MAKER`` that would match
  is refused (``-2010 Order would immediately match and take.``). Fees: ``fee_rate`` of what
  is received, in the received asset. A ``newClientOrderId`` used before is refused with
  ``-2010 Duplicate order sent.`` (real Binance only checks open orders; pass
  ``unique_client_ids="open"`` for that). Other refusals: ``-2010 Account has insufficient
  balance for requested action.``, ``-1013 Filter failure: LOT_SIZE`` / ``NOTIONAL``,
  ``-1121``, ``-1116 Invalid orderType.``, ``-1117 Invalid side.``, ``-1102``.
  Responses follow ``newOrderRespType`` (``ACK``, ``RESULT``, ``FULL``; default ``FULL``).
- ``GET /api/v3/order`` (``symbol`` + ``orderId`` or ``origClientOrderId``):
  the order, or ``-2013 Order does not exist.``
- ``DELETE /api/v3/order``: cancels an open order (status ``CANCELED``), or
  ``-2011 Unknown order sent.``
- ``GET /api/v3/openOrders[?symbol]``: ``NEW`` and ``PARTIALLY_FILLED`` orders.
- ``GET /api/v3/myTrades?symbol[&orderId][&startTime][&endTime][&fromId][&limit]``: fills.

Anything else answers 404 with ``{"code": -1000, "msg": "Unknown endpoint ..."}``.

ccxt maps these answers with its generic Binance table (the loopback URL is not
``api.binance.com``, so the spot-specific table is not used): ``-2010`` duplicate ->
``InvalidOrder``, insufficient balance -> ``InsufficientFunds``, ``-2011``/``-2013`` ->
``OrderNotFound``, ``-1121`` -> ``BadSymbol``, ``-1013`` -> ``BadRequest``, 429 ->
``DDoSProtection``, 5xx -> ``ExchangeNotAvailable``, a timeout -> ``RequestTimeout``.
Catch the ccxt base classes (``ExchangeError``, ``NetworkError``) where it matters.

Faults and the request log
--------------------------

:meth:`inject` queues :class:`Fault` objects for a path (``"/api/v3/klines"``) or a method
and path (``"POST /api/v3/order"``); each matching request consumes the next one
instead of (or, for :meth:`Fault.slow`, before) its normal answer:
``Fault.rate_limited(retry_after)`` (HTTP 429, ``Retry-After`` header, ``-1003``),
``Fault.server_error(status)`` (5xx, plain-text body), ``Fault.slow(seconds)`` (answers
late, for client timeouts), ``Fault.malformed()`` (HTTP 200, broken JSON),
``Fault.binance_error(code, msg, status=400)`` and ``Fault.disconnect()`` (closes the
connection without an answer). Every request, faulted or not, is appended to
:attr:`requests` as a :class:`RecordedRequest` (method, path, params, api key, status, fault).
"""

from __future__ import annotations

import itertools
import json
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast, overload
from urllib.parse import parse_qsl, urlsplit

import attrs

from trader.timeframes import timeframe_to_ms

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FakeBinance", "Fault", "RecordedRequest", "BinanceReject", "BINANCE_INTERVALS", "toml_for_ccxt"]

BINANCE_INTERVALS: dict[str, int] = {
    tf: timeframe_to_ms(tf)
    for tf in ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")
}
_USD_QUOTES = {"USDT", "USDC", "BUSD", "FDUSD", "TUSD", "USD", "DAI"}
_FAULT_KINDS = ("status", "slow", "malformed", "disconnect")


@attrs.frozen
class Fault:
    """One scripted misbehaviour; build with the class methods."""

    kind: str = attrs.field(validator=attrs.validators.in_(_FAULT_KINDS))
    status: int = 500
    body: str = ""
    retry_after: int | None = None
    delay_s: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))

    @classmethod
    def rate_limited(cls, retry_after: int = 1) -> Fault:
        body = json.dumps({"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE."})
        return cls("status", 429, body, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 503) -> Fault:
        return cls("status", status, "Service Unavailable")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls("slow", 200, delay_s=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        return cls("malformed", 200, '[[1502942400000, "4261.48", "4313.62"')

    @classmethod
    def binance_error(cls, code: int, msg: str, status: int = 400) -> Fault:
        return cls("status", status, json.dumps({"code": code, "msg": msg}))

    @classmethod
    def disconnect(cls) -> Fault:
        return cls("disconnect", 0)


@attrs.frozen
class RecordedRequest:
    method: str
    path: str
    params: Mapping[str, str]
    api_key: str | None
    status: int
    fault: str | None
    time_ms: int


class BinanceReject(Exception):
    """Raised inside the server to answer with a Binance error body."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def _now_ms() -> int:
    return int(time.time() * 1000)


def _fmt(value: float) -> str:
    return f"{value:.8f}"


def _market_id(symbol: str) -> str:
    return symbol.split(":")[0].replace("/", "")


def _infer_step(timestamps: Any) -> int:
    import numpy as np

    ts = np.asarray(timestamps, dtype="int64")
    if len(ts) < 2:
        return 3_600_000
    return int(np.diff(ts).min())


@attrs.define
class _Order:
    """An order as the fake exchange keeps it (fields in Binance's names)."""

    symbol: str
    unified: str
    base: str
    quote: str
    orderId: int
    clientOrderId: str
    price: float
    origQty: float
    executedQty: float
    origQuoteOrderQty: float
    cummulativeQuoteQty: float
    status: str
    timeInForce: str
    type: str
    side: str
    time: int
    updateTime: int
    fills: list[dict[str, Any]]

    def as_json(self, shape: str) -> dict[str, Any]:
        base = {
            "symbol": self.symbol,
            "orderId": self.orderId,
            "orderListId": -1,
            "clientOrderId": self.clientOrderId,
        }
        if shape == "ACK":
            return {**base, "transactTime": self.time}
        body = {
            **base,
            "price": _fmt(self.price),
            "origQty": _fmt(self.origQty),
            "executedQty": _fmt(self.executedQty),
            "origQuoteOrderQty": _fmt(self.origQuoteOrderQty),
            "cummulativeQuoteQty": _fmt(self.cummulativeQuoteQty),
            "status": self.status,
            "timeInForce": self.timeInForce,
            "type": self.type,
            "side": self.side,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        if shape in ("RESULT", "FULL"):
            body.update(transactTime=self.time, workingTime=self.time)
            if shape == "FULL":
                body["fills"] = [
                    {
                        "price": _fmt(t["price"]),
                        "qty": _fmt(t["qty"]),
                        "commission": _fmt(t["commission"]),
                        "commissionAsset": t["commissionAsset"],
                        "tradeId": t["id"],
                    }
                    for t in self.fills
                ]
            return body
        if shape == "GET":
            body.update(
                stopPrice=_fmt(0),
                icebergQty=_fmt(0),
                time=self.time,
                updateTime=self.updateTime,
                isWorking=True,
                workingTime=self.time,
            )
            return body
        raise ValueError(shape)


class FakeBinance:
    """A Binance spot REST server on 127.0.0.1 serving *candles* (``{symbol: frame}`` or one frame).

    :param candles: canonical candle frames by unified symbol (``"BTC/USDT"``); a single
        frame is served as *symbol*.
    :param symbols: extra listed symbols without candles.
    :param balances: starting free balances by asset.
    :param fee_rate: commission on each fill, charged in the received asset.
    :param market_fill_ratio: fraction of a market order's quantity that fills.
    :param unique_client_ids: ``"all"`` (every client id used before is a duplicate) or
        ``"open"`` (only ids of open orders, as real Binance does).
    """

    def __init__(
        self,
        candles: Mapping[str, pd.DataFrame] | pd.DataFrame | None = None,
        *,
        symbol: str = "BTC/USDT",
        symbols: tuple[str, ...] = (),
        balances: Mapping[str, float] | None = None,
        fee_rate: float = 0.001,
        market_fill_ratio: float = 1.0,
        step_size: float = 0.00001,
        min_notional: float | None = None,
        unique_client_ids: str = "all",
    ) -> None:
        import pandas as pd

        if isinstance(candles, pd.DataFrame):
            candles = {symbol: candles}
        self._candles: dict[str, pd.DataFrame] = {s: df.reset_index(drop=True) for s, df in (candles or {}).items()}
        self._symbols = list(dict.fromkeys([*self._candles, *symbols]))
        if not 0.0 <= market_fill_ratio <= 1.0:
            raise ValueError(f"market_fill_ratio must be within [0, 1], got {market_fill_ratio}")
        if unique_client_ids not in ("all", "open"):
            raise ValueError("unique_client_ids must be 'all' or 'open'")
        self.fee_rate = fee_rate
        self.market_fill_ratio = market_fill_ratio
        self.step_size = step_size
        self.min_notional = min_notional
        self.unique_client_ids = unique_client_ids
        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.orders: dict[int, _Order] = {}
        self.trades: list[dict[str, Any]] = []
        self._free: dict[str, float] = {k: float(v) for k, v in (balances or {}).items()}
        self._locked: dict[str, float] = {}
        self._prices: dict[str, float] = {}
        self._lags: dict[str, int] = {}
        self._client_ids: set[str] = set()
        self._faults: dict[str, deque[Fault]] = {}
        self._aggregated: dict[tuple[str, int], Any] = {}
        self._order_ids = itertools.count(1001)
        self._trade_ids = itertools.count(5001)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeBinance:
        handler = type("FakeBinanceHandler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-binance", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeBinance is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ccxt_options(self, **extra: Any) -> dict[str, Any]:
        """Constructor options for ``ccxt.binance`` (the ``[exchange.ccxt]`` table) that reach this server."""
        api = {name: f"{self.url}/api/v3" for name in ("public", "private")}
        api.update(v1=f"{self.url}/api/v1", sapi=f"{self.url}/sapi/v1", sapiV2=f"{self.url}/sapi/v2")
        options = {
            "urls": {"api": api},
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
                "fetchOpenOrders": {"warnWithoutSymbol": False},
            },
        }
        options.update(extra)
        return options

    # ------------------------------------------------------------------ scripting

    def inject(self, route: str, *faults: Fault) -> None:
        """Queue *faults* for ``"/path"`` (any method) or ``"METHOD /path"``; each request consumes one."""
        with self.lock:
            self._faults.setdefault(route, deque()).extend(faults)

    def pending_faults(self, route: str) -> int:
        with self.lock:
            return len(self._faults.get(route, ()))

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def set_candles(self, symbol: str, df: pd.DataFrame) -> None:
        with self.lock:
            self._candles[symbol] = df.reset_index(drop=True)
            if symbol not in self._symbols:
                self._symbols.append(symbol)
            self._aggregated = {k: v for k, v in self._aggregated.items() if k[0] != symbol}

    def set_price(self, symbol: str, price: float) -> None:
        """The price market orders for *symbol* fill at (default: its last candle close)."""
        with self.lock:
            self._prices[symbol] = float(price)

    def set_lag(self, symbol: str, seconds: float) -> None:
        """Publish *symbol*'s candles *seconds* after they close (0: at once, and the ones ahead too),
        as an exchange that is late with one market; klines leave out the ones not published yet."""
        with self.lock:
            self._lags[symbol] = int(seconds * 1000)

    def balance(self, asset: str) -> tuple[float, float]:
        """``(free, locked)``."""
        with self.lock:
            return self._free.get(asset, 0.0), self._locked.get(asset, 0.0)

    def fill_order(self, order_id: int, qty: float | None = None) -> None:
        """Fill (part of) a resting LIMIT order at its price, as a maker."""
        with self.lock:
            order = self.orders[order_id]
            if order.status not in ("NEW", "PARTIALLY_FILLED"):
                raise ValueError(f"order {order_id} is {order.status}")
            remaining = order.origQty - order.executedQty
            qty = remaining if qty is None else min(qty, remaining)
            self._unlock(order, qty)
            self._execute(order, qty, order.price, maker=True)
            order.status = "FILLED" if order.executedQty >= order.origQty - 1e-12 else "PARTIALLY_FILLED"

    # ------------------------------------------------------------------ markets

    def _market(self, market_id: str | None) -> str:
        for symbol in self._symbols:
            if _market_id(symbol) == market_id:
                return symbol
        if not market_id:
            raise BinanceReject(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        raise BinanceReject(-1121, "Invalid symbol.")

    def _last_price(self, symbol: str) -> float:
        if symbol in self._prices:
            return self._prices[symbol]
        df = self._candles.get(symbol)
        if df is None or len(df) == 0:
            raise BinanceReject(-1013, "Market is closed.")
        return float(df["close"].iloc[-1])

    def _filters(self, symbol: str) -> tuple[float, float]:
        """(tick size, min notional)."""
        quote = symbol.split("/")[1].split(":")[0]
        try:
            price = self._last_price(symbol)
        except BinanceReject:
            price = 1.0
        tick = 10.0 ** (math.floor(math.log10(price)) - 6) if price > 0 else 1e-8
        tick = max(tick, 1e-8)
        min_notional = self.min_notional if self.min_notional is not None else (5.0 if quote in _USD_QUOTES else 0.0001)
        return tick, min_notional

    def _exchange_info(self) -> dict[str, Any]:
        symbols = []
        for symbol in self._symbols:
            base, quote = symbol.split(":")[0].split("/")
            tick, min_notional = self._filters(symbol)
            symbols.append(
                {
                    "symbol": _market_id(symbol),
                    "status": "TRADING",
                    "baseAsset": base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "otoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": True,
                    "cancelReplaceAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {"filterType": "PRICE_FILTER", "minPrice": f"{tick:.8f}", "maxPrice": "1000000.00000000", "tickSize": f"{tick:.8f}"},
                        {"filterType": "LOT_SIZE", "minQty": _fmt(self.step_size), "maxQty": "9000.00000000", "stepSize": _fmt(self.step_size)},
                        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000", "stepSize": "0.00000000"},
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": _fmt(min_notional),
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": _now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _klines(self, params: Mapping[str, str]) -> list[list[Any]]:
        import numpy as np

        symbol = self._market(params.get("symbol"))
        interval = params.get("interval")
        if not interval:
            raise BinanceReject(-1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
        if interval not in BINANCE_INTERVALS:
            raise BinanceReject(-1120, "Invalid interval.")
        limit = _int_param(params, "limit", 500)
        if not 1 <= limit <= 1000:
            raise BinanceReject(-1130, "Data sent for parameter 'limit' is not valid.")
        frame = self._frame(symbol, BINANCE_INTERVALS[interval])
        if frame is None:
            return []
        ts, values, step = frame
        start = _int_param(params, "startTime", None)
        end = _int_param(params, "endTime", None)
        lo = int(np.searchsorted(ts, start, "left")) if start is not None else None
        hi = int(np.searchsorted(ts, end, "right")) if end is not None else len(ts)
        lag = self._lags.get(symbol, 0)
        if lag:  # published late: nothing that closed less than the lag ago
            hi = min(hi, int(np.searchsorted(ts, _now_ms() - lag - step, "right")))
        if lo is None:
            lo = max(0, hi - limit)
        hi = min(hi, lo + limit)
        rows = []
        for i in range(lo, hi):
            o, h, low, c, v = (float(x) for x in values[i])
            rows.append(
                [int(ts[i]), _fmt(o), _fmt(h), _fmt(low), _fmt(c), _fmt(v), int(ts[i]) + step - 1,
                 _fmt(v * c), 100 + (i % 50), _fmt(v / 2), _fmt(v * c / 2), "0"]
            )
        return rows

    def _frame(self, symbol: str, step: int) -> tuple[Any, Any, int] | None:
        df = self._candles.get(symbol)
        if df is None or len(df) == 0:
            return None
        key = (symbol, step)
        if key not in self._aggregated:
            base = _infer_step(df["timestamp"])
            if step == base:
                frame = df
            elif step % base == 0:
                bucket = df["timestamp"] // step * step
                frame = (
                    df.groupby(bucket, sort=True)
                    .agg(open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"), volume=("volume", "sum"))
                    .rename_axis("timestamp")
                    .reset_index()
                )
            else:
                frame = None
            self._aggregated[key] = (
                None if frame is None else (frame["timestamp"].to_numpy("int64"), frame[["open", "high", "low", "close", "volume"]].to_numpy("float64"), step)
            )
        return cast("tuple[Any, Any, int] | None", self._aggregated[key])

    # ------------------------------------------------------------------ account and orders

    def _account(self) -> dict[str, Any]:
        assets = sorted(set(self._free) | set(self._locked))
        rate = _fmt(self.fee_rate)
        return {
            "makerCommission": round(self.fee_rate * 10_000),
            "takerCommission": round(self.fee_rate * 10_000),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": rate, "taker": rate, "buyer": _fmt(0), "seller": _fmt(0)},
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": _now_ms(),
            "accountType": "SPOT",
            "balances": [{"asset": a, "free": _fmt(self._free.get(a, 0.0)), "locked": _fmt(self._locked.get(a, 0.0))} for a in assets],
            "permissions": ["SPOT"],
            "uid": 354937868,
        }

    def _find_order(self, params: Mapping[str, str], missing: tuple[int, str]) -> _Order:
        symbol = self._market(params.get("symbol"))
        order_id = _int_param(params, "orderId", None)
        client_id = params.get("origClientOrderId")
        if order_id is None and not client_id:
            raise BinanceReject(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        for order in reversed(list(self.orders.values())):
            if order.symbol != _market_id(symbol):
                continue
            if (order_id is not None and order.orderId == order_id) or (order_id is None and order.clientOrderId == client_id):
                return order
        raise BinanceReject(*missing)

    def _create_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        symbol = self._market(params.get("symbol"))
        base, quote = symbol.split(":")[0].split("/")
        side = (params.get("side") or "").upper()
        if side not in ("BUY", "SELL"):
            raise BinanceReject(-1117, "Invalid side.")
        kind = (params.get("type") or "").upper()
        if kind not in ("MARKET", "LIMIT", "LIMIT_MAKER"):
            raise BinanceReject(-1116, "Invalid orderType.")
        shape = (params.get("newOrderRespType") or "FULL").upper()
        if shape not in ("ACK", "RESULT", "FULL"):
            raise BinanceReject(-1102, "Invalid newOrderRespType.")
        client_id = params.get("newClientOrderId") or secrets.token_urlsafe(16)[:22]
        open_ids = {o.clientOrderId for o in self.orders.values() if o.status in ("NEW", "PARTIALLY_FILLED")}
        if client_id in (self._client_ids if self.unique_client_ids == "all" else open_ids):
            raise BinanceReject(-2010, "Duplicate order sent.")
        market_price = self._last_price(symbol)
        qty = _float_param(params, "quantity")
        quote_qty = _float_param(params, "quoteOrderQty")
        price = _float_param(params, "price")
        if kind == "MARKET":
            if qty is None:
                if quote_qty is None:
                    raise BinanceReject(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
                qty = math.floor(quote_qty / market_price / self.step_size) * self.step_size
            fill_price = market_price
        else:
            if qty is None:
                raise BinanceReject(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
            if price is None:
                raise BinanceReject(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
            if kind == "LIMIT" and not params.get("timeInForce"):
                raise BinanceReject(-1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
            fill_price = price
        tick, min_notional = self._filters(symbol)
        if qty <= 0 or qty + 1e-12 < self.step_size:
            raise BinanceReject(-1013, "Filter failure: LOT_SIZE")
        if qty * fill_price < min_notional:
            raise BinanceReject(-1013, "Filter failure: NOTIONAL")
        limit_price = market_price if price is None else price  # a MARKET order has none: marketable
        marketable = kind == "MARKET" or (side == "BUY" and limit_price >= market_price) or (side == "SELL" and limit_price <= market_price)
        if kind == "LIMIT_MAKER" and marketable:
            raise BinanceReject(-2010, "Order would immediately match and take.")
        needed_asset, needed = (quote, qty * (market_price if marketable else limit_price)) if side == "BUY" else (base, qty)
        if self._free.get(needed_asset, 0.0) + 1e-9 < needed:
            raise BinanceReject(-2010, "Account has insufficient balance for requested action.")
        now = _now_ms()
        order = _Order(
            symbol=_market_id(symbol),
            unified=symbol,
            base=base,
            quote=quote,
            orderId=next(self._order_ids),
            clientOrderId=client_id,
            price=price or 0.0,
            origQty=qty,
            executedQty=0.0,
            origQuoteOrderQty=quote_qty or 0.0,
            cummulativeQuoteQty=0.0,
            status="NEW",
            timeInForce=params.get("timeInForce") or "GTC",
            type=kind,
            side=side,
            time=now,
            updateTime=now,
            fills=[],
        )
        self.orders[order.orderId] = order
        self._client_ids.add(client_id)
        if kind == "MARKET":
            filled = qty if self.market_fill_ratio >= 1 else math.floor(qty * self.market_fill_ratio / self.step_size) * self.step_size
            if filled > 0:
                self._execute(order, filled, market_price, maker=False)
            order.status = "FILLED" if filled >= qty - 1e-12 else "EXPIRED"
        elif marketable:
            self._execute(order, qty, market_price, maker=False)
            order.status = "FILLED"
        else:
            self._lock_for(order)
        return order.as_json(shape)

    def _lock_for(self, order: _Order) -> None:
        asset, amount = (order.quote, order.origQty * order.price) if order.side == "BUY" else (order.base, order.origQty)
        self._free[asset] = self._free.get(asset, 0.0) - amount
        self._locked[asset] = self._locked.get(asset, 0.0) + amount

    def _unlock(self, order: _Order, qty: float) -> None:
        asset, amount = (order.quote, qty * order.price) if order.side == "BUY" else (order.base, qty)
        self._locked[asset] = self._locked.get(asset, 0.0) - amount
        self._free[asset] = self._free.get(asset, 0.0) + amount

    def _execute(self, order: _Order, qty: float, price: float, maker: bool) -> None:
        cost = qty * price
        if order.side == "BUY":
            commission, asset = qty * self.fee_rate, order.base
            self._free[order.quote] = self._free.get(order.quote, 0.0) - cost
            self._free[order.base] = self._free.get(order.base, 0.0) + qty - commission
        else:
            commission, asset = cost * self.fee_rate, order.quote
            self._free[order.base] = self._free.get(order.base, 0.0) - qty
            self._free[order.quote] = self._free.get(order.quote, 0.0) + cost - commission
        trade: dict[str, Any] = {
            "symbol": order.symbol,
            "id": next(self._trade_ids),
            "orderId": order.orderId,
            "orderListId": -1,
            "price": price,
            "qty": qty,
            "quoteQty": cost,
            "commission": commission,
            "commissionAsset": asset,
            "time": _now_ms(),
            "isBuyer": order.side == "BUY",
            "isMaker": maker,
            "isBestMatch": True,
        }
        self.trades.append(trade)
        order.fills.append(trade)
        order.executedQty += qty
        order.cummulativeQuoteQty += cost
        order.updateTime = trade["time"]

    def _cancel_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        order = self._find_order(params, (-2011, "Unknown order sent."))
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceReject(-2011, "Unknown order sent.")
        self._unlock(order, order.origQty - order.executedQty)
        order.status = "CANCELED"
        order.updateTime = _now_ms()
        body = order.as_json("RESULT")
        body.pop("workingTime", None)
        body["origClientOrderId"] = order.clientOrderId
        body["clientOrderId"] = params.get("newClientOrderId") or secrets.token_urlsafe(16)[:22]
        body["transactTime"] = order.updateTime
        return body

    def _open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        wanted = _market_id(self._market(params["symbol"])) if params.get("symbol") else None
        return [
            o.as_json("GET")
            for o in self.orders.values()
            if o.status in ("NEW", "PARTIALLY_FILLED") and (wanted is None or o.symbol == wanted)
        ]

    def _my_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        market_id = _market_id(self._market(params.get("symbol")))
        order_id = _int_param(params, "orderId", None)
        start = _int_param(params, "startTime", None)
        end = _int_param(params, "endTime", None)
        from_id = _int_param(params, "fromId", None)
        limit = _int_param(params, "limit", 500)
        if not 1 <= limit <= 1000:
            raise BinanceReject(-1130, "Data sent for parameter 'limit' is not valid.")
        rows = [
            t
            for t in self.trades
            if t["symbol"] == market_id
            and (order_id is None or t["orderId"] == order_id)
            and (start is None or t["time"] >= start)
            and (end is None or t["time"] <= end)
            and (from_id is None or t["id"] >= from_id)
        ][:limit]
        return [
            {**t, "price": _fmt(t["price"]), "qty": _fmt(t["qty"]), "quoteQty": _fmt(t["quoteQty"]), "commission": _fmt(t["commission"])}
            for t in rows
        ]

    # ------------------------------------------------------------------ dispatch

    def _route(self, method: str, path: str, params: Mapping[str, str], api_key: str | None) -> Any:
        public: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "/api/v3/ping"): lambda: {},
            ("GET", "/api/v3/time"): lambda: {"serverTime": _now_ms()},
            ("GET", "/api/v3/exchangeInfo"): self._exchange_info,
            ("GET", "/api/v3/klines"): lambda: self._klines(params),
        }
        private: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "/api/v3/account"): self._account,
            ("POST", "/api/v3/order"): lambda: self._create_order(params),
            ("GET", "/api/v3/order"): lambda: self._find_order(params, (-2013, "Order does not exist.")).as_json("GET"),
            ("DELETE", "/api/v3/order"): lambda: self._cancel_order(params),
            ("GET", "/api/v3/openOrders"): lambda: self._open_orders(params),
            ("GET", "/api/v3/myTrades"): lambda: self._my_trades(params),
        }
        key = (method, path)
        if key in public:
            return public[key]()
        if key in private:
            if not api_key:
                raise BinanceReject(-2014, "API-key format invalid.", status=401)
            for name in ("timestamp", "signature"):
                if not params.get(name):
                    raise BinanceReject(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
            return private[key]()
        raise BinanceReject(-1000, f"Unknown endpoint {method} {path}", status=404)

    def _next_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for route in (f"{method} {path}", path):
                queue = self._faults.get(route)
                if queue:
                    return queue.popleft()
        return None


@overload
def _int_param(params: Mapping[str, str], name: str, default: int) -> int: ...
@overload
def _int_param(params: Mapping[str, str], name: str, default: None) -> int | None: ...
def _int_param(params: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise BinanceReject(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.") from None


def _float_param(params: Mapping[str, str], name: str) -> float | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BinanceReject(-1100, f"Illegal characters found in parameter '{name}'.") from None
    if not math.isfinite(value):
        raise BinanceReject(-1100, f"Illegal characters found in parameter '{name}'.")
    return value


class _Handler(BaseHTTPRequestHandler):
    fake: FakeBinance
    server_version = "FakeBinance/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            body = self.rfile.read(length).decode("utf-8", "replace")
            if "json" in (self.headers.get("Content-Type") or ""):
                try:
                    params.update({k: str(v) for k, v in json.loads(body).items()})
                except (ValueError, AttributeError):
                    pass
            else:
                params.update(parse_qsl(body, keep_blank_values=True))
        api_key = self.headers.get("X-MBX-APIKEY")
        fault = fake._next_fault(method, parts.path)

        def record(status: int) -> None:
            with fake.lock:
                fake.requests.append(
                    RecordedRequest(method, parts.path, dict(params), api_key, status, fault.kind if fault else None, _now_ms())
                )

        if fault is not None and fault.kind == "disconnect":
            record(0)
            self.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            record(fault.status)
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            ctype = "application/json" if fault.body.startswith("{") else "text/plain"
            self._send(fault.status, fault.body, ctype, headers)
            return
        if fault is not None and fault.kind == "malformed":
            record(200)
            self._send(200, fault.body, "application/json")
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_s)
        try:
            with fake.lock:
                payload = fake._route(method, parts.path, params, api_key)
            status, text = 200, json.dumps(payload)
        except BinanceReject as exc:
            status, text = exc.status, json.dumps({"code": exc.code, "msg": exc.msg})
        record(status)
        self._send(status, text, "application/json")

    def _send(self, status: int, text: str, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        data = text.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type};charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout faults)
            pass


def toml_for_ccxt(options: Mapping[str, Any], exchange_id: str = "binance") -> str:
    """The ``trader.toml`` text with ``[exchange] id`` and ``[exchange.ccxt]`` set to *options*."""
    lines = ["[exchange]", f"id = {json.dumps(exchange_id)}", ""]

    def emit(prefix: str, table: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
        tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
        lines.append(f"[{prefix}]")
        for key, value in scalars.items():
            lines.append(f"{json.dumps(key)} = {_toml_value(value)}")
        lines.append("")
        for key, value in tables.items():
            emit(f"{prefix}.{json.dumps(key)}", value)

    emit("exchange.ccxt", options)
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")

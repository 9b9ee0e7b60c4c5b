"""``MemoryState``: the in-memory store backtests use (a :class:`~trader.engine.store.StateStore`, like ``TradingState``).

It keeps what a backtest reports on (the equity curve, orders, fills, risk events)
in Python lists and writes nothing to disk, so the decision step runs at full speed.
The decisions do not depend on the store: both stores only record what the shared
step (:class:`trader.engine.step.TradingSession`) decided.
"""

from __future__ import annotations

import types
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

from trader.engine.records import (
    ControlRequest,
    FillRecord,
    OrderRecord,
    OrderStatus,
    RiskEvent,
    SavedState,
    StepRecord,
)
from trader.errors import StateError
from trader.types import OrderRequest, Position, TradingStatus

__all__ = ["MemoryState"]


class MemoryState:
    """A store kept in memory. ``keep_steps=True`` also keeps every :class:`StepRecord`."""

    def __init__(self, namespace: str, *, keep_steps: bool = False, strategy_state: Mapping[str, Any] | None = None) -> None:
        self.namespace = namespace
        self.path = None
        self.keep_steps = keep_steps
        self.steps: list[StepRecord] = []
        self.timestamps: list[int] = []
        self.closes: list[float] = []
        self.equities: list[float] = []
        self.cash_values: list[float] = []
        self.position_values: list[float] = []
        self.orders_by_id: dict[str, OrderRecord] = {}
        self.fill_records: list[FillRecord] = []
        self.events: list[RiskEvent] = []
        self.latencies: list[float] = []
        #: Portfolio steps: ``(timestamp, symbol, close, quantity, position_value)`` per market that traded,
        #: kept as columns (a basket of 20 markets x 50,000 candles is a million rows: 36 bytes each, not 200).
        self._market_columns = MarketColumns()
        self._kv = dict(strategy_state or {})
        self._requests: list[ControlRequest] = []
        self._saved: SavedState | None = None
        self._streams: dict[tuple[str, str], int] = {}
        self._last_stream: tuple[str, str, int] | None = None
        self._last: StepRecord | None = None

    # ------------------------------------------------------------------ account

    @property
    def exists(self) -> bool:
        return self._saved is not None

    def initialize(self, cash: float, timestamp: int | None = None) -> None:
        if self._saved is not None:
            raise StateError(f"strategy {self.namespace!r} already has an account")
        self._saved = SavedState(initial_cash=cash, cash=cash, peak_equity=cash)

    def load(self, symbol: str | None = None, timeframe: str | None = None) -> SavedState | None:
        if self._saved is None:
            return None
        self._fold_stream()
        last = self._streams.get((symbol, timeframe)) if symbol is not None and timeframe is not None else None
        return self._saved.evolve(last_candle_ts=last)

    def _fold_stream(self) -> None:
        stream = self._last_stream
        if stream is not None:
            self._streams[stream[:2]] = stream[2]

    def commit_step(self, record: StepRecord) -> None:
        if record.skipped is None:
            self.timestamps.append(record.timestamp)
            self.closes.append(record.close)
            self.equities.append(record.equity)
            self.cash_values.append(record.cash)
            self.position_values.append(record.position_value)
            self._last_stream = (record.symbol, record.timeframe, record.timestamp)
            if record.markets:
                ts = record.timestamp
                for market in record.markets:
                    self._streams[(market.symbol, record.timeframe)] = ts
                self._market_columns.add(ts, record.markets)
        if record.orders:
            for order in record.orders:
                self.orders_by_id[order.order.client_order_id] = order
            self.fill_records.extend(record.fills)
        if record.events:
            self.events.extend(record.events)
        if record.inference_ms is not None:
            self.latencies.append(record.inference_ms)
        if self.keep_steps:
            self.steps.append(record)
        self._last = record

    def commit_quiet(
        self,
        timestamps: list[int],
        closes: list[float],
        equities: list[float],
        cash: float,
        position_values: list[float],
        last: StepRecord,
    ) -> None:
        """Commit a stretch of candles that changed only the marks (the backtest fast path).

        The same rows :meth:`commit_step` keeps for those candles; ``last`` is the step
        record of the stretch's final candle (the account :meth:`flush` folds in).
        """
        if self.keep_steps:
            raise StateError("a store that keeps every step record takes candles one by one")
        self.timestamps.extend(timestamps)
        self.closes.extend(closes)
        self.equities.extend(equities)
        self.cash_values.extend([cash] * len(timestamps))
        self.position_values.extend(position_values)
        self._last_stream = (last.symbol, last.timeframe, last.timestamp)
        self._last = last

    def commit_quiet_basket(
        self,
        timestamps: list[int],
        equities: list[float],
        cash: float,
        position_values: list[float],
        markets: Mapping[str, Any],
        last: StepRecord,
    ) -> None:
        """Commit a stretch of portfolio steps that changed only the marks (the basket fast path).

        ``markets`` holds the stretch's market rows as columns (``timestamp``, ``symbol``: an index
        into ``symbols``, ``close``, ``quantity``, ``position_value``, numpy arrays in step and
        symbol order) and ``last_ts``, each market's last traded time: the same rows and streams
        :meth:`commit_step` keeps for those steps. ``last`` is the record of the final step.
        """
        if self.keep_steps:
            raise StateError("a store that keeps every step record takes steps one by one")
        n = len(timestamps)
        self.timestamps.extend(timestamps)
        self.closes.extend([0.0] * n)
        self.equities.extend(equities)
        self.cash_values.extend([cash] * n)
        self.position_values.extend(position_values)
        for symbol, ts in markets["last_ts"].items():
            self._streams[(symbol, last.timeframe)] = ts
        self._market_columns.extend(markets)
        self._last_stream = (last.symbol, last.timeframe, last.timestamp)
        self._last = last

    def flush(self) -> None:
        """Fold the last step into :meth:`load`'s answer (a backtest never needs it mid-run)."""
        self._fold_stream()
        record = self._last
        if record is None or self._saved is None:
            return
        positions = dict(self._saved.positions)
        marks = dict(self._saved.marks)
        for sym, figures in record.positions.items():
            positions[sym] = Position(sym, figures.quantity, figures.avg_price, figures.realized_pnl)
            marks[sym] = figures.mark
        account = record.account
        self._saved = self._saved.evolve(
            cash=record.cash,
            positions=positions,
            marks=marks,
            fees_paid=account.fees_paid,
            realized_pnl=account.realized_pnl,
            peak_equity=account.peak_equity,
            day=account.day,
            day_start_equity=account.day_start_equity,
            status=account.status,
            status_reason=account.status_reason,
            status_since=account.status_since,
            consecutive_losses=account.consecutive_losses,
            model_failures=account.model_failures,
        )

    # ------------------------------------------------------------------ orders

    def record_order_intent(self, order: OrderRequest) -> None:
        self.orders_by_id[order.client_order_id] = OrderRecord(order, OrderStatus.SUBMITTING)

    def find_order(self, client_order_id: str) -> OrderRecord | None:
        return self.orders_by_id.get(client_order_id)

    def orders(self, statuses: Iterable[str] | None = None) -> list[OrderRecord]:
        wanted = set(statuses) if statuses is not None else None
        return [o for o in self.orders_by_id.values() if wanted is None or o.status in wanted]

    def fill_trade_ids(self, client_order_id: str) -> set[str]:
        return {fr.fill.trade_id for fr in self.fill_records if fr.fill.client_order_id == client_order_id}

    def fills(self) -> list[dict[str, Any]]:
        return [
            {
                "client_order_id": f.client_order_id,
                "trade_id": f.trade_id,
                "symbol": f.symbol,
                "side": f.side.value,
                "quantity": f.quantity,
                "price": f.price,
                "fee": f.fee,
                "timestamp": f.timestamp,
                "realized_pnl": fr.realized_pnl,
            }
            for fr in self.fill_records
            for f in (fr.fill,)
        ]

    # ------------------------------------------------------------------ the strategy's own state and control

    def strategy_state(self) -> Mapping[str, Any]:
        return types.MappingProxyType(dict(self._kv))

    def set_strategy_value(self, key: str, value: Any) -> None:
        self._kv[key] = value

    def request(self, command: str, note: str = "") -> None:
        self._requests.append(ControlRequest(len(self._requests) + 1, command, note))

    def pending_requests(self) -> list[ControlRequest]:
        return list(self._requests)

    def resume(self, timestamp: int, note: str = "", request_ids: Iterable[int] = ()) -> SavedState:
        self.flush()
        if self._saved is None:
            raise StateError(f"strategy {self.namespace!r} has no account yet")
        applied = set(request_ids)
        self._requests = [r for r in self._requests if r.id not in applied and r.command != "resume"]
        equity = self._saved.equity()
        self._saved = self._saved.evolve(
            status=TradingStatus.ACTIVE,
            status_reason="resumed",
            status_since=timestamp,
            consecutive_losses=0,
            model_failures=0,
            peak_equity=equity,
            day_start_equity=equity,
            error_times=(),
        )
        self.events.append(RiskEvent(timestamp, "control", "RESUMED", "resumed", status=TradingStatus.ACTIVE))
        return self._saved

    def halt(self, timestamp: int, note: str = "", request_ids: Iterable[int] = ()) -> SavedState:
        self.flush()
        if self._saved is None:
            raise StateError(f"strategy {self.namespace!r} has no account yet")
        applied = set(request_ids)
        self._requests = [r for r in self._requests if r.id not in applied and r.command != "halt"]
        message = "halted by the operator" + (f": {note}" if note else "")
        if self._saved.status is not TradingStatus.HALTED:
            self._saved = self._saved.evolve(status=TradingStatus.HALTED, status_reason=f"OPERATOR_HALT: {message}",
                                             status_since=timestamp)
        self.events.append(RiskEvent(timestamp, "status", "OPERATOR_HALT", message, status=TradingStatus.HALTED))
        return self._saved

    def ledger_problem(self) -> str | None:
        """Always ``None``: the account never leaves this process, so nothing can change it behind the session."""
        return None

    def set_durable(self, durable: bool) -> None:
        """Nothing to do: a store in memory survives no crash, durable or not."""

    def summary(self) -> dict[str, Any]:
        """The account, risk status and counts, with ``trader status``'s keys (``path`` is ``None``)."""
        from trader.engine.summary import percentile
        from trader.evaluation.performance import max_drawdown
        from trader.timeframes import format_utc

        self.flush()
        out: dict[str, Any] = {"strategy": self.namespace, "path": None}
        state = self._saved
        if state is None:
            out["account"] = None
            return out
        positions = []
        unrealized = 0.0
        for sym, pos in state.positions.items():
            mark = state.marks.get(sym, pos.avg_price)
            upnl = pos.quantity * (mark - pos.avg_price)
            unrealized += upnl
            positions.append({"symbol": sym, "quantity": pos.quantity, "avg_price": pos.avg_price, "mark": mark,
                              "value": pos.quantity * mark, "unrealized_pnl": upnl, "realized_pnl": pos.realized_pnl})
        equity = state.equity()
        orders: dict[str, int] = {}
        for order in self.orders_by_id.values():
            orders[order.status] = orders.get(order.status, 0) + 1
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event.code] = counts.get(event.code, 0) + 1
        latencies = sorted(self.latencies[-1000:])
        out.update({
            "account": {
                "initial_cash": state.initial_cash, "cash": state.cash, "equity": equity,
                "pnl": equity - state.initial_cash,
                "return": equity / state.initial_cash - 1 if state.initial_cash else 0.0,
                "realized_pnl": state.realized_pnl, "unrealized_pnl": unrealized, "fees_paid": state.fees_paid,
                "peak_equity": state.peak_equity, "max_drawdown": max_drawdown(self.equities)[0], "candles": len(self.equities),
            },
            "positions": positions,
            "risk": {
                "status": state.status.value, "reason": state.status_reason, "since": state.status_since,
                "consecutive_losses": state.consecutive_losses, "model_failures": state.model_failures,
                "errors_since_resume": len(state.error_times), "pending_requests": [r.command for r in self._requests],
            },
            "ledger": {"consistent": True, "problem": None, "cash_flows": 1},
            "streams": [{"symbol": s, "timeframe": tf, "last_candle_ts": ts, "last_candle": format_utc(ts)} for (s, tf), ts in sorted(self._streams.items())],
            "orders": orders,
            "fills": len(self.fill_records),
            "latency": {"samples": len(latencies), "p50_ms": percentile(latencies, 0.5),
                        "p99_ms": percentile(latencies, 0.99), "max_ms": latencies[-1] if latencies else None},
            "event_counts": dict(sorted(counts.items())),
            "recent_events": self.risk_events(limit=10),
        })
        return out

    def market_history(self, symbol: str | None = None) -> list[tuple[int, str, float, float, float]]:
        """Portfolio steps' rows ``(timestamp, symbol, close, quantity, position_value)``, oldest first."""
        return [row for row in self._market_columns.rows() if symbol is None or row[1] == symbol]

    def market_columns(self) -> dict[str, Any]:
        """:meth:`market_history` as numpy columns: ``timestamp``, ``symbol`` (an index into
        ``symbols``), ``close``, ``quantity``, ``position_value``, and ``symbols``. The columns are
        read-only views of the store's own (no copy of a million rows): take them after the last
        commit; a commit while one is still referenced raises ``BufferError``."""
        return self._market_columns.arrays()

    def equity_curve(self, symbol: str | None = None) -> list[tuple[int, float]]:
        return list(zip(self.timestamps, self.equities, strict=True))

    def risk_events(self, kind: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        rows = [
            {
                "timestamp": e.timestamp,
                "kind": e.kind,
                "code": e.code,
                "message": e.message,
                "client_order_id": e.client_order_id,
                "approved": e.approved,
                "status": e.status.value if e.status else None,
            }
            for e in self.events
            if kind is None or e.kind == kind
        ]
        return rows[-limit:] if limit else rows

    def close(self) -> None:
        self.flush()


class MarketColumns:
    """A portfolio's market rows in typed columns: one row per market and step it traded."""

    __slots__ = ("symbols", "_index", "timestamp", "symbol", "close", "quantity", "position_value")

    def __init__(self) -> None:
        self.symbols: list[str] = []
        self._index: dict[str, int] = {}
        self.timestamp = array("q")
        self.symbol = array("i")
        self.close = array("d")
        self.quantity = array("d")
        self.position_value = array("d")

    def _code(self, symbol: str) -> int:
        code = self._index.get(symbol)
        if code is None:
            code = self._index[symbol] = len(self.symbols)
            self.symbols.append(symbol)
        return code

    def add(self, timestamp: int, markets: Iterable[Any]) -> None:
        for market in markets:
            self.timestamp.append(timestamp)
            self.symbol.append(self._code(market.symbol))
            self.close.append(market.close)
            self.quantity.append(market.quantity)
            self.position_value.append(market.position_value)

    def extend(self, columns: Mapping[str, Any]) -> None:
        import numpy as np

        codes = np.asarray([self._code(s) for s in columns["symbols"]], dtype=np.int32)
        self.timestamp.frombytes(np.ascontiguousarray(columns["timestamp"], dtype=np.int64).tobytes())
        self.symbol.frombytes(codes[np.asarray(columns["symbol"], dtype=np.intp)].tobytes())
        for name in ("close", "quantity", "position_value"):
            getattr(self, name).frombytes(np.ascontiguousarray(columns[name], dtype=np.float64).tobytes())

    def rows(self) -> list[tuple[int, str, float, float, float]]:
        symbols = self.symbols
        return [(ts, symbols[code], close, quantity, value) for ts, code, close, quantity, value in
                zip(self.timestamp, self.symbol, self.close, self.quantity, self.position_value, strict=True)]

    def arrays(self) -> dict[str, Any]:
        import numpy as np

        def view(column: array, dtype: Any) -> Any:
            out = np.frombuffer(column, dtype=dtype) if len(column) else np.empty(0, dtype=dtype)
            out.flags.writeable = False
            return out

        return {"symbols": tuple(self.symbols), "timestamp": view(self.timestamp, np.int64),
                "symbol": view(self.symbol, np.int32), "close": view(self.close, np.float64),
                "quantity": view(self.quantity, np.float64), "position_value": view(self.position_value, np.float64)}

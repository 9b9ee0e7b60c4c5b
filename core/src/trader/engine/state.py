"""``TradingState``: one strategy namespace's SQLite store (the core's ``trader_state_store``).

One database file per namespace, ``TRADER_HOME/strategies/NAME/state.sqlite``, in WAL
mode. Each decision step is committed in ONE transaction (:meth:`TradingState.commit_step`):
its orders, fills, the position and cash changes, the equity snapshot, risk events,
the risk status with its reason, the last processed candle and the latency sample. A
process killed at any instant leaves the store at the end of the last committed step.

The store reaches only its own namespace: it records its name on creation and refuses
to be opened under another one.

Tables: ``meta``, ``account`` (one row: cash, fees, peak and day-start equity, risk
status and reason, breaker counters), ``positions``, ``streams`` (last processed
candle per symbol and timeframe), ``orders`` (deterministic client order ids, unique),
``fills``, ``equity``, ``risk_events``, ``strategy_kv`` (the strategy's own state,
JSON values, shown to it read-only as ``SignalRequest.state``), ``latency`` and
``control`` (requests such as ``trader resume`` for a running process).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trader.engine.records import OrderRecord, OrderStatus, RiskEvent, SavedState, StepRecord
from trader.errors import StateError
from trader.types import OrderRequest, Position, TradingStatus

__all__ = ["TradingState", "STATE_FILENAME", "SCHEMA_VERSION", "state_path"]

STATE_FILENAME = "state.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS account (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    initial_cash REAL NOT NULL CHECK (initial_cash >= 0),
    cash REAL NOT NULL CHECK (cash >= 0),
    fees_paid REAL NOT NULL DEFAULT 0,
    realized_pnl REAL NOT NULL DEFAULT 0,
    peak_equity REAL NOT NULL DEFAULT 0,
    day INTEGER,
    day_start_equity REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'reducing', 'halted')),
    status_reason TEXT NOT NULL DEFAULT '',
    status_since INTEGER,
    consecutive_losses INTEGER NOT NULL DEFAULT 0,
    model_failures INTEGER NOT NULL DEFAULT 0,
    errors_cleared_at INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    symbol TEXT PRIMARY KEY,
    quantity REAL NOT NULL CHECK (quantity >= 0),
    avg_price REAL NOT NULL CHECK (avg_price >= 0),
    realized_pnl REAL NOT NULL DEFAULT 0,
    last_price REAL
);
CREATE TABLE IF NOT EXISTS streams (
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    last_candle_ts INTEGER NOT NULL,
    PRIMARY KEY (symbol, timeframe)
);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity REAL NOT NULL CHECK (quantity > 0),
    price REAL NOT NULL,
    order_type TEXT NOT NULL,
    candle_ts INTEGER NOT NULL,
    status TEXT NOT NULL,
    filled_quantity REAL NOT NULL DEFAULT 0,
    exchange_order_id TEXT,
    message TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL REFERENCES orders (client_order_id),
    trade_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity REAL NOT NULL CHECK (quantity > 0),
    price REAL NOT NULL CHECK (price > 0),
    fee REAL NOT NULL CHECK (fee >= 0),
    timestamp INTEGER NOT NULL,
    realized_pnl REAL NOT NULL DEFAULT 0,
    UNIQUE (client_order_id, trade_id)
);
CREATE TABLE IF NOT EXISTS equity (
    timestamp INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    close REAL NOT NULL,
    cash REAL NOT NULL,
    position_value REAL NOT NULL,
    equity REAL NOT NULL,
    PRIMARY KEY (timestamp, symbol)
);
CREATE TABLE IF NOT EXISTS risk_events (
    id INTEGER PRIMARY KEY,
    timestamp INTEGER NOT NULL,
    kind TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    client_order_id TEXT,
    approved INTEGER,
    status TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS risk_events_kind ON risk_events (kind, timestamp);
CREATE TABLE IF NOT EXISTS strategy_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS latency (
    id INTEGER PRIMARY KEY,
    timestamp INTEGER NOT NULL,
    inference_ms REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS control (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    requested_at INTEGER NOT NULL,
    applied_at INTEGER
);
"""


def state_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / STATE_FILENAME


def _now_ms() -> int:
    return int(time.time() * 1000)


class TradingState:
    """The SQLite store of one strategy namespace. Open with :meth:`open`; close when done.

    ``durable=True`` makes every commit fsync (``synchronous=FULL``, for live trading);
    the default ``synchronous=NORMAL`` in WAL mode survives any process crash and loses
    at most the last commits on a power failure.
    """

    def __init__(self, namespace: str, path: Path, connection: sqlite3.Connection) -> None:
        self.namespace = namespace
        self.path = path
        self._db = connection

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        namespace: str,
        directory: str | os.PathLike,
        *,
        durable: bool = False,
        create: bool = True,
        readonly: bool = False,
    ) -> TradingState:
        """Open (or create) the store of ``namespace`` in ``directory``."""
        if not isinstance(namespace, str) or not namespace.strip():
            raise StateError(f"invalid state namespace {namespace!r}")
        directory = Path(directory)
        path = state_path(directory)
        if not path.exists() and (readonly or not create):
            raise StateError(f"no state for strategy {namespace!r} at {path} (it has never run)")
        try:
            if readonly:
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=10)
            else:
                directory.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(path, isolation_level=None, timeout=10)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=10000")
            if not readonly:
                db.executescript(_SCHEMA)
                cls._claim(db, namespace, path)
            else:
                cls._check_namespace(db, namespace, path)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state store {path} is unusable: {exc}") from None
        return cls(namespace, path, db)

    @staticmethod
    def _claim(db: sqlite3.Connection, namespace: str, path: Path) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'namespace'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('namespace', ?), ('schema_version', ?)", (namespace, str(SCHEMA_VERSION)))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        TradingState._check_namespace(db, namespace, path)

    @staticmethod
    def _check_namespace(db: sqlite3.Connection, namespace: str, path: Path) -> None:
        row = db.execute("SELECT value FROM meta WHERE key = 'namespace'").fetchone()
        if row is None or row[0] != namespace:
            owner = row[0] if row else "nobody"
            raise StateError(f"state store {path} belongs to {owner!r}, not {namespace!r}")
        version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is None or int(version[0]) > SCHEMA_VERSION:
            raise StateError(f"state store {path} has schema version {version and version[0]}; this trader reads {SCHEMA_VERSION}")

    def set_durable(self, durable: bool) -> None:
        """``synchronous=FULL`` (fsync at every commit, live trading) or ``NORMAL``."""
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TradingState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self):
        return _Transaction(self._db)

    # ------------------------------------------------------------------ account

    @property
    def exists(self) -> bool:
        """Whether the account has been initialised (a first run happened)."""
        return self._db.execute("SELECT 1 FROM account WHERE id = 1").fetchone() is not None

    def initialize(self, cash: float, timestamp: int | None = None) -> None:
        """Create the account with ``cash``; refuses to overwrite an existing one."""
        now = _now_ms()
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM account WHERE id = 1").fetchone():
                raise StateError(f"strategy {self.namespace!r} already has an account in {self.path}")
            db.execute(
                "INSERT INTO account (id, initial_cash, cash, peak_equity, created_at, updated_at) VALUES (1, ?, ?, ?, ?, ?)",
                (cash, cash, cash, now, now),
            )

    def load(self, symbol: str | None = None, timeframe: str | None = None) -> SavedState | None:
        """The committed account, or ``None`` before :meth:`initialize`."""
        db = self._db
        row = db.execute(
            "SELECT initial_cash, cash, fees_paid, realized_pnl, peak_equity, day, day_start_equity, status, "
            "status_reason, status_since, consecutive_losses, model_failures, errors_cleared_at FROM account WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        positions: dict[str, Position] = {}
        marks: dict[str, float] = {}
        for sym, quantity, avg_price, realized, last_price in db.execute(
            "SELECT symbol, quantity, avg_price, realized_pnl, last_price FROM positions ORDER BY symbol"
        ):
            positions[sym] = Position(sym, quantity, avg_price, realized)
            if last_price is not None:
                marks[sym] = last_price
        errors = tuple(
            ts
            for (ts,) in db.execute(
                "SELECT timestamp FROM risk_events WHERE kind = 'error' AND id > ? ORDER BY id DESC LIMIT 1000",
                (row[12],),
            )
        )[::-1]
        last_ts = None
        if symbol is not None and timeframe is not None:
            stream = db.execute("SELECT last_candle_ts FROM streams WHERE symbol = ? AND timeframe = ?", (symbol, timeframe)).fetchone()
            last_ts = stream[0] if stream else None
        return SavedState(
            initial_cash=row[0],
            cash=row[1],
            positions=positions,
            marks=marks,
            fees_paid=row[2],
            realized_pnl=row[3],
            peak_equity=row[4],
            day=row[5],
            day_start_equity=row[6],
            status=TradingStatus(row[7]),
            status_reason=row[8],
            status_since=row[9],
            consecutive_losses=row[10],
            model_failures=row[11],
            error_times=errors,
            last_candle_ts=last_ts,
        )

    # ------------------------------------------------------------------ the step

    def commit_step(self, record: StepRecord) -> None:
        """Write everything ``record`` changed in one transaction."""
        now = _now_ms()
        (fees_paid, realized_pnl, peak_equity, day, day_start_equity, status, status_reason, status_since,
         consecutive_losses, model_failures) = record.account
        with self._transaction() as db:
            for order in record.orders:
                self._upsert_order(db, order, now)
            if record.fills:
                db.executemany(
                    "INSERT INTO fills (client_order_id, trade_id, symbol, side, quantity, price, fee, timestamp, realized_pnl) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (f.client_order_id, f.trade_id, f.symbol, f.side.value, f.quantity, f.price, f.fee, f.timestamp, fr.realized_pnl)
                        for fr in record.fills
                        for f in (fr.fill,)
                    ],
                )
            db.execute(
                "UPDATE account SET cash = ?, fees_paid = ?, realized_pnl = ?, peak_equity = ?, day = ?, "
                "day_start_equity = ?, status = ?, status_reason = ?, status_since = ?, consecutive_losses = ?, "
                "model_failures = ?, updated_at = ? WHERE id = 1",
                (
                    record.cash,
                    fees_paid,
                    realized_pnl,
                    peak_equity,
                    day,
                    day_start_equity,
                    status.value,
                    status_reason,
                    status_since,
                    consecutive_losses,
                    model_failures,
                    now,
                ),
            )
            if record.positions:
                db.executemany(
                    "INSERT INTO positions (symbol, quantity, avg_price, realized_pnl, last_price) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (symbol) DO UPDATE SET quantity = excluded.quantity, avg_price = excluded.avg_price, "
                    "realized_pnl = excluded.realized_pnl, last_price = excluded.last_price",
                    [(sym, *values) for sym, values in record.positions.items()],
                )
            if record.skipped is None:
                db.execute(
                    "INSERT INTO streams (symbol, timeframe, last_candle_ts) VALUES (?, ?, ?) "
                    "ON CONFLICT (symbol, timeframe) DO UPDATE SET last_candle_ts = excluded.last_candle_ts",
                    (record.symbol, record.timeframe, record.timestamp),
                )
                db.execute(
                    "INSERT INTO equity (timestamp, symbol, close, cash, position_value, equity) VALUES (?, ?, ?, ?, ?, ?)",
                    (record.timestamp, record.symbol, record.close, record.cash, record.position_value, record.equity),
                )
            if record.events:
                self._insert_events(db, record.events, now)
            if record.inference_ms is not None:
                db.execute("INSERT INTO latency (timestamp, inference_ms) VALUES (?, ?)", (record.timestamp, record.inference_ms))

    @staticmethod
    def _upsert_order(db: sqlite3.Connection, record: OrderRecord, now: int) -> None:
        o = record.order
        db.execute(
            "INSERT INTO orders (client_order_id, symbol, side, quantity, price, order_type, candle_ts, status, "
            "filled_quantity, exchange_order_id, message, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (client_order_id) DO UPDATE SET status = excluded.status, filled_quantity = excluded.filled_quantity, "
            "exchange_order_id = COALESCE(excluded.exchange_order_id, orders.exchange_order_id), message = excluded.message, "
            "updated_at = excluded.updated_at",
            (
                o.client_order_id,
                o.symbol,
                o.side.value,
                o.quantity,
                o.price,
                o.order_type.value,
                o.timestamp,
                record.status,
                record.filled_quantity,
                record.exchange_order_id,
                record.message,
                now,
                now,
            ),
        )

    @staticmethod
    def _insert_events(db: sqlite3.Connection, events: Iterable[RiskEvent], now: int) -> None:
        db.executemany(
            "INSERT INTO risk_events (timestamp, kind, code, message, client_order_id, approved, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    e.timestamp,
                    e.kind,
                    e.code,
                    e.message,
                    e.client_order_id,
                    None if e.approved is None else int(e.approved),
                    e.status.value if e.status is not None else None,
                    now,
                )
                for e in events
            ],
        )

    # ------------------------------------------------------------------ orders

    def record_order_intent(self, order: OrderRequest) -> None:
        """Commit ``order`` as ``submitting`` BEFORE it is sent to an external broker.

        A restart that finds it still ``submitting`` asks the exchange by its client
        order id instead of sending it again.
        """
        with self._transaction() as db:
            self._upsert_order(db, OrderRecord(order, OrderStatus.SUBMITTING), _now_ms())

    def find_order(self, client_order_id: str) -> OrderRecord | None:
        row = self._db.execute(
            "SELECT client_order_id, symbol, side, quantity, price, order_type, candle_ts, status, filled_quantity, "
            "exchange_order_id, message FROM orders WHERE client_order_id = ?",
            (client_order_id,),
        ).fetchone()
        return None if row is None else self._order_from_row(row)

    def orders(self, statuses: Iterable[str] | None = None) -> list[OrderRecord]:
        sql = (
            "SELECT client_order_id, symbol, side, quantity, price, order_type, candle_ts, status, filled_quantity, "
            "exchange_order_id, message FROM orders"
        )
        params: tuple[Any, ...] = ()
        if statuses is not None:
            statuses = tuple(statuses)
            sql += f" WHERE status IN ({', '.join('?' for _ in statuses)})"
            params = statuses
        return [self._order_from_row(row) for row in self._db.execute(sql + " ORDER BY candle_ts, client_order_id", params)]

    def _order_from_row(self, row: tuple) -> OrderRecord:
        order = OrderRequest(
            strategy=self.namespace,
            symbol=row[1],
            side=row[2],
            quantity=row[3],
            price=row[4],
            client_order_id=row[0],
            timestamp=row[6],
            order_type=row[5],
        )
        return OrderRecord(order, row[7], row[8], row[9], row[10])

    def fill_trade_ids(self, client_order_id: str) -> set[str]:
        return {tid for (tid,) in self._db.execute("SELECT trade_id FROM fills WHERE client_order_id = ?", (client_order_id,))}

    def fills(self) -> list[dict[str, Any]]:
        cols = ("client_order_id", "trade_id", "symbol", "side", "quantity", "price", "fee", "timestamp", "realized_pnl")
        return [dict(zip(cols, row, strict=True)) for row in self._db.execute(f"SELECT {', '.join(cols)} FROM fills ORDER BY id")]

    # ------------------------------------------------------------------ the strategy's own state

    def strategy_state(self) -> Mapping[str, Any]:
        """The key-value table, read-only (what ``SignalRequest.state`` shows the strategy)."""
        return types.MappingProxyType({k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM strategy_kv")})

    def set_strategy_value(self, key: str, value: Any) -> None:
        try:
            encoded = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StateError(f"strategy state {key!r} must be JSON (finite numbers, strings, lists, maps): {exc}") from None
        with self._transaction() as db:
            db.execute("INSERT INTO strategy_kv VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, encoded))

    # ------------------------------------------------------------------ control (trader resume)

    def request(self, command: str, note: str = "") -> None:
        """Ask the running process for ``command`` (applied at its next candle)."""
        with self._transaction() as db:
            db.execute("INSERT INTO control (command, note, requested_at) VALUES (?, ?, ?)", (command, note, _now_ms()))

    def pending_requests(self) -> list[tuple[int, str, str]]:
        return list(self._db.execute("SELECT id, command, note FROM control WHERE applied_at IS NULL ORDER BY id"))

    def resume(self, timestamp: int, note: str = "", request_ids: Iterable[int] = ()) -> SavedState:
        """Clear a halt (or the daily reduce-only state) and the breaker counters, in one transaction.

        The drawdown peak and the day's starting equity restart from the current equity,
        so the breakers measure from the resume.
        """
        now = _now_ms()
        with self._transaction() as db:
            state = self.load()
            if state is None:
                raise StateError(f"strategy {self.namespace!r} has no account yet in {self.path}")
            equity = state.equity()
            last_id = db.execute("SELECT COALESCE(MAX(id), 0) FROM risk_events").fetchone()[0]
            message = f"resumed from {state.status.value}" + (f" ({state.status_reason})" if state.status_reason else "")
            if note:
                message += f": {note}"
            db.execute(
                "UPDATE account SET status = 'active', status_reason = ?, status_since = ?, consecutive_losses = 0, "
                "model_failures = 0, peak_equity = ?, day_start_equity = ?, errors_cleared_at = ?, updated_at = ? WHERE id = 1",
                (message, timestamp, equity, equity, last_id, now),
            )
            self._insert_events(db, [RiskEvent(timestamp, "control", "RESUMED", message, status=TradingStatus.ACTIVE)], now)
            ids = list(request_ids)
            if ids:
                db.executemany("UPDATE control SET applied_at = ? WHERE id = ?", [(now, i) for i in ids])
            db.execute("UPDATE control SET applied_at = ? WHERE applied_at IS NULL AND command = 'resume'", (now,))
        loaded = self.load()
        assert loaded is not None
        return loaded

    # ------------------------------------------------------------------ reading for `trader status`

    def summary(self, latency_samples: int = 1000, events: int = 10) -> dict[str, Any]:
        """Everything ``trader status`` shows, as plain JSON-ready data."""
        from trader.engine.summary import summarize_store

        return summarize_store(self, self._db, latency_samples=latency_samples, events=events)

    def equity_curve(self, symbol: str | None = None) -> list[tuple[int, float]]:
        if symbol is None:
            return list(self._db.execute("SELECT timestamp, equity FROM equity ORDER BY timestamp, symbol"))
        return list(self._db.execute("SELECT timestamp, equity FROM equity WHERE symbol = ? ORDER BY timestamp", (symbol,)))

    def risk_events(self, kind: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        cols = ("id", "timestamp", "kind", "code", "message", "client_order_id", "approved", "status")
        sql = f"SELECT {', '.join(cols)} FROM risk_events"
        params: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            params = (kind,)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [dict(zip(cols, row, strict=True)) for row in self._db.execute(sql, params)][::-1]

    def integrity_check(self) -> str:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0]


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception (KeyboardInterrupt too)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
            except sqlite3.DatabaseError as error:
                self.db.execute("ROLLBACK")
                raise StateError(f"could not commit the state: {error}") from None
        else:
            self.db.execute("ROLLBACK")

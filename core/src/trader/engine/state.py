"""``TradingState``: one strategy namespace's SQLite store (the core's ``trader_state_store``).

One database file per namespace, ``TRADER_HOME/strategies/NAME/state.sqlite``, in WAL
mode. Each decision step is committed in ONE transaction (:meth:`TradingState.commit_step`):
its orders, fills, the position and cash changes, the equity snapshot, risk events,
the risk status with its reason, the last processed candle and the latency sample. A
process killed at any instant leaves the store at the end of the last committed step.

The store reaches only its own namespace: it records its name on creation and refuses
to be opened under another one (:func:`check_store` holds any store a plugin returns to
that). A new file is built aside and linked into place complete, so ``state.sqlite``
exists only with its tables and namespace; an existing file that is not a sound store
(empty, truncated, junk, a symbolic link, tables or namespace missing, fills without an
account) is refused with one line and left as it is, never replaced by a new account.

On opening, the account is checked against its ledger (:mod:`trader.engine.ledger`:
the cash flows and every fill, booked again); a mismatch halts the strategy with
``STATE_INCONSISTENT``, and :meth:`TradingState.resume` refuses while it persists.

Tables: ``meta``, ``account`` (one row: cash, fees, peak and day-start equity, risk
status and reason, breaker counters), ``positions``, ``streams`` (last processed
candle per symbol and timeframe), ``orders`` (deterministic client order ids, unique),
``fills``, ``cash_flows`` (the initial deposit and any later adjustment), ``equity``,
``risk_events``, ``strategy_kv`` (the strategy's own state, JSON values, shown to it
read-only as ``SignalRequest.state``), ``latency`` and ``control`` (requests such as
``trader resume`` and ``trader halt`` for a running process). Older files are read as they are and migrated
(:mod:`trader.engine.schema`: an explicit list of migrations) when opened for writing.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import os
import sqlite3
import time
import types
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from trader.engine import state_file
from trader.engine.ledger import CashFlow, LedgerFill, ledger_differences, replay_ledger
from trader.engine.records import ControlRequest, OrderRecord, OrderStatus, RiskEvent, SavedState, StepRecord
from trader.engine.schema import SCHEMA_VERSION, TABLES, migrate, new_file_script
from trader.engine.store import StateStore, missing_members
from trader.errors import StateError
from trader.types import OrderRequest, Position, TradingStatus

__all__ = [
    "TradingState",
    "STATE_FILENAME",
    "SCHEMA_VERSION",
    "STATE_INCONSISTENT",
    "OPERATOR_HALT",
    "StateMissingError",
    "check_store",
    "reading_only",
    "resume_refusal",
    "state_path",
]

log = logging.getLogger("trader.engine")

STATE_FILENAME = "state.sqlite"
#: The reason code of a halt for an account that does not match its ledger.
STATE_INCONSISTENT = "STATE_INCONSISTENT"
#: The reason code of a halt asked for by an operator (``trader halt``, the dashboard's kill switch).
OPERATOR_HALT = "OPERATOR_HALT"

_READ_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("trader_state_read_only", default=False)


class StateMissingError(StateError):
    """The strategy has no state file (it has never run)."""


@contextlib.contextmanager
def reading_only() -> Iterator[None]:
    """Within it, :meth:`TradingState.open` writes nothing and creates nothing (``trader status``)."""
    token = _READ_ONLY.set(True)
    try:
        yield
    finally:
        _READ_ONLY.reset(token)

def state_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / STATE_FILENAME


def _now_ms() -> int:
    return int(time.time() * 1000)


def resume_refusal(namespace: str, path: Path, problem: str) -> str:
    """Why ``trader resume`` refuses an account that does not match its ledger, and what to do."""
    return (
        f"{namespace} cannot resume: its account does not match its ledger ({problem}); restore a backup of "
        f"{path}, or move {path.parent} away to start a fresh account"
    )


def _origin(store: object, hook: Any) -> str:
    """``a module.Class`` [``from the trader_state_store of plugin 'x'``]: where a store came from."""
    origin = f"a {type(store).__module__}.{type(store).__qualname__}"
    if hook is not None:
        plugins = sorted({impl.plugin_name for impl in hook.get_hookimpls()} - {"core_state"})
        if plugins:
            origin += f" from the trader_state_store of plugin {', '.join(repr(p) for p in plugins)}"
    return origin


def check_store(store: Any, namespace: str, directory: str | os.PathLike, *, hook: Any = None) -> StateStore:
    """``store`` if it is a :class:`~trader.engine.store.StateStore` of ``namespace``; :class:`StateError` otherwise.

    What a ``trader_state_store`` hook returned must have every member of the protocol (the
    refusal names the missing ones) and say ``store.namespace == namespace``; a core
    :class:`TradingState` must also be a file that records ``namespace``. With ``hook`` (the
    hook caller), the refusal names the plugins that implement it besides the core.
    """
    if store is None:
        raise StateError(f"no plugin opened a state store for {namespace!r}")
    missing = missing_members(store)
    own = None if "namespace" in missing else store.namespace
    recorded = store.recorded_namespace() if isinstance(store, TradingState) else own
    if missing and own in (namespace, None):
        with contextlib.suppress(Exception):
            store.close()
        raise StateError(
            f"the state store for {namespace!r} ({Path(directory)}) is {_origin(store, hook)}, which lacks "
            f"{', '.join(missing)} of the StateStore protocol (trader.engine.StateStore); refused"
        )
    if own == namespace and recorded == namespace:
        return store
    with contextlib.suppress(Exception):
        store.close()
    found = own if own != namespace else recorded
    raise StateError(
        f"the state store for {namespace!r} ({Path(directory)}) is {_origin(store, hook)}, which belongs to namespace "
        f"{found!r}; refused (a strategy's store reaches only its own namespace)"
    )


class TradingState:
    """The SQLite store of one strategy namespace. Open with :meth:`open`; close when done.

    ``durable=True`` makes every commit fsync (``synchronous=FULL``, for live trading);
    the default ``synchronous=NORMAL`` in WAL mode survives any process crash and loses
    at most the last commits on a power failure.
    """

    def __init__(self, namespace: str, path: Path, connection: sqlite3.Connection, schema_version: int = SCHEMA_VERSION) -> None:
        self.namespace = namespace
        self.path = path
        self.schema_version = schema_version
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
        readonly: bool | None = None,
    ) -> TradingState:
        """Open the store of ``namespace`` in ``directory``, creating it only where no state file exists.

        ``readonly`` (default: inside :func:`reading_only`) writes nothing and creates
        nothing: no migration, no halt for an inconsistent ledger (``trader status``).
        Raises :class:`StateMissingError` when there is no file and none may be created,
        :class:`~trader.errors.StateError` (one line) when the file is not a sound store.
        Opened for writing, an account that does not match its ledger is halted with
        ``STATE_INCONSISTENT`` (:meth:`ledger_problem`).
        """
        if readonly is None:
            readonly = _READ_ONLY.get()
        if not isinstance(namespace, str) or not namespace.strip():
            raise StateError(f"invalid state namespace {namespace!r}")
        directory = Path(directory)
        path = state_path(directory)
        if not state_file.inspect_file(path):
            if readonly or not create:
                raise StateMissingError(f"no state for strategy {namespace!r} at {path} (it has never run)")
            state_file.create(path, namespace, new_file_script(), SCHEMA_VERSION)
            state_file.inspect_file(path)
        db = None
        try:
            db = state_file.connect(path, readonly=readonly)
            version = state_file.validate(db, namespace, path, TABLES, SCHEMA_VERSION)
            db.execute("PRAGMA foreign_keys=ON")
            if not readonly:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                if version < SCHEMA_VERSION:
                    version = migrate(db, version, _Transaction)
            store = cls(namespace, path, db, version)
            if not readonly:
                store._halt_if_inconsistent()
        except sqlite3.DatabaseError as exc:
            if db is not None:
                db.close()
            raise StateError(f"state file {path} is unreadable: {' '.join(str(exc).split())}") from None
        except BaseException:
            if db is not None:
                db.close()
            raise
        return store

    def recorded_namespace(self) -> str | None:
        """The namespace the file itself records (what :func:`check_store` compares)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'namespace'").fetchone()
        return None if row is None else row[0]

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
        """Create the account with ``cash`` and its ledger's initial deposit; refuses to overwrite an existing one."""
        now = _now_ms()
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM account WHERE id = 1").fetchone():
                raise StateError(f"strategy {self.namespace!r} already has an account in {self.path}")
            db.execute(
                "INSERT INTO account (id, initial_cash, cash, peak_equity, created_at, updated_at) VALUES (1, ?, ?, ?, ?, ?)",
                (cash, cash, cash, now, now),
            )
            db.execute(
                "INSERT INTO cash_flows (timestamp, amount, kind, note, after_fill) VALUES (?, ?, 'initial', 'initial cash', 0)",
                (now if timestamp is None else timestamp, cash),
            )

    # ------------------------------------------------------------------ the ledger

    def record_cash_flow(self, amount: float, kind: str, note: str = "", timestamp: int | None = None) -> float:
        """Add ``amount`` (negative: take it out) to the cash, with its ledger row, in one transaction.

        The legitimate way to change cash other than by a fill (e.g. a reconciliation
        adjustment), so the ledger check keeps holding. The drawdown peak and the day's
        starting equity move by the same amount, so the breakers measure trading, not
        transfers. Call it while no session trades on this store: a session reads the
        account when it starts. Returns the new cash.
        """
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
            raise StateError(f"a cash flow must be a finite number, got {amount!r}")
        if not isinstance(kind, str) or not kind.strip() or kind == "initial":
            raise StateError(f"invalid cash flow kind {kind!r} (the initial deposit is written by initialize)")
        now = _now_ms()
        with self._transaction() as db:
            row = db.execute("SELECT cash FROM account WHERE id = 1").fetchone()
            if row is None:
                raise StateError(f"strategy {self.namespace!r} has no account yet in {self.path}")
            cash = row[0] + amount
            if cash < 0:
                raise StateError(f"a cash flow of {amount:,.2f} would leave {cash:,.2f} in {self.namespace}'s account")
            (after,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM fills").fetchone()
            db.execute(
                "INSERT INTO cash_flows (timestamp, amount, kind, note, after_fill) VALUES (?, ?, ?, ?, ?)",
                (now if timestamp is None else timestamp, float(amount), kind, note, after),
            )
            db.execute(
                "UPDATE account SET cash = ?, peak_equity = MAX(0, peak_equity + ?), "
                "day_start_equity = MAX(0, day_start_equity + ?), updated_at = ? WHERE id = 1",
                (cash, float(amount), float(amount), now),
            )
        return cash

    def cash_flows(self) -> list[dict[str, Any]]:
        """The ledger's cash flows, oldest first (schema 1 files: the initial cash)."""
        cols = ("id", "timestamp", "amount", "kind", "note", "after_fill")
        if self.schema_version >= 2:
            return [dict(zip(cols, row, strict=True)) for row in self._db.execute(f"SELECT {', '.join(cols)} FROM cash_flows ORDER BY id")]
        row = self._db.execute("SELECT created_at, initial_cash FROM account WHERE id = 1").fetchone()
        return [] if row is None else [dict(zip(cols, (0, row[0], row[1], "initial", "initial cash", 0), strict=True))]

    def ledger_problem(self) -> str | None:
        """``None`` when the account matches its ledger (cash flows and fills booked again), else what differs."""
        if self._db.in_transaction:
            return self._ledger_problem()
        self._db.execute("BEGIN")  # one snapshot, even while another process commits
        try:
            return self._ledger_problem()
        finally:
            self._db.execute("COMMIT")

    def _ledger_problem(self) -> str | None:
        db = self._db
        row = db.execute("SELECT initial_cash, cash, fees_paid, realized_pnl FROM account WHERE id = 1").fetchone()
        if row is None:
            return None
        flows = [CashFlow(f["amount"], f["kind"], f["after_fill"]) for f in self.cash_flows()]
        fills = [
            LedgerFill(*r)
            for r in db.execute("SELECT id, client_order_id, symbol, side, quantity, price, fee FROM fills ORDER BY id")
        ]
        try:
            ledger = replay_ledger(flows, fills)
        except StateError as exc:
            return f"the ledger is impossible: {exc}"
        positions = {sym: (q, a, r) for sym, q, a, r in db.execute("SELECT symbol, quantity, avg_price, realized_pnl FROM positions")}
        differences = ledger_differences(
            ledger, initial_cash=row[0], cash=row[1], fees_paid=row[2], realized_pnl=row[3], positions=positions, fills=len(fills)
        )
        return "; ".join(differences) or None

    def _halt_if_inconsistent(self) -> None:
        """Halt with ``STATE_INCONSISTENT`` (status, reason and a risk event) when the ledger disagrees."""
        problem = self.ledger_problem()
        if problem is None:
            return
        reason = f"{STATE_INCONSISTENT}: {problem}"
        log.error("%s: %s (%s)", self.namespace, reason, self.path)
        now = _now_ms()
        with self._transaction() as db:
            row = db.execute("SELECT status, status_reason FROM account WHERE id = 1").fetchone()
            if row == (TradingStatus.HALTED.value, reason):
                return
            db.execute(
                "UPDATE account SET status = 'halted', status_reason = ?, status_since = ?, updated_at = ? WHERE id = 1",
                (reason, now, now),
            )
            self._insert_events(db, [RiskEvent(now, "status", STATE_INCONSISTENT, problem, status=TradingStatus.HALTED)], now)

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
        account = record.account
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
                    account.fees_paid,
                    account.realized_pnl,
                    account.peak_equity,
                    account.day,
                    account.day_start_equity,
                    account.status.value,
                    account.status_reason,
                    account.status_since,
                    account.consecutive_losses,
                    account.model_failures,
                    now,
                ),
            )
            if record.positions:
                db.executemany(
                    "INSERT INTO positions (symbol, quantity, avg_price, realized_pnl, last_price) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (symbol) DO UPDATE SET quantity = excluded.quantity, avg_price = excluded.avg_price, "
                    "realized_pnl = excluded.realized_pnl, last_price = excluded.last_price",
                    [(sym, p.quantity, p.avg_price, p.realized_pnl, p.mark) for sym, p in record.positions.items()],
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
            if record.markets:
                db.executemany(
                    "INSERT INTO streams (symbol, timeframe, last_candle_ts) VALUES (?, ?, ?) "
                    "ON CONFLICT (symbol, timeframe) DO UPDATE SET last_candle_ts = excluded.last_candle_ts",
                    [(m.symbol, record.timeframe, record.timestamp) for m in record.markets],
                )
                db.executemany(
                    "INSERT INTO market_equity (timestamp, symbol, close, quantity, position_value) VALUES (?, ?, ?, ?, ?)",
                    [(record.timestamp, m.symbol, m.close, m.quantity, m.position_value) for m in record.markets],
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

    def pending_requests(self) -> list[ControlRequest]:
        return [ControlRequest(*row) for row in self._db.execute("SELECT id, command, note FROM control WHERE applied_at IS NULL ORDER BY id")]

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
            problem = self._ledger_problem()
            if problem is not None:
                raise StateError(resume_refusal(self.namespace, self.path, problem))
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
            # a resume made here and now supersedes every request still pending (the last word wins);
            # one applied by the running process leaves a halt asked for after it pending
            db.execute("UPDATE control SET applied_at = ? WHERE applied_at IS NULL AND (command = 'resume' OR ?)",
                       (now, not ids))
        loaded = self.load()
        assert loaded is not None
        return loaded

    def halt(self, timestamp: int, note: str = "", request_ids: Iterable[int] = ()) -> SavedState:
        """Halt the strategy (``OPERATOR_HALT``), recorded with ``note``, in one transaction.

        Never refused, whatever the account's state. A strategy already halted keeps its
        reason (the event records the operator's request). ``request_ids`` are the control
        requests this applies; a halt made here and now (none given) also supersedes every
        request still pending.
        """
        now = _now_ms()
        with self._transaction() as db:
            state = self.load()
            if state is None:
                raise StateError(f"strategy {self.namespace!r} has no account yet in {self.path}")
            message = "halted by the operator" + (f": {note}" if note else "")
            if state.status is TradingStatus.HALTED:
                message += f" (already halted: {state.status_reason})" if state.status_reason else " (already halted)"
            else:
                db.execute(
                    "UPDATE account SET status = 'halted', status_reason = ?, status_since = ?, updated_at = ? WHERE id = 1",
                    (f"{OPERATOR_HALT}: {message}", timestamp, now),
                )
            self._insert_events(db, [RiskEvent(timestamp, "status", OPERATOR_HALT, message, status=TradingStatus.HALTED)], now)
            ids = list(request_ids)
            if ids:
                db.executemany("UPDATE control SET applied_at = ? WHERE id = ?", [(now, i) for i in ids])
            db.execute("UPDATE control SET applied_at = ? WHERE applied_at IS NULL AND (command = 'halt' OR ?)",
                       (now, not ids))
        loaded = self.load()
        assert loaded is not None
        return loaded

    # ------------------------------------------------------------------ reading for `trader status`

    def summary(self, latency_samples: int = 1000, events: int = 10) -> dict[str, Any]:
        """Everything ``trader status`` shows, as plain JSON-ready data."""
        from trader.engine.summary import summarize_store

        return summarize_store(self, self._db, latency_samples=latency_samples, events=events)

    def market_history(self, symbol: str | None = None) -> list[tuple[int, str, float, float, float]]:
        """Portfolio steps' rows ``(timestamp, symbol, close, quantity, position_value)``, oldest first."""
        sql = "SELECT timestamp, symbol, close, quantity, position_value FROM market_equity"
        if symbol is None:
            return list(self._db.execute(sql + " ORDER BY timestamp, symbol"))
        return list(self._db.execute(sql + " WHERE symbol = ? ORDER BY timestamp", (symbol,)))

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


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


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
            except sqlite3.Error as error:
                self._rollback()
                raise StateError(f"could not commit the state: {_one_line(error)}") from None
            return
        self._rollback()
        if isinstance(exc, sqlite3.Error):  # e.g. a full disk: the real error, not the rollback's
            raise StateError(f"could not write the state: {_one_line(exc)}") from exc

    def _rollback(self) -> None:
        """Roll back what is left of the transaction; SQLite may already have (a full disk does)."""
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

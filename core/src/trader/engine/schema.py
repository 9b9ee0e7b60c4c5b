"""The state file's schema: the tables of schema 1 and an explicit list of migrations after it.

A file records its version in ``meta.schema_version``. A new file gets the schema 1
tables and every migration's tables at once (:func:`new_file_script`); an older file is
brought up to date by :func:`migrate`, one migration per transaction, each with its
version bump, so a crash leaves the file at one version or the next, never between. A
migration never drops a row: it adds tables or columns and fills them from what the file
holds. To change the schema, append a :class:`Migration`; ``SCHEMA_VERSION`` follows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

from attrs import frozen

__all__ = ["Migration", "MIGRATIONS", "SCHEMA_VERSION", "TABLES", "new_file_script", "migrate"]

#: Schema 1, as the first release created it.
SCHEMA_1 = """
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

_TABLES_1 = frozenset(
    {"meta", "account", "positions", "streams", "orders", "fills", "equity", "risk_events", "strategy_kv", "latency", "control"}
)


@frozen
class Migration:
    """One schema step: ``ddl`` creates what version ``version`` adds (new files run it too),
    ``backfill`` fills it from an older file's rows (only :func:`migrate` runs it)."""

    version: int
    what: str
    ddl: str
    tables: frozenset[str] = frozenset()
    backfill: tuple[str, ...] = ()


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=2,
        what="the ledger's cash flows, starting with the initial deposit",
        # ``after_fill`` is the last fill id when the flow was booked
        ddl="""
CREATE TABLE IF NOT EXISTS cash_flows (
    id INTEGER PRIMARY KEY,
    timestamp INTEGER NOT NULL,
    amount REAL NOT NULL,
    kind TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    after_fill INTEGER NOT NULL DEFAULT 0
);
""",
        tables=frozenset({"cash_flows"}),
        backfill=(
            "INSERT INTO cash_flows (timestamp, amount, kind, note, after_fill) "
            "SELECT created_at, initial_cash, 'initial', 'initial cash (recorded by the migration from schema 1)', 0 "
            "FROM account WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM cash_flows)",
        ),
    ),
    Migration(
        version=3,
        what="per-market rows of portfolio steps (one account trading several markets)",
        ddl="""
CREATE TABLE IF NOT EXISTS market_equity (
    timestamp INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    close REAL NOT NULL,
    quantity REAL NOT NULL,
    position_value REAL NOT NULL,
    PRIMARY KEY (timestamp, symbol)
);
""",
        tables=frozenset({"market_equity"}),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version if MIGRATIONS else 1


def _tables_by_version() -> dict[int, frozenset[str]]:
    tables = {1: _TABLES_1}
    for migration in MIGRATIONS:
        tables[migration.version] = tables[migration.version - 1] | migration.tables
    return tables


#: The tables each schema version must have.
TABLES = _tables_by_version()


def new_file_script() -> str:
    """The SQL that builds a file of the newest version."""
    return SCHEMA_1 + "".join(m.ddl for m in MIGRATIONS)


def migrate(
    db: sqlite3.Connection,
    version: int,
    transaction: Callable[[sqlite3.Connection], AbstractContextManager[sqlite3.Connection]],
) -> int:
    """Bring a file of schema ``version`` to :data:`SCHEMA_VERSION`; returns the new version."""
    for migration in MIGRATIONS:
        if migration.version <= version:
            continue
        with transaction(db):
            for statement in _statements(migration.ddl):  # not executescript: it would commit mid-transaction
                db.execute(statement)
            for statement in migration.backfill:
                db.execute(statement)
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(migration.version),))
        version = migration.version
    return version


def _statements(script: str) -> list[str]:
    """The statements of a DDL script (no semicolons inside them)."""
    return [s.strip() for s in script.split(";") if s.strip()]

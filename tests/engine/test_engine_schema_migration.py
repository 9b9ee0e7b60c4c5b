"""A schema 1 state file made by the previous release (tests/engine/data/README.md) is upgraded without loss."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from cli_runner import run_trader

from trader.engine import TradingState
from trader.engine.schema import MIGRATIONS, SCHEMA_VERSION, TABLES
from trader.engine.state import reading_only

FIXTURE = Path(__file__).parent / "data" / "state_schema1.sqlite"
NAME = "buy_and_hold"


def _copy(home: Path) -> Path:
    folder = home / "strategies" / NAME
    folder.mkdir(parents=True)
    shutil.copyfile(FIXTURE, folder / "state.sqlite")
    return folder


def _read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection; the committed fixture is opened immutable, so not even WAL files appear beside it."""
    mode = "immutable=1" if path == FIXTURE else "mode=ro"
    return sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True)


def _tables(path: Path, names) -> dict[str, list]:
    db = _read_only(path)
    try:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in sorted(names)}
    finally:
        db.close()


def _schema(path: Path) -> dict[str, str]:
    db = _read_only(path)
    try:
        rows = db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    finally:
        db.close()
    return {name: " ".join(sql.replace("IF NOT EXISTS ", "").split()) for name, sql in rows}


def test_the_fixture_is_a_schema_1_file():
    assert _tables(FIXTURE, ["meta"])["meta"] == [("namespace", NAME), ("schema_version", "1")]
    assert "cash_flows" not in _schema(FIXTURE)


def test_a_schema_1_file_is_upgraded_without_loss(tmp_path):
    folder = _copy(tmp_path)
    path = folder / "state.sqlite"
    before = _tables(path, TABLES[1])
    with reading_only(), TradingState.open(NAME, folder) as old:  # read as it is
        saved, kv, pending = old.load("BTC/USDT", "1h"), dict(old.strategy_state()), old.pending_requests()
        assert old.schema_version == 1 and old.ledger_problem() is None
    assert _tables(path, TABLES[1]) == before

    with TradingState.open(NAME, folder) as store:  # opened for writing: migrated
        assert store.schema_version == SCHEMA_VERSION
        assert store.load("BTC/USDT", "1h") == saved and saved.positions["BTC/USDT"].quantity > 0
        assert dict(store.strategy_state()) == kv == {"seen": [1, 2.5, "x"]}
        assert store.pending_requests() == pending and pending[0].note == "made by the schema 1 release"
        assert store.ledger_problem() is None
        (flow,) = store.cash_flows()
        assert (flow["kind"], flow["amount"]) == ("initial", saved.initial_cash)
    after = _tables(path, TABLES[SCHEMA_VERSION])
    before["meta"] = [("namespace", NAME), ("schema_version", str(SCHEMA_VERSION))]
    assert {t: after[t] for t in before} == before  # every row of every schema 1 table kept
    # a migrated file has exactly the schema of a new one
    TradingState.open("fresh", tmp_path / "fresh").close()
    assert _schema(path) == _schema(tmp_path / "fresh" / "state.sqlite")


def test_every_migration_names_its_version_and_tables():
    assert [m.version for m in MIGRATIONS] == list(range(2, SCHEMA_VERSION + 1))
    assert all(m.what and (m.tables or m.ddl) for m in MIGRATIONS)


@pytest.mark.slow
def test_trader_run_continues_a_schema_1_account(tmp_path):
    home = tmp_path / "home"
    folder = _copy(home)
    with reading_only(), TradingState.open(NAME, folder) as old:
        saved = old.load("BTC/USDT", "1h")
        candles = len(old.equity_curve())
    untouched = (folder / "state.sqlite").read_bytes()
    status = run_trader("status", "--plugin", NAME, home=home)
    assert status.returncode == 0, status.stderr
    assert (folder / "state.sqlite").read_bytes() == untouched  # status writes nothing, migrates nothing
    result = run_trader("run", "--plugin", NAME, "--max-candles", "5", home=home)
    assert result.returncode == 0, result.stderr
    assert "5 new candles" in result.stdout
    with TradingState.open(NAME, folder) as store:
        assert store.schema_version == SCHEMA_VERSION and store.ledger_problem() is None
        assert len(store.equity_curve()) == candles + 5
        now = store.load("BTC/USDT", "1h")
        assert now.initial_cash == saved.initial_cash and now.positions["BTC/USDT"].quantity >= saved.positions["BTC/USDT"].quantity

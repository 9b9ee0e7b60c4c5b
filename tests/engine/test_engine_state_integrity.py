"""State integrity on real SQLite files: the ledger check, unsound files refused untouched, the lock, check_store."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

import pytest
from engine_testkit import BUY, HOLD, HOUR, SELL, T0, make_session
from hypothesis import given, settings
from hypothesis import strategies as st

from trader import Signal, SignalAction
from trader.engine import PaperBroker, TradingState
from trader.engine.ledger import CashFlow, LedgerFill, replay_ledger
from trader.engine.lock import StrategyLock, lock_holder
from trader.engine.state import SCHEMA_VERSION, STATE_INCONSISTENT, StateMissingError, check_store, reading_only
from trader.errors import LockedError, StateError
from trader.plugins import TraderPluginManager
from trader.types import TradingStatus

NAME = "buy_and_hold"
_MANAGER: list[TraderPluginManager] = []


def _manager() -> TraderPluginManager:
    if not _MANAGER:
        _MANAGER.append(TraderPluginManager(load_entrypoints=False, disabled=()))
    return _MANAGER[0]


def _traded_store(root: Path) -> Path:
    """A closed store with an account, two buys and a sell; returns its strategy folder."""
    session = make_session(_manager(), root)
    for i, (close, signal) in enumerate([(100.0, BUY), (101.0, HOLD), (103.0, SELL), (99.0, BUY), (98.0, HOLD)]):
        session.step(T0 + i * HOUR, close, signal)
    session.store.close()
    return root / NAME


def _sql(folder: Path, *statements: str) -> None:
    db = sqlite3.connect(folder / "state.sqlite")
    for sql in statements:
        db.execute(sql)
    db.commit()
    db.close()


def _open_fails(folder: Path, *fragments: str, **kwargs) -> str:
    with pytest.raises(StateError) as info:
        TradingState.open(NAME, folder, **kwargs).close()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --------------------------------------------------------------------------- the ledger check


def test_a_traded_account_matches_its_ledger_and_a_forged_cash_halts_it(tmp_path):
    folder = _traded_store(tmp_path)
    with TradingState.open(NAME, folder) as store:
        assert store.ledger_problem() is None
        assert [f["kind"] for f in store.cash_flows()] == ["initial"]
        cash = store.load().cash
    _sql(folder, "UPDATE account SET cash = 1000000")
    with reading_only(), TradingState.open(NAME, folder) as store:  # status: sees it, writes nothing
        assert store.ledger_problem().startswith(f"cash 1,000,000.00 in the account but {cash:,.2f} from the ledger")
        assert store.load().status is TradingStatus.ACTIVE
    with TradingState.open(NAME, folder) as store:
        saved = store.load()
        assert saved.status is TradingStatus.HALTED
        assert saved.status_reason.startswith(f"{STATE_INCONSISTENT}: cash 1,000,000.00 in the account")
        assert "(initial 10,000.00, 3 fills)" in saved.status_reason
        assert [e["code"] for e in store.risk_events(kind="status")][-1] == STATE_INCONSISTENT
        with pytest.raises(StateError, match="cannot resume: its account does not match its ledger"):
            store.resume(T0)
        assert store.load().status is TradingStatus.HALTED
    with TradingState.open(NAME, folder) as store:  # reopened: halted once, not an event per open
        assert [e["code"] for e in store.risk_events()].count(STATE_INCONSISTENT) == 1


@pytest.mark.parametrize(
    ("forgery", "expected"),
    [
        ("UPDATE positions SET quantity = quantity * 10", "BTC/USDT position"),
        ("DELETE FROM positions", "BTC/USDT position 0 in the account"),
        ("INSERT INTO positions (symbol, quantity, avg_price) VALUES ('ETH/USDT', 50, 2000)", "ETH/USDT position 50"),
        ("UPDATE account SET fees_paid = 0", "fees 0.00 in the account"),
        ("UPDATE account SET realized_pnl = 500", "realized PnL 500.00 in the account"),
        ("UPDATE positions SET avg_price = avg_price * 2", "BTC/USDT average price"),
        ("UPDATE account SET initial_cash = 50000", "initial cash 50,000.00 in the account but 10,000.00"),
        ("DELETE FROM fills WHERE id = (SELECT MAX(id) FROM fills)", "from the ledger (initial 10,000.00, 2 fills)"),
        ("UPDATE fills SET quantity = 1000 WHERE side = 'sell'", "the ledger is impossible: fill #2"),
    ],
)
def test_every_forgery_of_the_account_or_a_fill_halts_the_session(tmp_path, forgery, expected):
    folder = _traded_store(tmp_path)
    _sql(folder, forgery)
    session = make_session(_manager(), tmp_path)  # what trader run does: open the store, restore the account
    try:
        assert session.status is TradingStatus.HALTED
        assert session.status_reason.startswith(STATE_INCONSISTENT) and expected in session.status_reason
        record = session.step(T0 + 10 * HOUR, 90.0, BUY)
        assert record.orders == () and record.note == "TRADING_HALTED"  # a halt trades nothing
    finally:
        session.store.close()


def test_a_cash_flow_keeps_the_ledger_consistent_and_a_new_session_trades_on_it(tmp_path):
    folder = _traded_store(tmp_path)
    with TradingState.open(NAME, folder) as store:
        saved = store.load()
        before = saved.cash
        assert store.record_cash_flow(-before / 2, "adjustment", "exchange balance") == pytest.approx(before / 2)
        assert store.ledger_problem() is None
        after = store.load()  # the breakers measure trading, not transfers
        assert after.peak_equity == pytest.approx(saved.peak_equity - before / 2)
        assert after.day_start_equity == pytest.approx(saved.day_start_equity - before / 2)
        with pytest.raises(StateError, match="would leave"):
            store.record_cash_flow(-1e9, "adjustment")
        with pytest.raises(StateError, match="initial deposit"):
            store.record_cash_flow(10.0, "initial")
    session = make_session(_manager(), tmp_path)
    session.step(T0 + 10 * HOUR, 97.0, BUY)
    session.store.close()
    with TradingState.open(NAME, folder) as store:
        assert store.ledger_problem() is None and store.load().status is TradingStatus.ACTIVE
        assert [f["kind"] for f in store.cash_flows()] == ["initial", "adjustment"]


def test_float_rounding_is_tolerated_and_a_cent_is_not(tmp_path):
    folder = _traded_store(tmp_path)
    _sql(folder, "UPDATE account SET cash = cash + 1e-7, fees_paid = fees_paid * (1 + 1e-12)")
    with reading_only(), TradingState.open(NAME, folder) as store:
        assert store.ledger_problem() is None
    _sql(folder, "UPDATE account SET cash = cash + 0.01")
    with reading_only(), TradingState.open(NAME, folder) as store:
        assert store.ledger_problem().startswith("cash ")


_STEP = st.tuples(st.just("step"), st.sampled_from(["buy", "sell", "hold"]), st.floats(0.05, 1.0), st.floats(-0.08, 0.08))
_FLOW = st.tuples(st.just("flow"), st.floats(-1.0, 3.0))


@settings(max_examples=40)
@given(ops=st.lists(st.one_of(_STEP, _STEP, _FLOW), min_size=1, max_size=25), fee_bps=st.sampled_from([0.0, 10.0, 75.0]),
       slippage_bps=st.sampled_from([0.0, 5.0]))
def test_property_the_ledger_replayed_equals_the_account_kept_step_by_step(ops, fee_bps, slippage_bps):
    """Random fills (through the real session and paper broker) and cash flows between runs: ledger == account."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / NAME

        def session():
            broker = PaperBroker(fee_bps=fee_bps, slippage_bps=slippage_bps, lot_size=1e-6, min_notional=1.0)
            return make_session(_manager(), root, broker=broker, band=0.0)

        current = session()
        price = 100.0
        for i, op in enumerate(ops):
            if op[0] == "step":
                _, action, size, move = op
                price *= 1 + move
                signal = Signal(SignalAction(action), size=size) if action != "hold" else HOLD
                current.step(T0 + i * HOUR, price, signal)
            else:
                current.store.close()
                with TradingState.open(NAME, folder) as store:
                    store.record_cash_flow(op[1] * max(store.load().cash, 1.0) * 0.5, "adjustment")
                current = session()
            store = current.store
            assert store.ledger_problem() is None
            ledger = replay_ledger(
                [CashFlow(f["amount"], f["kind"], f["after_fill"]) for f in store.cash_flows()],
                [LedgerFill(i + 1, f["client_order_id"], f["symbol"], f["side"], f["quantity"], f["price"], f["fee"])
                 for i, f in enumerate(store.fills())],
            )
            assert ledger.cash == pytest.approx(current.cash, rel=1e-12, abs=1e-9)
            assert ledger.quantity("BTC/USDT") == pytest.approx(current.position, rel=1e-12, abs=1e-12)
            assert ledger.fees_paid == pytest.approx(current.book.fees_paid, rel=1e-12, abs=1e-12)
            assert ledger.realized_pnl == pytest.approx(current.book.realized_pnl, rel=1e-12, abs=1e-9)
        current.store.close()
        _sql(folder, "UPDATE account SET cash = cash + 0.01")
        with reading_only(), TradingState.open(NAME, folder) as store:
            assert "in the account but" in store.ledger_problem()


# --------------------------------------------------------------------------- schema 1 files


def _as_schema_1(folder: Path) -> None:
    _sql(folder, "DROP TABLE cash_flows", "UPDATE meta SET value = '1' WHERE key = 'schema_version'")


def test_a_schema_1_file_is_read_as_it_is_and_migrated_without_loss_when_opened_for_writing(tmp_path):
    folder = _traded_store(tmp_path)
    with TradingState.open(NAME, folder) as store:
        fills, saved = store.fills(), store.load()
    _as_schema_1(folder)
    before = (folder / "state.sqlite").read_bytes()
    with reading_only(), TradingState.open(NAME, folder) as store:
        assert store.schema_version == 1 and store.ledger_problem() is None
        assert [f["amount"] for f in store.cash_flows()] == [10_000.0]
        assert store.summary()["ledger"]["consistent"] is True
    assert (folder / "state.sqlite").read_bytes() == before
    with TradingState.open(NAME, folder) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        assert [(f["kind"], f["amount"]) for f in store.cash_flows()] == [("initial", 10_000.0)]
        assert store.fills() == fills and store.load() == saved and store.ledger_problem() is None
    with TradingState.open(NAME, folder) as store:  # migrated once
        assert len(store.cash_flows()) == 1


# --------------------------------------------------------------------------- unsound files: refused, untouched


def _damage_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 3] = b"\xa5" * 4096
    path.write_bytes(bytes(data))


BROKEN = {
    "empty": (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    "junk": (lambda p: p.write_bytes(os.urandom(len(p.read_bytes()))), "is not a SQLite database"),
    "text": (lambda p: p.write_text("cash = 1000000\n"), "is not a SQLite database"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "is truncated"),
    "damaged page": (_damage_page, "state file"),
    "no meta table": (lambda p: _sql(p.parent, "DROP TABLE meta"), "has no meta table"),
    "no namespace": (lambda p: _sql(p.parent, "DELETE FROM meta WHERE key = 'namespace'"), "records no namespace"),
    "bad version": (lambda p: _sql(p.parent, "UPDATE meta SET value = 'x' WHERE key = 'schema_version'"), "no valid schema version"),
    "missing tables": (lambda p: _sql(p.parent, "DROP TABLE fills", "DROP TABLE cash_flows"), "lacks the tables cash_flows, fills"),
    "account deleted": (lambda p: _sql(p.parent, "DELETE FROM account"), "rows in fills but no account row"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_an_unsound_state_file_is_refused_in_one_line_and_left_byte_identical(tmp_path, case):
    folder = _traded_store(tmp_path)
    damage, expected = BROKEN[case]
    path = folder / "state.sqlite"
    damage(path)
    before = path.read_bytes()
    _open_fails(folder, str(path), expected)
    with reading_only():
        _open_fails(folder, str(path))
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["state.sqlite"]  # no -wal/-shm left, nothing created


def test_a_directory_a_symbolic_link_or_a_log_without_its_database_is_refused(tmp_path):
    folder = tmp_path / NAME
    (folder / "state.sqlite").mkdir(parents=True)
    _open_fails(folder, "is a directory, not a regular file")
    (folder / "state.sqlite").rmdir()

    victim = _traded_store(tmp_path / "other") / "state.sqlite"
    before = victim.read_bytes()
    (folder / "state.sqlite").symlink_to(victim)
    _open_fails(folder, "is a symbolic link, not a regular file")
    assert victim.read_bytes() == before
    (folder / "state.sqlite").unlink()

    (folder / "state.sqlite-wal").write_bytes(b"x" * 100)
    _open_fails(folder, "is missing but state.sqlite-wal remain")
    assert sorted(p.name for p in folder.iterdir()) == ["state.sqlite-wal"]
    (folder / "state.sqlite-wal").unlink()
    (folder / "state.sqlite-shm").symlink_to(victim)
    _open_fails(folder, "has a -shm file that is a symbolic link")
    assert victim.read_bytes() == before


def test_a_fresh_account_only_where_no_state_file_exists(tmp_path):
    folder = tmp_path / NAME
    with pytest.raises(StateMissingError):
        TradingState.open(NAME, folder, create=False)
    with reading_only(), pytest.raises(StateMissingError):
        TradingState.open(NAME, folder)
    assert not folder.exists()
    with TradingState.open(NAME, folder) as store:
        assert store.load() is None and store.recorded_namespace() == NAME and store.schema_version == SCHEMA_VERSION
    assert sorted(p.name for p in folder.iterdir()) == ["state.sqlite"]  # built aside, linked in whole


# --------------------------------------------------------------------------- check_store


def test_check_store_refuses_a_store_of_another_namespace(tmp_path):
    other = TradingState.open("victim", tmp_path / "victim")
    with pytest.raises(StateError, match="belongs to namespace 'victim'; refused"):
        check_store(other, NAME, tmp_path / NAME)
    victim_db = sqlite3.connect(tmp_path / "victim" / "state.sqlite")
    disguised = TradingState(NAME, tmp_path / "victim" / "state.sqlite", victim_db)  # says buy_and_hold, is victim's file
    with pytest.raises(StateError, match="belongs to namespace 'victim'"):
        check_store(disguised, NAME, tmp_path / NAME)

    class Impostor:
        namespace = "victim"

        def close(self):
            pass

    with pytest.raises(StateError, match=r"is a .*Impostor, which belongs to namespace 'victim'"):
        check_store(Impostor(), NAME, tmp_path / NAME)
    with TradingState.open(NAME, tmp_path / NAME) as own:
        assert check_store(own, NAME, tmp_path / NAME) is own


# --------------------------------------------------------------------------- run.lock


def test_the_lock_never_follows_a_symbolic_link_nor_truncates_a_hard_linked_file(tmp_path):
    folder = tmp_path / NAME
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (folder / "run.lock").symlink_to(victim)
    with pytest.raises(StateError, match="is a symbolic link; refusing to use it"):
        StrategyLock(folder, NAME).acquire()
    assert victim.read_text() == "precious\n"
    assert lock_holder(folder) is None
    (folder / "run.lock").unlink()
    os.link(victim, folder / "run.lock")
    with pytest.raises(StateError, match="has 2 hard links"):
        StrategyLock(folder, NAME).acquire()
    assert victim.read_text() == "precious\n"
    (folder / "run.lock").unlink()
    (folder / "run.lock").mkdir()
    with pytest.raises(StateError, match="lock file"):
        StrategyLock(folder, NAME).acquire()
    (folder / "run.lock").rmdir()
    with StrategyLock(folder, NAME):
        assert lock_holder(folder) == str(os.getpid())
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
            StrategyLock(folder, NAME).acquire()
    assert lock_holder(folder) is None

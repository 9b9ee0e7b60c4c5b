"""A full disk while committing a step: one clear StateError with SQLite's own reason, the store as it was."""

from __future__ import annotations

import pytest

from trader.engine import TradingState
from trader.engine.records import AccountFigures, RiskEvent, StepRecord
from trader.errors import StateError
from trader.types import TradingStatus


def _record(ts: int, events: int) -> StepRecord:
    record = StepRecord("BTC/USDT", "1h", ts, 100.0)
    record.cash, record.equity, record.position_value = 10_000.0, 10_000.0, 0.0
    record.positions = {}
    record.account = AccountFigures(0.0, 0.0, 10_000.0, ts // 86_400_000, 10_000.0, TradingStatus.ACTIVE, "", None, 0, 0)
    record.events = tuple(RiskEvent(ts, "alert", "NOTE", "x" * 500) for _ in range(events))
    return record


def test_a_full_disk_is_reported_with_the_real_error_and_nothing_half_written(tmp_path):
    store = TradingState.open("full", tmp_path / "full")
    store.initialize(10_000.0)
    store.commit_step(_record(0, 1))
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now full
    big = _record(3_600_000, 2_000)
    with pytest.raises(StateError, match="could not write the state: database or disk is full"):
        store.commit_step(big)
    assert store.load("BTC/USDT", "1h").last_candle_ts == 0  # the failed step left nothing behind
    assert len(store.risk_events()) == 1
    store.close()

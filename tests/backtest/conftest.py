"""Fixtures of the backtest tests (helpers to import live in ``backtest_fakes``)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
ENTRY_POINTS = """[trader.plugins]
fake_peek = backtest_fakes:PEEK
fake_sma = backtest_fakes:SMA
fake_threshold = backtest_fakes:THRESHOLD
"""


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    """Environment for `trader` subprocesses that installs the test strategies of ``backtest_fakes``:
    a distribution found through its entry points like any installed plugin."""
    site = tmp_path / "site"
    dist = site / "trader_backtest_fakes-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: trader-backtest-fakes\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return {"PYTHONPATH": f"{site}:{HERE}"}

"""One drawdown, one sign: ``trader run``, ``trader status`` and backtests report the same depth (<= 0)."""

from __future__ import annotations

import re

from engine_testkit import state_db, status_json, trader

from trader.evaluation.performance import max_drawdown


def test_run_and_status_report_the_backtests_drawdown_as_a_negative_fraction(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    run = trader(home, "run", "--plugin", "buy_and_hold", "--max-candles", "60", "--quiet")
    assert run.returncode == 0, run.stderr
    with state_db(home, "buy_and_hold") as db:
        curve = [e for (e,) in db.execute("SELECT equity FROM equity ORDER BY timestamp, symbol")]
    depth, _ = max_drawdown(curve)
    assert depth < 0  # sixty hours of a random market hold at least one fall below a peak
    (summary,) = status_json(home, "buy_and_hold")
    assert summary["account"]["max_drawdown"] == depth
    shown = re.search(r"max drawdown (-?[0-9.]+)%", run.stdout)
    assert shown and float(shown.group(1)) == round(depth * 100, 2)

"""A crash loses nothing: ``trader run`` killed with SIGKILL at random steps, restarted each time."""

from __future__ import annotations

import math
import random
import sqlite3
import time

from engine_testkit import install_fake_strategies, start_trader, state_db, trader

BARS = "240"
KILLS = 22


def _books(home):
    with state_db(home, "flipper") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        curve = db.execute("SELECT timestamp, cash, position_value, equity FROM equity ORDER BY timestamp").fetchall()
        fills = db.execute(
            "SELECT client_order_id, trade_id, side, quantity, price, fee FROM fills ORDER BY id"
        ).fetchall()
        orders = db.execute("SELECT client_order_id, side, quantity, status FROM orders ORDER BY candle_ts").fetchall()
        (position,) = db.execute("SELECT quantity FROM positions WHERE symbol = 'BTC/USDT'").fetchone()
        (cash,) = db.execute("SELECT cash FROM account").fetchone()
    return curve, fills, orders, position, cash


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path):
    fakes = install_fake_strategies(tmp_path / "site")
    reference_home, crash_home = tmp_path / "reference", tmp_path / "crashed"
    reference_home.mkdir()
    crash_home.mkdir()
    args = ("run", "--plugin", "flipper", "--bars", BARS)
    reference = trader(reference_home, *args, "--quiet", env=fakes)
    assert reference.returncode == 0, reference.stderr

    rng = random.Random(20240101)
    kills = 0
    progress = []
    while kills < KILLS:
        process = start_trader(crash_home, *args, env=fakes)
        target = rng.randint(1, 8)
        steps = 0
        assert process.stderr is not None
        for line in process.stderr:
            if " step flipper " in line:
                steps += 1
                if steps >= target:
                    time.sleep(rng.uniform(0, 0.004))
                    break
        process.kill()
        process.communicate(timeout=30)
        if process.returncode == 0:
            break  # it reached the end of the replay before the kill
        kills += 1
        with state_db(crash_home, "flipper") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            progress.append(db.execute("SELECT COUNT(*) FROM equity").fetchone()[0])
    assert kills >= 20, f"only {kills} kills landed"
    assert progress == sorted(progress) and progress[-1] > progress[0]  # every life moved the replay on

    final = trader(crash_home, *args, "--quiet", env=fakes)
    assert final.returncode == 0, final.stderr

    curve, fills, orders, position, cash = _books(crash_home)
    ref_curve, ref_fills, ref_orders, ref_position, ref_cash = _books(reference_home)
    # equity is continuous: one snapshot per candle, consecutive, equal to the uninterrupted run's
    timestamps = [row[0] for row in curve]
    assert len(timestamps) == int(BARS) and len(set(timestamps)) == int(BARS)
    assert all(b - a == 3_600_000 for a, b in zip(timestamps, timestamps[1:], strict=False))
    assert curve == ref_curve
    # no order was sent twice and nothing was lost
    ids = [row[0] for row in orders]
    assert len(ids) == len(set(ids)) and orders == ref_orders
    assert len({row[0] for row in fills}) == len(fills) and fills == ref_fills
    # positions are the sum of the fills; cash never went negative
    held = 0.0
    for _, _, side, quantity, _, _ in fills:
        held = held + quantity if side == "buy" else held - quantity
    assert math.isclose(position, max(held, 0.0), abs_tol=1e-12) and position == ref_position
    assert cash >= 0 and cash == ref_cash
    with sqlite3.connect(crash_home / "strategies" / "flipper" / "state.sqlite") as db:
        assert db.execute("SELECT MIN(cash) FROM equity").fetchone()[0] >= 0

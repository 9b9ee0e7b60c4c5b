"""``trader run`` / ``status`` / ``resume`` as a user runs them: real subprocesses, real SQLite files."""

from __future__ import annotations

import json
import signal
import time

import pytest
from engine_testkit import install_fake_strategies, start_trader, state_db, status_json, trader, wait_running


@pytest.fixture
def fakes(tmp_path):
    return install_fake_strategies(tmp_path / "site")


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_replay_trades_resumes_after_the_last_candle_and_summarises(home):
    first = trader(home, "run", "--plugin", "buy_and_hold", "--max-candles", "30", "--quiet")
    assert first.returncode == 0, first.stderr
    assert "30 new candles" in first.stdout and "stopped by --max-candles 30" in first.stdout
    assert "trades 1" in first.stdout and "max drawdown" in first.stdout and "fees" in first.stdout
    second = trader(home, "run", "--plugin", "buy_and_hold", "--max-candles", "20", "--quiet")
    assert second.returncode == 0, second.stderr
    assert "resuming after candle 30" in second.stderr
    with state_db(home, "buy_and_hold") as db:
        ts = [t for (t,) in db.execute("SELECT timestamp FROM equity ORDER BY timestamp")]
        assert len(ts) == 50 and len(set(ts)) == 50
        assert all(b - a == 3_600_000 for a, b in zip(ts, ts[1:], strict=False))  # continued exactly after candle 30
        assert db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == 1  # bought once, held
    (summary,) = status_json(home, "buy_and_hold")
    account = summary["account"]
    assert account["candles"] == 50
    assert account["equity"] == pytest.approx(account["cash"] + summary["positions"][0]["value"])
    assert summary["risk"]["status"] == "active" and summary["running_pid"] is None
    assert summary["latency"]["samples"] == 50 and summary["latency"]["p99_ms"] >= summary["latency"]["p50_ms"]
    text = trader(home, "status")
    assert "buy_and_hold  [ACTIVE]" in text.stdout and "inference latency: p50" in text.stdout


def test_refusals_are_one_line_with_exit_code_2(home, monkeypatch):
    unknown = trader(home, "run", "--plugin", "nope")
    assert unknown.returncode == 2 and "installed strategies: " in unknown.stderr and "buy_and_hold" in unknown.stderr
    model = trader(home, "run", "--plugin", "dl_lstm")
    assert model.returncode == 2
    assert "trader train --plugin dl_lstm --symbol BTC/USDT --timeframe 1h" in model.stderr
    assert len(model.stderr.strip().splitlines()) == 1
    live = trader(home, "run", "--plugin", "buy_and_hold", "--feed", "live", "--live", "--exchange", "binance")
    assert live.returncode == 2 and "TRADER_API_KEY" in live.stderr
    replay_live = trader(home, "run", "--plugin", "buy_and_hold", "--live")
    assert replay_live.returncode == 2 and "--feed live" in replay_live.stderr
    assert not (home / "strategies" / "buy_and_hold" / "state.sqlite").exists()  # nothing was touched


def test_a_second_run_of_the_same_strategy_is_refused_and_sigterm_stops_cleanly(home):
    slow = start_trader(home, "run", "--plugin", "buy_and_hold", "--speed", "36000")  # 10 candles/s
    try:
        deadline = time.time() + 30
        with_state = home / "strategies" / "buy_and_hold" / "state.sqlite"
        while time.time() < deadline:
            if with_state.exists():
                with state_db(home, "buy_and_hold") as db:
                    if db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'equity'").fetchone()[0] and \
                            db.execute("SELECT COUNT(*) FROM equity").fetchone()[0] >= 3:
                        break
            time.sleep(0.1)
        second = trader(home, "run", "--plugin", "buy_and_hold", "--max-candles", "1")
        assert second.returncode == 1
        assert "already running" in second.stderr and f"pid {slow.pid}" in second.stderr
        (running,) = status_json(home, "buy_and_hold")
        assert running["running_pid"] == str(slow.pid)
        slow.send_signal(signal.SIGTERM)
        out, err = slow.communicate(timeout=30)
    finally:
        if slow.poll() is None:
            slow.kill()
    assert slow.returncode == 0, err
    assert "SIGTERM received" in err and "stopped by a stop signal" in out
    with state_db(home, "buy_and_hold") as db:
        (last,) = db.execute("SELECT last_candle_ts FROM streams").fetchone()
        (newest,) = db.execute("SELECT MAX(timestamp) FROM equity").fetchone()
        assert last == newest  # the last step was committed whole
    assert trader(home, "run", "--plugin", "buy_and_hold", "--max-candles", "1").returncode == 0  # lock released


def test_plugin_failures_are_counted_never_traded_and_the_loop_goes_on(home, fakes):
    for name in ("raiser", "nan_signal", "wrong_type"):
        result = trader(home, "run", "--plugin", name, "--max-candles", "12", "--quiet", env=fakes)
        assert result.returncode == 0, result.stderr
        assert "12 new candles" in result.stdout
    raiser, nan_signal, wrong_type = status_json(home, "raiser", "nan_signal", "wrong_type", env=fakes)
    assert raiser["event_counts"]["PLUGIN_ERROR"] == 4  # bars 2, 5, 8, 11
    assert raiser["risk"]["status"] == "active" and raiser["fills"] > 0  # a good signal resets the count
    assert nan_signal["event_counts"]["INVALID_SIGNAL"] == 12
    assert nan_signal["fills"] == 0
    assert nan_signal["risk"]["status"] == "halted" and nan_signal["risk"]["reason"].startswith("MODEL_FAILURES")
    assert "confidence must be finite" in " ".join(e["message"] for e in nan_signal["recent_events"])
    assert wrong_type["event_counts"]["INVALID_SIGNAL"] == 12 and wrong_type["fills"] == 0
    resumed = trader(home, "resume", "--plugin", "nan_signal", "--note", "fixed the model", env=fakes)
    assert resumed.returncode == 0 and "was halted (MODEL_FAILURES" in resumed.stdout
    (after,) = status_json(home, "nan_signal", env=fakes)
    assert after["risk"]["status"] == "active" and "fixed the model" in after["risk"]["reason"]
    assert after["event_counts"]["RESUMED"] == 1


def test_slow_inference_in_a_replay_raises_an_alert_but_trades_reproducibly(home, fakes):
    """A replay's prices do not move while the model thinks: over budget is an alert, not a veto
    (``test_engine_ccxt`` shows the veto on a live feed)."""
    result = trader(home, "run", "--plugin", "slowpoke", "--max-candles", "3", env=fakes)
    assert result.returncode == 0, result.stderr
    assert "over the 20 ms budget" in result.stderr
    (summary,) = status_json(home, "slowpoke", env=fakes)
    assert summary["event_counts"]["INFERENCE_LATENCY"] == 3
    assert summary["fills"] == 1  # the first BUY; the next two are already at target
    assert summary["latency"]["p50_ms"] >= 50


def test_two_strategies_side_by_side_share_nothing(home, tmp_path, fakes):
    both = trader(home, "run", "--plugin", "flipper", "--plugin", "buy_and_hold", "--max-candles", "40", "--quiet", "--json",
                  env=fakes)
    assert both.returncode == 0, both.stderr
    summaries = json.loads(both.stdout)
    assert [s["strategy"] for s in summaries] == ["flipper", "buy_and_hold"]
    assert all(s["processed"] == 40 for s in summaries) and summaries[0]["pnl"] != summaries[1]["pnl"]
    alone = tmp_path / "alone"
    alone.mkdir()
    solo = trader(alone, "run", "--plugin", "flipper", "--max-candles", "40", "--quiet", env=fakes)
    assert solo.returncode == 0, solo.stderr
    flipper, holder = status_json(home, "flipper", "buy_and_hold", env=fakes)
    (flipper_alone,) = status_json(alone, "flipper", env=fakes)
    assert flipper["account"]["equity"] == flipper_alone["account"]["equity"]  # the neighbour changed nothing
    assert flipper["fills"] == 40 and holder["fills"] == 1
    assert flipper["account"]["pnl"] != holder["account"]["pnl"]
    with state_db(home, "flipper") as a, state_db(home, "buy_and_hold") as b:
        ids_a = {c for (c,) in a.execute("SELECT client_order_id FROM orders")}
        ids_b = {c for (c,) in b.execute("SELECT client_order_id FROM orders")}
        assert ids_a and ids_b and not ids_a & ids_b


def test_a_crash_in_one_strategy_does_not_stop_the_other(home, fakes):
    """Inline, the strategy's crash ends its own process (exit 3), never the other strategy's."""
    result = trader(home, "run", "--plugin", "dies", "--plugin", "flipper", "--max-candles", "30", "--quiet",
                    "--isolation", "inline", env=fakes)
    assert result.returncode == 3
    assert "dies exited with status 3" in result.stderr
    dies, flipper = status_json(home, "dies", "flipper", env=fakes)
    assert dies["account"]["candles"] == 10
    assert flipper["account"]["candles"] == 30


def test_with_process_isolation_a_crashing_strategy_only_loses_its_worker(home, fakes):
    """The same crash in the strategy's worker is a PLUGIN_ERROR; its trader run goes on with a new worker."""
    result = trader(home, "run", "--plugin", "dies", "--plugin", "flipper", "--max-candles", "30", "--quiet", env=fakes)
    assert result.returncode == 0, result.stderr
    dies, flipper = status_json(home, "dies", "flipper", env=fakes)
    assert dies["account"]["candles"] == 30 and flipper["account"]["candles"] == 30
    assert dies["event_counts"].get("PLUGIN_ERROR", 0) >= 1


def test_resume_while_running_is_applied_by_the_running_process(home, fakes):
    first = trader(home, "run", "--plugin", "nan_signal", "--max-candles", "4", "--quiet", env=fakes)
    assert first.returncode == 0
    running = start_trader(home, "run", "--plugin", "nan_signal", "--speed", "18000", "--quiet", env=fakes)
    try:
        wait_running(home, "nan_signal", running)
        asked = trader(home, "resume", "--plugin", "nan_signal", env=fakes)
        assert asked.returncode == 0 and "resume requested" in asked.stdout
        deadline = time.time() + 20
        applied = False
        while time.time() < deadline and not applied:
            with state_db(home, "nan_signal") as db:
                applied = db.execute("SELECT COUNT(*) FROM control WHERE applied_at IS NOT NULL").fetchone()[0] == 1
            time.sleep(0.2)
        assert applied
        running.send_signal(signal.SIGINT)
        running.communicate(timeout=30)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == 0
    (summary,) = status_json(home, "nan_signal", env=fakes)
    assert summary["event_counts"]["RESUMED"] == 1

"""The kill switch from ``trader serve``: halt and resume a running replay with the token, and a halt that persists."""

from __future__ import annotations

import signal

import pytest
from serve_testkit import TOKEN, Server, env_for, start, stop, trader, wait_for


def _row(srv: Server, name: str) -> dict:
    return srv.get(f"/api/strategies/{name}").json()


def _candles(row: dict) -> int:
    """Candles the account has seen; 0 while ``account`` is still null (before the first step commits)."""
    return (row.get("account") or {}).get("candles", 0)


@pytest.mark.slow
def test_halt_and_resume_a_running_replay_from_the_api(tmp_path, flip_site):
    env = env_for(tmp_path, flip_site)
    run = start(env, "run", "--plugin", "flip", "--speed", "36000", "--max-candles", "3000", "--isolation", "inline", "--quiet")
    srv = Server(env_for(tmp_path, flip_site, TRADER_SERVE_TOKEN=TOKEN))
    try:
        wait_for(lambda: (r := _row(srv, "flip")).get("running_pid") and _candles(r) >= 3)
        response = srv.post("/api/strategies/flip/halt", token=TOKEN, json={"note": "smoke in the server room"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["requested"] is True and body["message"].startswith("flip is running: halt requested")
        halted = wait_for(lambda: (r := _row(srv, "flip"))["risk"]["status"] == "halted" and r)
        assert halted["risk"]["reason"] == "OPERATOR_HALT: halted by the operator: smoke in the server room"
        fills = halted["counts"]["fills"]
        candles = halted["account"]["candles"]
        wait_for(lambda: _candles(_row(srv, "flip")) >= candles + 5)
        assert _row(srv, "flip")["counts"]["fills"] == fills  # a halted strategy trades nothing

        response = srv.post("/api/strategies/flip/resume", headers={"X-Trader-Token": TOKEN}, json={"note": "all clear"})
        assert response.status_code == 200 and response.json()["requested"] is True
        wait_for(lambda: _row(srv, "flip")["risk"]["status"] == "active")
        wait_for(lambda: _row(srv, "flip")["counts"]["fills"] > fills)  # trading again
        events = srv.get("/api/strategies/flip/events", params={"filter": "risk", "per_page": 500}).json()["items"]
        codes = [e["code"] for e in events]
        assert "OPERATOR_HALT" in codes and "RESUMED" in codes
    finally:
        code, _, err = stop(run)
        srv.stop()
    assert code == 0, err


@pytest.mark.slow
def test_a_halt_from_the_api_on_a_stopped_strategy_is_applied_at_once_and_survives_a_restart(tmp_path, flip_site):
    env = env_for(tmp_path, flip_site)
    assert trader(env, "run", "--plugin", "flip", "--max-candles", "10", "--isolation", "inline", "--quiet").returncode == 0
    srv = Server(env_for(tmp_path, flip_site, TRADER_SERVE_TOKEN=TOKEN))
    try:
        response = srv.post("/api/strategies/flip/halt", token=TOKEN, json={"note": "maintenance"})
        assert response.status_code == 200 and response.json()["applied"] is True
        assert _row(srv, "flip")["risk"]["status"] == "halted"
        fills = _row(srv, "flip")["counts"]["fills"]
        rerun = trader(env, "run", "--plugin", "flip", "--max-candles", "10", "--isolation", "inline", "--quiet")
        assert rerun.returncode == 0, rerun.stderr
        row = _row(srv, "flip")
        assert row["risk"]["status"] == "halted" and "maintenance" in row["risk"]["reason"]
        assert row["counts"]["fills"] == fills and row["account"]["candles"] == 20
        never = srv.post("/api/strategies/nope/halt", token=TOKEN)
        assert never.status_code == 404
        (tmp_path / "strategies" / "empty").mkdir()  # a folder without state: the engine refuses, nothing is created
        refused = srv.post("/api/strategies/empty/halt", token=TOKEN)
        assert refused.status_code == 409 and "has no state yet" in refused.json()["error"]
        assert not any((tmp_path / "strategies" / "empty").iterdir())
    finally:
        code, err = srv.stop(signal.SIGTERM)
    assert code == 0, err

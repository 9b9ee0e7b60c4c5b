"""``trader serve``'s JSON API and pages as a client meets them: a real server on real state files."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from serve_testkit import TOKEN, Server, env_for, trader

SECRETS = {"TRADER_API_KEY": "key-AAAAAAAAAAAAAAAAAAAAAAAA", "TRADER_API_SECRET": "secret-BBBBBBBBBBBBBBBBBBBBBBBB"}


def _digest(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((home / "strategies").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def home(tmp_path_factory, flip_site) -> Path:
    """Two strategies that ran 60 candles each (flip with a hostile event message and stored models), and three
    folders whose state cannot be read: junk, a symbolic link, and another strategy's file."""
    home = tmp_path_factory.mktemp("home")
    env = env_for(home, flip_site)
    for name in ("buy_and_hold", "flip"):
        result = trader(env, "run", "--plugin", name, "--max-candles", "60", "--isolation", "inline", "--quiet")
        assert result.returncode == 0, result.stderr
    (home / "strategies" / "junk").mkdir()
    (home / "strategies" / "junk" / "state.sqlite").write_bytes(b"not a database at all" * 10)
    (home / "strategies" / "linked").mkdir()
    (home / "strategies" / "linked" / "state.sqlite").symlink_to(home / "strategies" / "flip" / "state.sqlite")
    (home / "strategies" / "copycat").mkdir()
    shutil.copyfile(home / "strategies" / "flip" / "state.sqlite", home / "strategies" / "copycat" / "state.sqlite")
    for version in ("v1", "v3", "v2"):
        (home / "models" / "flip" / "BTC-USDT_1h" / version).mkdir(parents=True)
    db = sqlite3.connect(home / "strategies" / "flip" / "state.sqlite")
    db.execute("UPDATE risk_events SET message = '<script>alert(1)</script><img src=x onerror=alert(2)>' "
               "WHERE id = (SELECT MAX(id) FROM risk_events)")
    db.commit()
    db.close()
    return home


@pytest.fixture(scope="module")
def server(home, flip_site):
    before = _digest(home)
    srv = Server(env_for(home, flip_site, TRADER_SERVE_TOKEN=TOKEN, **SECRETS))
    yield srv
    code, err = srv.stop()
    assert code == 0, err
    assert _digest(home) == before  # serving wrote nothing into any strategy's folder


def _status(home: Path, flip_site: Path) -> dict[str, dict]:
    result = trader(env_for(home, flip_site), "status", "--json", "--plugin", "buy_and_hold", "--plugin", "flip")
    assert result.returncode == 0, result.stderr
    return {s["strategy"]: s for s in json.loads(result.stdout)}


@pytest.mark.slow
def test_the_overview_agrees_with_trader_status_and_names_an_unreadable_file(server, home, flip_site):
    rows = {r["strategy"]: r for r in server.get("/api/strategies").json()["strategies"]}
    assert sorted(rows) == ["buy_and_hold", "copycat", "flip", "junk", "linked"]
    assert "is not a SQLite database" in rows["junk"]["error"] and rows["junk"]["account"] is None
    assert "is a symbolic link" in rows["linked"]["error"]
    assert "belongs to 'flip', not 'copycat'" in rows["copycat"]["error"]
    status = _status(home, flip_site)
    for name in ("buy_and_hold", "flip"):
        row, st = rows[name], status[name]
        assert row["risk"]["status"] == st["risk"]["status"] == "active"
        assert row["account"]["equity"] == pytest.approx(st["account"]["equity"])
        assert row["account"]["pnl"] == pytest.approx(st["account"]["pnl"])
        assert row["account"]["max_drawdown"] == pytest.approx(st["account"]["max_drawdown"])
        assert row["counts"]["fills"] == st["fills"]
        assert row["last_candle"] == st["streams"][0]["last_candle"]
        assert row["latency"]["p50_ms"] == pytest.approx(st["latency"]["p50_ms"])
        assert row["latency"]["p99_ms"] == pytest.approx(st["latency"]["p99_ms"])
        assert row["running_pid"] is None
    assert rows["flip"]["model"] == "v3" and rows["buy_and_hold"]["model"] is None  # the newest stored version
    assert status["flip"]["fills"] > 50  # flip trades every candle: enough to page through
    page = server.get("/").text
    assert all(f'href="/strategies/{n}"' in page for n in ("buy_and_hold", "flip", "junk"))


@pytest.mark.slow
def test_orders_fills_and_events_page_newest_first_with_totals(server, home, flip_site):
    fills = _status(home, flip_site)["flip"]["fills"]
    first = server.get("/api/strategies/flip/fills", params={"per_page": 10}).json()
    second = server.get("/api/strategies/flip/fills", params={"per_page": 10, "page": 2}).json()
    assert first["total"] == second["total"] == fills and first["pages"] == -(-fills // 10)
    ids = [f["id"] for f in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 20 and ids[0] == fills
    last = server.get("/api/strategies/flip/fills", params={"per_page": 10, "page": first["pages"]}).json()
    assert last["items"][-1]["id"] == 1
    orders = server.get("/api/strategies/flip/orders", params={"per_page": 500}).json()
    assert orders["total"] == len(orders["items"]) >= fills
    decisions = server.get("/api/strategies/flip/events", params={"filter": "decisions", "per_page": 500}).json()
    assert {e["kind"] for e in decisions["items"]} <= {"audit", "signal"}
    assert sum(e["code"] == "APPROVED" for e in decisions["items"]) >= fills
    risk = server.get("/api/strategies/flip/events", params={"filter": "risk", "per_page": 500}).json()
    assert all(e["code"] != "APPROVED" for e in risk["items"])
    series = server.get("/api/strategies/flip/series", params={"points": 20}).json()
    assert series["rows"] == 60 and len(series["equity"]) == len(series["timestamp"]) == len(series["drawdown"]) <= 20
    assert min(series["drawdown"]) == pytest.approx(_status(home, flip_site)["flip"]["account"]["max_drawdown"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "code", "error"),
    [
        ("/api/strategies/nope", 404, "no strategy 'nope' under this home"),
        ("/api/strategies/..%2f..%2fetc/fills", 404, "no such API path"),
        ("/api/strategies/%2e%2e/fills", 404, "no strategy '..' under this home"),
        ("/api/strategies/flip/fills?page=0", 400, "page must be between 1 and"),
        ("/api/strategies/flip/fills?per_page=abc", 400, "per_page must be a whole number, got 'abc'"),
        ("/api/strategies/flip/events?filter=everything", 400, "filter must be one of risk, decisions, all"),
        ("/api/strategies/junk/fills", 503, "is not a SQLite database"),
    ],
)
def test_bad_requests_get_one_line_json_errors(server, path, code, error):
    response = server.get(path)
    assert response.status_code == code
    assert error in response.json()["error"] and "\n" not in response.json()["error"]


@pytest.mark.slow
def test_no_secret_is_served_and_state_text_is_escaped(server):
    answers = [server.get(p) for p in (
        "/", "/strategies/flip", "/strategies/buy_and_hold", "/strategies/junk", "/api/info", "/api/strategies",
        "/api/strategies/flip", "/api/strategies/flip/events?filter=all&per_page=500", "/static/app.js",
    )]
    assert all(r.status_code == 200 for r in answers)
    for r in answers:
        for secret in (TOKEN, *SECRETS.values()):
            assert secret not in r.text
    flip_page = answers[1].text
    assert "<script>alert(1)" not in flip_page and "&lt;script&gt;alert(1)&lt;/script&gt;" in flip_page
    assert "<img src=x" not in flip_page
    assert answers[1].headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
    assert answers[1].headers["x-frame-options"] == "DENY"
    assert answers[1].headers["x-content-type-options"] == "nosniff" and answers[1].headers["referrer-policy"] == "no-referrer"
    assert answers[5].headers["cache-control"] == "no-store"


@pytest.mark.slow
def test_a_loopback_server_answers_only_loopback_host_names(server):
    assert server.get("/api/info", headers={"Host": "attacker.example"}).status_code == 400
    assert server.get("/api/info", headers={"Host": "localhost:1234"}).status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize(
    ("headers", "code", "error"),
    [
        ({}, 401, "this action needs the operator token"),
        ({"Authorization": "Bearer"}, 401, "this action needs the operator token"),
        ({"X-Trader-Token": ""}, 401, "this action needs the operator token"),
        ({"Authorization": "Bearer short"}, 403, "wrong operator token"),
        ({"Authorization": "Bearer " + TOKEN[:-1] + "X"}, 403, "wrong operator token"),
        ({"Authorization": "Basic " + TOKEN}, 401, "this action needs the operator token"),
        ({"X-Trader-Token": TOKEN[:15]}, 403, "wrong operator token"),
    ],
)
def test_actions_without_the_token_are_refused_and_change_nothing(server, home, headers, code, error):
    before = _digest(home)
    for action in ("halt", "resume"):
        response = server.post(f"/api/strategies/flip/{action}", headers=dict(headers), json={"note": "x"})
        assert response.status_code == code and error in response.json()["error"]
    assert _digest(home) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"content": "not json"}, "the body must be JSON"),
        ({"json": {"note": 5}}, "note must be a string"),
        ({"json": {"note": "x" * 501}}, "note is over 500 characters"),
        ({"content": b"{" + b" " * 5000 + b"}"}, "the request body is over 4096 bytes"),
    ],
)
def test_a_bad_note_is_refused_before_anything_is_written(server, home, body, error):
    before = _digest(home)
    response = server.post("/api/strategies/flip/halt", token=TOKEN, **body)
    assert response.status_code in (400, 413) and error in response.json()["error"]
    assert _digest(home) == before


@pytest.mark.slow
def test_a_wrong_token_is_logged_with_the_caller(home, flip_site):
    srv = Server(env_for(home, flip_site, TRADER_SERVE_TOKEN=TOKEN))
    assert srv.post("/api/strategies/flip/halt", token="x" * 40).status_code == 403
    code, err = srv.stop()
    assert code == 0 and "refused a /api/strategies/flip/halt request with a wrong token from 127.0.0.1" in err


@pytest.mark.slow
def test_read_only_refuses_actions_even_with_the_token(home, flip_site):
    srv = Server(env_for(home, flip_site, TRADER_SERVE_TOKEN=TOKEN), "--read-only")
    try:
        assert srv.next_line() == "read-only: halting and resuming are off"
        response = srv.post("/api/strategies/flip/halt", token=TOKEN)
        assert response.status_code == 403 and "--read-only" in response.json()["error"]
        assert srv.get("/api/info").json()["read_only"] is True
        assert 'id="halt"' not in srv.get("/strategies/flip").text
    finally:
        srv.stop()


# ---------------------------------------------------------------------- start-up rules


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("host", "token", "expected"),
    [
        ("0.0.0.0", None, "binds to 127.0.0.1 only; --host 0.0.0.0 needs a strong TRADER_SERVE_TOKEN"),
        ("192.0.2.1", "a" * 40, "binds to 127.0.0.1 only; --host 192.0.2.1 needs a strong TRADER_SERVE_TOKEN"),
        ("0.0.0.0", "Abc123xyz-Abc123xyz-Abc", "needs a strong TRADER_SERVE_TOKEN in the environment (at least 32 characters, 10 of them distinct)"),
        ("127.0.0.1", "short", "TRADER_SERVE_TOKEN is too short (5 characters; at least 16"),
    ],
)
def test_serve_refuses_to_start_without_a_strong_token_beyond_loopback(tmp_path, host, token, expected):
    extra = {} if token is None else {"TRADER_SERVE_TOKEN": token}
    result = trader(env_for(tmp_path, **extra), "serve", "--host", host, "--port", "0", timeout=60)
    assert expected in _one_error_line(result)


def test_a_busy_port_is_one_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = trader(env_for(tmp_path), "serve", "--port", str(port), timeout=60)
    assert f"cannot listen on 127.0.0.1:{port}" in _one_error_line(result)


@pytest.mark.slow
def test_a_strong_token_serves_beyond_loopback_and_a_generated_one_is_printed_once(tmp_path):
    srv = Server(env_for(tmp_path, TRADER_SERVE_TOKEN=TOKEN), "--host", "0.0.0.0")
    try:
        assert srv.next_line() == "operator token: from TRADER_SERVE_TOKEN"
        assert srv.url.startswith("http://0.0.0.0:")
        port = srv.url.rsplit(":", 1)[1]
        import httpx

        assert httpx.get(f"http://127.0.0.1:{port}/api/info", headers={"Host": "my-box.lan"}).status_code == 200
    finally:
        srv.stop()
    srv = Server(env_for(tmp_path))
    try:
        token = srv.next_line().rsplit(" ", 1)[1]
        assert len(token) == 43 and srv.next_line().endswith(f"#token={token}")
        assert srv.get("/api/strategies").json() == {"strategies": []}
        refused = srv.post("/api/strategies/flip/halt", token=token)
        assert refused.status_code == 404  # the token is accepted; the strategy does not exist
    finally:
        srv.stop()

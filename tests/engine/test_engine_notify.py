"""Alerts (``[notify]``) and the kill switch (``trader halt``) as a user meets them.

Every webhook goes to a loopback receiver on 127.0.0.1 (never the network): one that
answers, one that fails (HTTP 500) and one that hangs. Trading goes on whatever they do.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from engine_testkit import (
    BUY,
    HOLD,
    HOUR,
    SELL,
    T0,
    install_fake_strategies,
    make_session,
    start_trader,
    state_db,
    status_json,
    trader,
    wait_running,
)

from trader.engine import TradingState
from trader.engine.records import RiskEvent
from trader.errors import StateError
from trader.notify import Alert, Notifier, redact, resolve_targets
from trader.notify.alerts import event_kind
from trader.notify.formats import payload
from trader.types import TradingStatus

TOKEN = "123456789:AAHfakeTokenForTestsOnly_abcdefghijkl"
LOOPBACK = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


class Receiver:
    """A webhook receiver on 127.0.0.1: ``/fail`` answers 500, ``/bad`` 400, ``/busy`` 429 (retry after 0 s),
    ``/moved`` redirects to ``/ok/redirected``, ``/hang`` never answers, anything else 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((self.path, json.loads(body)))
                if self.path.startswith("/hang"):
                    receiver.release.wait(60)
                    return
                codes = {"/fail": 500, "/bad": 400, "/busy": 429, "/moved": 302}
                code = next((c for prefix, c in codes.items() if self.path.startswith(prefix)), 200)
                self.send_response(code)
                if code == 429:
                    self.send_header("Retry-After", "0")
                if code == 302:
                    self.send_header("Location", "/ok/redirected")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, prefix: str) -> list[dict]:
        return [body for path, body in list(self.requests) if path.startswith(prefix)]

    def wait_for(self, prefix: str, predicate, timeout: float = 20.0) -> list[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = [b for b in self.bodies(prefix) if predicate(b)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no matching request under {prefix}; got {self.requests}")

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def fakes(tmp_path):
    return install_fake_strategies(tmp_path / "site")


def _config(home: Path, text: str) -> None:
    (home / "trader.toml").write_text(text)


def _one_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


# --------------------------------------------------------------------------- trader run, end to end


@pytest.mark.slow
def test_a_run_sends_fills_errors_and_the_breaker_halt_in_each_format_and_never_logs_the_token(home, receiver, fakes):
    _config(home, f"""
[notify]
fill = "silent"
[notify.hook]
format = "json"
url = "{receiver.url}/json"
[notify.bot]
format = "telegram"
url = "{receiver.url}"
chat_id = "-10042"
[notify.team]
format = "slack"
url_env = "TRADER_SLACK_WEBHOOK_SECRET"
fill = "off"
[notify.chat]
format = "discord"
url = "{receiver.url}/discord"
""")
    env = {**fakes, **LOOPBACK, "TRADER_TELEGRAM_BOT_TOKEN": TOKEN, "TRADER_SLACK_WEBHOOK_SECRET": f"{receiver.url}/slack/T0/B0/xyz"}
    bought = trader(home, "run", "--plugin", "buy_and_hold", "--max-candles", "3", "--quiet", env=env)
    assert bought.returncode == 0, bought.stderr
    broken = trader(home, "run", "--plugin", "nan_signal", "--max-candles", "4", "--quiet", env=env)
    assert broken.returncode == 0, broken.stderr

    hook = receiver.bodies("/json")
    fills = [b for b in hook if b["kind"] == "fill"]
    assert len(fills) == 1 and fills[0]["strategy"] == "buy_and_hold" and fills[0]["code"] == "BUY"
    assert fills[0]["silent"] is True and fills[0]["symbol"] == "BTC/USDT" and "buy " in fills[0]["message"]
    errors = [b for b in hook if b["kind"] == "error" and b["strategy"] == "nan_signal"]
    halts = [b for b in hook if b["kind"] == "halt"]
    assert len(errors) >= 3 and {b["code"] for b in errors} == {"INVALID_SIGNAL"}
    assert len(halts) == 1 and halts[0]["code"] == "MODEL_FAILURES" and halts[0]["status"] == "halted"
    assert halts[0]["silent"] is False and halts[0]["time"].startswith("20")

    telegram = receiver.bodies(f"/bot{TOKEN}/sendMessage")
    assert len(telegram) == len(hook)  # the bot token is in the path the Bot API expects
    assert {b["chat_id"] for b in telegram} == {"-10042"}
    assert any(b["disable_notification"] for b in telegram) and not all(b["disable_notification"] for b in telegram)
    assert any("HALT [halted] MODEL_FAILURES" in b["text"] for b in telegram)

    slack = receiver.bodies("/slack/T0/B0/xyz")  # the URL came from the environment
    assert slack and not any("FILL" in b["text"] for b in slack)  # fill = "off" for this target only
    discord = receiver.bodies("/discord")
    assert len(discord) == len(hook) and all(b["allowed_mentions"] == {"parse": []} for b in discord)
    assert [b.get("flags") for b in discord].count(4096) == 1  # the silent fill

    for result in (bought, broken):
        assert TOKEN not in result.stderr + result.stdout and "xyz" not in result.stderr
        assert "alerts to hook (json" in result.stderr and "bot token from $TRADER_TELEGRAM_BOT_TOKEN" in result.stderr


@pytest.mark.slow
def test_a_receiver_that_hangs_and_one_that_fails_do_not_stop_or_slow_trading(home, receiver, fakes):
    _config(home, f"""
[notify]
timeout_s = 1
retries = 2
backoff_s = 0.05
flush_s = 1
max_per_minute = 5
[notify.hangs]
url = "{receiver.url}/hang"
[notify.fails]
format = "telegram"
url = "{receiver.url}/fail"
chat_id = "1"
[notify.works]
url = "{receiver.url}/ok"
""")
    env = {**fakes, **LOOPBACK, "TRADER_TELEGRAM_BOT_TOKEN": TOKEN}
    started = time.monotonic()
    result = trader(home, "run", "--plugin", "flipper", "--max-candles", "40", "--quiet", env=env)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    (summary,) = status_json(home, "flipper", env=fakes)
    assert summary["account"]["candles"] == 40 and summary["fills"] >= 30  # every candle traded
    assert elapsed < 30
    # the rate limit: 5 a minute (and the urgent ones); the next one sent says how many were not
    works = receiver.bodies("/ok")
    assert 1 <= len(works) <= 6
    assert "not delivered after 3 attempts: HTTP 500" in result.stderr  # the failing one was retried, then given up
    assert TOKEN not in result.stderr
    assert "did not answer within 1s of the end of the run" in result.stderr
    assert len(receiver.bodies("/hang")) >= 1


@pytest.mark.slow
def test_halt_from_another_process_is_applied_alerted_and_survives_a_restart(home, receiver):
    _config(home, f'[notify.ops]\nurl = "{receiver.url}/ops"\n')
    env = dict(LOOPBACK)
    first = trader(home, "run", "--plugin", "buy_and_hold", "--max-candles", "3", "--quiet", env=env)
    assert first.returncode == 0, first.stderr
    running = start_trader(home, "run", "--plugin", "buy_and_hold", "--speed", "18000", "--quiet", env=env)
    try:
        wait_running(home, "buy_and_hold", running)
        asked = trader(home, "halt", "--plugin", "buy_and_hold", "--note", "kill switch test", env=env)
        assert asked.returncode == 0 and "running: halt requested" in asked.stdout, asked.stderr
        halt = receiver.wait_for("/ops", lambda b: b["kind"] == "halt")
        assert halt[0]["code"] == "OPERATOR_HALT" and "kill switch test" in halt[0]["message"]
        (summary,) = status_json(home, "buy_and_hold")
        assert summary["risk"]["status"] == "halted" and "OPERATOR_HALT" in summary["risk"]["reason"]
        running.send_signal(signal.SIGINT)
        running.communicate(timeout=30)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == 0
    with state_db(home, "buy_and_hold") as db:
        assert db.execute("SELECT COUNT(*) FROM control WHERE applied_at IS NULL").fetchone()[0] == 0
        fills = db.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    again = trader(home, "run", "--plugin", "buy_and_hold", "--max-candles", "5", "--quiet", env=env)
    assert again.returncode == 0 and "risk halted: OPERATOR_HALT" in again.stdout
    resumed = trader(home, "resume", "--plugin", "buy_and_hold", "--note", "back on", env=env)
    assert resumed.returncode == 0 and "resumed: status active (was halted (OPERATOR_HALT" in resumed.stdout
    with state_db(home, "buy_and_hold") as db:
        assert db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == fills  # nothing traded while halted


def test_halt_of_a_strategy_that_is_not_running_is_written_at_once_and_refusals_are_one_line(home):
    never = trader(home, "halt", "--plugin", "buy_and_hold")
    assert never.returncode == 1 and "has no state yet" in _one_line(never)
    assert not (home / "strategies" / "buy_and_hold").exists()
    unknown = trader(home, "halt", "--plugin", "../../etc")
    assert unknown.returncode == 2 and "unknown strategy" in _one_line(unknown)
    ran = trader(home, "run", "--plugin", "buy_and_hold", "--max-candles", "2", "--quiet", "--isolation", "inline")
    assert ran.returncode == 0, ran.stderr
    halted = trader(home, "halt", "--plugin", "buy_and_hold", "--note", "maintenance")
    assert halted.returncode == 0 and "buy_and_hold halted: status halted (was active)" in halted.stdout
    (summary,) = status_json(home, "buy_and_hold")
    assert summary["risk"]["reason"] == "OPERATOR_HALT: halted by the operator: maintenance"


# --------------------------------------------------------------------------- [notify] refusals


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[notify.t]\nformat = "telegram"\nurl = "https://api.telegram.org/bot123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ/"\nchat_id = "1"\n',
         "url carries a secret"),
        ('[notify.s]\nformat = "slack"\nurl = "https://hooks.slack.com/services/T0/B0/abc"\n', "url carries a secret"),
        ('[notify.s]\nformat = "slack"\nurl_env = "SLACK_HOOK"\n', "must say it holds a secret"),
        ('[notify]\nfills = "on"\n', "did you mean 'fill'"),
        ('[notify]\nhalt = "loud"\n', "must be one of on, silent, off"),
        ('[notify.x]\nformat = "email"\nurl = "http://127.0.0.1:1/"\n', "format must be one of json, telegram, slack, discord"),
        ('[notify.t]\nformat = "telegram"\n', "needs chat_id"),
        ('[notify.x]\nurl = "http://127.0.0.1:1/?token=abc"\n', "url carries a secret"),
        ('[notify.x]\nurl = "http://user:pw@127.0.0.1:1/"\n', "url carries a secret"),
    ],
)
def test_a_bad_notify_table_is_refused_by_every_command_with_one_line(home, toml, expected):
    _config(home, toml)
    result = trader(home, "status")
    assert result.returncode == 2 and expected in _one_line(result)


def test_a_missing_secret_stops_trader_run_before_anything_is_stored(home):
    _config(home, '[notify.t]\nformat = "telegram"\nchat_id = "1"\n')
    missing = trader(home, "run", "--plugin", "buy_and_hold", "--max-candles", "2", "--isolation", "inline")
    assert missing.returncode == 2
    assert "[notify.t]: the bot token comes from the environment variable TRADER_TELEGRAM_BOT_TOKEN, which is not set" in _one_line(missing)
    malformed = trader(home, "run", "--plugin", "buy_and_hold", "--isolation", "inline",
                       env={"TRADER_TELEGRAM_BOT_TOKEN": "not a token, secret words"})
    line = _one_line(malformed)
    assert "does not look like a Telegram bot token" in line and "secret words" not in line
    assert not (home / "strategies" / "buy_and_hold").exists()


# --------------------------------------------------------------------------- in-process: the step's side


def _notifier(url: str, **policy) -> Notifier:
    table = {"timeout_s": 5, "retries": 0, "flush_s": 0.5, "max_per_minute": 1000, **policy, "r": {"url": url}}
    settings = resolve_targets(table, environ={})
    assert settings is not None
    return Notifier(settings, "buy_and_hold")


def test_a_hanging_receiver_never_blocks_the_step(tmp_path, manager, receiver):
    notifier = _notifier(f"{receiver.url}/hang")
    session = make_session(manager, tmp_path, band=0.0)
    session.on_commit = notifier.observe
    closes = [100.0 + (i % 7) for i in range(300)]
    started = time.perf_counter()
    for i, close in enumerate(closes):
        session.step(T0 + i * HOUR, close, BUY if i % 2 == 0 else SELL)
    elapsed = time.perf_counter() - started
    notifier.close(flush_s=0.1)
    assert elapsed < 3.0  # 300 steps with a fill each, against a receiver that never answers (timeout 5 s)
    stats = notifier.stats()["r"]
    assert stats["delivered"] == 0 and stats["pending"] + stats["dropped"] + stats["failed"] >= 250


def test_stale_data_and_errors_outside_a_step_are_alerted(tmp_path, manager, receiver):
    notifier = _notifier(f"{receiver.url}/ok")
    session = make_session(manager, tmp_path)
    session.on_commit = notifier.observe
    session.step(T0, 100.0, HOLD)
    session.record_error(None, "STALE_DATA", "no new 1h candle for BTC/USDT from the exchange for 3 bars")
    session.record_error(None, "EXCHANGE_ERROR", "NetworkError: timed out")
    stale = receiver.wait_for("/ok", lambda b: b["kind"] == "stale")
    error = receiver.wait_for("/ok", lambda b: b["kind"] == "error")
    notifier.close()
    assert stale[0]["code"] == "STALE_DATA" and error[0]["code"] == "EXCHANGE_ERROR"
    assert not [b for b in receiver.bodies("/ok") if b["kind"] == "fill"]  # a HOLD trades nothing


class _HaltFails(TradingState):
    def halt(self, timestamp, note="", request_ids=()):
        raise StateError("disk full")


def test_a_halt_that_cannot_be_recorded_fails_closed_and_is_applied_again_on_restart(tmp_path, manager):
    directory = tmp_path / "buy_and_hold"
    store = _HaltFails.open("buy_and_hold", directory)
    session = make_session(manager, tmp_path, store=store, band=0.0)
    session.step(T0, 100.0, HOLD)
    store.request("halt", "stop now")
    assert session.apply_requests() == []
    assert session.status.value == "halted"
    record = session.step(T0 + HOUR, 100.0, BUY)
    assert not record.orders and record.note == "TRADING_HALTED"
    assert session.apply_requests() == []  # not retried by this process, stays halted
    saved = store.load()
    assert saved.status.value == "halted" and saved.status_reason.startswith("OPERATOR_HALT")
    assert [e["code"] for e in store.risk_events(kind="control")] == ["CONTROL_FAILED"]
    assert [r.command for r in store.pending_requests()] == ["halt"]  # a restart tries again
    store.close()
    restarted = make_session(manager, tmp_path, band=0.0)
    assert restarted.apply_requests() == ["halt"]
    assert restarted.store.pending_requests() == []
    restarted.store.close()


def test_the_last_pending_request_wins(tmp_path, manager):
    session = make_session(manager, tmp_path)
    session.step(T0, 100.0, HOLD)
    session.store.request("halt", "a")
    session.store.request("resume", "b")
    assert session.apply_requests() == ["halt", "resume"] and session.status.value == "active"
    session.store.request("resume", "c")
    session.store.request("halt", "d")
    assert session.apply_requests() == ["resume", "halt"] and session.status.value == "halted"
    assert "d" in session.status_reason
    session.store.close()


def test_redact_hides_tokens_secret_urls_and_bot_paths():
    url = f"https://api.telegram.org/bot{TOKEN}/sendMessage"
    assert TOKEN not in redact(f"POST {url} failed")
    assert "/bot<redacted>/sendMessage" in redact(f"POST {url} failed")
    assert redact("https://hooks.slack.com/services/T0/B0/abc timed out", ["https://hooks.slack.com/services/T0/B0/abc"]) == (
        "<redacted> timed out"
    )
    alert = Alert("halt", "s", "BTC/USDT", "OPERATOR_HALT", "x" * 2000, T0, "halted")
    assert len(alert.text()) < 600


def _fill_alert(i: int) -> Alert:
    return Alert("fill", "buy_and_hold", "BTC/USDT", "BUY", f"buy {i}", T0 + i)


def test_retries_only_what_may_succeed_and_follows_no_redirect(receiver):
    notifier = Notifier(resolve_targets({"retries": 2, "backoff_s": 0.01, "flush_s": 5, "bad": {"url": f"{receiver.url}/bad"},
                                         "busy": {"url": f"{receiver.url}/busy"}, "moved": {"url": f"{receiver.url}/moved"}},
                                        environ={}), "buy_and_hold")
    notifier.send(_fill_alert(0))
    notifier.close()
    assert len(receiver.bodies("/bad")) == 1  # a 400 will not get better
    assert len(receiver.bodies("/busy")) == 3  # 429: the first try and two retries, after Retry-After
    assert len(receiver.bodies("/moved")) == 1 and receiver.bodies("/ok") == []  # the body goes only where configured
    assert {name: s["failed"] for name, s in notifier.stats().items()} == {"bad": 1, "busy": 1, "moved": 1}


def test_the_rate_limit_and_a_full_queue_never_drop_a_halt_which_says_how_many_were_not_sent(receiver):
    limited = Notifier(resolve_targets({"max_per_minute": 3, "r": {"url": f"{receiver.url}/ok/limited"}}, environ={}), "s")
    for i in range(10):
        limited.send(_fill_alert(i))
    time.sleep(0.5)
    limited.send(Alert("halt", "s", "BTC/USDT", "OPERATOR_HALT", "stop", T0, "halted"))
    limited.close()
    bodies = receiver.bodies("/ok/limited")
    assert [b["kind"] for b in bodies] == ["fill"] * 3 + ["halt"]
    assert bodies[-1]["suppressed"] == 7 and "(+7 earlier alerts not sent" in bodies[-1]["text"]

    queued = Notifier(resolve_targets({"queue": 5, "timeout_s": 1, "retries": 0, "r": {"url": f"{receiver.url}/hang"}},
                                      environ={}), "s")
    for i in range(20):
        queued.send(_fill_alert(i))
    queued.send(Alert("halt", "s", "BTC/USDT", "OPERATOR_HALT", "stop", T0, "halted"))
    stats = queued.stats()["r"]
    waiting = [alert.kind for alert, _ in list(queued._senders[0].items)]
    queued.close(flush_s=0.1)
    assert stats["pending"] <= 5 and stats["dropped"] >= 15
    assert waiting[-1] == "halt"  # it took the place of the oldest


def test_a_resume_and_an_operator_halt_are_alerted_and_a_halt_keeps_an_earlier_reason(tmp_path, manager, receiver):
    notifier = _notifier(f"{receiver.url}/ok/control")
    session = make_session(manager, tmp_path)
    session.on_commit = notifier.observe
    session.step(T0, 100.0, HOLD)
    session.halt("first")
    session.halt("second")  # already halted: the reason stays, the request is recorded
    assert session.status_reason == "OPERATOR_HALT: halted by the operator: first"
    assert "second (already halted" in session.store.risk_events(kind="status")[-1]["message"]
    session.resume("fixed")
    receiver.wait_for("/ok/control", lambda b: b["code"] == "RESUMED")
    notifier.close()
    assert [(b["kind"], b["code"]) for b in receiver.bodies("/ok/control")] == [
        ("halt", "OPERATOR_HALT"), ("halt", "OPERATOR_HALT"), ("halt", "RESUMED")]
    session.store.request("halt", "pending while it ran")
    session.store.resume(T0 + HOUR, "from trader resume, nothing running")  # a resume made now supersedes it
    assert session.store.pending_requests() == []
    session.store.request("resume", "pending while it ran")
    session.store.halt(T0 + HOUR, "from trader halt, nothing running")  # so does a halt made now
    assert session.store.pending_requests() == [] and session.store.load().status.value == "halted"
    session.store.close()


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (RiskEvent(T0, "audit", "APPROVED", "approved", "c", True), None),
        (RiskEvent(T0, "audit", "NOTIONAL_EXCEEDS_FREE_BALANCE", "m", "c", False), "risk"),
        (RiskEvent(T0, "audit", "STALE_DATA", "m", "c", False), "stale"),
        (RiskEvent(T0, "alert", "INFERENCE_LATENCY", "m"), "risk"),
        (RiskEvent(T0, "status", "DAILY_LOSS_LIMIT", "m", status=TradingStatus.REDUCING), "risk"),
        (RiskEvent(T0, "status", "MAX_DRAWDOWN", "m", status=TradingStatus.HALTED), "halt"),
        (RiskEvent(T0, "control", "RESUMED", "m", status=TradingStatus.ACTIVE), "halt"),
        (RiskEvent(T0, "control", "CONTROL_FAILED", "m"), "error"),
        (RiskEvent(T0, "signal", "PLUGIN_ERROR", "m"), "error"),
        (RiskEvent(T0, "error", "ORDER_REJECTED", "m"), "error"),
        (RiskEvent(T0, "error", "STALE_DATA", "m"), "stale"),
        (RiskEvent(T0, "data", "DUPLICATE_CANDLE", "m"), "stale"),
    ],
)
def test_each_risk_event_has_its_alert_kind(event, kind):
    assert event_kind(event) == kind


def test_a_slack_message_cannot_mention_the_channel_and_a_discord_one_mentions_nobody():
    alert = Alert("error", "s", "BTC/USDT", "PLUGIN_ERROR", "<!channel> @everyone & more", T0)
    assert json.loads(payload("slack", alert, silent=False))["text"].endswith("&lt;!channel&gt; @everyone &amp; more")
    discord = json.loads(payload("discord", alert, silent=True))
    assert discord["allowed_mentions"] == {"parse": []} and discord["flags"] == 4096

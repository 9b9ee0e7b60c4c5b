"""The dashboard in headless Chromium (Debian's ``chromium``, driven by Playwright with its executable path).

Skipped, with the reason, where Playwright or the browser is missing (``.ci/run`` installs both).
Set ``TRADER_SCREENSHOTS=DIR`` to keep the screenshots (``docs/`` holds the ones in the docs).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from serve_testkit import TOKEN, Server, env_for, start, stop, wait_for

CHROMIUM = os.environ.get("TRADER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (.ci/run installs it)")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no chromium browser at {CHROMIUM} (apt-get install chromium; .ci/run does)", allow_module_level=True)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        except Exception as exc:  # a browser that cannot start here is a skip, not a failure
            pytest.skip(f"chromium at {CHROMIUM} does not start: {str(exc).splitlines()[0]}")
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    refusals = ("status of 401", "status of 403")  # the refused halts: the browser logs them as failed loads
    errors = [e for e in errors if not any(r in e for r in refusals)]
    assert not errors, errors  # no script error, no blocked resource (the CSP allows only this server)


def _shot(page, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("TRADER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"serve-{name}.png"), full_page=False)


class _Receiver(http.server.BaseHTTPRequestHandler):
    """A loopback webhook receiver: keeps every JSON body POSTed to it."""

    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (the handler's API)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    """A loopback receiver for ``[notify]``'s generic JSON POST: (its URL, the bodies received)."""
    received: list[dict] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def two_running(tmp_path, flip_site, webhook):
    """``buy_and_hold`` and ``flip`` trading on replay (10 candles a second), halts sent to ``webhook``, a server."""
    (tmp_path / "trader.toml").write_text(
        f'[notify]\nfill = "off"\nrisk = "off"\n\n[notify.local]\nformat = "json"\nurl = "{webhook[0]}"\n'
    )
    env = env_for(tmp_path, flip_site)
    runs = [start(env, "run", "--plugin", name, "--speed", "36000", "--max-candles", "3000", "--isolation", "inline", "--quiet")
            for name in ("buy_and_hold", "flip")]
    srv = Server(env_for(tmp_path, flip_site, TRADER_SERVE_TOKEN=TOKEN))
    wait_for(lambda: all(r.get("running_pid") and (r.get("account") or {}).get("candles", 0) >= 2
                         for r in srv.get("/api/strategies").json()["strategies"]) and
             len(srv.get("/api/strategies").json()["strategies"]) == 2)
    yield srv
    results = [stop(run) for run in runs]
    srv.stop()
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]


def test_the_overview_lists_two_running_strategies_and_updates_as_the_replay_advances(two_running, page, tmp_path):
    page.goto(two_running.url + "/")
    rows = page.locator("#overview tbody tr")
    sync_api.expect(rows).to_have_count(2)
    for name in ("buy_and_hold", "flip"):
        row = page.locator(f'#overview tbody tr[data-strategy="{name}"]')
        sync_api.expect(row).to_contain_text("active")
        sync_api.expect(row).to_contain_text("running (pid")
    cell = page.locator('#overview tbody tr[data-strategy="flip"] td').nth(7)  # last candle
    first = cell.inner_text()
    wait_for(lambda: cell.inner_text() != first, timeout=20)  # the page updated itself: no reload
    sync_api.expect(page.locator("#live")).to_contain_text("live, updated")
    _shot(page, tmp_path, "overview")


def test_halt_and_resume_buttons_work_with_the_token_and_are_refused_without_it(two_running, page, tmp_path, webhook):
    page.goto(two_running.url + "/strategies/flip")
    sync_api.expect(page.locator("#equity-chart svg path").first).to_be_attached()
    sync_api.expect(page.locator("#drawdown-chart svg")).to_be_attached()
    sync_api.expect(page.locator('[data-list="fills"] tbody tr').first).to_be_attached()
    assert page.get_attribute("#token", "type") == "password"
    page.fill("#note", "smoke in the server room")
    page.click("#halt")  # no token
    sync_api.expect(page.locator("#action-result")).to_contain_text("halt refused: this action needs the operator token")
    page.fill("#token", "not-the-token-but-long-enough")
    page.click("#halt")
    sync_api.expect(page.locator("#action-result")).to_contain_text("halt refused: wrong operator token")
    sync_api.expect(page.locator("#status .badge")).to_have_text("active")

    page.fill("#token", TOKEN)
    page.click("#halt")
    sync_api.expect(page.locator("#action-result")).to_contain_text("flip is running: halt requested")
    sync_api.expect(page.locator("#status .badge")).to_have_text("halted", timeout=20_000)
    sync_api.expect(page.locator("#status .reason")).to_contain_text("smoke in the server room")
    _shot(page, tmp_path, "strategy")
    buy_and_hold = two_running.get("/api/strategies/buy_and_hold").json()
    assert buy_and_hold["risk"]["status"] == "active"  # the other strategy trades on

    halts = wait_for(lambda: [m for m in webhook[1] if m.get("kind") == "halt"], timeout=20)  # the run's alert
    assert halts[0]["strategy"] == "flip" and halts[0]["code"] == "OPERATOR_HALT"
    assert "smoke in the server room" in halts[0]["message"]
    page.reload()  # a token that worked is kept for this tab
    assert page.input_value("#token") == TOKEN
    page.fill("#note", "all clear")
    page.click("#resume")
    sync_api.expect(page.locator("#action-result")).to_contain_text("flip is running: resume requested")
    sync_api.expect(page.locator("#status .badge")).to_have_text("active", timeout=20_000)


def test_the_token_in_the_printed_link_fills_the_field_and_leaves_the_address_bar(page, tmp_path, flip_site):
    srv = Server(env_for(tmp_path, flip_site))
    try:
        token = srv.next_line().rsplit(" ", 1)[1]
        link = srv.next_line().rsplit(" ", 1)[1]
        (tmp_path / "strategies" / "flip").mkdir(parents=True)
        page.goto(link)
        sync_api.expect(page.locator("#overview tbody")).to_contain_text("flip")
        assert "#token" not in page.url
        page.goto(srv.url + "/strategies/flip")
        assert page.input_value("#token") == token
    finally:
        page.goto("about:blank")  # no poll left running against a stopped server
        srv.stop()

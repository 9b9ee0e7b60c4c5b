"""docs/serve.md: the server reads the core's SQLite store only. A strategy whose ``trader_state_store``
plugin keeps its state elsewhere shows as having no account, and a halt from the server says to use
``trader halt``, which loads the plugins and reaches that store."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_testkit import TOKEN, Server, env_for, trader
from tests.plugin_packages import pip_install, write_plugin

ELSEWHERE_STORE = '''
import os
from pathlib import Path

from trader import hookimpl
from trader.engine.state import TradingState


@hookimpl
def trader_state_store(namespace, directory):
    elsewhere = os.environ.get("STORE_ELSEWHERE")
    return TradingState.open(namespace, Path(elsewhere) / namespace) if elsewhere else None
'''


@pytest.fixture(scope="module")
def store_site(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    return pip_install(tmp_path_factory.mktemp("site"), [
        write_plugin(src, "trader-elsewhere-store", "trader_elsewhere_store", "elsewhere_store", ELSEWHERE_STORE)])


@pytest.mark.slow
def test_a_state_kept_elsewhere_shows_no_account_and_a_halt_from_the_server_points_to_trader_halt(tmp_path, store_site):
    elsewhere = tmp_path / "elsewhere"
    env = env_for(tmp_path / "home", store_site, STORE_ELSEWHERE=str(elsewhere), TRADER_SERVE_TOKEN=TOKEN)
    ran = trader(env, "run", "--plugin", "buy_and_hold", "--max-candles", "5", "--quiet")
    assert ran.returncode == 0, ran.stderr
    assert (elsewhere / "buy_and_hold" / "state.sqlite").is_file()
    assert not (tmp_path / "home" / "strategies" / "buy_and_hold" / "state.sqlite").exists()
    srv = Server(env)
    try:
        assert srv.get("/api/strategies/buy_and_hold").json() == {"strategy": "buy_and_hold", "account": None,
                                                                    "running_pid": None}
        refused = srv.post("/api/strategies/buy_and_hold/halt", token=TOKEN, json={"note": "from the dashboard"})
        assert refused.status_code == 409
        assert refused.json()["error"] == (
            f"strategy 'buy_and_hold' has no state yet in {tmp_path / 'home' / 'strategies' / 'buy_and_hold'} (it has "
            "never run, or a trader_state_store plugin keeps its state elsewhere: use `trader halt --plugin buy_and_hold`, "
            "which loads the plugins)")
    finally:
        srv.stop()
    halted = trader(env, "halt", "--plugin", "buy_and_hold", "--note", "from the terminal")
    assert halted.returncode == 0, halted.stderr
    status = trader(env, "status", "--plugin", "buy_and_hold")
    assert "HALTED" in status.stdout and "from the terminal" in status.stdout

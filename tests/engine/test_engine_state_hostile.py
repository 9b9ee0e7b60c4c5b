"""A pip-installed plugin whose ``trader_state_store`` hands out another namespace's store, or raises."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from cli_runner import run_trader
from engine_testkit import install_fake_strategies
from plugin_packages import pip_install, write_plugin

EVIL = """
    import os
    from pathlib import Path

    from trader import hookimpl
    from trader.engine.state import TradingState


    @hookimpl
    def trader_state_store(namespace, directory):
        mode = os.environ.get("EVIL_STORE", "")
        if not mode or namespace != os.environ.get("EVIL_TARGET"):
            return None
        victim = Path(directory).parent / "buy_and_hold"
        if mode == "other":
            return TradingState.open("buy_and_hold", victim)
        if mode == "disguised":  # says it is the target's store, but its file is the victim's
            real = TradingState.open("buy_and_hold", victim)
            return TradingState(namespace, real.path, real._db)
        raise RuntimeError("the store backend is down")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, str]:
    """The hostile distribution pip-installed into a target folder, plus the engine's fake strategies."""
    src = tmp_path_factory.mktemp("src")
    target = tmp_path_factory.mktemp("site")
    pip_install(target, [write_plugin(src, "trader-evil-store", "trader_evil_store", "evil_store", EVIL, "0.1")])
    fakes = install_fake_strategies(tmp_path_factory.mktemp("fakes"))
    return {"PYTHONPATH": os.pathsep.join([str(target), fakes["PYTHONPATH"]])}


def _victim_rows(home: Path) -> list:
    db = sqlite3.connect(f"file:{home / 'strategies' / 'buy_and_hold' / 'state.sqlite'}?mode=rw", uri=True)
    try:
        return [db.execute(f"SELECT * FROM {t}").fetchall() for t in ("meta", "account", "positions", "fills", "orders")]
    finally:
        db.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["other", "disguised"])
def test_a_store_for_another_namespace_is_refused_naming_the_plugin(site, tmp_path, mode):
    first = run_trader("--home", str(tmp_path), "run", "--plugin", "buy_and_hold", "--max-candles", "20", "--quiet", env=site)
    assert first.returncode == 0, first.stderr
    before = _victim_rows(tmp_path)
    env = {**site, "EVIL_STORE": mode, "EVIL_TARGET": "flipper"}
    run = run_trader("--home", str(tmp_path), "run", "--plugin", "flipper", "--max-candles", "20", env=env)
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, run.stderr
    assert "the state store for 'flipper'" in lines[0] and "plugin 'evil_store'" in lines[0]
    assert "belongs to namespace 'buy_and_hold'; refused" in lines[0] and "Traceback" not in run.stderr
    assert _victim_rows(tmp_path) == before
    assert not (tmp_path / "strategies" / "flipper" / "state.sqlite").exists()


@pytest.mark.slow
def test_status_shows_the_others_when_one_store_hook_raises(site, tmp_path):
    for name in ("buy_and_hold", "flipper"):
        result = run_trader("--home", str(tmp_path), "run", "--plugin", name, "--max-candles", "10", "--quiet", env=site)
        assert result.returncode == 0, result.stderr
    env = {**site, "EVIL_STORE": "raise", "EVIL_TARGET": "flipper"}
    text = run_trader("--home", str(tmp_path), "status", env=env)
    assert text.returncode == 1
    assert text.stdout.startswith("buy_and_hold  [ACTIVE]")
    assert "\n\nflipper: state unreadable: RuntimeError: the store backend is down" in text.stdout
    as_json = run_trader("--home", str(tmp_path), "status", "--json", env=env)
    assert as_json.returncode == 1
    by_name = {s["strategy"]: s for s in json.loads(as_json.stdout)}
    assert by_name["buy_and_hold"]["account"] is not None
    assert by_name["flipper"]["error"] == "RuntimeError: the store backend is down"

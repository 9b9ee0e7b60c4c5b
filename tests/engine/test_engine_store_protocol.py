"""The StateStore and Broker protocols: the core's own implementations satisfy them, and a pip-installed
plugin's store is checked against StateStore when it is opened (refused naming what it lacks)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from cli_runner import run_trader

from trader.engine import Broker, MemoryState, PaperBroker, StateStore, TradingState
from trader.engine.brokers.ccxt_broker import CcxtBroker
from trader.engine.store import BulkStore, missing_members
from trader.engine.summary import format_status

STORES = """
    import os

    from trader import hookimpl
    from trader.engine.state import TradingState


    class HalfStore:  # what a plugin author might write from the old, informal contract
        def __init__(self, namespace):
            self.namespace = namespace

        def load(self, symbol=None, timeframe=None):
            return None

        def commit_step(self, record):
            pass

        def close(self):
            pass


    class LoggingStore:  # a complete third-party store: the core's, wrapped
        def __init__(self, inner):
            self._inner = inner
            self.namespace = inner.namespace

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def commit_step(self, record):
            with open(os.environ["STORE_LOG"], "a") as log:
                log.write(f"{record.timestamp}\\n")
            self._inner.commit_step(record)


    @hookimpl
    def trader_state_store(namespace, directory):
        mode = os.environ.get("STORE_MODE", "")
        if mode == "half":
            return HalfStore(namespace)
        if mode == "wrapped":
            return LoggingStore(TradingState.open(namespace, directory))
        return None
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, str]:
    src = tmp_path_factory.mktemp("src")
    target = tmp_path_factory.mktemp("site")
    pkg = src / "trader-other-store"
    (pkg / "trader_other_store").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "trader-other-store"
        version = "0.1"
        dependencies = []

        [project.entry-points."trader.plugins"]
        other_store = "trader_other_store"
    """))
    (pkg / "trader_other_store" / "__init__.py").write_text(textwrap.dedent(STORES))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(pkg)],
        check=True, capture_output=True, text=True,
    )
    return {"PYTHONPATH": str(target)}


def test_the_core_stores_and_brokers_satisfy_the_protocols(tmp_path):
    with TradingState.open("a", tmp_path / "a") as sqlite_store:
        assert isinstance(sqlite_store, StateStore) and missing_members(sqlite_store) == []
    memory = MemoryState("a")
    assert isinstance(memory, BulkStore) and missing_members(memory, BulkStore) == []
    for broker in (PaperBroker(), CcxtBroker(object(), strategy="a")):
        assert isinstance(broker, Broker) and missing_members(broker, Broker) == []


def test_missing_members_names_what_a_store_lacks():
    class Partial:
        namespace = "a"
        summary = "not callable"

        def load(self, symbol=None, timeframe=None):
            return None

    missing = missing_members(Partial())
    assert "load" not in missing and "namespace" not in missing
    assert missing[:3] == ["initialize", "commit_step", "record_order_intent"] and "summary" in missing


def test_a_memory_store_summarizes_like_the_sqlite_one(tmp_path):
    memory = MemoryState("a")
    assert memory.summary()["account"] is None
    memory.initialize(1_000.0)
    memory.request("resume", "later")
    summary = memory.summary()
    with TradingState.open("a", tmp_path / "a") as store:
        store.initialize(1_000.0)
        store.request("resume", "later")
        reference = store.summary()
    assert set(summary) == set(reference) and set(summary["account"]) == set(reference["account"])
    assert summary["risk"]["pending_requests"] == reference["risk"]["pending_requests"] == ["resume"]
    assert format_status(summary).splitlines()[1] == format_status(reference).splitlines()[1]  # the equity line


@pytest.mark.slow
def test_a_plugin_store_lacking_members_is_refused_naming_the_plugin_and_what_is_missing(site, tmp_path):
    result = run_trader("run", "--plugin", "buy_and_hold", "--max-candles", "3", home=tmp_path,
                        env={**site, "STORE_MODE": "half"})
    assert result.returncode == 1
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert "plugin 'other_store'" in line and "HalfStore" in line
    assert "lacks initialize, record_order_intent" in line and "StateStore" in line
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_complete_plugin_store_runs_trader_run_and_status(site, tmp_path):
    log = tmp_path / "commits.log"
    env = {**site, "STORE_MODE": "wrapped", "STORE_LOG": str(log)}
    result = run_trader("run", "--plugin", "buy_and_hold", "--max-candles", "4", home=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "4 new candles" in result.stdout
    assert len(log.read_text().split()) >= 4  # the plugin's store committed every step
    status = run_trader("status", "--plugin", "buy_and_hold", home=tmp_path, env=env)
    assert status.returncode == 0, status.stderr
    assert "buy_and_hold" in status.stdout and "equity" in status.stdout

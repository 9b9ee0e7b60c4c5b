"""`trader tune`: real pip-installed strategies, real `trader` processes, real SQLite studies."""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest
from tests.cli_runner import TRADER_EXE, run_trader
from tests.plugin_packages import pip_install, plugin_env, write_plugin
from tests.tune.tune_plugins import PLAIN, REVERT

optuna = pytest.importorskip("optuna", reason="trader-core[tune] (optuna) is not installed")

pytestmark = pytest.mark.slow

MARKET = ("--symbol", "SYN/USDT", "--timeframe", "1h")
FREE = ("--fee-bps", "0", "--slippage-bps", "0", "--spread-bps", "0")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    return pip_install(tmp_path_factory.mktemp("site"), [
        write_plugin(src, "trader-revert", "trader_revert", "revert", REVERT),
        write_plugin(src, "trader-plain", "trader_plain", "plain", PLAIN),
    ])


@pytest.fixture(scope="module")
def market_home(tmp_path_factory, site) -> Path:
    """A home holding 3,000 hourly bars of the synthetic market with its planted 3-bar reversal."""
    home = tmp_path_factory.mktemp("market")
    done = run_trader("data", "synth", *MARKET, "--bars", "3000", "--planted-signal", "0.3", "--seed", "0", home=home)
    assert done.returncode == 0, done.stderr
    return home


@pytest.fixture
def home(tmp_path, market_home) -> Path:
    target = tmp_path / "home"
    shutil.copytree(market_home, target)
    return target


def tune(home: Path, site: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return run_trader("tune", *MARKET, *FREE, "--no-progress", *args, home=home, env=plugin_env(site), timeout=timeout)


def trials(home: Path, study: str) -> list[tuple]:
    loaded = optuna.load_study(study_name=study, storage=f"sqlite:///{home / 'tune' / 'studies.db'}")
    return [(t.number, t.state.name, t.params, t.value) for t in loaded.get_trials()]


def _finished_trials(db: Path, study: str) -> int:
    """Trials of ``study`` no longer running, read without writing: optuna's own loader would create the schema
    and race the tune process creating it (which then stops on a storage error)."""
    import sqlite3

    if not db.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
            return con.execute("SELECT COUNT(*) FROM trials JOIN studies USING (study_id) "
                               "WHERE study_name = ? AND state != 'RUNNING'", (study,)).fetchone()[0]
    except sqlite3.Error:  # the schema is being created, or a write holds the lock
        return 0


def test_finds_better_than_default_parameters_and_no_trial_reads_the_held_out_tail(home, site):
    done = tune(home, site, "--plugin", "revert", "--trials", "8", "--workers", "1", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["default"]["params"] == {"lookback": 24}  # trial 0: the current settings
    assert report["best"]["value"] > report["default"]["value"]
    assert report["best"]["params"]["lookback"] <= 6  # the planted reversal reads three bars
    assert report["n_trials"] == 8 and 0.0 <= report["deflated_sharpe"] <= 1.0
    assert report["holdout"]["verdict"]["line"] and report["holdout"]["significance"]["sharpe"]["low"] is not None
    assert set(report["importances"]) == {"lookback"}
    tail_start = report["holdout_range"][0]
    loaded = optuna.load_study(study_name=report["study"], storage=f"sqlite:///{home / 'tune' / 'studies.db'}")
    for t in loaded.get_trials():
        first, last = t.user_attrs["read_range"]
        assert first == report["tuning_range"][0] and last == report["tuning_range"][1] < tail_start
        assert all(f["test_end_time"] < tail_start for f in t.user_attrs["folds"])
    # the held-out run trades the tail only
    assert report["holdout"]["range"]["start"] == tail_start
    listed = run_trader("tune", "--list", home=home, env=plugin_env(site))
    assert listed.returncode == 0 and report["study"] in listed.stdout and "revert" in listed.stdout


def test_a_killed_run_resumes_to_the_same_study_whatever_the_worker_count(home, tmp_path, market_home, site):
    args = ("--plugin", "revert", "--trials", "12", "--batch", "2", "--study", "s")
    other = tmp_path / "other"
    shutil.copytree(market_home, other)
    whole = tune(other, site, *args, "--workers", "2")
    assert whole.returncode == 0, whole.stderr

    env = {**{k: v for k, v in __import__("os").environ.items() if not k.startswith("TRADER_")},
           "TRADER_HOME": str(home), **plugin_env(site), "REVERT_DELAY_S": "0.25"}  # slow enough to be killed midway
    errors = tmp_path / "killed.stderr"
    with errors.open("w") as stderr:
        proc = subprocess.Popen([str(TRADER_EXE), "tune", *MARKET, *FREE, "--no-progress", *args, "--workers", "1"],
                                env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    db = home / "tune" / "studies.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if _finished_trials(db, "s") >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended ({proc.returncode}) before it was killed: {errors.read_text()[-2000:]}"
    assert len([t for t in trials(home, "s") if t[1] != "RUNNING"]) < 12
    resumed = tune(home, site, *args, "--workers", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert trials(home, "s") == trials(other, "s")


def test_a_strategy_without_a_search_space_and_a_widened_range_are_refused(home, site):
    done = tune(home, site, "--plugin", "plain", "--trials", "2")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: strategy 'plain' has no search space: it marks no declared parameter tune=True and "
        "[plugins.plain.tune] names none; add e.g. `level = true` there"]
    (home / "trader.toml").write_text("[plugins.revert.tune]\nlookback = { low = 0, high = 5 }\n")
    done = tune(home, site, "--plugin", "revert", "--trials", "2")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "[plugins.revert.tune] lookback: low 0 lies outside the declared range [1, 48]" in done.stderr


def test_the_tune_table_narrows_the_space_and_apply_writes_what_training_and_trading_read(home, site):
    (home / "trader.toml").write_text("[plugins.revert]\nsize = 0.5\n\n[plugins.revert.tune]\nlookback = { low = 2, high = 4 }\n"
                                      "size = true\n")
    done = tune(home, site, "--plugin", "revert", "--trials", "4", "--workers", "1", "--apply", "--min-trades", "0")
    assert done.returncode == 0, done.stderr
    assert "warning: trader.toml sets size, which wins over the tuned value(s)" in done.stdout
    for _, _, params, _ in trials(home, "revert-SYN-USDT-1h"):
        assert 2 <= params["lookback"] <= 4 and 0.1 <= params["size"] <= 1.0
    tuned = (home / "tuned" / "revert.toml").read_text()
    assert "[plugins.revert]" in tuned and "study = \"revert-SYN-USDT-1h\"" in tuned
    from trader.config import load_config

    config = load_config(home=home)
    again = tune(home, site, "--plugin", "revert", "--trials", "4", "--workers", "1", "--min-trades", "0", "--json")
    assert again.returncode == 0, again.stderr  # the finished study: only the report again
    best = json.loads(again.stdout)["best"]
    other = tune(home, site, "--plugin", "revert", "--trials", "4", "--min-trades", "0", "--objective", "return")
    assert other.returncode == 2 and "study 'revert-SYN-USDT-1h' was started with another objective" in other.stderr
    assert config.plugin_params("revert")["lookback"] == best["params"]["lookback"]
    assert config.plugin_params("revert")["size"] == 0.5  # trader.toml wins
    assert "tune" not in config.plugin_params("revert")
    # the strategy gets the tuned value: a backtest with it runs (and a broken tuned file is one line)
    assert run_trader("backtest", "--plugin", "revert", *MARKET, home=home, env=plugin_env(site)).returncode == 0
    (home / "tuned" / "revert.toml").write_text("[plugins.revert\n")
    broken = run_trader("backtest", "--plugin", "revert", *MARKET, home=home, env=plugin_env(site))
    assert broken.returncode == 2 and len(broken.stderr.strip().splitlines()) == 1 and "revert.toml" in broken.stderr


def test_train_records_the_applied_parameters_in_the_next_models_manifest(home, site):
    from trader.tune.applied import write_tuned

    write_tuned(home, "ensemble", {"buy_threshold": 0.6}, {}, {"study": "s", "trial": 3})
    done = run_trader("train", "--plugin", "ensemble", *MARKET, "--epochs", "5", "--no-progress", home=home, timeout=300)
    assert done.returncode == 0, done.stderr
    manifest = json.loads(run_trader("models", "show", "--plugin", "ensemble", *MARKET, home=home).stdout)
    assert manifest["extra"]["tuned"]["study"] == "s" and manifest["extra"]["tuned"]["params"] == {"buy_threshold": 0.6}
    assert manifest["extra"]["params"] == {"epochs": 5}  # the train table; buy_threshold is a signal key


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="trader-core[distributed] (ray) is not installed")
def test_trials_on_ray_give_the_same_study_as_the_local_pool(home, tmp_path, market_home, site):
    args = ("--plugin", "revert", "--trials", "6", "--batch", "2", "--study", "r", "--workers", "2")
    other = tmp_path / "other"
    shutil.copytree(market_home, other)
    local = tune(other, site, *args)
    assert local.returncode == 0, local.stderr
    ray = tune(home, site, *args, "--executor", "ray", timeout=400)
    assert ray.returncode == 0, ray.stderr
    assert trials(home, "r") == trials(other, "r")

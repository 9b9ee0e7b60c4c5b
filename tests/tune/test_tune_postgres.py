"""`trader tune --storage postgresql://...` on a real PostgreSQL server (the ``postgres`` fixture: a throwaway
server, or ``TRADER_TEST_POSTGRES_URL``): the same study as on SQLite, a killed run resumed, the listing,
and the URL's password never shown or written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from tests.cli_runner import TRADER_EXE, run_trader
from tests.plugin_packages import pip_install, plugin_env, write_plugin
from tests.tune.pg_server import PgServer
from tests.tune.tune_plugins import REVERT

optuna = pytest.importorskip("optuna", reason="trader-core[tune] (optuna) is not installed")
if os.environ.get("CI", "").lower() == "true":
    import psycopg2  # noqa: F401  (CI installs trader-core[postgres]: a skip there would hide a broken extra)
else:
    pytest.importorskip("psycopg2", reason="trader-core[postgres] (psycopg2) is not installed")

pytestmark = pytest.mark.slow

MARKET = ("--symbol", "SYN/USDT", "--timeframe", "1h")
FREE = ("--fee-bps", "0", "--slippage-bps", "0", "--spread-bps", "0")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    return pip_install(tmp_path_factory.mktemp("site"), [write_plugin(src, "trader-revert", "trader_revert", "revert", REVERT)])


@pytest.fixture(scope="module")
def market_home(tmp_path_factory) -> Path:
    """A home holding 3,000 hourly bars of the synthetic market with its planted 3-bar reversal."""
    home = tmp_path_factory.mktemp("market")
    done = run_trader("data", "synth", *MARKET, "--bars", "3000", "--planted-signal", "0.3", "--seed", "0", home=home)
    assert done.returncode == 0, done.stderr
    return home


def copy_home(market_home: Path, target: Path) -> Path:
    shutil.copytree(market_home, target)
    return target


def tune(home: Path, site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_trader("tune", *MARKET, *FREE, "--no-progress", *args, home=home, env={**plugin_env(site), **(env or {})},
                      timeout=300)


def trials(storage: str, study: str) -> list[tuple]:
    from trader.tune.storage import open_storage

    loaded = optuna.load_study(study_name=study, storage=open_storage(storage))
    return [(t.number, t.state.name, t.params, t.value, t.user_attrs.get("trades")) for t in loaded.get_trials()]


def sqlite(home: Path) -> str:
    return f"sqlite:///{home / 'tune' / 'studies.db'}"


def study_name(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"  # a server given by TRADER_TEST_POSTGRES_URL may hold earlier runs


def assert_never_shown(password: str, *outputs: str, homes: tuple[Path, ...] = ()) -> None:
    """Neither the password nor its URL encodings in *outputs* nor in any file under *homes*."""
    forms = {password, quote(password, safe=""), quote_plus(password)}
    for text in outputs:
        assert not any(form in text for form in forms), text
    for home in homes:
        for path in home.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(form.encode() in data for form in forms), path


def test_a_study_on_postgresql_holds_the_trials_of_the_same_run_on_sqlite_and_is_listed(postgres: PgServer, market_home,
                                                                                       site, tmp_path):
    study = study_name("same")
    args = ("--plugin", "revert", "--trials", "6", "--batch", "2", "--workers", "1", "--study", study)
    lite_home, pg_home = copy_home(market_home, tmp_path / "lite"), copy_home(market_home, tmp_path / "pg")
    on_lite = tune(lite_home, site, *args, "--json")
    assert on_lite.returncode == 0, on_lite.stderr
    on_pg = tune(pg_home, site, *args, "--storage", postgres.url, "--json")
    assert on_pg.returncode == 0, on_pg.stderr
    assert trials(postgres.url, study) == trials(sqlite(lite_home), study)
    assert len(trials(postgres.url, study)) == 6
    lite, pg = json.loads(on_lite.stdout), json.loads(on_pg.stdout)
    assert pg["best"] == lite["best"] and pg["trials"] == lite["trials"] and pg["holdout"]["metrics"] == lite["holdout"]["metrics"]
    assert pg["storage"] == f"postgresql://{postgres.user}:***@{postgres.host}:{postgres.port}/{postgres.database}"
    assert not (pg_home / "tune" / "studies.db").exists()  # nothing went to the default SQLite storage
    # the human report (its header names the storage) and the listing, text and JSON
    again = tune(pg_home, site, *args, "--storage", postgres.url)
    assert again.returncode == 0, again.stderr
    assert f"study {study} (postgresql://{postgres.user}:***@" in again.stderr
    listed = run_trader("tune", "--list", "--storage", postgres.url, home=pg_home)
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.startswith(study))
    assert "revert" in line and "SYN/USDT 1h" in line and " 6 " in line
    as_json = run_trader("tune", "--list", "--json", "--storage", postgres.url, home=pg_home)
    row = next(r for r in json.loads(as_json.stdout) if r["study"] == study)
    assert row["trials"] == 6 and row["best_params"] == lite["best"]["params"]
    # the password may come from libpq's PGPASSWORD instead of the URL (which `ps` shows)
    from_env = run_trader("tune", "--list", "--storage", postgres.without_password, home=pg_home,
                          env={"PGPASSWORD": postgres.password})
    assert from_env.returncode == 0 and study in from_env.stdout, from_env.stderr
    assert_never_shown(postgres.password, on_pg.stdout, on_pg.stderr, again.stdout, again.stderr, listed.stdout,
                       listed.stderr, as_json.stdout, as_json.stderr, from_env.stdout, from_env.stderr, homes=(pg_home,))


def test_a_killed_run_resumes_on_postgresql_to_the_study_of_an_unbroken_run(postgres: PgServer, market_home, site,
                                                                            tmp_path):
    study = study_name("killed")
    args = ("--plugin", "revert", "--trials", "10", "--batch", "2", "--workers", "1", "--study", study)
    lite_home, pg_home = copy_home(market_home, tmp_path / "lite"), copy_home(market_home, tmp_path / "pg")
    whole = tune(lite_home, site, *args)
    assert whole.returncode == 0, whole.stderr

    from trader.tune.storage import open_storage

    open_storage(postgres.url)  # Optuna's tables exist before the polling below races the run to create them
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}, "TRADER_HOME": str(pg_home),
           **plugin_env(site), "REVERT_DELAY_S": "0.25"}  # slow enough to be killed midway
    proc = subprocess.Popen([str(TRADER_EXE), "tune", *MARKET, *FREE, "--no-progress", *args, "--storage", postgres.url],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if sum(t[1] != "RUNNING" for t in trials(postgres.url, study)) >= 3:
                break
        except Exception:  # the study is being created
            pass
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert len([t for t in trials(postgres.url, study) if t[1] != "RUNNING"]) < 10
    resumed = tune(pg_home, site, *args, "--storage", postgres.url)
    assert resumed.returncode == 0, resumed.stderr
    assert "trials finished" in resumed.stderr and " of 10 trials finished" in resumed.stderr
    assert trials(postgres.url, study) == trials(sqlite(lite_home), study)
    assert_never_shown(postgres.password, out, err, resumed.stdout, resumed.stderr, homes=(pg_home,))


def _silent_server() -> socket.socket:
    """A TCP port on 127.0.0.1 that accepts connections and never answers (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


def test_a_wrong_password_an_unreachable_or_silent_server_and_no_driver_are_one_line_with_the_password_masked(
        postgres: PgServer, market_home, site, tmp_path):
    home = copy_home(market_home, tmp_path / "home")
    secret = "Wr0ng-pass@word/%"
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    refused = f"postgresql://{postgres.user}:{quote(postgres.password, safe='')}@127.0.0.1:{closed}/{postgres.database}"
    listener = _silent_server()
    silent = (f"postgresql://{postgres.user}:{quote(postgres.password, safe='')}@127.0.0.1:{listener.getsockname()[1]}/"
              f"{postgres.database}")
    try:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}, "TRADER_HOME": str(home)}
        began = time.monotonic()
        hung, hung_short = (subprocess.Popen([str(TRADER_EXE), "tune", "--list", "--storage", url], text=True, env=env,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                            for url in (silent, silent + "?connect_timeout=2"))
        _, short_err = hung_short.communicate(timeout=120)
        waited_short = time.monotonic() - began
        wrong = tune(home, site, "--plugin", "revert", "--trials", "2", "--storage", postgres.with_password(secret))
        unreachable = tune(home, site, "--plugin", "revert", "--trials", "2", "--storage", refused)
        out, err = hung.communicate(timeout=120)
        waited = time.monotonic() - began
    finally:
        listener.close()
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr.strip().splitlines() == [
        f"Error: --storage postgresql://{postgres.user}:***@{postgres.host}:{postgres.port}/{postgres.database}: "
        f"OperationalError: connection to server at \"{postgres.host}\", port {postgres.port} failed: "
        f"FATAL:  password authentication failed for user \"{postgres.user}\""]
    assert unreachable.returncode == 2 and len(unreachable.stderr.strip().splitlines()) == 1
    assert f"postgresql://{postgres.user}:***@127.0.0.1:{closed}/" in unreachable.stderr
    assert "Connection refused" in unreachable.stderr
    assert hung.returncode == 2 and len(err.strip().splitlines()) == 1 and "timeout expired" in err, err
    assert 9 < waited < 40  # the 10 s connect timeout, not the OS's minutes
    assert hung_short.returncode == 2 and "timeout expired" in short_err and waited_short < 9.5  # the URL's own, not 10 s
    # no driver at all: the real CLI with psycopg2 and psycopg made unimportable
    no_driver = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['psycopg2'] = sys.modules['psycopg'] = None\n"
         "from trader.cli import main; main()", "tune", "--list", "--storage", postgres.url],
        capture_output=True, text=True, timeout=120,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}, "TRADER_HOME": str(home)})
    assert no_driver.returncode == 2
    assert no_driver.stderr.strip().splitlines() == [
        f"Error: --storage postgresql://{postgres.user}:***@{postgres.host}:{postgres.port}/{postgres.database}: "
        "no PostgreSQL driver is installed: pip install 'trader-core[postgres]'"]
    for done in (wrong, unreachable, no_driver):
        assert "Traceback" not in done.stderr
    assert "Traceback" not in err
    assert_never_shown(secret, wrong.stdout, wrong.stderr, homes=(home,))
    assert_never_shown(postgres.password, unreachable.stdout, unreachable.stderr, out, err, short_err, no_driver.stdout,
                       no_driver.stderr, homes=(home,))

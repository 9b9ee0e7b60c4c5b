"""State integrity as a user meets it: real ``trader`` subprocesses on real state files (``--home``)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from cli_runner import run_trader
from engine_testkit import install_fake_strategies, start_trader

from trader.engine.schema import SCHEMA_VERSION

NAME = "buy_and_hold"


def trader(home: Path, *args: str, env: dict[str, str] | None = None):
    return run_trader("--home", str(home), *args, env=env)


def _setup(home: Path, candles: int = 50) -> Path:
    result = trader(home, "run", "--plugin", NAME, "--max-candles", str(candles), "--quiet")
    assert result.returncode == 0, result.stderr
    return home / "strategies" / NAME


def _rows(folder: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{folder / 'state.sqlite'}?mode=rw", uri=True)  # closed: leaves no -wal behind
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def _forge(folder: Path, sql: str) -> None:
    db = sqlite3.connect(folder / "state.sqlite")
    db.execute(sql)
    db.commit()
    db.close()


def _status(home: Path, *args: str, env: dict[str, str] | None = None):
    result = trader(home, "status", "--json", *args, env=env)
    return result.returncode, json.loads(result.stdout)


def _error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("forgery", "expected"),
    [
        ("UPDATE account SET cash = 1000000", "cash 1,000,000.00 in the account but 0.00 from the ledger (initial 10,000.00, 1 fill)"),
        ("UPDATE positions SET quantity = quantity * 3", "BTC/USDT position"),
    ],
)
def test_a_forged_account_halts_the_next_run_which_trades_nothing_and_resume_refuses(tmp_path, forgery, expected):
    folder = _setup(tmp_path)
    orders = _rows(folder, "SELECT * FROM orders")
    _forge(folder, forgery)

    code, [summary] = _status(tmp_path)  # status sees the forgery before any run halts on it
    assert code == 0 and summary["ledger"]["consistent"] is False and expected in summary["ledger"]["problem"]
    text = trader(tmp_path, "status")
    assert text.returncode == 0 and "state INCONSISTENT with its ledger: " in text.stdout and expected in text.stdout

    run = trader(tmp_path, "run", "--plugin", NAME, "--max-candles", "20", "--quiet")
    assert run.returncode == 0, run.stderr
    assert "risk halted: STATE_INCONSISTENT: " in run.stdout and expected in run.stdout
    assert _rows(folder, "SELECT * FROM orders") == orders  # not one new order: a halt denies every one

    _, [summary] = _status(tmp_path)
    assert summary["risk"]["status"] == "halted" and summary["risk"]["reason"].startswith("STATE_INCONSISTENT: ")
    assert summary["event_counts"]["STATE_INCONSISTENT"] == 1

    resume = trader(tmp_path, "resume", "--plugin", NAME)
    assert resume.returncode == 1
    line = _error_line(resume)
    assert "cannot resume: its account does not match its ledger" in line and "restore a backup" in line
    assert _status(tmp_path)[1][0]["risk"]["status"] == "halted"

    folder.rename(tmp_path / "forged-state")  # the documented way out: move the folder away
    fresh = trader(tmp_path, "run", "--plugin", NAME, "--max-candles", "5", "--quiet")
    assert fresh.returncode == 0, fresh.stderr
    _, [summary] = _status(tmp_path)
    assert summary["risk"]["status"] == "active" and summary["ledger"]["consistent"] is True
    assert summary["account"]["initial_cash"] == 10_000.0


@pytest.mark.slow
def test_restarts_and_sigkills_keep_the_account_consistent_with_its_ledger(tmp_path):
    fakes = install_fake_strategies(tmp_path / "site")
    home = tmp_path / "home"
    args = ("run", "--plugin", "flipper", "--bars", "120")
    for kills in range(3):
        process = start_trader(home, *args, env=fakes)
        steps = 0
        assert process.stderr is not None
        for line in process.stderr:
            if " step flipper " in line:
                steps += 1
                if steps >= 3 + 4 * kills:
                    break
        process.kill()
        process.communicate(timeout=30)
    final = run_trader("--home", str(home), *args, "--quiet", env=fakes)
    assert final.returncode == 0, final.stderr
    code, [summary] = _status(home, env=fakes)
    assert code == 0 and summary["ledger"] == {"consistent": True, "problem": None, "cash_flows": 1}
    assert summary["fills"] > 10 and not summary["risk"]["reason"].startswith("STATE_INCONSISTENT")
    assert "STATE_INCONSISTENT" not in summary["event_counts"]


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _junk(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damage", "expected"),
    [(_empty, "is empty (0 bytes)"), (_junk, "is not a SQLite database"), (_truncate, "is truncated")],
)
def test_an_unsound_state_file_stops_run_status_and_resume_with_one_line_and_stays_as_it_is(tmp_path, damage, expected):
    folder = _setup(tmp_path)
    path = folder / "state.sqlite"
    damage(path)
    before = path.read_bytes()
    run = trader(tmp_path, "run", "--plugin", NAME, "--max-candles", "5")
    assert run.returncode == 1 and expected in _error_line(run) and str(path) in run.stderr
    status = trader(tmp_path, "status")
    assert status.returncode == 1
    assert len(status.stdout.strip().splitlines()) == 1
    assert status.stdout.startswith(f"{NAME}: state unreadable: state file {path} {expected}")
    resume = trader(tmp_path, "resume", "--plugin", NAME)
    assert resume.returncode == 1 and expected in _error_line(resume)
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["plugin", "run.lock", "state.sqlite"]  # the first run's


@pytest.mark.slow
def test_a_state_file_that_is_a_directory_or_a_link_and_a_planted_lock_link_are_refused(tmp_path):
    folder = _setup(tmp_path, 5)
    (folder / "state.sqlite").rename(tmp_path / "saved.sqlite")
    (folder / "state.sqlite").mkdir()
    run = trader(tmp_path, "run", "--plugin", NAME, "--max-candles", "5")
    assert run.returncode == 1 and "is a directory, not a regular file" in _error_line(run)
    (folder / "state.sqlite").rmdir()
    (folder / "state.sqlite").symlink_to(tmp_path / "saved.sqlite")
    run = trader(tmp_path, "run", "--plugin", NAME, "--max-candles", "5")
    assert run.returncode == 1 and "is a symbolic link, not a regular file" in _error_line(run)
    (folder / "state.sqlite").unlink()
    (tmp_path / "saved.sqlite").rename(folder / "state.sqlite")

    victim = tmp_path / "victim.txt"
    victim.write_text("do not truncate me\n")
    (folder / "run.lock").unlink()
    (folder / "run.lock").symlink_to(victim)
    run = trader(tmp_path, "run", "--plugin", NAME, "--max-candles", "5")
    assert run.returncode == 1 and "run.lock is a symbolic link; refusing to use it" in _error_line(run)
    assert victim.read_text() == "do not truncate me\n"
    code, [summary] = _status(tmp_path)  # status is not fooled either
    assert code == 0 and summary["running_pid"] is None and summary["account"] is not None


@pytest.mark.slow
def test_status_shows_every_readable_strategy_names_the_unreadable_one_and_exits_1(tmp_path):
    _setup(tmp_path, 5)
    ghost = tmp_path / "strategies" / "ghost"
    ghost.mkdir()
    (ghost / "state.sqlite").write_bytes(b"not a database at all, just junk bytes" * 10)
    text = trader(tmp_path, "status")
    assert text.returncode == 1
    assert text.stdout.startswith(f"{NAME}  [ACTIVE]")
    assert f"\n\nghost: state unreadable: state file {ghost / 'state.sqlite'} is not a SQLite database" in text.stdout
    code, summaries = _status(tmp_path)
    assert code == 1
    by_name = {s["strategy"]: s for s in summaries}
    assert by_name[NAME]["account"]["equity"] > 0 and "error" not in by_name[NAME]
    assert "is not a SQLite database" in by_name["ghost"]["error"]
    assert trader(tmp_path, "status", "--plugin", NAME).returncode == 0


@pytest.mark.slow
def test_status_and_resume_create_no_state_file_or_folder(tmp_path):
    status = trader(tmp_path, "status", "--plugin", NAME)
    assert status.returncode == 0 and "no account yet" in status.stdout
    assert not (tmp_path / "strategies").exists()
    folder = tmp_path / "strategies" / NAME
    folder.mkdir(parents=True)
    (folder / "run.lock").write_text("")
    assert trader(tmp_path, "status").returncode == 0
    resume = trader(tmp_path, "resume", "--plugin", NAME)
    assert resume.returncode == 1 and "has no state yet" in _error_line(resume)
    assert sorted(p.name for p in folder.iterdir()) == ["run.lock"]


@pytest.mark.slow
def test_a_schema_1_state_file_is_shown_untouched_by_status_and_migrated_by_the_next_run(tmp_path):
    folder = _setup(tmp_path)
    fills = _rows(folder, "SELECT * FROM fills")
    _forge(folder, "DROP TABLE cash_flows")
    _forge(folder, "DROP TABLE market_equity")
    _forge(folder, "UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    # every commit is in the file (plugin/ is the strategy's own folder, SignalRequest.workdir)
    assert sorted(p.name for p in folder.iterdir()) == ["plugin", "run.lock", "state.sqlite"]
    before = (folder / "state.sqlite").read_bytes()
    code, [summary] = _status(tmp_path)
    assert code == 0 and summary["ledger"]["consistent"] is True and summary["fills"] == len(fills)
    assert (folder / "state.sqlite").read_bytes() == before
    run = trader(tmp_path, "run", "--plugin", NAME, "--max-candles", "10", "--quiet")
    assert run.returncode == 0, run.stderr
    assert _rows(folder, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert _rows(folder, "SELECT amount, kind FROM cash_flows") == [(10_000.0, "initial")]
    assert _rows(folder, "SELECT * FROM fills")[: len(fills)] == fills
    assert _status(tmp_path)[1][0]["risk"]["status"] == "active"

"""`trader new-plugin`, `trader install` and `trader uninstall`: what a user sees, errors as one line."""

from __future__ import annotations

import keyword
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trader.errors import ConfigError
from trader.templates import TEMPLATES, check_plugin_name, core_requirement


def trader(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADER_", "PIP_"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "trader", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, input=input, timeout=120)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in proc.stderr
    return lines[0]


# ---------------------------------------------------------------------- new-plugin


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Bad-Name", "invalid plugin name 'Bad-Name': use a Python identifier of lower-case letters, digits and underscores, starting with a letter (e.g. 'bad_name')"),
        ("2fast", "invalid plugin name '2fast'"),
        ("class", "invalid plugin name 'class': it is a Python keyword"),
        ("core_rules", "names starting with core_ or trader_ are reserved"),
        ("dl_lstm", "cannot create plugin 'dl_lstm': plugin name 'dl_lstm' is taken by the installed distribution trader-dl-lstm"),
        ("buy_and_hold", "cannot create plugin 'buy_and_hold': plugin name 'buy_and_hold' is taken by trader-core's built-in"),
    ],
)
def test_new_plugin_refuses_bad_or_taken_names_in_one_line(tmp_path, name, expected):
    proc = trader("new-plugin", name, "--dir", tmp_path)
    assert proc.returncode == 2
    assert expected in one_error_line(proc)
    assert list(tmp_path.iterdir()) == []


def test_new_plugin_refuses_an_existing_project_folder_and_keeps_it(tmp_path):
    existing = tmp_path / "trader-momentum"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    proc = trader("new-plugin", "momentum", "--dir", tmp_path)
    assert proc.returncode == 2
    assert "trader-momentum already exists and is not empty" in one_error_line(proc)
    assert [p.name for p in existing.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_new_plugin_writes_a_complete_project(tmp_path, template):
    proc = trader("new-plugin", "my_strategy", "--dir", tmp_path, "--template", template, "--description", "Buys dips")
    assert proc.returncode == 0, proc.stderr
    project = tmp_path / "trader-my-strategy"
    files = sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file())
    expected = {".gitignore", "README.md", "pyproject.toml", "src/trader_my_strategy/__init__.py", "tests/test_my_strategy.py"}
    if template == "ml":
        expected.add("src/trader_my_strategy/model.py")
    assert set(files) == expected
    for path in project.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "{{" not in text and "}}" not in text, path
            if path.suffix == ".py":
                compile(text, str(path), "exec")
    assert 'description = "Buys dips"' in (project / "pyproject.toml").read_text()
    assert "trader install -e" in proc.stdout and "trader run --plugin my_strategy" in proc.stdout


def test_new_plugin_refuses_a_description_that_would_break_the_generated_files(tmp_path):
    proc = trader("new-plugin", "quoted", "--dir", tmp_path, "--description", 'say "hi"')
    assert proc.returncode == 2
    assert "--description must be one line without double quotes or backslashes" in one_error_line(proc)
    assert list(tmp_path.iterdir()) == []


def test_new_plugin_lists_the_templates_in_its_help():
    proc = trader("new-plugin", "--help")
    assert proc.returncode == 0
    assert "--template [minimal|ml]" in proc.stdout


@given(st.text(max_size=20))
def test_plugin_names_are_either_accepted_identifiers_or_refused_clearly(name):
    try:
        accepted = check_plugin_name(name)
    except ConfigError as exc:
        assert str(exc).startswith(f"invalid plugin name {name!r}")
        assert "\n" not in str(exc)
    else:
        assert accepted == name and name.isidentifier() and name == name.lower() and not keyword.iskeyword(name)
        assert name.isascii()


@pytest.mark.parametrize(("version", "requirement"), [("0.1.0", "trader-core>=0.1,<0.2"), ("0.12.3", "trader-core>=0.12,<0.13"), ("1.4.2", "trader-core>=1.4,<2")])
def test_generated_plugins_accept_compatible_core_versions_only(version, requirement):
    assert core_requirement(version) == requirement


# ---------------------------------------------------------------------- install / uninstall


def test_install_without_packages_is_a_usage_error():
    proc = trader("install")
    assert proc.returncode == 2
    assert "name at least one package to install" in one_error_line(proc)


def test_install_reports_pip_failure_in_one_line():
    proc = trader("install", "trader-no-such-plugin-xyz", env={"PIP_NO_INDEX": "1"})
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert line.startswith("Error: pip install failed: ")
    assert "No matching distribution found for trader-no-such-plugin-xyz" in line


def test_uninstall_refuses_what_is_not_installed_and_trader_itself():
    missing = trader("uninstall", "no_such_plugin", "-y")
    assert missing.returncode == 2
    assert "'no_such_plugin' is not installed" in one_error_line(missing)
    core = trader("uninstall", "trader-core", "-y")
    assert core.returncode == 2
    assert "refusing to uninstall trader-core: it is trader itself" in one_error_line(core)


def test_uninstall_asks_first_and_a_plugin_that_breaks_on_import_is_reported(tmp_path, fresh_venv):
    assert fresh_venv.trader("new-plugin", "fragile", "--dir", tmp_path).returncode == 0
    init = tmp_path / "trader-fragile" / "src" / "trader_fragile" / "__init__.py"
    init.write_text(init.read_text() + "\nraise RuntimeError('fragile is broken')\n")

    installed = fresh_venv.trader("install", tmp_path / "trader-fragile")
    assert installed.returncode == 1
    assert "Installed plugin fragile (trader-fragile 0.1.0) but it fails to load: import raised RuntimeError: fragile is broken" in installed.stdout
    assert "installed plugin(s) fail to load: fragile" in one_error_line(installed)
    listed = fresh_venv.trader("plugins")
    assert listed.returncode == 0 and "fragile is broken" in listed.stdout  # the host survives it

    declined = subprocess.run([str(fresh_venv.python), "-m", "trader", "uninstall", "fragile"], input="n\n",
                              capture_output=True, text=True, env=fresh_venv.env(), timeout=60)
    assert declined.returncode != 0
    assert "Uninstall trader-fragile (plugins: fragile)?" in declined.stdout
    assert "fragile" in fresh_venv.trader("plugins").stdout

    accepted = subprocess.run([str(fresh_venv.python), "-m", "trader", "uninstall", "trader-fragile"], input="y\n",
                              capture_output=True, text=True, env=fresh_venv.env(), timeout=60)
    assert accepted.returncode == 0, accepted.stderr
    assert "Uninstalled trader-fragile; removed plugin(s): fragile" in accepted.stdout
    assert "fragile" not in fresh_venv.trader("plugins").stdout

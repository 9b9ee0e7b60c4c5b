"""`trader new-plugin` (minimal template) -> pip install into a fresh environment -> its tests pass,
`trader plugins` lists it, it backtests and trades on paper; `trader uninstall` removes it. See conftest.py for the environment."""

from __future__ import annotations

import json
import re


def test_minimal_plugin_from_scaffold_to_uninstall(tmp_path, fresh_venv, main_env_plugins):
    created = fresh_venv.trader("new-plugin", "momentum", "--dir", tmp_path)
    assert created.returncode == 0, created.stderr
    project = tmp_path / "trader-momentum"
    assert "Created strategy plugin 'momentum' (minimal template)" in created.stdout
    assert 'momentum = "trader_momentum"' in (project / "pyproject.toml").read_text()
    assert '"trader-core>=0.1,<0.2"' in (project / "pyproject.toml").read_text()

    installed = fresh_venv.trader("install", project)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "Installed strategy momentum (trader-momentum 0.1.0)" in installed.stdout
    assert list(fresh_venv.site_packages.glob("trader_momentum-0.1.0.dist-info"))

    listed = fresh_venv.trader("plugins")
    assert re.search(r"^momentum\s+trader-momentum 0\.1\.0\s+\[loaded, strategy\]", listed.stdout, re.M), listed.stdout
    assert not re.search(r"^momentum\s", main_env_plugins(fresh_venv.home), re.M)  # installed there, not here

    # Its own tests (conformance suite included) pass where it is installed, from outside the source tree.
    tests = fresh_venv.run("-m", "pytest", project / "tests", "-q", "-p", "no:cacheprovider", cwd=tmp_path)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert re.search(r"\b9 passed, 1 skipped\b", tests.stdout), tests.stdout

    backtest = fresh_venv.trader("backtest", "--plugin", "momentum", "--synthetic-bars", "1500", "--bootstrap", "100", "--json")
    assert backtest.returncode == 0, backtest.stderr
    result = json.loads(backtest.stdout)
    assert result["strategy"] == "momentum" and result["metrics"]["trades"] > 0

    run = fresh_venv.trader("run", "--plugin", "momentum", "--bars", "300", "--max-candles", "120", "--quiet", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["strategy"] == "momentum" and summary["processed"] == 120 and summary["trades"] > 0
    assert (fresh_venv.home / "strategies" / "momentum" / "state.sqlite").is_file()

    removed = fresh_venv.trader("uninstall", "momentum", "-y")
    assert removed.returncode == 0, removed.stderr
    assert "Uninstalled trader-momentum; removed plugin(s): momentum" in removed.stdout
    assert not re.search(r"^momentum\s", fresh_venv.trader("plugins").stdout, re.M)

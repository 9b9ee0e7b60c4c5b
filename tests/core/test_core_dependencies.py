"""What installing trader-core pulls in, and which way its packages import each other."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "core" / "src" / "trader"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _declared(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_scikit_learn_is_not_a_core_dependency_and_core_never_imports_it():
    project = tomllib.loads((ROOT / "core" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "scikit-learn" not in _declared(project["dependencies"])
    assert "scikit-learn" in _declared(project["optional-dependencies"]["test"])  # the metrics' tests compare with it
    importers = [p.relative_to(SRC) for p in SRC.rglob("*.py") if any(m.split(".")[0] == "sklearn" for m in _imports(p))]
    assert importers == []
    ensemble = tomllib.loads((ROOT / "plugins" / "ensemble" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "scikit-learn" in _declared(ensemble["dependencies"])


def test_the_metrics_package_imports_nothing_of_the_backtests():
    importers = [p.name for p in (SRC / "evaluation").glob("*.py")
                 if any(m == "trader.backtest" or m.startswith("trader.backtest.") for m in _imports(p))]
    assert importers == []

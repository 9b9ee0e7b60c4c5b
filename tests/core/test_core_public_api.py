"""Every public module (docs/api.md) lists its public names in ``__all__``: each one it defines,
each name listed resolves (lazy ones included), and nothing is listed that it neither defines nor imports.

A module's public names are the ones it defines at top level (functions, classes, assignments)
without a leading underscore, plus the names a package re-exports from ``trader`` modules
(under ``if TYPE_CHECKING:`` for the lazy ones, so type checkers and IDEs see them too).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

PUBLIC_MODULES = (
    "trader",
    "trader.types",
    "trader.errors",
    "trader.hookspecs",
    "trader.params",
    "trader.validators",
    "trader.candle_time",
    "trader.feature_windows",
    "trader.probability_signals",
    "trader.features",
    "trader.ml",
    "trader.ml.plugin",
    "trader.ml.sequence",
    "trader.ml.spec",
    "trader.evaluation.classification",
    "trader.models",
    "trader.testing",
)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _names(module_name: str) -> tuple[set[str], set[str]]:
    """``(defined, imported from trader)`` top-level names of the module's source, private ones left out."""
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    defined: set[str] = set()
    imported: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined.add(node.target.id)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "trader":
                imported.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                visit(node.body)

    visit(tree.body)
    public = re.compile(r"^(?!_)|^__version__$")
    return ({n for n in defined if public.match(n) and n not in ("log", "logger")},
            {n for n in imported if public.match(n)})


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_lists_exactly_the_public_names_and_each_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    listed = list(module.__all__)
    assert len(listed) == len(set(listed)), f"{module_name}.__all__ repeats a name"
    defined, imported = _names(module_name)
    assert defined - set(listed) == set(), f"{module_name} defines public names missing from __all__"
    assert set(listed) - defined - imported == set(), f"{module_name}.__all__ lists names it neither defines nor imports"
    for name in listed:
        assert getattr(module, name) is not None, f"{module_name}.{name}"


def test_the_api_page_lists_every_public_module() -> None:
    page = DOCS.read_text(encoding="utf-8")
    section = page.split("## The public modules", 1)[1].split("\n## ", 1)[0]
    table = set(re.findall(r"^\| `([\w.]+)` \|", section, re.M))
    assert table == set(PUBLIC_MODULES)

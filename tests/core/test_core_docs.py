"""The hook reference never drifts from the code (datasette's test_docs pattern)."""

from __future__ import annotations

import inspect
import types
from pathlib import Path

import pytest

import trader
from trader import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs"


def hookspec_names() -> list[str]:
    return sorted(name for name in dir(hookspecs) if name.startswith("trader_"))


def signature_text(name: str) -> str:
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({params}) -> {sig.return_annotation}"


@pytest.mark.parametrize("name", hookspec_names())
def test_every_hook_is_documented_with_its_exact_signature(name):
    reference = (DOCS / "plugins.md").read_text()
    assert f"### `{signature_text(name)}`" in reference


def test_every_hookspec_has_a_docstring_contract():
    for name in hookspec_names():
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc) > 40, name
        if getattr(hookspecs, name).trader_spec.get("firstresult"):
            assert "Stops at first non-None result." in doc, name


def test_public_api_is_explicit():
    public = {
        name for name, value in vars(trader).items()
        if name[0].isalpha() and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert public == set(trader.__all__) - {"__version__"}

"""Fixtures of the ``trader serve`` tests (helpers live in ``serve_testkit``)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="trader serve needs the serve extra (starlette, uvicorn)")
pytest.importorskip("httpx", reason="the serve tests use httpx as their HTTP client")


@pytest.fixture(scope="session")
def flip_site(tmp_path_factory) -> Path:
    """The pip-installed ``flip`` strategy (one install per test process)."""
    from serve_testkit import install_flip

    return install_flip(tmp_path_factory.mktemp("flip-src"), tmp_path_factory.mktemp("flip-site"))

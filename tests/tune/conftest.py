"""The tune tests' PostgreSQL server (see :mod:`tests.tune.pg_server`)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tests.tune.pg_server import PgServer, ServerUnavailable, from_url, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """A PostgreSQL database whose URL holds ``user:password@``: ``TRADER_TEST_POSTGRES_URL`` when set, else a
    throwaway server started here and removed at the end. No server binaries: the tests skip with the
    reason, except under ``CI=true``, where they fail (CI's image has them; a skip would hide a broken promise)."""
    given = os.environ.get("TRADER_TEST_POSTGRES_URL")
    if given:
        yield from_url(given)
        return
    try:
        with postgres_server() as server:
            yield server
    except ServerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {exc}: the PostgreSQL storage tests cannot run")
        pytest.skip(str(exc))

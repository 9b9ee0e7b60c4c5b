"""The core's default state store: one SQLite file per strategy namespace."""

from __future__ import annotations

from pathlib import Path

from trader.hookspecs import hookimpl


@hookimpl
def trader_state_store(namespace: str, directory: Path):
    from trader.engine.state import TradingState

    return TradingState.open(namespace, directory)

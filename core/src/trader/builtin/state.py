"""The core's default state store: one SQLite file per strategy namespace."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trader.hookspecs import hookimpl

if TYPE_CHECKING:
    from trader.engine.state import TradingState


@hookimpl
def trader_state_store(namespace: str, directory: Path) -> TradingState:
    from trader.engine.state import TradingState

    return TradingState.open(namespace, directory)

"""Click callbacks that check ``--symbol`` and ``--timeframe`` before a command runs.

``callback=symbol_callback`` refuses ``.evil/USDT``, ``../..`` or a 300-character symbol in one
line; ``callback=timeframe_callback`` turns ``" 1h"``, ``"1h\\n"`` and ``60m`` into ``1h``, so every
command names one market one way (see :func:`trader.data.frame.validate_market`).
"""

from __future__ import annotations

from typing import Any

from trader.errors import ConfigError, DataError

__all__ = ["symbol_callback", "timeframe_callback"]


def symbol_callback(ctx: Any, param: Any, value: str | None) -> str | None:
    from trader.data.frame import check_symbol

    if value is None:
        return None
    try:
        return check_symbol(value)
    except DataError as exc:
        raise ConfigError(f"--symbol: {exc}") from None


def timeframe_callback(ctx: Any, param: Any, value: str | None) -> str | None:
    from trader.timeframes import normalize_timeframe

    if value is None:
        return None
    try:
        return normalize_timeframe(value)
    except ValueError as exc:
        raise ConfigError(f"--timeframe: {exc}") from None

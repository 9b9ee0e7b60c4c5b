"""Click callbacks that check ``--symbol`` and ``--timeframe`` before a command runs.

``callback=symbol_callback`` refuses ``.evil/USDT``, ``../..`` or a 300-character symbol in one
line; ``callback=timeframe_callback`` turns ``" 1h"``, ``"1h\\n"`` and ``60m`` into ``1h``, so every
command names one market one way (see :func:`trader.data.frame.validate_market`).
"""

from __future__ import annotations

from typing import Any

from trader.errors import ConfigError, DataError

__all__ = ["symbol_callback", "symbols_callback", "timeframe_callback", "named_twice"]


def symbol_callback(ctx: Any, param: Any, value: str | None) -> str | None:
    from trader.data.frame import check_symbol

    if value is None:
        return None
    try:
        return check_symbol(value)
    except DataError as exc:
        raise ConfigError(f"--symbol: {exc}") from None


def named_twice(symbols: tuple[str, ...] | list[str], *, given: bool = True) -> str | None:
    """What names a market twice in ``symbols`` (the same symbol, or two that differ only in case: on a
    case-insensitive disk ``eth/usdt`` is the file of ``ETH/USDT``), or ``None``. ``given``: worded for a
    repeated option (``X is given twice``), else for a list (``lists X twice``)."""
    seen: dict[str, str] = {}
    for symbol in symbols:
        first = seen.setdefault(symbol.casefold(), symbol)
        if first == symbol and symbols.count(symbol) > 1:
            return f"{symbol} is given twice; name each market once" if given else f"lists {symbol} twice; name each market once"
        if first != symbol:
            pair = f"{first} and {symbol}"
            return (f"{pair} are given" if given else f"lists {pair}") + (
                ", which differ only in case; name each market once, as the exchange spells it")
    return None


def symbols_callback(ctx: Any, param: Any, value: tuple[str, ...] | None) -> tuple[str, ...]:
    """A repeated ``--symbol`` (a basket): each checked as :func:`symbol_callback` does, none twice."""
    out: list[str] = []
    for item in value or ():
        symbol = symbol_callback(ctx, param, item)
        if symbol is not None:
            out.append(symbol)
    problem = named_twice(out)
    if problem is not None:
        raise ConfigError(f"--symbol: {problem}")
    return tuple(out)


def timeframe_callback(ctx: Any, param: Any, value: str | None) -> str | None:
    from trader.timeframes import normalize_timeframe

    if value is None:
        return None
    try:
        return normalize_timeframe(value)
    except ValueError as exc:
        raise ConfigError(f"--timeframe: {exc}") from None

"""Building a :class:`~trader.engine.step.TradingSession` the way ``trader run`` and backtests do.

Both paths resolve the same limits (:func:`strategy_limits`), the same broker settings
(:func:`paper_broker`) and the same audit (``RiskAuditAgent.for_strategy``); only the
store differs (SQLite for ``trader run``, memory for a backtest).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import attrs

from trader.engine.brokers.paper import PAPER_DEFAULTS, PaperBroker
from trader.engine.memory import MemoryState
from trader.engine.risk import RiskAuditAgent, private_limits
from trader.engine.step import DEFAULT_REBALANCE_BAND, TradingSession
from trader.errors import ConfigError, PluginError
from trader.types import RiskLimits

if TYPE_CHECKING:
    from trader.config import TraderConfig
    from trader.plugins import TraderPluginManager
    from trader.types import StrategyInfo

log = logging.getLogger("trader.engine")

__all__ = [
    "strategy_limits",
    "loosened_limits",
    "paper_broker",
    "initial_cash",
    "rebalance_band",
    "first_signal_row",
    "backtest_session",
]


def strategy_limits(info: StrategyInfo, config: TraderConfig | None) -> RiskLimits:
    """The strategy's own limits overridden by ``[plugins.NAME.risk]``, as a private copy.

    The config is the operator's choice: any value within the core's bounds (the
    :class:`~trader.types.RiskLimits` validators), tighter or looser than the strategy's
    defaults. Each limit it loosens is named in one WARNING line. The result is a new
    object the strategy never held, so changing the limits it returned changes nothing.
    A bad value is a ConfigError.
    """
    where = f"{config.path}: " if config is not None and config.path else ""
    try:
        defaults = private_limits(info.risk_limits)
    except (ValueError, TypeError) as exc:
        raise PluginError(f"plugin {info.name!r}: its default risk limits are invalid: {exc}") from None
    if config is None:
        return defaults
    overrides = config.risk_overrides(info.name)
    try:
        limits = private_limits(defaults.with_overrides(overrides))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}[plugins.{info.name}.risk]: {exc}") from None
    looser = loosened_limits(defaults, limits)
    if looser:
        log.warning(
            "%s[plugins.%s.risk] loosens the strategy's default risk limits: %s",
            where,
            info.name,
            ", ".join(f"{name} {getattr(defaults, name):g} -> {getattr(limits, name):g}" for name in looser),
        )
    return limits


def loosened_limits(defaults: RiskLimits, limits: RiskLimits) -> list[str]:
    """Names of the limits ``limits`` sets looser than ``defaults`` (a longer ``error_window_s``
    counts more errors, so only a shorter one is looser; every other limit is a cap)."""
    out = []
    for field in attrs.fields(RiskLimits):
        before, after = getattr(defaults, field.name), getattr(limits, field.name)
        if (after < before) if field.name == "error_window_s" else (after > before):
            out.append(field.name)
    return out


def _broker_table(config: TraderConfig | None) -> dict[str, Any]:
    return config.broker_settings() if config is not None else {}


def paper_broker(config: TraderConfig | None, *, fee_bps: float | None = None, slippage_bps: float | None = None,
                 spread_bps: float | None = None) -> PaperBroker:
    """The paper broker of ``[broker]`` (fee_bps, slippage_bps, spread_bps, lot_size, min_notional), flags winning.

    Without a spread (flag or table) it estimates one per candle from the candles it is
    shown (:meth:`PaperBroker.watch_candles`), as backtests do (:mod:`trader.costs`).
    """
    return PaperBroker.from_settings(_broker_table(config), fee_bps=fee_bps, slippage_bps=slippage_bps,
                                     spread_bps=spread_bps)


def initial_cash(config: TraderConfig | None, cash: float | None = None) -> float:
    """``--cash``, else ``[broker] cash``, else 10,000."""
    value = cash if cash is not None else _broker_table(config).get("cash", PAPER_DEFAULTS["cash"])
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"starting cash must be a positive number, got {value!r}")
    return float(value)


def rebalance_band(config: TraderConfig | None) -> float:
    """``[engine] rebalance_band`` (default 0.1): how far below its target a position may drift."""
    value = config.section("engine").get("rebalance_band", DEFAULT_REBALANCE_BAND) if config is not None else DEFAULT_REBALANCE_BAND
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"[engine] rebalance_band must be a number within [0, 1), got {value!r}")
    return float(value)


def first_signal_row(info: StrategyInfo) -> int:
    """Row ``i`` of a candle series (counted from its first candle) gets a signal iff ``i >= this``.

    Rows before it are the strategy's warm-up: they are processed (marked, recorded) but
    no signal is asked for them. ``trader run`` and backtests use this same rule.
    """
    return info.warmup_bars


def backtest_session(
    manager: TraderPluginManager,
    strategy: str,
    symbol: str,
    timeframe: str,
    *,
    config: TraderConfig | None = None,
    cash: float | None = None,
    fee_bps: float | None = None,
    slippage_bps: float | None = None,
    spread_bps: float | None = None,
    keep_steps: bool = False,
) -> TradingSession:
    """A session on a fresh :class:`MemoryState` with the same rules ``trader run`` applies
    (an estimated spread needs the candles: ``session.broker.watch_candles(candles)``)."""
    info = manager.strategy(strategy).info
    limits = strategy_limits(info, config)
    return TradingSession(
        strategy,
        symbol,
        timeframe,
        limits=limits,
        broker=paper_broker(config, fee_bps=fee_bps, slippage_bps=slippage_bps, spread_bps=spread_bps),
        store=MemoryState(strategy, keep_steps=keep_steps),
        audit=RiskAuditAgent.for_strategy(manager, strategy, limits),
        initial_cash=initial_cash(config, cash),
        rebalance_band=rebalance_band(config),
        latency_denies=False,
    )

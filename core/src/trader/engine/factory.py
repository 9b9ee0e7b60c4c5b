"""Building a :class:`~trader.engine.step.TradingSession` the way ``trader run`` and backtests do.

Both paths resolve the same limits (:func:`strategy_limits`), the same broker settings
(:func:`paper_broker`) and the same audit (``RiskAuditAgent.for_strategy``); only the
store differs (SQLite for ``trader run``, memory for a backtest).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trader.engine.brokers.paper import PAPER_DEFAULTS, PaperBroker
from trader.engine.memory import MemoryState
from trader.engine.risk import RiskAuditAgent
from trader.engine.step import DEFAULT_REBALANCE_BAND, TradingSession
from trader.errors import ConfigError

if TYPE_CHECKING:
    from trader.config import TraderConfig
    from trader.plugins import TraderPluginManager
    from trader.types import RiskLimits, StrategyInfo

__all__ = [
    "strategy_limits",
    "paper_broker",
    "initial_cash",
    "rebalance_band",
    "first_signal_row",
    "backtest_session",
]


def strategy_limits(info: StrategyInfo, config: TraderConfig | None) -> RiskLimits:
    """The strategy's own limits overridden by ``[plugins.NAME.risk]`` (a bad value is a ConfigError)."""
    if config is None:
        return info.risk_limits
    overrides = config.risk_overrides(info.name)
    try:
        return info.risk_limits.with_overrides(overrides)
    except (ValueError, TypeError) as exc:
        where = f"{config.path}: " if config.path else ""
        raise ConfigError(f"{where}[plugins.{info.name}.risk]: {exc}") from None


def _broker_table(config: TraderConfig | None) -> dict[str, Any]:
    return config.broker_settings() if config is not None else {}


def paper_broker(config: TraderConfig | None, *, fee_bps: float | None = None, slippage_bps: float | None = None) -> PaperBroker:
    """The paper broker of ``[broker]`` (fee_bps, slippage_bps, lot_size, min_notional), flags winning."""
    return PaperBroker.from_settings(_broker_table(config), fee_bps=fee_bps, slippage_bps=slippage_bps)


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
    keep_steps: bool = False,
) -> TradingSession:
    """A session on a fresh :class:`MemoryState` with the same rules ``trader run`` applies."""
    info = manager.strategy(strategy).info
    limits = strategy_limits(info, config)
    return TradingSession(
        strategy,
        symbol,
        timeframe,
        limits=limits,
        broker=paper_broker(config, fee_bps=fee_bps, slippage_bps=slippage_bps),
        store=MemoryState(strategy, keep_steps=keep_steps),
        audit=RiskAuditAgent.for_strategy(manager, strategy, limits),
        initial_cash=initial_cash(config, cash),
        rebalance_band=rebalance_band(config),
        latency_denies=False,
    )

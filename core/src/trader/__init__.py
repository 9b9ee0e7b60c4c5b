"""trader: a framework for crypto trading strategies, each one a plugin.

The public API is re-exported here; everything heavy (pandas, torch, ccxt,
scikit-learn) is imported only by the modules that need it.
"""

from __future__ import annotations

from trader.errors import TraderError
from trader.hookspecs import hookimpl
from trader.types import (
    AuditContext,
    Candle,
    Fill,
    OrderRequest,
    OrderType,
    ParamSpec,
    PortfolioSnapshot,
    Position,
    RiskLimits,
    RiskReason,
    RiskVerdict,
    Side,
    Signal,
    SignalAction,
    SignalRequest,
    StrategyInfo,
    TradingStatus,
    TrainRequest,
    TrainResult,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "hookimpl",
    "TraderError",
    "AuditContext",
    "Candle",
    "Fill",
    "OrderRequest",
    "OrderType",
    "ParamSpec",
    "PortfolioSnapshot",
    "Position",
    "RiskLimits",
    "RiskReason",
    "RiskVerdict",
    "Side",
    "Signal",
    "SignalAction",
    "SignalRequest",
    "StrategyInfo",
    "TradingStatus",
    "TrainRequest",
    "TrainResult",
]

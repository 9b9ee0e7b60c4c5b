"""The risk audit: the core's rules, their reason codes and :class:`RiskAuditAgent`.

Every order a strategy proposes passes :meth:`RiskAuditAgent.audit` before it reaches
a broker. The agent calls ``trader_audit_order`` on the core's ``core_risk`` plugin,
on the plugins that are not strategies and on the running strategy (never on another
strategy). The order goes through only if no verdict denies it; the most severe
trading status any verdict asks for wins. The agent fails closed: when ``core_risk``
is not among the implementations, when an implementation wraps the hook, raises or
returns something that is not a :class:`~trader.types.RiskVerdict`, every order is
denied with a reason code saying why.

Reason codes follow NautilusTrader's style (see :class:`RiskCode` and ``docs/engine.md``).
"""

from __future__ import annotations

import logging
import types
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from trader.types import (
    AuditContext,
    OrderRequest,
    PortfolioSnapshot,
    RiskLimits,
    RiskReason,
    RiskVerdict,
    Side,
    TradingStatus,
)

if TYPE_CHECKING:
    from trader.plugins import TraderPluginManager

__all__ = [
    "RiskCode",
    "CORE_RULE",
    "CORE_RISK_PLUGIN",
    "STATUS_SEVERITY",
    "more_severe",
    "AuditDecision",
    "RiskAuditAgent",
    "core_verdicts",
    "state_verdicts",
    "increases_exposure",
    "audit_plugin_names",
]

log = logging.getLogger("trader.risk")

CORE_RULE = "core"
CORE_RISK_PLUGIN = "core_risk"

#: Relative slack for float rounding in the notional checks (an order sized exactly at a
#: cap must not be denied because ``qty * price`` came out one ulp above it).
_SLACK = 1e-9


class RiskCode:
    """Stable reason codes. Order rules deny one order; breakers change the trading status."""

    # order rules
    TRADING_HALTED = "TRADING_HALTED"
    REDUCE_ONLY = "REDUCE_ONLY"
    NOTIONAL_EXCEEDS_MAX_PER_ORDER = "NOTIONAL_EXCEEDS_MAX_PER_ORDER"
    POSITION_EXCEEDS_MAX_NOTIONAL = "POSITION_EXCEEDS_MAX_NOTIONAL"
    POSITION_EXCEEDS_MAX_FRACTION = "POSITION_EXCEEDS_MAX_FRACTION"
    NOTIONAL_EXCEEDS_FREE_BALANCE = "NOTIONAL_EXCEEDS_FREE_BALANCE"
    QUANTITY_EXCEEDS_POSITION = "QUANTITY_EXCEEDS_POSITION"
    STALE_DATA = "STALE_DATA"
    INFERENCE_LATENCY = "INFERENCE_LATENCY"
    # breakers (status changes)
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    MAX_DRAWDOWN = "MAX_DRAWDOWN"
    CONSECUTIVE_LOSSES = "CONSECUTIVE_LOSSES"
    ERROR_BREAKER = "ERROR_BREAKER"
    MODEL_FAILURES = "MODEL_FAILURES"
    # the audit itself failing closed
    CORE_RISK_MISSING = "CORE_RISK_MISSING"
    RISK_AUDIT_ERROR = "RISK_AUDIT_ERROR"
    # events that are not verdicts
    INVALID_SIGNAL = "INVALID_SIGNAL"
    PLUGIN_ERROR = "PLUGIN_ERROR"
    ORDER_ERROR = "ORDER_ERROR"
    EXCHANGE_ERROR = "EXCHANGE_ERROR"
    ORDER_REJECTED = "ORDER_REJECTED"
    DUPLICATE_CANDLE = "DUPLICATE_CANDLE"
    RESUMED = "RESUMED"
    DAILY_RESET = "DAILY_RESET"


STATUS_SEVERITY: Mapping[TradingStatus, int] = types.MappingProxyType(
    {TradingStatus.ACTIVE: 0, TradingStatus.REDUCING: 1, TradingStatus.HALTED: 2}
)


def more_severe(a: TradingStatus | None, b: TradingStatus | None) -> TradingStatus | None:
    """The stricter of two statuses (``None`` means no request)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if STATUS_SEVERITY[a] >= STATUS_SEVERITY[b] else b


def increases_exposure(order: OrderRequest, portfolio: PortfolioSnapshot) -> bool:
    """Spot accounts are long only: a buy adds exposure, a sell within the position reduces it."""
    if order.side is Side.BUY:
        return True
    return order.quantity > portfolio.position(order.symbol).quantity * (1 + _SLACK)


# --------------------------------------------------------------------------- the core's rules


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def state_verdicts(
    equity: float,
    peak_equity: float,
    day_start_equity: float,
    limits: RiskLimits,
    context: AuditContext,
) -> list[RiskVerdict]:
    """The breakers that depend on the account, not on an order. Empty when all is well.

    Each returned verdict asks for a status: drawdown, consecutive losses, errors and model
    failures halt (``HALTED`` until ``trader resume``); the daily loss limit allows only
    exposure-reducing orders (``REDUCING``) until the next UTC day. Verdicts that reduce
    to ``REDUCING`` are marked approved: they deny only orders that add exposure, which
    :func:`core_verdicts` does with ``REDUCE_ONLY``.
    """
    out: list[RiskVerdict] = []
    if peak_equity > 0 and equity < peak_equity * (1 - limits.max_drawdown):
        drawdown = 1 - equity / peak_equity
        out.append(
            RiskVerdict.deny(
                CORE_RULE,
                RiskCode.MAX_DRAWDOWN,
                f"equity {equity:,.2f} is {_pct(drawdown)} below its peak {peak_equity:,.2f} "
                f"(limit {_pct(limits.max_drawdown)})",
                TradingStatus.HALTED,
            )
        )
    if day_start_equity > 0 and equity < day_start_equity * (1 - limits.daily_loss_limit):
        loss = 1 - equity / day_start_equity
        out.append(
            RiskVerdict(
                True,
                CORE_RULE,
                (
                    RiskReason(
                        RiskCode.DAILY_LOSS_LIMIT,
                        f"equity {equity:,.2f} is {_pct(loss)} below the day's start {day_start_equity:,.2f} "
                        f"(limit {_pct(limits.daily_loss_limit)}); only exposure-reducing orders until the next UTC day",
                    ),
                ),
                TradingStatus.REDUCING,
            )
        )
    if context.consecutive_losses >= limits.max_consecutive_losses:
        out.append(
            RiskVerdict.deny(
                CORE_RULE,
                RiskCode.CONSECUTIVE_LOSSES,
                f"{context.consecutive_losses} losing trades in a row (limit {limits.max_consecutive_losses})",
                TradingStatus.HALTED,
            )
        )
    if context.recent_errors >= limits.max_errors:
        out.append(
            RiskVerdict.deny(
                CORE_RULE,
                RiskCode.ERROR_BREAKER,
                f"{context.recent_errors} order or exchange errors within {limits.error_window_s:g} s "
                f"(limit {limits.max_errors})",
                TradingStatus.HALTED,
            )
        )
    if context.model_failures >= limits.max_model_failures:
        out.append(
            RiskVerdict.deny(
                CORE_RULE,
                RiskCode.MODEL_FAILURES,
                f"{context.model_failures} model failures in a row (limit {limits.max_model_failures})",
                TradingStatus.HALTED,
            )
        )
    return out


def core_verdicts(
    order: OrderRequest, portfolio: PortfolioSnapshot, limits: RiskLimits, context: AuditContext
) -> list[RiskVerdict]:
    """The core's rules for one order: the denials, or one approval when every rule passes."""
    out = state_verdicts(portfolio.equity, portfolio.peak_equity, portfolio.day_start_equity, limits, context)
    adds = increases_exposure(order, portfolio)
    status = context.status
    for verdict in out:
        if verdict.approved and verdict.status is TradingStatus.REDUCING:
            status = more_severe(status, TradingStatus.REDUCING)

    if status is TradingStatus.HALTED:
        out.append(RiskVerdict.deny(CORE_RULE, RiskCode.TRADING_HALTED, "trading is halted; `trader resume` clears it"))
    elif status is TradingStatus.REDUCING and adds:
        out.append(
            RiskVerdict.deny(CORE_RULE, RiskCode.REDUCE_ONLY, f"status is reducing: a {order.side.value} order would add exposure")
        )

    if context.last_candle_ts is not None:
        last_close = context.last_candle_ts + context.timeframe_ms
        age = context.now - last_close
        if age > limits.stale_after_bars * context.timeframe_ms:
            out.append(
                RiskVerdict.deny(
                    CORE_RULE,
                    RiskCode.STALE_DATA,
                    f"the last candle closed {age / 1000:,.0f} s ago, more than {limits.stale_after_bars:g} bars",
                )
            )

    position = portfolio.position(order.symbol)
    if order.side is Side.SELL:
        if order.quantity > position.quantity * (1 + _SLACK):
            out.append(
                RiskVerdict.deny(
                    CORE_RULE,
                    RiskCode.QUANTITY_EXCEEDS_POSITION,
                    f"sell {order.quantity:g} exceeds the position {position.quantity:g} (spot: no short selling)",
                )
            )
    if adds:
        notional = order.notional
        if notional > limits.max_order_notional * (1 + _SLACK):
            out.append(
                RiskVerdict.deny(
                    CORE_RULE,
                    RiskCode.NOTIONAL_EXCEEDS_MAX_PER_ORDER,
                    f"order notional {notional:,.2f} exceeds max_order_notional {limits.max_order_notional:,.2f}",
                )
            )
        after = (position.quantity + order.quantity) * order.price
        if after > limits.max_position_notional * (1 + _SLACK):
            out.append(
                RiskVerdict.deny(
                    CORE_RULE,
                    RiskCode.POSITION_EXCEEDS_MAX_NOTIONAL,
                    f"position would be {after:,.2f}, above max_position_notional {limits.max_position_notional:,.2f}",
                )
            )
        cap = limits.max_position_fraction * portfolio.equity
        if after > cap * (1 + _SLACK):
            out.append(
                RiskVerdict.deny(
                    CORE_RULE,
                    RiskCode.POSITION_EXCEEDS_MAX_FRACTION,
                    f"position would be {after:,.2f}, above {_pct(limits.max_position_fraction)} of equity ({cap:,.2f})",
                )
            )
        if notional > portfolio.cash * (1 + _SLACK):
            out.append(
                RiskVerdict.deny(
                    CORE_RULE,
                    RiskCode.NOTIONAL_EXCEEDS_FREE_BALANCE,
                    f"order notional {notional:,.2f} exceeds free cash {portfolio.cash:,.2f}",
                )
            )
        if context.last_inference_ms is not None and context.last_inference_ms > limits.max_inference_ms:
            out.append(
                RiskVerdict.deny(
                    CORE_RULE,
                    RiskCode.INFERENCE_LATENCY,
                    f"the signal took {context.last_inference_ms:,.0f} ms, over the {limits.max_inference_ms:g} ms budget",
                )
            )
    if not any(not v.approved for v in out):
        out.append(RiskVerdict.approve(CORE_RULE))
    return out


# --------------------------------------------------------------------------- the agent


@frozen
class AuditDecision:
    """The outcome of one audit: approved or not, every verdict, and the status asked for."""

    approved: bool
    verdicts: tuple[RiskVerdict, ...] = field(converter=tuple)
    status: TradingStatus | None = None

    @property
    def denials(self) -> tuple[RiskReason, ...]:
        return tuple(reason for v in self.verdicts if not v.approved for reason in v.reasons)

    @property
    def reasons(self) -> tuple[RiskReason, ...]:
        return tuple(reason for v in self.verdicts for reason in v.reasons)

    @property
    def status_reason(self) -> RiskReason | None:
        """The reason behind the requested status (the first verdict that asked for it)."""
        for verdict in self.verdicts:
            if verdict.status is self.status and verdict.reasons:
                return verdict.reasons[0]
        return None

    def describe(self) -> str:
        if self.approved:
            return "approved"
        return "denied: " + "; ".join(f"{r.code} ({r.message})" if r.message else r.code for r in self.denials)


def _fail_closed(code: str, message: str) -> AuditDecision:
    return AuditDecision(False, (RiskVerdict.deny("audit", code, message),))


class RiskAuditAgent:
    """Audits one strategy's orders through ``trader_audit_order``; never bypassable.

    Build it with :meth:`for_strategy` (the normal way: the hook reaches the core, the
    non-strategy plugins and this strategy alone) or directly from a hook caller.
    """

    def __init__(self, hook_caller: Any, strategy: str, limits: RiskLimits) -> None:
        self.hook_caller = hook_caller
        self.strategy = strategy
        self.limits = limits
        self._impl_names: tuple[str, ...] = ()
        self._refusal: tuple[str, str] | None = None
        self._inspect()

    @classmethod
    def for_strategy(cls, manager: TraderPluginManager, strategy: str, limits: RiskLimits) -> RiskAuditAgent:
        """The agent of ``strategy``: core plugins, non-strategy plugins and the strategy itself."""
        return cls(manager.subset_hook("trader_audit_order", audit_plugin_names(manager, strategy)), strategy, limits)

    def _inspect(self) -> None:
        impls = list(self.hook_caller.get_hookimpls()) if hasattr(self.hook_caller, "get_hookimpls") else []
        self._impl_names = tuple(impl.plugin_name for impl in impls)
        if CORE_RISK_PLUGIN not in self._impl_names:
            self._refusal = (
                RiskCode.CORE_RISK_MISSING,
                "the core risk rules (core_risk) are not registered; every order is denied",
            )
            return
        wrappers = [impl.plugin_name for impl in impls if getattr(impl, "hookwrapper", False) or getattr(impl, "wrapper", False)]
        if wrappers:
            self._refusal = (
                RiskCode.RISK_AUDIT_ERROR,
                f"plugin(s) {', '.join(wrappers)} wrap trader_audit_order, which could hide the core's verdicts; "
                "every order is denied",
            )

    @property
    def plugins(self) -> tuple[str, ...]:
        """Names of the plugins whose rules this agent runs."""
        return self._impl_names

    @property
    def fails_closed(self) -> bool:
        return self._refusal is not None

    @property
    def refusal(self) -> str | None:
        """Why every order is denied (``CODE: message``), or ``None`` when the audit works."""
        return f"{self._refusal[0]}: {self._refusal[1]}" if self._refusal else None

    def audit(self, order: OrderRequest, portfolio: PortfolioSnapshot, context: AuditContext) -> AuditDecision:
        """Run every rule; approved only if no verdict denies. Logs the decision with its reasons."""
        decision = self._decide(order, _readonly(portfolio), context)
        level = logging.INFO if decision.approved else logging.WARNING
        if not log.isEnabledFor(level):
            return decision
        log.log(
            level,
            "audit %s %s %s %g @ %g [%s]: %s",
            self.strategy,
            order.side.value,
            order.symbol,
            order.quantity,
            order.price,
            order.client_order_id,
            decision.describe(),
            extra={
                "strategy": self.strategy,
                "client_order_id": order.client_order_id,
                "approved": decision.approved,
                "reasons": [r.code for r in decision.reasons],
            },
        )
        return decision

    def _decide(self, order: OrderRequest, portfolio: PortfolioSnapshot, context: AuditContext) -> AuditDecision:
        if self._refusal is not None:
            return _fail_closed(*self._refusal)
        try:
            results = self.hook_caller(order=order, portfolio=portfolio, limits=self.limits, context=context)
        except Exception as exc:
            return _fail_closed(RiskCode.RISK_AUDIT_ERROR, f"a risk rule raised {type(exc).__name__}: {exc}")
        verdicts: list[RiskVerdict] = []
        for result in results or ():
            items: Iterable[Any] = result if isinstance(result, (list, tuple)) else (result,)
            for item in items:
                if not isinstance(item, RiskVerdict):
                    return _fail_closed(
                        RiskCode.RISK_AUDIT_ERROR,
                        f"a risk rule returned {type(item).__name__}, not RiskVerdict",
                    )
                verdicts.append(item)
        if not any(v.rule == CORE_RULE for v in verdicts):
            return _fail_closed(RiskCode.CORE_RISK_MISSING, "the core risk rules gave no verdict")
        approved = all(v.approved for v in verdicts)
        status: TradingStatus | None = None
        for verdict in verdicts:
            status = more_severe(status, verdict.status)
        return AuditDecision(approved, verdicts, status)

    def breakers(self, equity: float, peak_equity: float, day_start_equity: float, context: AuditContext) -> list[RiskVerdict]:
        """The core's account breakers, checked on every candle (no order needed)."""
        return state_verdicts(equity, peak_equity, day_start_equity, self.limits, context)


def audit_plugin_names(manager: TraderPluginManager, strategy: str) -> list[str]:
    """Who may answer the risk and state hooks of ``strategy``: never another strategy."""
    from trader.plugins import CORE_PLUGINS

    return sorted({*CORE_PLUGINS, *manager.non_strategy_plugins(), strategy})


def _readonly(portfolio: PortfolioSnapshot) -> PortfolioSnapshot:
    """The snapshot with a read-only positions mapping, so no rule can change what the next one sees."""
    if isinstance(portfolio.positions, types.MappingProxyType):
        return portfolio
    return PortfolioSnapshot(
        cash=portfolio.cash,
        equity=portfolio.equity,
        positions=types.MappingProxyType(dict(portfolio.positions)),
        peak_equity=portfolio.peak_equity,
        day_start_equity=portfolio.day_start_equity,
    )


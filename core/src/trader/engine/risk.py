"""The risk audit: the core's rules, their reason codes and :class:`RiskAuditAgent`.

Every order a strategy proposes passes :meth:`RiskAuditAgent.audit` before it reaches
a broker. The core decides on its own copies: the agent calls the core's rules
(:func:`core_verdicts`) directly and first, on private copies of the order, portfolio,
limits and context, then each plugin rule (``trader_audit_order`` of the plugins that
are not strategies and of the running strategy, never another strategy) on fresh copies
of its own. A plugin can only add denials and ask for a stricter trading status: its
approvals, its return value otherwise and whatever it does to its arguments change
nothing. A rule that raises or returns something that is not a
:class:`~trader.types.RiskVerdict` denies the order (``RISK_AUDIT_ERROR``, naming the plugin).

Reason codes follow NautilusTrader's style (see :class:`RiskCode` and ``docs/engine.md``).
"""

from __future__ import annotations

import enum
import logging
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from attrs import field, frozen

from trader.types import (
    AuditContext,
    OrderRequest,
    PortfolioSnapshot,
    Position,
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
    "private_limits",
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
    # portfolio rules (one account, several markets)
    GROSS_EXPOSURE_EXCEEDED = "GROSS_EXPOSURE_EXCEEDED"
    MAX_OPEN_POSITIONS = "MAX_OPEN_POSITIONS"
    # breakers (status changes)
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    MAX_DRAWDOWN = "MAX_DRAWDOWN"
    CONSECUTIVE_LOSSES = "CONSECUTIVE_LOSSES"
    ERROR_BREAKER = "ERROR_BREAKER"
    MODEL_FAILURES = "MODEL_FAILURES"
    # the audit itself failing closed (CORE_RISK_MISSING is no longer raised: the core's rules
    # do not depend on any registration; kept for state files that recorded it)
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
    status: TradingStatus | None = context.status
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
        held_value = portfolio.position_value(order.symbol)
        gross_after = portfolio.gross_exposure() - held_value + after
        gross_cap = limits.max_gross_exposure * portfolio.equity
        if gross_after > gross_cap * (1 + _SLACK):
            out.append(
                RiskVerdict.deny(
                    CORE_RULE,
                    RiskCode.GROSS_EXPOSURE_EXCEEDED,
                    f"positions would be worth {gross_after:,.2f}, above {_pct(limits.max_gross_exposure)} of equity ({gross_cap:,.2f})",
                )
            )
        if position.quantity <= 0 and portfolio.open_positions() >= limits.max_open_positions:
            out.append(
                RiskVerdict.deny(
                    CORE_RULE,
                    RiskCode.MAX_OPEN_POSITIONS,
                    f"{portfolio.open_positions()} markets already hold a position (max_open_positions {limits.max_open_positions})",
                )
            )
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


# --------------------------------------------------------------------------- private copies

_T = TypeVar("_T")
_FIELDS: dict[type, tuple[str, ...]] = {cls: tuple(a.name for a in attrs.fields(cls)) for cls in (OrderRequest, Position, RiskLimits, AuditContext)}


def _plain(value: Any) -> Any:
    """``value`` as a plain ``int``/``float``/``str`` when it is a subclass of one (whose
    methods a plugin could have overridden); anything else as it is, for the validators."""
    kind = type(value)
    if kind is float or kind is int or kind is str or value is None or kind is bool or isinstance(value, enum.Enum):
        return value
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    return value


def _rebuild(cls: type[_T], obj: Any) -> _T:
    """A new, validated ``cls`` with the field values of ``obj``, read once."""
    return cls(**{name: _plain(getattr(obj, name)) for name in _FIELDS[cls]})


def private_limits(limits: RiskLimits) -> RiskLimits:
    """A private copy of ``limits``: a new, validated :class:`RiskLimits` that nobody else holds.

    Frozen attrs objects can still be changed with ``object.__setattr__``, so whoever must
    rely on limits keeps a copy nobody else was given. Raises ``TypeError``/``ValueError``
    when ``limits`` is not (or no longer is) valid.
    """
    if not isinstance(limits, RiskLimits):
        raise TypeError(f"risk limits must be RiskLimits, got {type(limits).__name__}")
    return _rebuild(RiskLimits, limits)


def _portfolio_copy(portfolio: PortfolioSnapshot) -> PortfolioSnapshot:
    positions = {_plain(symbol): _rebuild(Position, position) for symbol, position in portfolio.positions.items()}
    return PortfolioSnapshot(
        cash=_plain(portfolio.cash),
        equity=_plain(portfolio.equity),
        positions=types.MappingProxyType(positions),
        peak_equity=_plain(portfolio.peak_equity),
        day_start_equity=_plain(portfolio.day_start_equity),
        marks=types.MappingProxyType({_plain(symbol): _plain(mark) for symbol, mark in portfolio.marks.items()}),
    )


@frozen
class _Inputs:
    """One set of private copies of an audit's arguments."""

    order: OrderRequest
    portfolio: PortfolioSnapshot
    limits: RiskLimits
    context: AuditContext

    @classmethod
    def copy(cls, order: Any, portfolio: Any, limits: RiskLimits, context: Any) -> _Inputs:
        return cls(_rebuild(OrderRequest, order), _portfolio_copy(portfolio), limits, _rebuild(AuditContext, context))

    def again(self) -> _Inputs:
        """Fresh copies of these (for the next rule)."""
        return _Inputs.copy(self.order, self.portfolio, _rebuild(RiskLimits, self.limits), self.context)


# --------------------------------------------------------------------------- the agent


def _verdicts(value: Iterable[RiskVerdict]) -> tuple[RiskVerdict, ...]:
    return tuple(value)


@frozen
class AuditDecision:
    """The outcome of one audit: approved or not, every verdict, and the status asked for."""

    approved: bool
    verdicts: tuple[RiskVerdict, ...] = field(converter=_verdicts)
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


@frozen
class _Rule:
    """One plugin rule, captured when the agent is built: who it is and the function to call."""

    name: str
    label: str  # the plugin's name and distribution, for messages
    function: Callable[..., Any]
    argnames: tuple[str, ...]


class RiskAuditAgent:
    """Audits one strategy's orders; no plugin can loosen its decision.

    The core's rules (:func:`core_verdicts`) are called directly, first, on private copies
    of the order, portfolio, limits and context. Then each plugin rule is called on its own
    fresh copies; only its denials and status requests count. The plugin rules are the
    ``trader_audit_order`` implementations of ``hook_caller`` when the agent is built,
    called one by one (never through the hook chain, so a wrapper cannot replace a result:
    wrappers are not called at all, and a plugin registered later is never called), plus
    ``extra_rules``: named callables taking ``order``, ``portfolio``, ``limits`` and
    ``context`` keywords. The core's own ``core_risk`` plugin object is skipped (its rules
    already ran), by identity, not by name.

    Build it with :meth:`for_strategy` (the hook reaches the non-strategy plugins and this
    strategy alone) or directly from a hook caller (or ``None``: core rules only).
    """

    def __init__(
        self,
        hook_caller: Any,
        strategy: str,
        limits: RiskLimits,
        *,
        extra_rules: Sequence[tuple[str, Callable[..., Any]]] = (),
        distributions: Mapping[str, str] | None = None,
    ) -> None:
        self.strategy = strategy
        try:
            self._limits = private_limits(limits)
        except (TypeError, ValueError) as exc:  # changed after they were checked (in-process code can): fail closed, by name
            from trader.errors import PluginError

            raise PluginError(f"plugin {strategy!r}: the risk limits it would trade under are invalid ({exc}); "
                              "nothing is traded with them") from None
        self._refusal: tuple[str, str] | None = None
        self._rules: tuple[_Rule, ...] = ()
        self._names: tuple[str, ...] = ()
        try:
            self._capture(hook_caller, extra_rules, distributions or {})
        except Exception as exc:  # an agent that cannot tell its rules denies everything
            self._refusal = (RiskCode.RISK_AUDIT_ERROR, f"the risk rules could not be read ({type(exc).__name__}: {exc}); "
                             "every order is denied")

    @classmethod
    def for_strategy(
        cls,
        manager: TraderPluginManager,
        strategy: str,
        limits: RiskLimits,
        *,
        extra_rules: Sequence[tuple[str, Callable[..., Any]]] = (),
    ) -> RiskAuditAgent:
        """The agent of ``strategy``: the core's rules, the non-strategy plugins' and the strategy's own."""
        caller = manager.subset_hook("trader_audit_order", audit_plugin_names(manager, strategy))
        distributions = {name: record.distribution for name, record in manager.records.items()}
        return cls(caller, strategy, limits, extra_rules=extra_rules, distributions=distributions)

    def _capture(self, hook_caller: Any, extra_rules: Sequence[tuple[str, Callable[..., Any]]],
                 distributions: Mapping[str, str]) -> None:
        from trader.builtin import risk as core_plugin

        rules: list[_Rule] = []
        names: list[str] = [CORE_RISK_PLUGIN]
        impls = list(hook_caller.get_hookimpls()) if hook_caller is not None else []
        for impl in reversed(impls):  # pluggy's calling order: last registered first
            if impl.plugin is core_plugin:
                continue
            name = str(impl.plugin_name)
            dist = distributions.get(name)
            label = f"{name!r} ({dist})" if dist and dist != "<in-process>" else repr(name)
            if impl.hookwrapper or impl.wrapper:
                log.warning("%s: plugin %s wraps trader_audit_order; the audit never calls wrappers, so that rule is "
                            "ignored", self.strategy, label)
                continue
            rules.append(_Rule(name, label, impl.function, tuple(impl.argnames)))
            names.append(name)
        for name, function in extra_rules:
            if not callable(function):
                raise TypeError(f"extra rule {name!r} is not callable")
            rules.append(_Rule(str(name), repr(str(name)), function, ("order", "portfolio", "limits", "context")))
            names.append(str(name))
        self._rules = tuple(rules)
        self._names = tuple(names)

    @property
    def limits(self) -> RiskLimits:
        """A copy of the limits this agent enforces (changing it changes nothing here)."""
        return _rebuild(RiskLimits, self._limits)

    @property
    def plugins(self) -> tuple[str, ...]:
        """Names of the plugins whose rules this agent runs (``core_risk``: the core's, always)."""
        return self._names

    @property
    def fails_closed(self) -> bool:
        return self._refusal is not None

    @property
    def refusal(self) -> str | None:
        """Why every order is denied (``CODE: message``), or ``None`` when the audit works."""
        return f"{self._refusal[0]}: {self._refusal[1]}" if self._refusal else None

    def audit(self, order: OrderRequest, portfolio: PortfolioSnapshot, context: AuditContext) -> AuditDecision:
        """Run every rule; approved only if no verdict denies. Logs the decision with its reasons."""
        decision = self._decide(order, portfolio, context)
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
            mine = _Inputs.copy(order, portfolio, self._limits, context)  # the limits: the agent's own private copy
            verdicts = core_verdicts(mine.order, mine.portfolio, mine.limits, mine.context)
        except Exception as exc:  # inputs that are not valid: nothing to audit
            return _fail_closed(RiskCode.RISK_AUDIT_ERROR, f"the order could not be audited: {type(exc).__name__}: {exc}")
        for rule in self._rules:
            verdicts.extend(self._plugin_verdicts(rule, mine.again()))
        approved = all(v.approved for v in verdicts)
        status: TradingStatus | None = None
        for verdict in verdicts:
            status = more_severe(status, verdict.status)
        return AuditDecision(approved, verdicts, status)

    def _plugin_verdicts(self, rule: _Rule, inputs: _Inputs) -> list[RiskVerdict]:
        """What one plugin rule adds: its denials and status requests (copies of them); a failure denies."""
        from trader.strategy import plugin_failure, sigint_count

        arguments = {name: getattr(inputs, name) for name in rule.argnames}
        before = sigint_count()
        try:
            result = rule.function(**arguments)
            items = _verdict_items(result)
        except BaseException as exc:
            plugin_failure(rule.name, "trader_audit_order", exc, before)  # re-raises a real Ctrl-C
            items = f"raised {type(exc).__name__}: {exc}"
        if isinstance(items, str):
            return [RiskVerdict.deny(rule.name, RiskCode.RISK_AUDIT_ERROR,
                                     f"plugin {rule.label}: trader_audit_order {items}; the order is denied")]
        return [v if v.rule != CORE_RULE else attrs.evolve(v, rule=rule.name) for v in items
                if not v.approved or v.status is not None]

    def breakers(self, equity: float, peak_equity: float, day_start_equity: float, context: AuditContext) -> list[RiskVerdict]:
        """The core's account breakers, checked on every candle (no order needed)."""
        return state_verdicts(equity, peak_equity, day_start_equity, self._limits, context)


def _verdict_items(result: Any) -> list[RiskVerdict] | str:
    """Copies of the verdicts a rule returned, or what is wrong with it (``str``)."""
    if result is None:
        return []
    items = list(result) if type(result) in (list, tuple) else [result]
    out: list[RiskVerdict] = []
    for item in items:
        if type(item) is not RiskVerdict:
            return f"returned {type(item).__name__}, not RiskVerdict"
        try:
            reasons = tuple(item.reasons)
            if any(type(r) is not RiskReason for r in reasons):
                return "returned a verdict whose reasons are not RiskReason"
            reasons = tuple(RiskReason(_plain(r.code), _plain(r.message)) for r in reasons)
            approved = item.approved
            if type(approved) is not bool:
                return f"returned a verdict whose approved is {type(approved).__name__}, not bool"
            out.append(RiskVerdict(approved, _plain(item.rule), reasons, item.status))
        except (TypeError, ValueError) as exc:
            return f"returned an invalid verdict ({exc})"
    return out


def audit_plugin_names(manager: TraderPluginManager, strategy: str) -> list[str]:
    """Who may answer the risk and state hooks of ``strategy``: never another strategy."""
    from trader.plugins import CORE_PLUGINS

    return sorted({*CORE_PLUGINS, *manager.non_strategy_plugins(), strategy})

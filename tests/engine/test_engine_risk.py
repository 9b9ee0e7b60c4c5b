"""The risk audit: the core's rules, their reason codes, and an audit no plugin can bypass."""

from __future__ import annotations

import types

import pytest
from engine_testkit import ScriptedStrategy
from hypothesis import given, settings
from hypothesis import strategies as st

from trader import hookimpl
from trader.engine import RiskAuditAgent, RiskCode, core_verdicts
from trader.types import (
    AuditContext,
    OrderRequest,
    PortfolioSnapshot,
    Position,
    RiskLimits,
    RiskVerdict,
    TradingStatus,
)

LIMITS = RiskLimits(
    max_position_fraction=0.5,
    max_position_notional=5_000.0,
    max_order_notional=2_000.0,
    daily_loss_limit=0.05,
    max_drawdown=0.2,
    max_consecutive_losses=3,
    max_errors=2,
    max_model_failures=2,
    stale_after_bars=2,
    max_inference_ms=100,
)
HOUR = 3_600_000
NOW = 1_704_067_200_000


def order(side="buy", quantity=1.0, price=100.0, strategy="buy_and_hold") -> OrderRequest:
    return OrderRequest(strategy, "BTC/USDT", side, quantity, price, "cid-1", NOW - HOUR)


def portfolio(cash=10_000.0, held=0.0, peak=None, day_start=None, price=100.0) -> PortfolioSnapshot:
    equity = cash + held * price
    positions = {"BTC/USDT": Position("BTC/USDT", held, price)} if held else {}
    return PortfolioSnapshot(cash, equity, positions, peak if peak is not None else equity, day_start if day_start is not None else equity)


def context(**kw) -> AuditContext:
    values = dict(strategy="buy_and_hold", now=NOW, timeframe_ms=HOUR, last_candle_ts=NOW - HOUR)
    values.update(kw)
    return AuditContext(**values)


def codes(verdicts) -> set[str]:
    return {r.code for v in verdicts if not v.approved for r in v.reasons}


@pytest.mark.parametrize(
    ("kwargs", "expected", "status"),
    [
        (dict(order=order(quantity=25)), RiskCode.NOTIONAL_EXCEEDS_MAX_PER_ORDER, None),
        (dict(order=order(quantity=15), portfolio=portfolio(held=40)), RiskCode.POSITION_EXCEEDS_MAX_NOTIONAL, None),
        (dict(order=order(quantity=10), portfolio=portfolio(cash=1_000, held=5)), RiskCode.POSITION_EXCEEDS_MAX_FRACTION, None),
        (dict(order=order(quantity=10), portfolio=portfolio(cash=500, held=20)), RiskCode.NOTIONAL_EXCEEDS_FREE_BALANCE, None),
        (dict(order=order("sell", quantity=2), portfolio=portfolio(held=1)), RiskCode.QUANTITY_EXCEEDS_POSITION, None),
        (dict(portfolio=portfolio(peak=20_000)), RiskCode.MAX_DRAWDOWN, TradingStatus.HALTED),
        (dict(portfolio=portfolio(day_start=11_000)), RiskCode.REDUCE_ONLY, TradingStatus.REDUCING),
        (dict(context=context(consecutive_losses=3)), RiskCode.CONSECUTIVE_LOSSES, TradingStatus.HALTED),
        (dict(context=context(recent_errors=2)), RiskCode.ERROR_BREAKER, TradingStatus.HALTED),
        (dict(context=context(model_failures=2)), RiskCode.MODEL_FAILURES, TradingStatus.HALTED),
        (dict(context=context(last_candle_ts=NOW - 4 * HOUR)), RiskCode.STALE_DATA, None),
        (dict(context=context(last_inference_ms=150.0)), RiskCode.INFERENCE_LATENCY, None),
        (dict(context=context(status="halted")), RiskCode.TRADING_HALTED, None),
        (dict(context=context(status="reducing")), RiskCode.REDUCE_ONLY, None),
    ],
)
def test_each_core_rule_denies_with_its_reason_code(kwargs, expected, status):
    verdicts = core_verdicts(kwargs.get("order", order()), kwargs.get("portfolio", portfolio()), LIMITS, kwargs.get("context", context()))
    assert expected in codes(verdicts)
    requested = [v.status for v in verdicts if v.status is not None]
    assert (status in requested) if status else not requested


def test_a_small_buy_within_every_limit_is_approved():
    verdicts = core_verdicts(order(quantity=10), portfolio(), LIMITS, context())
    assert all(v.approved for v in verdicts) and verdicts[-1].rule == "core"


def test_reducing_still_allows_a_sell_and_the_daily_loss_allows_exits():
    sell = order("sell", quantity=5)
    assert all(v.approved for v in core_verdicts(sell, portfolio(held=10), LIMITS, context(status="reducing")))
    verdicts = core_verdicts(sell, portfolio(held=10, day_start=12_000), LIMITS, context())
    assert all(v.approved for v in verdicts)
    assert TradingStatus.REDUCING in {v.status for v in verdicts}


@settings(max_examples=300, deadline=None)
@given(
    quantity=st.floats(0.001, 100),
    price=st.floats(1, 1_000),
    cash=st.floats(0, 20_000),
    held=st.floats(0, 100),
)
def test_a_buy_is_approved_exactly_when_it_fits_every_cap(quantity, price, cash, held):
    o = order(quantity=quantity, price=price)
    p = portfolio(cash=cash, held=held, price=price)
    approved = all(v.approved for v in core_verdicts(o, p, LIMITS, context()))
    after = (held + quantity) * price
    slack = 1 + 1e-9
    fits = (
        quantity * price <= LIMITS.max_order_notional * slack
        and after <= LIMITS.max_position_notional * slack
        and after <= LIMITS.max_position_fraction * p.equity * slack
        and quantity * price <= cash * slack
    )
    assert approved == fits


@settings(max_examples=200, deadline=None)
@given(equity=st.floats(1, 1e6), peak_gap=st.floats(0, 0.9), day_gap=st.floats(0, 0.9))
def test_breakers_trip_exactly_at_their_limits(equity, peak_gap, day_gap):
    peak = equity / (1 - peak_gap)
    day_start = equity / (1 - day_gap)
    p = PortfolioSnapshot(equity, equity, {}, peak, day_start)
    found = codes(core_verdicts(order(quantity=0.001), p, LIMITS, context()))
    assert (RiskCode.MAX_DRAWDOWN in found) == (equity < peak * (1 - LIMITS.max_drawdown))
    assert (RiskCode.REDUCE_ONLY in found) == (equity < day_start * (1 - LIMITS.daily_loss_limit))


# --------------------------------------------------------------------------- the agent


class DenyLarge:
    """A non-strategy plugin adding a stricter rule."""

    @hookimpl
    def trader_audit_order(self, order):
        if order.notional > 500:
            return RiskVerdict.deny("house", "HOUSE_LIMIT", "house rule: at most 500 per order")
        return None


class ApproveEverything:
    @hookimpl
    def trader_audit_order(self, order, context):
        return [RiskVerdict.approve("lax"), RiskVerdict(True, "lax", (), TradingStatus.ACTIVE)]


class Raising:
    @hookimpl
    def trader_audit_order(self, order):
        raise RuntimeError("boom")


class Garbage:
    @hookimpl
    def trader_audit_order(self, order):
        return "yes"


class Wrapper:
    """Would replace every result of the hook chain by an approval (the audit never runs that chain)."""

    @hookimpl(wrapper=True)
    def trader_audit_order(self, order):
        yield
        return [RiskVerdict.approve("core")]


class MutatesPositions:
    @hookimpl(tryfirst=True)
    def trader_audit_order(self, portfolio):
        portfolio.positions.clear()


def audit(manager, strategy="buy_and_hold", o=None, p=None, c=None):
    agent = RiskAuditAgent.for_strategy(manager, strategy, LIMITS)
    return agent.audit(o or order(strategy=strategy), p or portfolio(), c or context(strategy=strategy))


def test_agent_approves_within_limits_and_a_plugin_can_add_a_rule(manager):
    assert audit(manager).approved
    with manager.registered(DenyLarge(), "house_rules"):
        decision = audit(manager, o=order(quantity=10))
        assert not decision.approved
        assert [r.code for r in decision.denials] == ["HOUSE_LIMIT"]


def test_a_plugin_cannot_loosen_the_core(manager):
    with manager.registered(ApproveEverything(), "lax"):
        decision = audit(manager, o=order(quantity=25))
        assert not decision.approved
        assert RiskCode.NOTIONAL_EXCEEDS_MAX_PER_ORDER in {r.code for r in decision.denials}
        halted = audit(manager, c=context(consecutive_losses=5))
        assert halted.status is TradingStatus.HALTED  # the most severe request wins


@pytest.mark.parametrize(
    ("plugin", "code"),
    [(Raising(), RiskCode.RISK_AUDIT_ERROR), (Garbage(), RiskCode.RISK_AUDIT_ERROR)],
)
def test_the_audit_fails_closed(manager, plugin, code):
    with manager.registered(plugin, "bad_rules"):
        decision = audit(manager)
    assert not decision.approved
    assert [r.code for r in decision.denials] == [code]
    assert "plugin 'bad_rules'" in decision.denials[0].message


def test_a_wrapper_is_never_called_so_it_cannot_replace_the_cores_verdicts(manager, caplog):
    with manager.registered(Wrapper(), "wrapper"), caplog.at_level("WARNING", logger="trader.risk"):
        agent = RiskAuditAgent.for_strategy(manager, "buy_and_hold", LIMITS)
        too_big = agent.audit(order(quantity=25), portfolio(), context())
        small = agent.audit(order(quantity=1), portfolio(), context())
    assert not too_big.approved and RiskCode.NOTIONAL_EXCEEDS_MAX_PER_ORDER in {r.code for r in too_big.denials}
    assert small.approved
    assert "plugin 'wrapper' wraps trader_audit_order" in caplog.text


def test_the_core_rules_apply_without_the_core_plugin(manager):
    caller = manager.subset_hook("trader_audit_order", ["buy_and_hold"])
    agent = RiskAuditAgent(caller, "buy_and_hold", LIMITS)
    assert not agent.fails_closed
    assert agent.audit(order(quantity=1), portfolio(), context()).approved
    decision = agent.audit(order(quantity=25), portfolio(), context())
    assert [r.code for r in decision.denials] == [RiskCode.NOTIONAL_EXCEEDS_MAX_PER_ORDER]


def test_a_rule_cannot_change_what_the_core_sees(manager):
    with manager.registered(MutatesPositions(), "mutator"):
        decision = audit(manager, o=order("sell", quantity=2), p=portfolio(held=1))
    assert not decision.approved
    # the core saw the position (the sell exceeds it); the mutator's attempt failed on its read-only copy
    assert {r.code for r in decision.denials} == {RiskCode.QUANTITY_EXCEEDS_POSITION, RiskCode.RISK_AUDIT_ERROR}


def test_another_strategys_rules_never_run(manager):
    class OtherStrategy(ScriptedStrategy):
        @hookimpl
        def trader_audit_order(self, order):
            raise AssertionError("another strategy's rule ran")

    class OwnStrategy(ScriptedStrategy):
        @hookimpl
        def trader_audit_order(self, order):
            return RiskVerdict.deny("own", "OWN_RULE", "the strategy's own rule")

    with manager.registered(OtherStrategy("other"), "other"), manager.registered(OwnStrategy("mine"), "mine"):
        agent = RiskAuditAgent.for_strategy(manager, "mine", LIMITS)
        assert "other" not in agent.plugins and "core_risk" in agent.plugins
        decision = agent.audit(order(strategy="mine"), portfolio(), context(strategy="mine"))
        assert [r.code for r in decision.denials] == ["OWN_RULE"]
        assert audit(manager).approved  # buy_and_hold sees neither


def test_every_verdict_is_logged_with_its_reasons(manager, caplog):
    with caplog.at_level("INFO", logger="trader.risk"):
        audit(manager, o=order(quantity=25))
    assert any("NOTIONAL_EXCEEDS_MAX_PER_ORDER" in r.getMessage() for r in caplog.records)


def test_positions_reach_rules_read_only(manager):
    seen = {}

    class Peek:
        @hookimpl
        def trader_audit_order(self, portfolio):
            seen["positions"] = portfolio.positions

    with manager.registered(Peek(), "peek"):
        audit(manager, p=portfolio(held=1))
    assert isinstance(seen["positions"], types.MappingProxyType)

"""Hostile plugins against the risk audit: the core decides on its own copies.

Each attack here worked before the audit called the core's rules directly on private
copies: a rule that writes into its arguments, a strategy that changes the limits it
returned, a wrapper registered at the first signal, a plugin named ``core_risk``, forged
signals and ``BaseException`` from a hook.
"""

from __future__ import annotations

import gc
import logging
import os
import signal as signals_module
import types
from pathlib import Path

import numpy as np
import pluggy
import pytest
from engine_testkit import HOUR, T0, ScriptedStrategy, random_walk
from hypothesis import given, settings
from hypothesis import strategies as st

from trader import hookimpl
from trader.backtest import run_backtest
from trader.config import TraderConfig
from trader.data import synthetic_candles
from trader.engine import (
    MemoryState,
    PaperBroker,
    RiskAuditAgent,
    RiskCode,
    TradingSession,
    core_verdicts,
    strategy_limits,
)
from trader.errors import PluginError
from trader.types import (
    AuditContext,
    OrderRequest,
    PortfolioSnapshot,
    Position,
    RiskLimits,
    RiskVerdict,
    Signal,
    SignalAction,
    SignalRequest,
    StrategyInfo,
    TradingStatus,
)

CAPS = RiskLimits(max_position_fraction=0.5, max_order_notional=2_000.0, max_position_notional=5_000.0,
                  max_drawdown=0.9, daily_loss_limit=0.9)


def forge(obj, **values):
    """What a hostile plugin does to a frozen attrs object."""
    for name, value in values.items():
        object.__setattr__(obj, name, value)


def loosen_everything(order, portfolio, limits, context):
    """Write into every argument so that, read by a rule after this one, any order passes."""
    forge(limits, max_position_fraction=1.0, max_order_notional=1e12, max_position_notional=1e12, max_drawdown=1.0,
          daily_loss_limit=1.0, max_consecutive_losses=10**9, max_errors=10**9, max_model_failures=10**9,
          stale_after_bars=1e12, max_inference_ms=1e12)
    forge(portfolio, cash=1e15, equity=1e15, peak_equity=0.0, day_start_equity=0.0)
    for underlying in gc.get_referents(portfolio.positions):  # the dict behind the read-only mapping
        if isinstance(underlying, dict):
            for position in underlying.values():
                forge(position, quantity=1e9)
            underlying.clear()
    forge(context, status=TradingStatus.ACTIVE, consecutive_losses=0, recent_errors=0, model_failures=0,
          last_candle_ts=None, last_inference_ms=None)
    forge(order, quantity=1e-9)


class HostileRules:
    """A non-strategy plugin: mutates everything it is handed and approves, tryfirst and last."""

    @hookimpl(tryfirst=True)
    def trader_audit_order(self, order, portfolio, limits, context):
        loosen_everything(order, portfolio, limits, context)
        return RiskVerdict(True, "core", (), TradingStatus.ACTIVE)


class HostileRulesLast:
    @hookimpl(trylast=True)
    def trader_audit_order(self, order, portfolio, limits, context):
        loosen_everything(order, portfolio, limits, context)
        return [RiskVerdict.approve("core")]


class ApproveAll:
    @hookimpl
    def trader_audit_order(self, order):
        return RiskVerdict.approve("core")


class ApprovingWrapper:
    @hookimpl(wrapper=True)
    def trader_audit_order(self):
        yield
        return [RiskVerdict.approve("core")]


class ApprovingHookwrapper:
    @hookimpl(hookwrapper=True)
    def trader_audit_order(self):
        outcome = yield
        outcome.force_result([RiskVerdict.approve("core")])


def plugin_managers() -> list[pluggy.PluginManager]:
    """What a plugin can always reach from its own code: every trader plugin manager alive (pytest's own
    manager is left alone, so the test can run twice in one process)."""
    return [obj for obj in gc.get_objects() if isinstance(obj, pluggy.PluginManager) and obj.project_name == "trader"]


class Greedy(ScriptedStrategy):
    """Always buys everything; at its first signal it loosens the limits it returned and registers
    approving wrappers and rules with every plugin manager it can find."""

    def __init__(self, name: str = "greedy", **info) -> None:
        super().__init__(name, **info)
        self.limits = info.get("risk_limits", CAPS)
        self.attacked = False

    @hookimpl
    def trader_strategy_info(self) -> StrategyInfo:
        return StrategyInfo(name=self.name, version="1.0", risk_limits=self.limits)

    @hookimpl
    def trader_generate_signals(self, request):
        if not self.attacked:
            self.attacked = True
            forge(self.limits, max_position_fraction=1.0, max_order_notional=1e12, max_position_notional=1e12)
            for pm in plugin_managers():  # every one alive, earlier tests' too: names unique per manager and attack
                for j, plugin in enumerate((ApprovingWrapper(), ApprovingHookwrapper(), HostileRules(), ApproveAll())):
                    pm.register(plugin, name=f"late_{id(self)}_{id(pm)}_{j}")
        return [Signal(SignalAction.BUY, size=1.0) for _ in request.at]


def order(side="buy", quantity=1.0, price=100.0) -> OrderRequest:
    return OrderRequest("greedy", "BTC/USDT", side, quantity, price, "cid-1", T0)


def portfolio(cash=10_000.0, held=0.0, price=100.0, peak=None, day_start=None) -> PortfolioSnapshot:
    equity = cash + held * price
    positions = types.MappingProxyType({"BTC/USDT": Position("BTC/USDT", held, price)} if held else {})
    return PortfolioSnapshot(cash, equity, positions, equity if peak is None else peak,
                             equity if day_start is None else day_start)


def context(**kw) -> AuditContext:
    values = dict(strategy="greedy", now=T0 + HOUR, timeframe_ms=HOUR, last_candle_ts=T0)
    values.update(kw)
    return AuditContext(**values)


def denied_codes(decision) -> set[str]:
    return {r.code for r in decision.denials}


# --------------------------------------------------------------------------- mutated arguments


@pytest.mark.parametrize("plugin", [HostileRules(), HostileRulesLast()])
def test_a_rule_writing_into_its_arguments_loosens_nothing(manager, plugin):
    manager.register(Greedy(), "greedy")
    with manager.registered(plugin, "hostile"):
        agent = RiskAuditAgent.for_strategy(manager, "greedy", CAPS)
        huge = order(quantity=1e10)
        o, p, c = huge, portfolio(held=30), context()
        decision = agent.audit(o, p, c)
        assert not decision.approved
        assert {RiskCode.NOTIONAL_EXCEEDS_MAX_PER_ORDER, RiskCode.POSITION_EXCEEDS_MAX_FRACTION,
                RiskCode.NOTIONAL_EXCEEDS_FREE_BALANCE} <= denied_codes(decision)
        # a second audit is not affected by what the first one's rules did
        again = agent.audit(order(quantity=25), portfolio(), context())
        assert denied_codes(again) == {RiskCode.NOTIONAL_EXCEEDS_MAX_PER_ORDER}
        assert agent.audit(order(quantity=5), portfolio(), context()).approved
        halted = agent.audit(order(quantity=5), portfolio(), context(status="halted"))
        assert denied_codes(halted) == {RiskCode.TRADING_HALTED}
    # the caller's own objects and limits are untouched
    assert (huge.quantity, p.cash, p.positions["BTC/USDT"].quantity, c.last_candle_ts) == (1e10, 10_000.0, 30, T0)
    assert agent.limits == CAPS and CAPS.max_order_notional == 2_000.0


def test_the_agent_and_the_session_keep_limits_nobody_else_holds(manager):
    limits = RiskLimits(max_position_fraction=0.5)
    agent = RiskAuditAgent.for_strategy(manager, "buy_and_hold", limits)
    session = TradingSession("buy_and_hold", "BTC/USDT", "1h", limits=limits, broker=PaperBroker(),
                             store=MemoryState("buy_and_hold"), audit=agent)
    forge(limits, max_position_fraction=1.0)
    forge(agent.limits, max_position_fraction=1.0)  # .limits hands out a copy
    assert session.limits.max_position_fraction == 0.5 and agent.limits.max_position_fraction == 0.5
    assert session.limits is not limits and agent.limits is not agent.limits


def test_strategy_limits_returns_a_copy_the_strategy_never_held():
    info = StrategyInfo(name="greedy", version="1.0", risk_limits=RiskLimits(max_position_fraction=0.5))
    limits = strategy_limits(info, None)
    assert limits == info.risk_limits and limits is not info.risk_limits
    forge(info.risk_limits, max_position_fraction=1.0)
    assert limits.max_position_fraction == 0.5


def test_a_strategy_with_forged_default_limits_is_refused_by_name():
    info = StrategyInfo(name="greedy", version="1.0")
    forge(info.risk_limits, max_position_fraction=float("nan"))
    with pytest.raises(PluginError, match="plugin 'greedy': its default risk limits are invalid: max_position_fraction"):
        strategy_limits(info, None)


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["limits", "portfolio", "context", "order", "positions"]),
        st.sampled_from(["max_position_fraction", "max_order_notional", "max_position_notional", "max_drawdown",
                         "cash", "equity", "peak_equity", "status", "consecutive_losses", "model_failures",
                         "quantity", "price", "last_candle_ts", "clear"]),
        st.sampled_from([0.0, 1.0, 1e12, -1.0, float("nan"), None, "active", TradingStatus.ACTIVE]),
    ),
    max_size=8,
)


def mutate(mutations, order, portfolio, limits, context):
    targets = {"limits": limits, "portfolio": portfolio, "context": context, "order": order}
    for where, name, value in mutations:
        if where == "positions":
            for underlying in gc.get_referents(portfolio.positions):
                if isinstance(underlying, dict):
                    if name == "clear":
                        underlying.clear()
                    for position in list(underlying.values()):
                        forge(position, quantity=value)
        elif hasattr(targets[where], name):
            forge(targets[where], **{name: value})
    return RiskVerdict.approve("core")


@settings(max_examples=300, deadline=None)
@given(
    quantity=st.floats(0.001, 200),
    price=st.floats(1, 1_000),
    cash=st.floats(0, 20_000),
    held=st.floats(0, 100),
    fraction=st.floats(0.05, 1.0),
    max_order=st.floats(10, 50_000),
    side=st.sampled_from(["buy", "sell"]),
    status=st.sampled_from(list(TradingStatus)),
    losses=st.integers(0, 6),
    mutations=MUTATIONS,
)
def test_random_mutations_never_loosen_the_cores_decision(quantity, price, cash, held, fraction, max_order, side,
                                                          status, losses, mutations):
    limits = RiskLimits(max_position_fraction=fraction, max_order_notional=max_order, max_consecutive_losses=5)
    o = OrderRequest("greedy", "BTC/USDT", side, quantity, price, "cid", T0)
    p = portfolio(cash=cash, held=held, price=price)
    c = context(status=status, consecutive_losses=losses)
    alone = {r.code for v in core_verdicts(o, p, limits, c) if not v.approved for r in v.reasons}
    rules = [("hostile", lambda **kw: mutate(mutations, **kw)), ("hostile_again", lambda **kw: mutate(mutations, **kw))]
    decision = RiskAuditAgent(None, "greedy", limits, extra_rules=rules).audit(o, p, c)
    assert alone <= denied_codes(decision)
    assert decision.approved == (not alone)  # the rules failing on a forged value deny with RISK_AUDIT_ERROR...
    # ...or pass: either way never more approvals than the core alone gives
    assert (o.quantity, o.price, p.cash, c.status) == (quantity, price, cash, status)


# --------------------------------------------------------------------------- real backtests


def greedy_backtest(manager, home, *plugins, fraction=0.5):
    """A backtest of Greedy (always BUY size 1) over 600 hourly candles; the steps it made."""
    limits = RiskLimits(max_position_fraction=fraction, max_order_notional=1_000.0, max_position_notional=1e9,
                        max_drawdown=1.0, daily_loss_limit=1.0)
    greedy = Greedy(risk_limits=limits)
    manager.register(greedy, "greedy")
    for i, plugin in enumerate(plugins):
        manager.register(plugin, f"hostile_{i}")
    config = TraderConfig(home=home)
    candles = synthetic_candles("BTC/USDT", "1h", bars=600, seed=3)
    result = run_backtest(manager, config, "greedy", candles, symbol="BTC/USDT", timeframe="1h")
    assert greedy.attacked
    return result


def test_a_backtest_with_hostile_rules_and_a_greedy_strategy_never_exceeds_the_position_cap(manager, tmp_path):
    result = greedy_backtest(manager, tmp_path, HostileRules(), HostileRulesLast())
    run = result.run
    buys = [f for f in run.fills if f["side"] == "buy"]
    assert len(buys) >= 3  # built over several candles, capped by max_order_notional 1,000
    assert max(f["quantity"] * f["price"] for f in buys) <= 1_000.0 * 1.001  # slippage aside
    # on every candle where the position grew, it is at most half the equity (the cap), fees and slippage aside
    position = np.asarray(run.position_value)
    equity = np.asarray(run.equity[1:])
    grew = np.flatnonzero(np.diff(np.concatenate(([0.0], position / np.asarray(run.close)))) > 1e-12)
    assert grew.size >= 3
    assert np.all(position[grew] <= 0.5 * equity[grew] * 1.001)
    assert run.exposure.max() < 0.75  # never anything like all of the equity


def test_a_late_wrapper_cannot_replace_the_cores_denials(manager):
    greedy = Greedy(risk_limits=RiskLimits(max_order_notional=500.0, max_position_fraction=1.0))
    manager.register(greedy, "greedy")
    limits = strategy_limits(manager.strategy("greedy").info, None)  # as `trader run` and backtests resolve them
    agent = RiskAuditAgent.for_strategy(manager, "greedy", limits)
    request = SignalRequest(strategy="greedy", symbol="BTC/USDT", timeframe="1h", candles=None, at=[0])
    manager.strategy("greedy").generate_signals(request)  # registers wrappers and approving rules everywhere
    assert greedy.attacked and any(name.startswith("late_") for name, _ in manager.pm.list_name_plugin())
    decision = agent.audit(order(quantity=10), portfolio(), context())
    assert denied_codes(decision) == {RiskCode.NOTIONAL_EXCEEDS_MAX_PER_ORDER}
    rebuilt = RiskAuditAgent.for_strategy(manager, "greedy", limits)  # built after: wrappers skipped, rules add nothing
    assert denied_codes(rebuilt.audit(order(quantity=10), portfolio(), context())) == {RiskCode.NOTIONAL_EXCEEDS_MAX_PER_ORDER}


# --------------------------------------------------------------------------- identity by name


def test_a_plugin_named_core_risk_is_not_the_core(manager):
    core_module = manager.pm.get_plugin("core_risk")
    manager.pm.unregister(core_module)
    manager.pm.register(ApproveAll(), name="core_risk")  # the name, not the rules
    manager.pm.register(ApproveAll(), name="core_risk_impostor")
    agent = RiskAuditAgent.for_strategy(manager, "buy_and_hold", CAPS)
    decision = agent.audit(order(quantity=25), portfolio(), context())
    assert denied_codes(decision) == {RiskCode.NOTIONAL_EXCEEDS_MAX_PER_ORDER}
    assert [v.rule for v in decision.verdicts if not v.approved] == ["core"]


def test_the_core_plugin_is_skipped_by_identity_and_a_verdict_claiming_to_be_the_cores_is_relabelled(manager):
    class ClaimsCore:
        @hookimpl
        def trader_audit_order(self):
            return RiskVerdict.deny("core", "HOUSE", "a house rule that calls itself core")

    calls = []
    core_module = manager.pm.get_plugin("core_risk")
    original = core_module.trader_audit_order
    with manager.registered(ClaimsCore(), "claims_core"):
        agent = RiskAuditAgent.for_strategy(manager, "buy_and_hold", CAPS)
        core_module.trader_audit_order = lambda **kw: calls.append(kw) or original(**kw)
        try:
            decision = agent.audit(order(quantity=1), portfolio(), context())
        finally:
            core_module.trader_audit_order = original
    assert calls == []  # the core's rules ran once, directly
    assert [(v.rule, r.code) for v in decision.verdicts if not v.approved for r in v.reasons] == [("claims_core", "HOUSE")]


# --------------------------------------------------------------------------- forged signals


def forged(action=SignalAction.BUY, **values) -> Signal:
    signal = Signal(SignalAction.BUY, size=0.5)
    forge(signal, action=action, **values)
    return signal


class SubSignal(Signal):
    """A subclass could override any attribute or method; it is refused whatever it does."""


FORGED = {
    "nan size": forged(size=float("nan")),
    "huge size": forged(size=1e12),
    "negative size": forged(size=-1.0),
    "nan confidence": forged(confidence=float("nan")),
    "probability 2": forged(probability=2.0),
    "unknown action": forged(action="yolo"),
    "plain str action": forged(action="buy"),
    "bytes reason": forged(reason=b"x"),
    "subclass": SubSignal(SignalAction.BUY, size=0.5),
    "not a signal": "buy",
}


class Forger(ScriptedStrategy):
    @hookimpl
    def trader_strategy_info(self) -> StrategyInfo:
        return StrategyInfo(name=self.name, version="1.0", risk_limits=RiskLimits(max_model_failures=3))


@pytest.mark.parametrize("kind", list(FORGED))
def test_a_forged_signal_is_refused_where_it_leaves_the_plugin(manager, kind):
    manager.register(Forger("forger", [Signal.hold(), FORGED[kind]] * 2), "forger")
    request = SignalRequest(strategy="forger", symbol="BTC/USDT", timeframe="1h", candles=None, at=[7, 8])
    with pytest.raises(PluginError, match=r"plugin 'forger': trader_generate_signals returned .* \(row 8\)"):
        manager.strategy("forger").generate_signals(request)
    kept = manager.strategy("forger").generate_signals(request, keep_invalid=True)
    assert kept[0] == Signal.hold() and isinstance(kept[1], PluginError)


def test_numpy_numbers_in_a_signal_are_fine(manager):
    good = Signal(SignalAction.BUY, confidence=np.float64(0.7), size=np.float64(0.5), probability=np.float64(0.6))
    manager.register(Forger("forger", [good]), "forger")
    request = SignalRequest(strategy="forger", symbol="BTC/USDT", timeframe="1h", candles=None, at=[0])
    assert manager.strategy("forger").generate_signals(request) == [good]


@pytest.mark.parametrize("fast", [True, False])
def test_a_session_given_forged_signals_records_invalid_signals_and_never_trades_them(fast):
    n = 40
    signals = [None, None] + [FORGED[k] for k in FORGED] * 4
    signals = signals[:n] + [Signal.hold()] * (n - len(signals[:n]))
    limits = RiskLimits(max_model_failures=50, max_drawdown=1.0, daily_loss_limit=1.0)
    store = MemoryState("forger")
    session = TradingSession("forger", "BTC/USDT", "1h", limits=limits, broker=PaperBroker(), store=store,
                             audit=RiskAuditAgent(None, "forger", limits))
    closes = random_walk(n, seed=1)
    assert session.run([T0 + i * HOUR for i in range(n)], closes, signals, fast=fast) == n
    codes = [e["code"] for e in store.risk_events()]
    assert codes.count(RiskCode.INVALID_SIGNAL) == len(FORGED) * 4 - 2
    assert list(store.fills()) == [] and session.position == 0.0


def test_forged_signals_in_a_backtest_are_invalid_signals_and_the_breaker_halts(manager, tmp_path):
    script = [FORGED["nan size"], FORGED["unknown action"], FORGED["plain str action"]] + [Signal(SignalAction.BUY)] * 200
    manager.register(Forger("forger", script), "forger")
    config = TraderConfig(home=tmp_path, data={"plugins": {"forger": {"risk": {"max_model_failures": 3}}}})
    result = run_backtest(manager, config, "forger", synthetic_candles("BTC/USDT", "1h", bars=200, seed=1),
                          symbol="BTC/USDT", timeframe="1h")
    codes = [e["code"] for e in result.run.events]
    assert codes.count(RiskCode.INVALID_SIGNAL) == 3 and RiskCode.MODEL_FAILURES in codes
    assert result.run.final_status == "halted" and result.run.fills == ()


# --------------------------------------------------------------------------- BaseException from a hook


class Custom(BaseException):
    pass


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), GeneratorExit(), Custom("mine")])
def test_any_base_exception_from_a_hook_is_a_plugin_error_naming_the_plugin(manager, exc):
    manager.register(Forger("raiser", [exc]), "raiser")
    request = SignalRequest(strategy="raiser", symbol="BTC/USDT", timeframe="1h", candles=None, at=[0])
    with pytest.raises(PluginError, match=f"plugin 'raiser': trader_generate_signals raised {type(exc).__name__}"):
        manager.strategy("raiser").generate_signals(request)


def test_a_real_ctrl_c_during_a_hook_still_interrupts(manager):
    class CtrlC(Forger):
        @hookimpl
        def trader_generate_signals(self, request):
            os.kill(os.getpid(), signals_module.SIGINT)  # the user presses Ctrl-C while the plugin runs
            for _ in range(1000):
                pass
            return [Signal.hold() for _ in request.at]

    manager.register(CtrlC("ctrl_c"), "ctrl_c")
    request = SignalRequest(strategy="ctrl_c", symbol="BTC/USDT", timeframe="1h", candles=None, at=[0])
    with pytest.raises(KeyboardInterrupt):
        manager.strategy("ctrl_c").generate_signals(request)


@pytest.mark.parametrize("exc", [SystemExit(0), KeyboardInterrupt(), Custom("x")])
def test_a_base_exception_from_an_audit_rule_denies_the_order(manager, exc):
    class Raises:
        @hookimpl
        def trader_audit_order(self):
            raise exc

    with manager.registered(Raises(), "raises"):
        decision = RiskAuditAgent.for_strategy(manager, "buy_and_hold", CAPS).audit(order(), portfolio(), context())
    assert denied_codes(decision) == {RiskCode.RISK_AUDIT_ERROR}
    assert f"plugin 'raises': trader_audit_order raised {type(exc).__name__}" in decision.denials[0].message


# --------------------------------------------------------------------------- the operator's config


def test_the_config_may_loosen_the_strategys_limits_and_each_loosened_limit_is_named(caplog):
    info = StrategyInfo(name="greedy", version="1.0", risk_limits=RiskLimits(max_drawdown=0.2, error_window_s=3600))
    config = TraderConfig(home=Path.cwd(), data={"plugins": {"greedy": {"risk": {
        "max_drawdown": 1.0, "error_window_s": 60, "max_position_fraction": 0.25}}}})
    with caplog.at_level(logging.WARNING, logger="trader.engine"):
        limits = strategy_limits(info, config)
    assert (limits.max_drawdown, limits.error_window_s, limits.max_position_fraction) == (1.0, 60, 0.25)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "[plugins.greedy.risk] loosens the strategy's default risk limits" in line
    assert "max_drawdown 0.2 -> 1" in line and "error_window_s 3600 -> 60" in line
    assert "max_position_fraction" not in line  # tightened: not a loosening
    caplog.clear()
    tight = TraderConfig(home=Path.cwd(), data={"plugins": {"greedy": {"risk": {"max_drawdown": 0.1}}}})
    with caplog.at_level(logging.WARNING, logger="trader.engine"):
        strategy_limits(info, tight)
    assert not caplog.records


def test_a_rule_registered_after_the_audit_was_built_is_never_called(manager):
    calls = []

    class DenyAll:
        @hookimpl
        def trader_audit_order(self, order):
            calls.append(order)
            return RiskVerdict.deny("late", "LATE", "registered after the start")

    agent = RiskAuditAgent.for_strategy(manager, "buy_and_hold", CAPS)
    with manager.registered(DenyAll(), "late"):
        assert agent.audit(order(quantity=1), portfolio(), context()).approved
        assert calls == []
        later = RiskAuditAgent.for_strategy(manager, "buy_and_hold", CAPS)  # the next run sees it
        assert denied_codes(later.audit(order(quantity=1), portfolio(), context())) == {"LATE"}


def test_the_core_reads_its_own_copy_of_a_strategy_s_info_never_the_object_the_plugin_can_forge_later(manager):
    greedy = Greedy(risk_limits=RiskLimits(max_position_fraction=0.3))
    manager.register(greedy, "greedy")
    info = manager.strategy("greedy").info
    forge(greedy.limits, max_position_fraction=1.0)  # what its first signal does, in the plugin's own object
    assert info.risk_limits is not greedy.limits and info.risk_limits.max_position_fraction == 0.3

"""Every risk rule, triggered on a real state file, shows in ``trader status`` (text and JSON)."""

from __future__ import annotations

from engine_testkit import BUY, HOLD, HOUR, SELL, T0, make_session, status_json, trader

from trader.engine import PaperBroker, RiskAuditAgent, RiskCode, TradingSession, TradingState
from trader.engine.brokers.base import Execution
from trader.errors import PluginError
from trader.types import OrderRequest, RiskLimits, Signal, SignalAction

DAY = 24 * HOUR
LOOSE = dict(max_position_fraction=1.0, max_drawdown=0.9, daily_loss_limit=0.9)


class Unreachable(PaperBroker):
    def execute(self, order, *, cash, now):
        return Execution.error("exchange unreachable")


def manual(name, side, quantity, price=100.0, ts=T0 + 10 * HOUR, cid="manual"):
    return OrderRequest(name, "BTC/USDT", side, quantity, price, cid, ts)


def scenario(manager, home, name, limits=None, broker=None):
    return make_session(manager, home / "strategies", name, limits=limits or RiskLimits(**LOOSE), broker=broker)


def test_every_rule_is_visible_in_status(manager, tmp_path):
    home = tmp_path / "home"
    expected: dict[str, tuple[str, str | None]] = {}  # namespace -> (code in events, risk status)

    s = scenario(manager, home, "order_cap", RiskLimits(max_order_notional=500))
    s.submit(manual("order_cap", "buy", 10))
    expected["order_cap"] = (RiskCode.NOTIONAL_EXCEEDS_MAX_PER_ORDER, "active")

    s = scenario(manager, home, "position_cap", RiskLimits(max_position_notional=800, max_order_notional=800))
    s.submit(manual("position_cap", "buy", 9))
    expected["position_cap"] = (RiskCode.POSITION_EXCEEDS_MAX_NOTIONAL, "active")

    s = scenario(manager, home, "fraction_cap", RiskLimits(max_position_fraction=0.1))
    s.submit(manual("fraction_cap", "buy", 20))
    expected["fraction_cap"] = (RiskCode.POSITION_EXCEEDS_MAX_FRACTION, "active")

    s = scenario(manager, home, "free_cash", RiskLimits(max_position_fraction=1.0, max_order_notional=1e9, max_position_notional=1e9))
    s.submit(manual("free_cash", "buy", 150))
    expected["free_cash"] = (RiskCode.NOTIONAL_EXCEEDS_FREE_BALANCE, "active")

    s = scenario(manager, home, "short_sell")
    s.submit(manual("short_sell", "sell", 1))
    expected["short_sell"] = (RiskCode.QUANTITY_EXCEEDS_POSITION, "active")

    s = scenario(manager, home, "daily_loss", RiskLimits(max_position_fraction=1.0, daily_loss_limit=0.05, max_drawdown=0.9))
    s.step(T0, 100.0, BUY)
    s.step(T0 + HOUR, 90.0, HOLD)
    s.submit(manual("daily_loss", "buy", 1, price=90.0, ts=T0 + HOUR))
    expected["daily_loss"] = (RiskCode.DAILY_LOSS_LIMIT, "reducing")

    s = scenario(manager, home, "reduce_only", RiskLimits(max_position_fraction=1.0, daily_loss_limit=0.05, max_drawdown=0.9))
    s.step(T0, 100.0, BUY)
    s.step(T0 + HOUR, 90.0, HOLD)
    s.submit(manual("reduce_only", "buy", 1, price=90.0, ts=T0 + HOUR))
    expected["reduce_only"] = (RiskCode.REDUCE_ONLY, "reducing")

    s = scenario(manager, home, "drawdown", RiskLimits(max_position_fraction=1.0, max_drawdown=0.1, daily_loss_limit=0.9))
    s.step(T0, 100.0, BUY)
    s.step(T0 + DAY, 80.0, HOLD)
    s.submit(manual("drawdown", "sell", 1, price=80.0, ts=T0 + DAY))
    expected["drawdown"] = (RiskCode.MAX_DRAWDOWN, "halted")

    s = scenario(manager, home, "halted", RiskLimits(max_position_fraction=1.0, max_drawdown=0.1, daily_loss_limit=0.9))
    s.step(T0, 100.0, BUY)
    s.step(T0 + DAY, 80.0, HOLD)
    s.submit(manual("halted", "sell", 1, price=80.0, ts=T0 + DAY))
    expected["halted"] = (RiskCode.TRADING_HALTED, "halted")

    s = scenario(manager, home, "losing_streak", RiskLimits(max_consecutive_losses=2, **LOOSE))
    for i in range(2):
        s.step(T0 + 2 * i * HOUR, 100.0, BUY)
        s.step(T0 + (2 * i + 1) * HOUR, 99.0, SELL)
    expected["losing_streak"] = (RiskCode.CONSECUTIVE_LOSSES, "halted")

    s = scenario(manager, home, "errors", RiskLimits(max_errors=2, error_window_s=86_400, **LOOSE), broker=Unreachable())
    for i in range(2):
        s.step(T0 + i * HOUR, 100.0, BUY)
    expected["errors"] = (RiskCode.ERROR_BREAKER, "halted")

    s = scenario(manager, home, "stale")
    s.step(T0, 100.0, BUY, now=T0 + 5 * HOUR)
    expected["stale"] = (RiskCode.STALE_DATA, "active")

    s = scenario(manager, home, "slow_model", RiskLimits(max_inference_ms=10))
    s.step(T0, 100.0, BUY, inference_ms=500.0)
    expected["slow_model"] = (RiskCode.INFERENCE_LATENCY, "active")

    s = scenario(manager, home, "bad_model", RiskLimits(max_model_failures=2))
    s.step(T0, 100.0, PluginError("plugin 'bad_model': trader_generate_signals returned 0 signals for 1 rows"))
    s.step(T0 + HOUR, 100.0, RuntimeError("weights missing"))
    expected["bad_model"] = (RiskCode.MODEL_FAILURES, "halted")
    expected["bad_model_signal"] = (RiskCode.INVALID_SIGNAL, None)

    def broken_rule(**arguments):
        raise RuntimeError("the house rules are unavailable")

    store = TradingState.open("broken_rule", home / "strategies" / "broken_rule")
    limits = RiskLimits()
    agent = RiskAuditAgent(manager.subset_hook("trader_audit_order", ["broken_rule"]), "broken_rule", limits,
                           extra_rules=[("house_rules", broken_rule)])
    s = TradingSession("broken_rule", "BTC/USDT", "1h", limits=limits, broker=PaperBroker(), store=store, audit=agent)
    s.step(T0, 100.0, Signal(SignalAction.BUY, size=0.1))
    expected["broken_rule"] = (RiskCode.RISK_AUDIT_ERROR, "active")

    summaries = {s["strategy"]: s for s in status_json(home)}
    for name, (code, status) in expected.items():
        summary = summaries[name.replace("bad_model_signal", "bad_model")]
        assert summary["event_counts"].get(code), f"{name}: {code} not in {summary['event_counts']}"
        if status is not None:
            assert summary["risk"]["status"] == status, name
        if status in ("halted", "reducing") and name not in ("halted", "reduce_only"):
            assert summary["risk"]["reason"].startswith(code), (name, summary["risk"]["reason"])
    text = trader(home, "status").stdout
    for code in {code for code, _ in expected.values()}:
        assert code in text, code
    assert "[HALTED]" in text and "[REDUCING]" in text

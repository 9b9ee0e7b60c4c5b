"""A strategy that trades the bid-ask bounce, exposed as an entry point by test_backtest_costs.py."""

from __future__ import annotations

from trader import hookimpl
from trader.types import RiskLimits, Signal, SignalAction, StrategyInfo


class BuyAfterDownBar:
    """Long after a bar that closed lower, flat after one that closed higher: pure bounce harvesting."""

    name = "fake_bounce"

    @hookimpl
    def trader_strategy_info(self):
        limits = RiskLimits(max_position_fraction=0.9, max_consecutive_losses=100_000, daily_loss_limit=0.99,
                            max_drawdown=0.99)
        return StrategyInfo(name=self.name, version="1.0", warmup_bars=2, risk_limits=limits)

    @hookimpl
    def trader_generate_signals(self, request):
        close = request.candles["close"].to_numpy()
        return [Signal(SignalAction.BUY if close[i] < close[i - 1] else SignalAction.SELL) for i in request.at]


BOUNCE = BuyAfterDownBar()

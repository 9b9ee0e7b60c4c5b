"""Buy and hold: the yardstick every model is compared with.

It buys its full allowed position on the first candle and holds it. On a basket of
``M`` markets it is the equal-weight basket: ``1/M`` of the account in each market, bought
at the market's first candle, never sold, and topped up (like the single market's) when it
falls more than the rebalance band below ``1/M`` of the account while cash allows. Its loss
breakers are wide open (a daily loss or drawdown of 100%), so that a halt never turns
the yardstick into something else; the order-size rules still apply.
"""

from __future__ import annotations

from collections.abc import Sequence

from trader import __version__
from trader.hookspecs import hookimpl
from trader.types import BasketRequest, RiskLimits, Signal, SignalAction, SignalRequest, StrategyInfo

NAME = "buy_and_hold"


@hookimpl
def trader_strategy_info() -> StrategyInfo:
    return StrategyInfo(
        name=NAME,
        version=__version__,
        description="Baseline: buy the maximum allowed position once and hold it.",
        warmup_bars=0,
        requires_model=False,
        risk_limits=RiskLimits(daily_loss_limit=1.0, max_drawdown=1.0, max_position_fraction=1.0),
    )


@hookimpl
def trader_generate_signals(request: SignalRequest) -> Sequence[Signal]:
    buy = Signal(SignalAction.BUY, confidence=1.0, size=1.0, reason="buy and hold")
    return [buy] * len(request.at)


@hookimpl
def trader_generate_basket_signals(request: BasketRequest) -> Sequence[dict[str, Signal]]:
    buy = Signal(SignalAction.BUY, confidence=1.0, size=1.0 / len(request.symbols), reason="equal-weight buy and hold")
    answer = dict.fromkeys(request.symbols, buy)
    return [answer] * len(request.at)

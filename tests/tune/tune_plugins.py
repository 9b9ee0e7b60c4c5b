"""Strategy plugins for the tune tests, as module bodies for :func:`tests.plugin_packages.write_plugin`."""

#: ``revert``: BUY after the last ``lookback`` bars fell, SELL after they rose. On the synthetic
#: market's planted signal (a reversal of the last three bars) a short lookback wins; the default
#: (24) trades a much weaker reversal. ``lookback`` is marked ``tune``; ``hold_bars`` is not.
#: ``REVERT_DELAY_S`` in the environment makes each call sleep that long (same signals).
REVERT = '''
import os
import time

import numpy as np
from trader.hookspecs import hookimpl
from trader.types import ParamSpec, RiskLimits, Signal, SignalAction, StrategyInfo

@hookimpl
def trader_strategy_info():
    return StrategyInfo(
        name="revert", version="1.0", warmup_bars=50,
        risk_limits=RiskLimits(daily_loss_limit=1.0, max_drawdown=1.0, max_position_fraction=1.0),
        params=(ParamSpec("lookback", "int", 24, low=1, high=48, tune=True, help="bars summed"),
                ParamSpec("size", "float", 1.0, low=0.1, high=1.0, help="a BUY's target")),
    )

@hookimpl
def trader_generate_signals(request):
    time.sleep(float(os.environ.get("REVERT_DELAY_S", "0")))  # a test slows a run down to kill it midway
    n = int(request.params.get("lookback", 24))
    size = float(request.params.get("size", 1.0))
    close = np.log(request.candles["close"].to_numpy())
    out = []
    for i in request.at:
        i = int(i)
        if i < n:
            out.append(Signal.hold("warm-up"))
            continue
        move = close[i] - close[i - n]
        action = SignalAction.BUY if move < 0 else SignalAction.SELL
        out.append(Signal(action, confidence=1.0, size=size if action == SignalAction.BUY else 1.0, reason="revert"))
    return out
'''

#: ``plain``: declares a parameter but marks none ``tune``: no search space.
PLAIN = '''
from trader.hookspecs import hookimpl
from trader.types import ParamSpec, Signal, StrategyInfo

@hookimpl
def trader_strategy_info():
    return StrategyInfo(name="plain", version="1.0", params=(ParamSpec("level", "float", 0.5, low=0.0, high=1.0),))

@hookimpl
def trader_generate_signals(request):
    return [Signal.hold("nothing")] * len(request.at)
'''

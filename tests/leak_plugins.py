"""Real strategy plugin packages, one per kind of leak or non-determinism, pip-installed in ONE call.

Shared by ``tests/backtest/test_backtest_leaks.py`` (``trader check``) and
``tests/authoring/test_authoring_leaks.py`` (the conformance suite): both must catch each
of them at their defaults, with the right diagnosis.
"""

from __future__ import annotations

from pathlib import Path

from plugin_packages import pip_install, plugin_env, write_plugin

__all__ = ["PLUGINS", "install_leak_plugins", "plugin_env"]

_HEAD = """
import numpy as np
import pandas as pd

from trader import Signal, SignalAction, StrategyInfo, hookimpl

NAME = "{name}"


@hookimpl
def trader_strategy_info():
    return StrategyInfo(name=NAME, version="1.0.0", description="{description}", warmup_bars=30)


def crossover(close, row):
    mean = close[max(row - 9, 0) : row + 1].mean()
    return Signal(SignalAction.BUY if close[row] > mean else SignalAction.SELL, size=1.0)
"""

#: name -> (description, body of trader_generate_signals)
PLUGINS = {
    "honest_cross": ("close above its 10-bar mean", """
@hookimpl
def trader_generate_signals(request):
    close = request.candles["close"].to_numpy()
    return [crossover(close, row) for row in request.at]
"""),
    "leak_std": ("returns divided by the whole frame's standard deviation", """
@hookimpl
def trader_generate_signals(request):
    close = request.candles["close"].to_numpy()
    ret = np.diff(np.log(close), prepend=np.nan)
    z = ret / np.nanstd(ret)  # the whole frame: later candles included
    return [Signal(SignalAction.BUY if z[row] > 0.5 else SignalAction.SELL, size=1.0) for row in request.at]
"""),
    "leak_volume": ("volume against the whole frame's mean volume", """
@hookimpl
def trader_generate_signals(request):
    volume = request.candles["volume"].to_numpy()
    level = volume / volume.mean()  # the whole frame: later candles included
    return [Signal(SignalAction.BUY if level[row] > 1.0 else SignalAction.SELL, size=1.0) for row in request.at]
"""),
    "leak_rare": ("a 24-bar shift used on one row in fifty", """
@hookimpl
def trader_generate_signals(request):
    close = request.candles["close"].to_numpy()
    future = pd.Series(close).shift(-24).to_numpy()  # 24 bars ahead: NaN near the end
    out = []
    for row in request.at:
        if row % 50 == 7:
            out.append(Signal(SignalAction.BUY if future[row] > close[row] else SignalAction.SELL, size=1.0))
        else:
            out.append(crossover(close, row))
    return out
"""),
    "call_count": ("changes its threshold after its second call", """
_CALLS = [0]


@hookimpl
def trader_generate_signals(request):
    _CALLS[0] += 1
    threshold = 0.0 if _CALLS[0] <= 2 else 0.002
    close = request.candles["close"].to_numpy()
    ret = np.diff(np.log(close), prepend=np.nan)
    return [Signal(SignalAction.BUY if ret[row] > threshold else SignalAction.SELL, size=1.0) for row in request.at]
"""),
    "coin_flip": ("an unseeded random confidence", """
@hookimpl
def trader_generate_signals(request):
    close = request.candles["close"].to_numpy()
    rng = np.random.default_rng()  # unseeded: a new answer every time
    out = []
    for row in request.at:
        signal = crossover(close, row)
        out.append(Signal(signal.action, size=1.0, confidence=float(0.5 + 0.4 * rng.random())))
    return out
"""),
}


def _write(root: Path, name: str, description: str, body: str) -> Path:
    return write_plugin(root, f"trader-{name.replace('_', '-')}", f"trader_{name}", name,
                        _HEAD.format(name=name, description=description) + body, "1.0.0")


def install_leak_plugins(src: Path, target: Path) -> Path:
    """Every package of :data:`PLUGINS`, built and installed into ``target`` by one pip call."""
    return pip_install(target, [_write(src, name, description, body) for name, (description, body) in PLUGINS.items()])

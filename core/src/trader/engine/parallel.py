"""Running strategies from the CLI: one in this process, or several side by side, one process each.

Each strategy runs in its own ``trader run --plugin NAME`` process with its own state,
lock and risk budget; a crash in one does not stop the others. SIGINT and SIGTERM are
turned into a stop request: the current candle finishes and commits, then the process
exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from trader.engine.runner import RunOptions, RunSummary, StrategyRunner
from trader.engine.supervision import SUPERVISOR_ENV, die_with_parent

if TYPE_CHECKING:
    from trader.portfolio.run_summary import BasketRunSummary

__all__ = ["run_one", "run_in_subprocesses", "stop_on_signals"]

log = logging.getLogger("trader.run")

_OPTION_FLAGS = {
    "symbol": "--symbol",
    "timeframe": "--timeframe",
    "exchange": "--exchange",
    "feed": "--feed",
    "speed": "--speed",
    "max_candles": "--max-candles",
    "fee_bps": "--fee-bps",
    "slippage_bps": "--slippage-bps",
    "spread_bps": "--spread-bps",
    "cash": "--cash",
    "model_version": "--model-version",
    "synthetic_bars": "--bars",
    "seed": "--seed",
    "start_from": "--from",
    "isolation": "--isolation",
}


@contextmanager
def stop_on_signals(stop: threading.Event, on_signal: Any = None) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM set ``stop`` instead of interrupting (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if not stop.is_set():
            log.warning("%s received: finishing the current step, then stopping", signal.Signals(signum).name)
        stop.set()
        if on_signal is not None:
            on_signal(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _options(name: str, options: Mapping[str, Any]) -> RunOptions:
    from trader.errors import ConfigError

    try:
        return RunOptions(
            strategy=name,
            symbol=options.get("symbol") or "BTC/USDT",
            timeframe=options.get("timeframe") or "1h",
            exchange=options.get("exchange"),
            feed=options.get("feed") or "replay",
            live=bool(options.get("live_orders")),
            speed=float(options.get("speed") or 0.0),
            max_candles=options.get("max_candles"),
            fee_bps=options.get("fee_bps"),
            slippage_bps=options.get("slippage_bps"),
            spread_bps=options.get("spread_bps"),
            cash=options.get("cash"),
            model_version=options.get("model_version"),
            quiet=bool(options.get("quiet")),
            synthetic_bars=int(options.get("synthetic_bars") or 5000),
            seed=int(options.get("seed") or 0),
            start_from=_start_ms(options.get("start_from")),
            isolation=options.get("isolation") or "process",
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _start_ms(value: Any) -> int | None:
    if value is None:
        return None
    from trader.data.frame import parse_time_ms

    return parse_time_ms(value, "--from")


def run_one(app: Any, name: str, options: Mapping[str, Any]) -> RunSummary | BasketRunSummary:
    """Run strategy ``name`` in this process until its feed ends or a stop signal; its
    :class:`RunSummary` (a ``BasketRunSummary`` when ``options["symbols"]`` names several markets).

    With process isolation (the default) this process imports no strategy code at all: the
    strategy's hooks run in its worker. Started by :func:`run_in_subprocesses`, the process
    stops (SIGTERM: the current candle finishes and commits) when its parent dies.
    """
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor and supervisor.isdigit():
        die_with_parent(int(supervisor), signal.SIGTERM)
    run_options = _options(name, options)
    manager = app.plugins_for(() if run_options.isolation == "process" else (name,))
    stop = threading.Event()
    symbols = tuple(options.get("symbols") or ())
    runner: StrategyRunner
    if len(symbols) > 1:  # a basket: one account over all its markets (trader.portfolio)
        from trader.portfolio.runner import PortfolioRunner

        runner = PortfolioRunner(app.config, manager, run_options, symbols, stop=stop, log_format=app.log_format)
    else:
        runner = StrategyRunner(app.config, manager, run_options, stop=stop, log_format=app.log_format)
    with stop_on_signals(stop):
        return runner.run()


def _child_argv(app: Any, name: str, options: Mapping[str, Any], as_json: bool) -> list[str]:
    argv = [sys.executable, "-P", "-c", "from trader.cli import main; main()"]
    if app.debug:
        argv.append("--debug")
    argv += ["--log-format", app.log_format, "run", "--plugin", name]
    for key, flag in _OPTION_FLAGS.items():
        value = options.get(key)
        for item in value if isinstance(value, (tuple, list)) else () if value is None else (value,):
            argv += [flag, str(item)]  # a repeated flag (--symbol) once per value
    if options.get("live_orders"):
        argv.append("--live")
    if options.get("quiet"):
        argv.append("--quiet")
    if as_json:
        argv.append("--json")
    return argv


def run_in_subprocesses(app: Any, names: tuple[str, ...], options: Mapping[str, Any], *, as_json: bool = False) -> int:
    """Start ``trader run --plugin NAME`` for each name and wait for all; the worst exit code wins."""
    env = dict(os.environ)
    env[SUPERVISOR_ENV] = str(os.getpid())
    env["TRADER_HOME"] = str(app.home)
    if app.config.path is not None:
        env["TRADER_CONFIG"] = str(app.config.path)
    children: dict[str, subprocess.Popen] = {}
    stop = threading.Event()

    def forward(signum: int) -> None:
        for child in children.values():
            if child.poll() is None:
                try:
                    child.send_signal(signum)
                except ProcessLookupError:
                    pass

    outputs: dict[str, str] = {}
    with stop_on_signals(stop, forward):
        for name in names:
            stdout = subprocess.PIPE if as_json else None
            children[name] = subprocess.Popen(_child_argv(app, name, options, as_json), env=env, stdout=stdout, text=True)
            log.info("started %s (pid %d)", name, children[name].pid)
        codes = {}
        for name, child in children.items():
            out, _ = child.communicate()
            outputs[name] = out or ""
            codes[name] = child.returncode
    if as_json:
        import json

        merged = []
        for name in names:
            try:
                merged.append(json.loads(outputs[name]))
            except ValueError:
                merged.append({"strategy": name, "error": f"exited with status {codes[name]}"})
        print(json.dumps(merged, indent=2))
    failed = {name: code for name, code in codes.items() if code != 0}
    for name, code in failed.items():
        log.error("%s exited with status %d", name, code)
    return max(failed.values(), key=abs) if failed else 0

"""The engine's side of ``--isolation process``: the strategy runs in a worker process.

The engine process (risk audit, broker, state store, API keys) never imports the strategy's
code. :class:`StrategyWorker` starts :mod:`trader.engine.worker` with an environment without
credentials (:func:`trader.childenv.strategy_environment`), talks to it over a socket pair in
JSON (:mod:`trader.engine.wire`) and rebuilds everything it receives through the validated
types. :class:`WorkerSignals` is the run loop's signal source on top of it: a worker that dies,
hangs past ``[engine] signal_timeout_s`` or answers garbage is killed, the candle counts as a
``PLUGIN_ERROR`` for the model-failure breaker, and a new worker is started, warmed up on the
same history, at the next candle.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from trader import errors
from trader.errors import PluginError, TraderError
from trader.types import Candle

if TYPE_CHECKING:
    from trader.entrypoints import PluginSpec
    from trader.types import AuditContext, OrderRequest, PortfolioSnapshot, RiskLimits, StrategyInfo

__all__ = ["StrategyWorker", "WorkerSignals", "WorkerBasketSignals", "WorkerFailure", "ISOLATION_MODES", "DEFAULT_SIGNAL_TIMEOUT_S",
           "DEFAULT_START_TIMEOUT_S"]

log = logging.getLogger("trader.run")

ISOLATION_MODES = ("process", "inline")
#: How long a signal may take before the worker counts as hung (``[engine] signal_timeout_s``).
DEFAULT_SIGNAL_TIMEOUT_S = 30.0
#: How long importing the strategy and loading its model may take (``[engine] worker_start_timeout_s``).
DEFAULT_START_TIMEOUT_S = 300.0


class WorkerFailure(RuntimeError):
    """The worker died, hung or broke the protocol (the candle is a ``PLUGIN_ERROR``)."""


def _error_from(name: str, error: Any) -> TraderError:
    """The worker's error report as an exception of the engine (never more than a known class and text)."""
    if not isinstance(error, Mapping):
        return PluginError(f"plugin {name!r}: its worker sent a malformed error")
    message = str(error.get("message", ""))[:2000]
    cls = getattr(errors, str(error.get("type", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, TraderError)):
        cls = PluginError
    if cls is PluginError and not message.startswith("plugin "):
        message = f"plugin {name!r}: {message}"
    exc = cls(message)
    if error.get("code") != "INVALID_SIGNAL":
        exc.__cause__ = WorkerFailure(message)  # counted as PLUGIN_ERROR, not INVALID_SIGNAL
    return exc


class StrategyWorker:
    """One worker process for one strategy (see the module docstring)."""

    def __init__(
        self,
        spec: PluginSpec,
        init: Mapping[str, Any],
        *,
        signal_timeout_s: float = DEFAULT_SIGNAL_TIMEOUT_S,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        log_format: str = "text",
        log_level: str = "INFO",
    ) -> None:
        self.spec = spec
        self.init_request = {"op": "init", "spec": {"name": spec.name, "value": spec.value,
                                                    "distribution": spec.distribution, "version": spec.version},
                             **init}
        self.signal_timeout_s = float(signal_timeout_s)
        self.start_timeout_s = float(start_timeout_s)
        self.log_format = log_format
        self.log_level = log_level
        self.process: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.hello: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> dict[str, Any]:
        """Start the process, import the strategy, load its model; the worker's hello (its info, hooks)."""
        from trader.childenv import strategy_environment

        self.stop()
        ours, theirs = socket.socketpair()
        env = strategy_environment()
        env["TRADER_WORKER_LOG_FORMAT"] = self.log_format
        env["TRADER_WORKER_LOG_LEVEL"] = self.log_level
        argv = [sys.executable, "-P", "-c", "from trader.engine.worker import main; main()",
                str(theirs.fileno()), str(os.getpid())]
        try:
            self.process = subprocess.Popen(argv, env=env, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                            stdout=sys.stderr.fileno(), close_fds=True)
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        reply = self.request(self.init_request, self.start_timeout_s, what="start")
        if not reply.get("ok"):
            self.stop()
            raise _error_from(self.name, reply.get("error"))
        self.hello = reply
        log.debug("%s: strategy worker started (pid %d)", self.name, self.process.pid)
        return reply

    def request(self, message: Mapping[str, Any], timeout_s: float, *, what: str = "answer",
                payload: bytes | None = None) -> dict[str, Any]:
        """Send ``message`` (and a binary ``payload``) and wait for the reply; ``WorkerFailure`` on any trouble."""
        from trader.engine.wire import MAX_REPLY_BYTES, decode, encode

        if self.conn is None or not self.alive:
            raise WorkerFailure("is not running")
        try:
            self.conn.send_bytes(encode(message))
            if payload is not None:
                self.conn.send_bytes(payload)
            if not self.conn.poll(timeout_s):
                self.kill()
                raise WorkerFailure(f"did not {what} within {timeout_s:g} s and was stopped")
            return decode(self.conn.recv_bytes(MAX_REPLY_BYTES))
        except WorkerFailure:
            raise
        except (EOFError, OSError) as exc:
            code = self._exit_status()
            raise WorkerFailure(f"ended (exit status {code})" if code is not None
                                else f"closed its connection ({type(exc).__name__})") from None
        except ValueError as exc:
            self.kill()
            raise WorkerFailure(f"broke the protocol ({str(exc)[:200]})") from None

    def _exit_status(self) -> int | None:
        """The exit status of a worker whose connection closed (it is given a moment to finish dying)."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def audit(self, order: OrderRequest, portfolio: PortfolioSnapshot, limits: RiskLimits, context: AuditContext) -> list[Any]:
        """The strategy's own ``trader_audit_order`` verdicts, validated (raises on any failure: fail closed)."""
        from trader.engine.wire import audit_args_to_wire, verdicts_from_wire

        reply = self.request({"op": "audit", "args": audit_args_to_wire(order, portfolio, limits, context)},
                             self.signal_timeout_s)
        if not reply.get("ok"):
            raise _error_from(self.name, reply.get("error"))
        return verdicts_from_wire(reply.get("verdicts"))

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """Ask the worker to exit, then make sure it has."""
        if self.conn is not None:
            try:
                if self.alive:
                    from trader.engine.wire import encode

                    self.conn.send_bytes(encode({"op": "close"}))
            except OSError:
                pass
            self.conn.close()
            self.conn = None
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None


class WorkerSignals:
    """The run loop's signal source when the strategy runs in a :class:`StrategyWorker`."""

    def __init__(self, worker: StrategyWorker, info: StrategyInfo) -> None:
        self.worker = worker
        self.first_row = info.warmup_bars
        self._history: Any = None
        self._since: list[Candle] = []
        self._restart = False

    def warm(self, history: Any) -> None:
        self._history = history.reset_index(drop=True) if len(history) else None
        self._since = []
        if self._history is not None:
            self._send_history(self._history)

    def _send_history(self, history: Any) -> None:
        import numpy as np

        columns = ["timestamp", "open", "high", "low", "close", "volume"]
        values = np.ascontiguousarray(history[columns].to_numpy(dtype=np.float64))
        reply = self.worker.request({"op": "warm", "rows": len(values)}, self.worker.start_timeout_s,
                                    what="warm up", payload=values.tobytes())
        if not reply.get("ok"):
            raise _error_from(self.worker.name, reply.get("error"))

    def _restart_worker(self) -> None:
        """A new worker, warmed up on everything the old one had seen."""
        import pandas as pd

        self.worker.start()
        parts = [] if self._history is None else [self._history]
        if self._since:
            parts.append(pd.DataFrame([(c.timestamp, c.open, c.high, c.low, c.close, c.volume) for c in self._since],
                                      columns=["timestamp", "open", "high", "low", "close", "volume"]))
        if parts:
            self._send_history(pd.concat(parts, ignore_index=True))
        pid = self.worker.process.pid if self.worker.process is not None else -1
        log.warning("%s: strategy worker restarted (pid %d)", self.worker.name, pid)

    def next(self, index: int, candle: Candle, state: Mapping[str, Any]) -> tuple[Any, float | None]:
        from trader.engine.wire import signal_from_wire

        started = time.perf_counter()
        try:
            if self._restart or not self.worker.alive:
                self._restart_worker()
                self._restart = False
            message = {"op": "signal", "index": index,
                       "candle": [candle.timestamp, candle.open, candle.high, candle.low, candle.close, candle.volume]}
            if index >= self.first_row:
                message["state"] = dict(state)
            reply = self.worker.request(message, self.worker.signal_timeout_s)
        except (WorkerFailure, TraderError) as exc:
            self._restart = True
            self._since.append(candle)
            error = PluginError(f"plugin {self.worker.name!r}: its worker process {exc}; a new one starts at the next candle")
            error.__cause__ = exc if isinstance(exc, WorkerFailure) else WorkerFailure(str(exc))
            if index < self.first_row:
                return None, None
            return error, (time.perf_counter() - started) * 1000
        self._since.append(candle)
        if index < self.first_row:
            return None, None
        elapsed = (time.perf_counter() - started) * 1000
        if not reply.get("ok"):
            return _error_from(self.worker.name, reply.get("error")), elapsed
        try:
            return signal_from_wire(reply.get("signal")), elapsed
        except (ValueError, TypeError) as exc:
            return PluginError(f"plugin {self.worker.name!r}: invalid signal: {exc}"), elapsed


class WorkerBasketSignals:
    """The basket run loop's signal source when the strategy runs in a :class:`StrategyWorker`.

    One worker serves every market of the basket (the same source as ``--isolation inline``,
    :mod:`trader.portfolio.sources`, in the worker). Each market's warm-up counts here too:
    an answer for a market still in its warm-up, or for a market not trading at the step, is
    refused. A failed step (a dead, hung or garbling worker) is a ``PLUGIN_ERROR`` for the
    markets past their warm-up, and a new worker starts at the next step, warmed up on every
    candle the old one had seen.
    """

    def __init__(self, worker: StrategyWorker, info: StrategyInfo, symbols: tuple[str, ...]) -> None:
        self.worker = worker
        self.first_row = info.warmup_bars
        self.symbols = tuple(symbols)
        self._history: dict[str, Any] = {}
        self._since: dict[str, list[Candle]] = {s: [] for s in self.symbols}
        self._seen = dict.fromkeys(self.symbols, 0)
        self._restart = False

    def warm(self, symbol: str, history: Any) -> None:
        self._history[symbol] = history.reset_index(drop=True)
        self._since[symbol] = []
        self._seen[symbol] = len(history)
        if len(history):
            self._send_history(symbol, self._history[symbol])

    def _send_history(self, symbol: str, history: Any) -> None:
        import numpy as np

        columns = ["timestamp", "open", "high", "low", "close", "volume"]
        values = np.ascontiguousarray(history[columns].to_numpy(dtype=np.float64))
        reply = self.worker.request({"op": "warm", "symbol": symbol, "rows": len(values)}, self.worker.start_timeout_s,
                                    what="warm up", payload=values.tobytes())
        if not reply.get("ok"):
            raise _error_from(self.worker.name, reply.get("error"))

    def _restart_worker(self) -> None:
        import pandas as pd

        self.worker.start()
        for symbol in self.symbols:
            parts = [self._history[symbol]] if len(self._history.get(symbol, ())) else []
            if self._since[symbol]:
                parts.append(pd.DataFrame([(c.timestamp, c.open, c.high, c.low, c.close, c.volume) for c in self._since[symbol]],
                                          columns=["timestamp", "open", "high", "low", "close", "volume"]))
            if parts:
                self._send_history(symbol, pd.concat(parts, ignore_index=True))
        pid = self.worker.process.pid if self.worker.process is not None else -1
        log.warning("%s: strategy worker restarted (pid %d)", self.worker.name, pid)

    def next(self, timestamp: int, candles: Mapping[str, Candle], state: Mapping[str, Any]) -> tuple[dict[str, Any], float | None]:
        started = time.perf_counter()
        asked = []
        for symbol in sorted(candles):
            if self._seen[symbol] >= self.first_row:
                asked.append(symbol)
            self._seen[symbol] += 1
        try:
            if self._restart or not self.worker.alive:
                self._restart_worker()
                self._restart = False
            message = {"op": "basket_signal", "timestamp": int(timestamp), "state": dict(state),
                       "candles": {s: [c.timestamp, c.open, c.high, c.low, c.close, c.volume] for s, c in candles.items()}}
            reply = self.worker.request(message, self.worker.signal_timeout_s)
            if not reply.get("ok"):  # a hook's SystemExit or a broken request: its windows may be half-updated
                raise _error_from(self.worker.name, reply.get("error"))
            answers = self._answers(reply.get("signals"), asked)
        except (WorkerFailure, TraderError) as exc:
            self._restart = True
            error = PluginError(f"plugin {self.worker.name!r}: its worker process {exc}; a new one starts at the next step")
            error.__cause__ = exc if isinstance(exc, WorkerFailure) else WorkerFailure(str(exc))
            answers = dict.fromkeys(asked, error)
        finally:
            for symbol, candle in candles.items():
                self._since[symbol].append(candle)
        return answers, ((time.perf_counter() - started) * 1000 if asked else None)

    def _answers(self, signals: Any, asked: list[str]) -> dict[str, Any]:
        """The worker's answers, each rebuilt through the validated types; a market it was not asked about
        makes the whole reply a protocol failure."""
        from trader.engine.wire import signal_from_wire

        if not isinstance(signals, Mapping):
            raise WorkerFailure("broke the protocol (a basket answer must be a table of markets)")
        stray = [str(s)[:40] for s in signals if s not in asked]
        if stray:
            raise WorkerFailure(f"broke the protocol (answers for markets it was not asked about: {', '.join(stray[:5])})")
        out: dict[str, Any] = {}
        for symbol, item in signals.items():
            if isinstance(item, Mapping) and "error" in item:
                out[symbol] = _error_from(self.worker.name, item["error"])
                continue
            try:
                if not isinstance(item, Mapping):
                    raise ValueError(f"expected a table, got {type(item).__name__}")
                out[symbol] = signal_from_wire(item.get("signal"))
            except (ValueError, TypeError) as exc:
                out[symbol] = PluginError(f"plugin {self.worker.name!r}: invalid signal for {symbol}: {exc}")
        return out

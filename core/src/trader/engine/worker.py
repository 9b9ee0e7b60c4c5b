"""The strategy worker: a child process that runs one strategy's hooks for ``trader run``.

Started by :class:`trader.engine.isolation.StrategyWorker` as
``python -P -c "from trader.engine.worker import main; main()" FD PARENT_PID``. It imports
the core and the ONE strategy it is asked for (never another plugin), loads the strategy's
model, then answers the engine's requests on the socket ``FD``: warm up on history, one
signal per candle, the strategy's own risk rules. For a basket (``symbols`` in the init
request) one worker serves every market: warm-ups name their market, and each step's
``basket_signal`` request carries the candles of the markets trading at it. Messages are JSON (:mod:`trader.engine.wire`).

It holds no API key (its environment has none), builds no exchange client and opens no
state store. It dies with the engine (``PR_SET_PDEATHSIG`` on Linux, and on end-of-file of
its socket), ignores the terminal's Ctrl-C (the engine decides when to stop), and turns any
exception a hook raises, ``SystemExit`` and ``KeyboardInterrupt`` included, into an error
reply: the engine counts it with the model-failure breaker.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["main"]

log = logging.getLogger("trader.worker")

#: The largest request the worker accepts (a warm-up history of about 2.5 million candles).
_MAX_REQUEST = 128 << 20


def _error(exc: BaseException) -> dict[str, Any]:
    from trader.engine.step import classify_signal_failure
    from trader.errors import TraderError

    message = str(exc) or type(exc).__name__
    if not isinstance(exc, TraderError):
        message = f"{type(exc).__name__}: {message}"
    code = classify_signal_failure(exc) if isinstance(exc, Exception) else "PLUGIN_ERROR"
    return {"type": type(exc).__name__ if isinstance(exc, TraderError) else "PluginError", "message": message[:2000],
            "code": code}


class _Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.strategy: Any = None
        self.signals: Any = None
        self.basket: Any = None  # a basket's source (trader.portfolio.sources), instead of signals

    def reply(self, message: dict[str, Any]) -> None:
        from trader.engine.wire import encode

        self.conn.send_bytes(encode(message))

    def init(self, request: dict[str, Any]) -> dict[str, Any]:
        from pathlib import Path

        from trader.engine.signals import StrategySignals
        from trader.engine.wire import info_to_wire
        from trader.entrypoints import PluginSpec, load_plugin
        from trader.plugins import TraderPluginManager

        spec = PluginSpec(**request["spec"])
        manager = TraderPluginManager(load_entrypoints=False)
        if spec.name not in manager.records:  # the builtin strategy is registered with the core
            manager.register(load_plugin(spec), spec.name, spec.distribution, spec.version)
        strategy = manager.strategy(spec.name)
        info = strategy.info
        from trader.params import validate_params

        # [plugins.NAME] checked against the strategy's declarations before its model is loaded.
        params = validate_params(info, request.get("params") or {}, str(request.get("params_where") or "trader.toml"))
        symbols = request.get("symbols")
        if symbols:  # a basket: one source for all its markets (trader.portfolio.sources)
            return self._init_basket(strategy, [str(s) for s in symbols], request, params)
        model = None
        model_version = None
        if info.requires_model and strategy.implements("trader_generate_signals"):
            from trader.errors import ModelNotFoundError, train_command
            from trader.models import ModelPersistence

            symbol, timeframe = request["symbol"], request["timeframe"]
            loaded = ModelPersistence(Path(request["models_dir"])).load(
                strategy, symbol, timeframe, version=request.get("model_version")
            )
            if loaded is None:
                raise ModelNotFoundError(
                    f"no trained {spec.name} model for {symbol} {timeframe}; "
                    f"train one with: {train_command(spec.name, symbol, timeframe)}"
                )
            model, model_version = loaded.model, loaded.version
            log.info("%s: model %s loaded from %s", spec.name, loaded.version, loaded.directory)
        self.strategy = strategy
        if strategy.implements("trader_generate_signals"):
            workdir = request.get("workdir")
            self.signals = StrategySignals(strategy, request["symbol"], request["timeframe"], model, params,
                                           workdir=None if workdir is None else Path(str(workdir)))
            import pandas  # noqa: F401 - the first signal's frames need it: pay the import now, not on a live candle
        return {"ok": True, "info": info_to_wire(info), "hooks": list(strategy.record.hooks),
                "model_version": None if model_version is None else str(model_version)}

    def _init_basket(self, strategy: Any, symbols: list[str], request: dict[str, Any], params: Any) -> dict[str, Any]:
        from pathlib import Path

        from trader.engine.wire import info_to_wire
        from trader.portfolio.sources import basket_source

        models: dict[str, Any] = {}
        versions = None
        timeframe = request["timeframe"]
        if strategy.info.requires_model:
            from trader.portfolio.models import load_basket_models

            loaded = load_basket_models(strategy, Path(request["models_dir"]), symbols, timeframe,
                                        version=request.get("model_version"))
            models = loaded.models
            versions = ", ".join(f"{s} {v}" for s, v in loaded.versions.items())
            for symbol in loaded.mismatched:
                log.warning("%s: the model %s trades was trained on %s, not on it", strategy.name, symbol,
                            ", ".join(loaded.trained_on[symbol]))
        workdir = request.get("workdir")
        self.strategy = strategy
        self.basket = basket_source(strategy, symbols, timeframe, models=models, params=params,
                                    workdir=None if workdir is None else Path(str(workdir)))
        import pandas  # noqa: F401 - the first step's frames need it: pay the import now
        return {"ok": True, "info": info_to_wire(strategy.info), "hooks": list(strategy.record.hooks),
                "model_version": versions}

    def warm(self, request: dict[str, Any]) -> dict[str, Any]:
        import numpy as np
        import pandas as pd

        data = self.conn.recv_bytes(_MAX_REQUEST)
        values = np.frombuffer(data, dtype=np.float64).reshape(-1, 6)
        frame = pd.DataFrame(values[:, 1:], columns=["open", "high", "low", "close", "volume"])
        frame.insert(0, "timestamp", values[:, 0].astype(np.int64))
        if self.basket is not None:
            self.basket.warm(str(request["symbol"]), frame)
        else:
            self.signals.warm(frame)
        return {"ok": True}

    def basket_signal(self, request: dict[str, Any]) -> dict[str, Any]:
        """One step of a basket: ``candles`` {symbol: [ts, o, h, l, c, v]} of the markets trading at it;
        the answer per market, a signal or an error (a market without an answer got no signal)."""
        from trader.engine.wire import signal_to_wire
        from trader.types import Candle

        if self.basket is None:
            raise ValueError("this worker trades one market, not a basket")
        candles = {str(s): Candle(*values) for s, values in request["candles"].items()}
        started = time.perf_counter()
        answers, _ = self.basket.next(int(request["timestamp"]), candles, request.get("state") or {})
        out: dict[str, Any] = {}
        for symbol, answer in answers.items():
            out[symbol] = {"error": _error(answer)} if isinstance(answer, BaseException) else {"signal": signal_to_wire(answer)}
        return {"ok": True, "signals": out, "ms": (time.perf_counter() - started) * 1000}

    def signal(self, request: dict[str, Any]) -> dict[str, Any]:
        from trader.engine.wire import signal_to_wire
        from trader.types import Candle

        candle = Candle(*request["candle"])
        started = time.perf_counter()
        try:
            signal_, _ = self.signals.next(int(request["index"]), candle, request.get("state") or {})
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt from a hook too
            return {"ok": False, "error": _error(exc), "ms": (time.perf_counter() - started) * 1000}
        if signal_ is None:
            return {"ok": True, "signal": None}
        if isinstance(signal_, BaseException):
            return {"ok": False, "error": _error(signal_), "ms": (time.perf_counter() - started) * 1000}
        return {"ok": True, "signal": signal_to_wire(signal_), "ms": (time.perf_counter() - started) * 1000}

    def audit(self, request: dict[str, Any]) -> dict[str, Any]:
        from trader.engine.wire import audit_args_from_wire, verdicts_to_wire

        args = audit_args_from_wire(request["args"])
        results = self.strategy._call("trader_audit_order", **args)
        return {"ok": True, "verdicts": verdicts_to_wire(results or ())}

    def serve(self) -> None:
        from trader.engine.wire import decode

        handlers = {"init": self.init, "warm": self.warm, "signal": self.signal, "basket_signal": self.basket_signal,
                    "audit": self.audit}
        while True:
            try:
                request = decode(self.conn.recv_bytes(_MAX_REQUEST))
            except (EOFError, OSError):
                return  # the engine is gone
            op = request.get("op")
            if op == "close":
                return
            handler = handlers.get(op) if isinstance(op, str) else None
            try:
                if handler is None:
                    raise ValueError(f"unknown request {op!r}")
                answer = handler(request)
            except BaseException as exc:  # noqa: BLE001 - contained: the engine decides what it means
                answer = {"ok": False, "error": _error(exc)}
            self.reply(answer)


def main() -> None:
    """Entry point of the worker process (see the module docstring)."""
    from trader.engine.supervision import die_with_parent

    fd, parent_pid = int(sys.argv[1]), int(sys.argv[2])
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.dup2(2, 1)  # a plugin's prints go to stderr, never into the engine's --json output
    from trader.log import configure_logging

    configure_logging(os.environ.get("TRADER_WORKER_LOG_FORMAT", "text"), os.environ.get("TRADER_WORKER_LOG_LEVEL", "INFO"))
    worker = _Worker(Connection(fd))
    try:
        worker.serve()
    finally:
        os._exit(0)  # no atexit hooks or plugin finalisers: nothing here is worth waiting for

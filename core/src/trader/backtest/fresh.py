"""Signals from fresh Python processes: what a strategy answers before anything else ran there.

The determinism check (:mod:`trader.backtest.lookahead`) compares them with each other and
with the answers of the checking process, which has by then asked the strategy many times:
two fresh processes that disagree mean randomness; one fresh process whose second
identical request differs from its first means the answer depends on the call count; a
checking process that disagrees with both means it depends on what was asked before.

:func:`fresh_signals` starts the processes (``python -I``, the caller's ``sys.path``,
the sandbox's environment without credentials), hands each the request as JSON and the
candle and feature frames as ``.npz`` arrays (read with ``allow_pickle=False``: nothing in
either direction is a pickle) and reads the signals back as JSON. The strategy is
loaded by its entry point (or module name) and its model, if any, from a models folder
through :class:`~trader.models.ModelPersistence`, never pickled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import numpy as np

__all__ = ["FreshPlugin", "FreshProcess", "FreshUnavailable", "fresh_signals"]

#: seconds a fresh process may take to import the strategy, load its model and answer
FRESH_TIMEOUT_S = 600.0

_BOOT = ("import sys, json; d = json.load(open(sys.argv[1], encoding='utf-8')); sys.path[:] = d['sys_path']; "
         "from trader.backtest.fresh import _child; _child(d)")


class FreshUnavailable(Exception):
    """No fresh process could answer; the message says why (the check then says so)."""


@attrs.frozen
class FreshPlugin:
    """How a fresh process finds the strategy: an entry point (``spec``: name, value,
    distribution, version) or an importable ``module``; ``model_dir``/``model_version``
    name the saved model it loads (``None``: no model)."""

    name: str
    spec: tuple[str, str, str, str] | None = None
    module: str | None = None
    model_dir: str | None = None
    model_version: str | None = None

    @classmethod
    def of(cls, manager: Any, name: str, plugin: object | None = None) -> FreshPlugin | None:
        """From the manager's registration of ``name`` (or ``plugin``, a module); ``None`` when not importable."""
        import types

        spec = manager.entry_point(name) if manager is not None else None
        if spec is not None and (plugin is None or getattr(plugin, "__name__", None) == spec.value.split(":")[0]):
            return cls(name, spec=(spec.name, spec.value, spec.distribution, spec.version))
        if isinstance(plugin, types.ModuleType) and plugin.__name__ != "__main__":
            return cls(name, module=plugin.__name__)
        return None

    @classmethod
    def installed(cls, entry_point: str, name: str) -> FreshPlugin | None:
        """The installed ``trader.plugins`` entry point called ``entry_point`` (``None`` if not exactly one)."""
        from trader.entrypoints import installed_specs

        found = [spec for spec in installed_specs() if spec.name == entry_point]
        if len(found) != 1:
            return None
        spec = found[0]
        return cls(name, spec=(spec.name, spec.value, spec.distribution, spec.version))

    def with_model(self, directory: Path | str, version: str) -> FreshPlugin:
        return attrs.evolve(self, model_dir=str(directory), model_version=str(version))


class FreshProcess:
    """One fresh process asking the same request ``repeats`` times, started at construction.

    Starting it early lets it run while the checking process does other work; :meth:`answer`
    waits for it. Its files live in a temporary folder removed by :meth:`answer` or :meth:`close`.
    """

    def __init__(self, plugin: FreshPlugin, candles: Any, rows: Sequence[int] | np.ndarray, *, features: Any, symbol: str,
                 timeframe: str, params: Mapping[str, Any], repeats: int = 3, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, workdir: Path | None = None) -> None:
        from trader.childenv import strategy_environment

        child_env = strategy_environment()
        child_env.update(env or {})
        self._tmp = tempfile.TemporaryDirectory(prefix="trader-fresh-")
        folder = Path(self._tmp.name)
        payload = {
            "sys_path": list(sys.path), "plugin": attrs.asdict(plugin),
            "candles": _save_frame(folder / "candles.npz", candles),
            "features": _save_frame(folder / "features.npz", features),
            "rows": [int(r) for r in rows], "symbol": symbol, "timeframe": timeframe, "params": dict(params),
            "repeats": int(repeats), "workdir": None if workdir is None else str(workdir),
        }
        request = folder / "request.json"
        request.write_text(json.dumps(payload), encoding="utf-8")
        self._out = open(folder / "stdout", "w+")  # noqa: SIM115 - closed by close()
        self._err = open(folder / "stderr", "w+")  # noqa: SIM115
        self._proc = subprocess.Popen([sys.executable, "-I", "-c", _BOOT, str(request)], stdout=self._out,
                                      stderr=self._err, text=True, env=child_env, cwd=cwd)

    def answer(self, timeout: float = FRESH_TIMEOUT_S) -> list[list[Any]]:
        """``[repeat] -> signals``; :class:`FreshUnavailable` when the process could not answer."""
        from trader.engine.wire import signal_from_wire

        try:
            try:
                code = self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                raise FreshUnavailable(f"a fresh process did not answer within {timeout:.0f} s") from exc
            self._out.seek(0)
            self._err.seek(0)
            calls = _read(self._out.read(), self._err.read(), code)
            try:
                return [[signal_from_wire(s) for s in call] for call in calls]
            except (TypeError, ValueError) as exc:
                raise FreshUnavailable(f"a fresh process sent an invalid signal: {exc}") from exc
        finally:
            self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._out.close()
        self._err.close()
        self._tmp.cleanup()


def fresh_signals(plugin: FreshPlugin, candles: Any, rows: Sequence[int] | np.ndarray, *, processes: int = 2,
                  timeout: float = FRESH_TIMEOUT_S, **request: Any) -> list[list[list[Any]]]:
    """``[process][repeat] -> signals``: ``processes`` fresh processes (at once), each asking the same
    request ``repeats`` times (``request``: the :class:`FreshProcess` keywords).

    Raises :class:`FreshUnavailable` when a process cannot load the strategy or answer.
    """
    started = [FreshProcess(plugin, candles, rows, **request) for _ in range(processes)]
    try:
        return [proc.answer(timeout) for proc in started]
    finally:
        for proc in started:
            proc.close()


def _save_frame(path: Path, frame: Any) -> dict[str, Any] | None:
    """``frame`` as plain arrays in ``path`` (index and one array per column); ``None`` for no frame."""
    import numpy as np

    if frame is None:
        return None
    arrays = [np.asarray(frame.index), *(np.asarray(frame[column]) for column in frame.columns)]
    if any(a.dtype.hasobject for a in arrays):
        raise FreshUnavailable("the candles or features hold non-numeric columns, which a fresh process is not sent")
    np.savez(path, *arrays)  # arr_0 the index, arr_1.. the columns in order
    return {"file": str(path), "columns": [str(c) for c in frame.columns]}


def _load_frame(saved: dict[str, Any] | None) -> Any:
    import numpy as np
    import pandas as pd

    if saved is None:
        return None
    with np.load(saved["file"], allow_pickle=False) as arrays:
        data = {column: arrays[f"arr_{i + 1}"] for i, column in enumerate(saved["columns"])}
        index = arrays["arr_0"]
        ranged = index.dtype.kind in "iu" and np.array_equal(index, np.arange(len(index)))
        return pd.DataFrame(data, index=pd.RangeIndex(len(index)) if ranged else pd.Index(index), columns=saved["columns"])


def _read(out: str, err: str, code: int | None) -> list:
    lines = out.strip().splitlines()
    try:
        reply = json.loads(lines[-1]) if lines else None
    except ValueError:
        reply = None
    if isinstance(reply, dict) and isinstance(reply.get("signals"), list) and code == 0:
        return reply["signals"]
    if isinstance(reply, dict) and reply.get("error"):
        raise FreshUnavailable(f"a fresh process could not answer: {str(reply['error'])[:300]}")
    tail = (err.strip().splitlines() or ["no output"])[-1][:300]
    raise FreshUnavailable(f"a fresh process exited with status {code}: {tail}")


def _child(data: dict[str, Any]) -> None:
    """The fresh process: load the strategy (and model), ask ``repeats`` times, print the signals as JSON."""
    try:
        signals = _answer(data)
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent as one line
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
    print(json.dumps({"signals": signals}))


def _answer(data: dict[str, Any]) -> list:
    import importlib

    from trader.backtest.signals import request_signals
    from trader.engine.wire import signal_to_wire
    from trader.testing.fixtures import plugin_manager

    plugin_data = data["plugin"]
    name = plugin_data["name"]
    if plugin_data["spec"]:
        from trader.entrypoints import PluginSpec, load_plugin

        plugin = load_plugin(PluginSpec(*plugin_data["spec"]))
    else:
        plugin = importlib.import_module(plugin_data["module"])
    with plugin_manager(plugin, name) as manager:
        from trader.strategy import Strategy

        strategy = Strategy(manager, name)
        model = None
        if plugin_data["model_dir"]:
            from trader.models import ModelPersistence

            loaded = ModelPersistence(Path(plugin_data["model_dir"])).load(
                strategy, data["symbol"], data["timeframe"], plugin_data["model_version"])
            if loaded is None:
                raise FileNotFoundError(f"no model {plugin_data['model_version']} in {plugin_data['model_dir']}")
            model = loaded.model
        candles, features = _load_frame(data["candles"]), _load_frame(data["features"])
        calls = []
        for _ in range(data["repeats"]):
            got = request_signals(strategy, candles, data["rows"], symbol=data["symbol"],
                                  timeframe=data["timeframe"], features=features, model=model,
                                  params=data["params"],
                                  workdir=None if data.get("workdir") is None else Path(data["workdir"]))
            calls.append([signal_to_wire(s) for s in got])
    return calls

"""A handle on one strategy plugin: its hooks are called on it alone.

Everything a plugin hands back is checked where it leaves the plugin: a hook that raises
anything (``SystemExit`` and ``KeyboardInterrupt`` included) becomes a
:class:`~trader.errors.PluginError` naming the plugin, and every signal is re-validated
(:func:`signal_problem`), since ``object.__setattr__`` can put anything into a frozen
:class:`~trader.types.Signal`. A real Ctrl-C still interrupts: :func:`sigint_count`
counts the SIGINTs Python's own handler turns into ``KeyboardInterrupt``.
"""

from __future__ import annotations

import signal as _signal
import sys
import threading
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trader.errors import NotSupportedError, PluginError, TraderError
from trader.types import BasketRequest, Signal, SignalAction, SignalRequest, StrategyInfo, TrainRequest, TrainResult

if TYPE_CHECKING:
    from trader.plugins import TraderPluginManager

__all__ = ["Strategy", "signal_problem", "sigint_count", "plugin_failure"]


# --------------------------------------------------------------------------- real Ctrl-C vs a plugin's KeyboardInterrupt

_sigints = 0


def _counting_int_handler(signum: int, frame: Any) -> None:
    """Python's default SIGINT handler (raise ``KeyboardInterrupt``), counting each real SIGINT."""
    global _sigints
    _sigints += 1
    _signal.default_int_handler(signum, frame)


def sigint_count() -> int:
    """How many real SIGINTs arrived so far.

    The first call on the main thread swaps Python's default SIGINT handler for one that
    behaves the same and counts. Where another handler is installed (``trader run`` turns
    SIGINT into a stop request) the count never moves, so any ``KeyboardInterrupt`` is
    then a plugin's own.
    """
    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler and threading.current_thread() is threading.main_thread():
        _signal.signal(_signal.SIGINT, _counting_int_handler)
    return _sigints


def plugin_failure(name: str, hook_name: str, exc: BaseException, sigints_before: int) -> PluginError:
    """The :class:`PluginError` for anything a plugin's hook raised; re-raises a real Ctrl-C."""
    if isinstance(exc, KeyboardInterrupt) and _sigints != sigints_before:
        raise exc
    return PluginError(f"plugin {name!r}: {hook_name} raised {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- signals at the boundary

_NUMBER_TYPES = {float, int}


def _number_type(kind: type) -> bool:
    if kind in _NUMBER_TYPES:
        return True
    numpy = sys.modules.get("numpy")
    if numpy is not None and kind is numpy.float64:  # a float subclass whose arithmetic is numpy's, not a plugin's
        _NUMBER_TYPES.add(kind)
        return True
    return False


def signal_problem(signal: Any) -> str | None:
    """Why ``signal`` is not a valid :class:`~trader.types.Signal`, or ``None`` when it is.

    Checks what construction checks, again (a frozen attrs object can be changed with
    ``object.__setattr__``), and refuses subclasses, which could override any attribute:
    the exact type ``Signal``, an action of type ``SignalAction``, finite numbers within
    [0, 1] (plain ``int``/``float`` or numpy ``float64``), a ``str`` reason.
    """
    if type(signal) is not Signal:
        return f"{type(signal).__name__}, not Signal"
    action = signal.action
    if type(action) is not SignalAction:
        return f"a signal whose action {action!r} is not a SignalAction"
    size = signal.size
    if not (_number_type(type(size)) and 0.0 <= size <= 1.0):
        return f"a signal whose size {size!r} is not a number within [0, 1]"
    confidence = signal.confidence
    if not (_number_type(type(confidence)) and 0.0 <= confidence <= 1.0):
        return f"a signal whose confidence {confidence!r} is not a number within [0, 1]"
    probability = signal.probability
    if probability is not None and not (_number_type(type(probability)) and 0.0 <= probability <= 1.0):
        return f"a signal whose probability {probability!r} is not None or a number within [0, 1]"
    if type(signal.reason) is not str:
        return f"a signal whose reason is {type(signal.reason).__name__}, not str"
    return None


# --------------------------------------------------------------------------- the handle


class Strategy:
    """The named strategy of a :class:`~trader.plugins.TraderPluginManager`.

    Strategy hooks are called through a subset hook caller that contains only this
    plugin, so two strategies never answer each other's calls.
    """

    def __init__(self, manager: TraderPluginManager, name: str) -> None:
        self.manager = manager
        self.name = name
        self.record = manager.records[name]

    def _call(self, hook_name: str, **kwargs: Any) -> Any:
        """Call ``hook_name`` on this strategy alone; anything the plugin raises becomes a PluginError.

        A :class:`TraderError` passes as it is; a ``KeyboardInterrupt`` passes only when a
        real SIGINT arrived during the call (:func:`sigint_count`).
        """
        before = sigint_count()
        try:
            return self.manager.subset_hook(hook_name, [self.name])(**kwargs)
        except TraderError:
            raise
        except BaseException as exc:
            raise plugin_failure(self.name, hook_name, exc, before) from exc

    def implements(self, hook_name: str) -> bool:
        return hook_name in self.record.hooks

    @cached_property
    def info(self) -> StrategyInfo:
        info = self._call("trader_strategy_info")
        if type(info) is not StrategyInfo:
            raise PluginError(f"plugin {self.name!r}: trader_strategy_info returned {type(info).__name__}, not StrategyInfo")
        if info.name != self.name:
            raise PluginError(f"plugin {self.name!r}: trader_strategy_info names itself {info.name!r}")
        from trader.engine.wire import decode, encode, info_from_wire, info_to_wire

        try:  # rebuilt through the validators, as a worker's is: object.__setattr__ can forge a frozen field
            rebuilt = info_from_wire(decode(encode(info_to_wire(info))))
        except Exception as exc:
            raise PluginError(f"plugin {self.name!r}: trader_strategy_info returned an invalid StrategyInfo: {exc}") from None
        return rebuilt  # the core's own copy: the plugin's object, forged later, is never read again

    def generate_signals(self, request: SignalRequest, *, keep_invalid: bool = False) -> list[Signal]:
        """Signals for ``request.at``; raises :class:`PluginError` if the plugin breaks the contract.

        Every signal is re-validated (:func:`signal_problem`). With ``keep_invalid`` an
        invalid signal does not fail the call: its row gets a :class:`PluginError` instead,
        which the engine records as ``INVALID_SIGNAL`` (a backtest goes on, as ``trader run`` does).
        """
        if not self.implements("trader_generate_signals"):
            raise NotSupportedError(f"strategy {self.name!r} does not implement trader_generate_signals")
        signals = self._call("trader_generate_signals", request=request)
        if signals is None:
            raise PluginError(f"plugin {self.name!r}: trader_generate_signals returned None")
        before = sigint_count()
        try:
            signals = list(signals)
        except TraderError:
            raise
        except BaseException as exc:
            raise plugin_failure(self.name, "trader_generate_signals", exc, before) from exc
        if len(signals) != len(request.at):
            raise PluginError(
                f"plugin {self.name!r}: trader_generate_signals returned {len(signals)} signals for {len(request.at)} rows"
            )
        # each distinct object once (a strategy repeats a few shared signals over 200,000 rows)
        distinct = {id(signal): signal for signal in signals}
        problems = {key: why for key, signal in distinct.items() if (why := signal_problem(signal)) is not None}
        for i, signal in enumerate(signals) if problems else ():
            why = problems.get(id(signal))
            if why is None:
                continue
            error = PluginError(f"plugin {self.name!r}: trader_generate_signals returned {why} (row {_row(request, i)})")
            if not keep_invalid:
                raise error
            signals[i] = error
        return signals

    @property
    def cross_sectional(self) -> bool:
        """Whether the strategy decides for a whole basket at once (``trader_generate_basket_signals``)."""
        return self.implements("trader_generate_basket_signals")

    def generate_basket_signals(
        self, request: BasketRequest, *, keep_invalid: bool = False
    ) -> list[dict[str, Signal | PluginError]]:
        """One mapping of signals per entry of ``request.at``; raises :class:`PluginError` when the
        plugin breaks the contract (wrong count, not a mapping, a market outside the basket).

        Every signal is re-validated; with ``keep_invalid`` an invalid one becomes a
        :class:`PluginError` for that market only (recorded as ``INVALID_SIGNAL``). Entries the
        plugin answered with one mapping share the core's one checked copy: read them, do not change them.
        """
        if not self.cross_sectional:
            raise NotSupportedError(f"strategy {self.name!r} does not implement trader_generate_basket_signals")
        answer = self._call("trader_generate_basket_signals", request=request)
        if answer is None:
            raise PluginError(f"plugin {self.name!r}: trader_generate_basket_signals returned None")
        before = sigint_count()
        try:
            # one copy of each distinct mapping (a strategy often repeats one answer); ids are stable
            # while ``originals`` holds the plugin's objects
            originals = list(answer)
            copies: dict[int, Any] = {}
            for row in originals:
                if id(row) not in copies:
                    copies[id(row)] = dict(row) if isinstance(row, Mapping) else row
            rows = [copies[id(row)] for row in originals]
        except TraderError:
            raise
        except BaseException as exc:
            raise plugin_failure(self.name, "trader_generate_basket_signals", exc, before) from exc
        if len(rows) != len(request.at):
            raise PluginError(
                f"plugin {self.name!r}: trader_generate_basket_signals returned {len(rows)} answers for {len(request.at)} times"
            )
        known = set(request.symbols)
        out: list[dict[str, Signal | PluginError]] = []
        problems: dict[int, str | None] = {}  # each distinct signal object checked once (answers repeat a few signals)
        valid_rows: dict[int, dict[str, Signal | PluginError]] = {}  # each distinct copy whose every signal passed
        for j, row in enumerate(rows):
            done = valid_rows.get(id(row))
            if done is not None:
                out.append(done)  # the core's own checked mapping, shared by the rows that repeat it (never the plugin's)
                continue
            if not isinstance(row, dict):
                raise PluginError(
                    f"plugin {self.name!r}: trader_generate_basket_signals answer {j} is {type(row).__name__}, not a mapping"
                )
            checked: dict[str, Signal | PluginError] = {}
            for symbol, signal in row.items():
                if not isinstance(symbol, str) or symbol not in known:
                    raise PluginError(
                        f"plugin {self.name!r}: trader_generate_basket_signals gave a signal for {symbol!r}, "
                        f"which is not in the basket ({', '.join(request.symbols)})"
                    )
                key = id(signal)
                if key not in problems:
                    problems[key] = signal_problem(signal)
                why = problems[key]
                if why is None:
                    checked[symbol] = signal
                    continue
                ts = int(request.timestamps[int(request.at[j])])
                error = PluginError(f"plugin {self.name!r}: trader_generate_basket_signals returned {why} for {symbol} at {ts}")
                if not keep_invalid:
                    raise error
                checked[symbol] = error
            if all(isinstance(v, Signal) for v in checked.values()):
                valid_rows[id(row)] = checked
            out.append(checked)
        return out

    @property
    def trainable(self) -> bool:
        return self.implements("trader_train")

    def train(self, request: TrainRequest) -> TrainResult:
        if not self.trainable:
            raise NotSupportedError(f"strategy {self.name!r} has no model to train")
        result = self._call("trader_train", request=request)
        if not isinstance(result, TrainResult):
            raise PluginError(f"plugin {self.name!r}: trader_train returned {type(result).__name__}, not TrainResult")
        return result

    def save_model(self, model: Any, directory: Path) -> Sequence[str]:
        files = self._call("trader_save_model", model=model, directory=directory)
        if not files:
            raise PluginError(f"plugin {self.name!r}: trader_save_model wrote no files")
        return list(files)

    def load_model(self, directory: Path, manifest: dict[str, Any]) -> Any:
        model = self._call("trader_load_model", directory=directory, manifest=manifest)
        if model is None:
            raise PluginError(f"plugin {self.name!r}: trader_load_model returned None")
        return model


def _row(request: SignalRequest, i: int) -> Any:
    try:
        return int(request.at[i])
    except Exception:
        return i

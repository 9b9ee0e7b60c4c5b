"""The operator's controls: halt a strategy (the kill switch) or resume it, from another process.

``trader halt``, ``trader resume`` and the dashboard's buttons all come here. When nothing
runs the strategy (its lock is free), the change is written to its state at once; when a
``trader run`` holds it, a request goes into the store's ``control`` table and the running
process applies it before its next candle (:meth:`TradingSession.apply_requests`), so the
engine is the only writer of a running account. A halt is persisted: a restart stays
halted until a resume. The last request wins when several are pending.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from attrs import frozen

from trader.errors import LockedError, StateError

if TYPE_CHECKING:
    from trader.config import TraderConfig
    from trader.plugins import TraderPluginManager

__all__ = ["ControlOutcome", "request_halt", "request_resume", "COMMANDS"]

COMMANDS = ("halt", "resume")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_MAX_NOTE = 500


@frozen
class ControlOutcome:
    """What a control did: ``applied`` now (nothing was running) or ``requested`` from the running process."""

    strategy: str
    command: str
    applied: bool
    before: str
    after: str

    def describe(self) -> str:
        if self.applied:
            return f"{self.strategy} {'halted' if self.command == 'halt' else 'resumed'}: status {self.after} (was {self.before})"
        return (f"{self.strategy} is running: {self.command} requested; its process applies it at the next candle "
                f"(was {self.before})")

    def as_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "command": self.command, "applied": self.applied, "requested": not self.applied,
                "before": self.before, "after": self.after}


def _status_text(saved: Any) -> str:
    return saved.status.value + (f" ({saved.status_reason})" if saved.status_reason else "")


def _clean_note(note: str) -> str:
    if not isinstance(note, str):
        raise StateError("the note must be text")
    text = " ".join(note.split())
    return text[:_MAX_NOTE]


def _open(config: TraderConfig, name: str, manager: TraderPluginManager | None, readonly: bool) -> Any:
    """The strategy's store, through ``trader_state_store`` when ``manager`` knows the strategy; ``None`` without state."""
    from trader.engine.state import StateMissingError, TradingState, reading_only

    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise StateError(f"{name!r} is not a strategy name")
    directory = config.strategy_dir(name)
    if not directory.is_dir():
        return None
    try:
        if readonly:
            with reading_only():
                return _open_store(config, name, manager, directory, TradingState)
        return _open_store(config, name, manager, directory, TradingState)
    except StateMissingError:
        return None


def _open_store(config: Any, name: str, manager: Any, directory: Any, core_store: Any) -> Any:
    if manager is not None and name in manager.strategy_names():
        from trader.engine.runner import open_state_store

        return open_state_store(manager, config, name)
    return core_store.open(name, directory, create=False)  # uninstalled: its state is still the core's file


def _control(config: TraderConfig, name: str, command: str, note: str, manager: TraderPluginManager | None) -> ControlOutcome:
    from trader.engine.lock import StrategyLock
    from trader.engine.state import resume_refusal, state_path

    note = _clean_note(note)
    never_run = StateError(f"strategy {name!r} has no state yet in {config.home} (it has never run)")
    if manager is None and config.strategy_dir(name).is_dir() and not state_path(config.strategy_dir(name)).exists():
        # without the plugins (trader serve) a store kept elsewhere by a trader_state_store plugin is out of reach
        never_run = StateError(f"strategy {name!r} has no state yet in {config.strategy_dir(name)} (it has never run, "
                               "or a trader_state_store plugin keeps its state elsewhere: use "
                               f"`trader {command} --plugin {name}`, which loads the plugins)")
    probe = _open(config, name, manager, readonly=True)  # checked before writing: creates nothing, fixes nothing
    if probe is None:
        raise never_run
    try:
        if probe.load() is None:
            raise never_run
        if command == "resume":
            problem = probe.ledger_problem()
            if problem is not None:
                raise StateError(resume_refusal(name, state_path(config.strategy_dir(name)), problem))
    finally:
        probe.close()
    store = _open(config, name, manager, readonly=False)
    if store is None:
        raise never_run
    try:
        saved = store.load()
        if saved is None:
            raise never_run
        before = _status_text(saved)
        lock = StrategyLock(config.strategy_dir(name), name)
        try:
            lock.acquire()
        except LockedError:
            store.request(command, note)
            return ControlOutcome(name, command, False, before, before)
        try:
            now = int(time.time() * 1000)
            after = store.halt(now, note) if command == "halt" else store.resume(now, note)
        finally:
            lock.release()
    finally:
        store.close()
    return ControlOutcome(name, command, True, before, after.status.value)


def request_halt(config: TraderConfig, name: str, note: str = "", *, manager: TraderPluginManager | None = None) -> ControlOutcome:
    """Halt ``name`` (``OPERATOR_HALT``, with ``note``): at once when it is not running, else at its next candle.

    :param manager: opens the store through ``trader_state_store`` when it knows the strategy;
        without one (or for an uninstalled strategy) the core's SQLite store is opened.
    :raises StateError: the strategy has no state yet, or its state cannot be opened (one line).
    """
    return _control(config, name, "halt", note, manager)


def request_resume(config: TraderConfig, name: str, note: str = "", *, manager: TraderPluginManager | None = None) -> ControlOutcome:
    """Clear a halt (and the breaker counters): at once when ``name`` is not running, else at its next candle.

    Refused (:class:`StateError`) while the account does not match its ledger. See :func:`request_halt`.
    """
    return _control(config, name, "resume", note, manager)

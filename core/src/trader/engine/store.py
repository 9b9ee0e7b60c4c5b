"""``StateStore``: what the engine asks of a strategy's state store (the ``trader_state_store`` contract).

The core ships two stores that satisfy it: :class:`~trader.engine.state.TradingState`
(SQLite, ``trader run``, ``status``, ``resume``) and :class:`~trader.engine.memory.MemoryState`
(backtests). A plugin's ``trader_state_store`` may return any object with these members;
:func:`missing_members` names what an object lacks, and the core refuses such a store
when it is opened (:func:`trader.engine.state.check_store`), before any step runs.

Only the presence of the members is checked, not their signatures or behaviour: a store
is code the engine trusts with the account (plugins that are not strategies are trusted by
installation).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from trader.engine.records import ControlRequest, OrderRecord, SavedState, StepRecord
    from trader.types import OrderRequest

__all__ = ["StateStore", "BulkStore", "missing_members"]


@runtime_checkable
class StateStore(Protocol):
    """One strategy namespace's store: its account, orders, fills, history and control requests.

    ``namespace`` is the strategy's name; a store reaches only its own namespace.
    """

    namespace: str

    # the decision step (trader.engine.step.TradingSession)
    def load(self, symbol: str | None = None, timeframe: str | None = None) -> SavedState | None:
        """The committed account (``last_candle_ts`` of ``symbol``/``timeframe``), ``None`` before :meth:`initialize`."""

    def initialize(self, cash: float, timestamp: int | None = None) -> None:
        """Create the account with ``cash``; refuse (``StateError``) when one exists."""

    def commit_step(self, record: StepRecord) -> None:
        """Write everything ``record`` changed, all or nothing."""

    def record_order_intent(self, order: OrderRequest) -> None:
        """Commit ``order`` as ``submitting`` before an external broker sends it."""

    def fill_trade_ids(self, client_order_id: str) -> set[str]:
        """Trade ids of the fills already booked for that order (a fill is booked once)."""

    def pending_requests(self) -> list[ControlRequest]:
        """Requests from other processes not yet applied, oldest first."""

    def resume(self, timestamp: int, note: str = "", request_ids: Iterable[int] = ()) -> SavedState:
        """Clear a halt and the breaker counters, mark ``request_ids`` applied; the account after it."""

    def halt(self, timestamp: int, note: str = "", request_ids: Iterable[int] = ()) -> SavedState:
        """Halt (``OPERATOR_HALT``, the operator's kill switch), mark ``request_ids`` applied; the account after it."""

    # trader run: reconciliation, the strategy's own state, the end-of-run summary
    def orders(self, statuses: Iterable[str] | None = None) -> list[OrderRecord]:
        """Orders (with these statuses), oldest candle first."""

    def fills(self) -> list[dict[str, Any]]:
        """Every fill booked, oldest first, as plain data."""

    def equity_curve(self, symbol: str | None = None) -> list[tuple[int, float]]:
        """``(candle timestamp, equity)`` per processed candle."""

    def strategy_state(self) -> Mapping[str, Any]:
        """The strategy's own key-value state, read-only (``SignalRequest.state``)."""

    def set_durable(self, durable: bool) -> None:
        """Make every later commit survive a power failure (live trading), or not."""

    # trader status and trader resume
    def summary(self) -> dict[str, Any]:
        """What ``trader status`` shows, as JSON-ready data (``account`` is ``None`` before the first run)."""

    def ledger_problem(self) -> str | None:
        """``None`` when the account matches its ledger, else what differs (``trader resume`` refuses then)."""

    def request(self, command: str, note: str = "") -> None:
        """Ask the process running this strategy for ``command`` (``resume``, ``halt``) at its next candle."""

    def close(self) -> None:
        """Release the store; nothing is called on it afterwards."""


@runtime_checkable
class BulkStore(StateStore, Protocol):
    """A store that takes a stretch of quiet candles in one call (the backtest fast path,
    :mod:`trader.engine.quiet`). ``keep_steps`` true: it wants every step record, one by one."""

    keep_steps: bool

    def commit_quiet(
        self,
        timestamps: list[int],
        closes: list[float],
        equities: list[float],
        cash: float,
        position_values: list[float],
        last: StepRecord,
    ) -> None:
        """The rows :meth:`commit_step` would write for candles that changed only the marks;
        ``last`` is the record of the stretch's final candle."""


def _members(protocol: type) -> tuple[tuple[str, bool], ...]:
    """``(name, is_method)`` of the protocol's attributes and methods, in the order they are written."""
    members: dict[str, bool] = {}
    for klass in reversed(protocol.__mro__):
        if not getattr(klass, "_is_protocol", False) or klass is Protocol:
            continue
        for name in getattr(klass, "__annotations__", {}):
            members.setdefault(name, False)
        for name, value in vars(klass).items():
            if not name.startswith("_") and callable(value):
                members.setdefault(name, True)
    return tuple(members.items())


def missing_members(store: object, protocol: type = StateStore) -> list[str]:
    """The members of ``protocol`` that ``store`` lacks, in the protocol's order (a method that is
    not callable, or an attribute whose reading raises, counts as missing)."""
    missing = []
    for name, is_method in _members(protocol):
        try:
            value = getattr(store, name)
        except Exception:
            missing.append(name)
            continue
        if is_method and not callable(value):
            missing.append(name)
    return missing

"""What an alert says, and which alerts a committed step gives.

:func:`alerts_from_record` reads a :class:`~trader.engine.records.StepRecord` after the
store committed it: each fill, each halt or resume, each risk event (a denial, a status
change, an alert), each error and each stale-data event becomes one :class:`Alert`.
Approvals and quiet candles give none, and cost one truth test of two tuples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import frozen

if TYPE_CHECKING:
    from trader.engine.records import RiskEvent, StepRecord

__all__ = ["Alert", "alerts_from_record", "event_kind"]

_MAX_MESSAGE = 500
_STALE_CODES = frozenset({"STALE_DATA", "DUPLICATE_CANDLE"})


@frozen
class Alert:
    """One thing to tell the operator: ``kind`` (``fill``, ``halt``, ``risk``, ``error``, ``stale``),
    which strategy and market, a reason ``code``, a ``message`` and when (``timestamp``, ms UTC)."""

    kind: str
    strategy: str
    symbol: str
    code: str
    message: str
    timestamp: int
    status: str | None = None

    def text(self) -> str:
        """One line for a chat: ``trader ens BTC/USDT: HALT OPERATOR_HALT: maintenance``."""
        message = " ".join(self.message.split())
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        status = f" [{self.status}]" if self.status else ""
        return f"trader {self.strategy} {self.symbol}: {self.kind.upper()}{status} {self.code}" + (f": {message}" if message else "")


def event_kind(event: RiskEvent) -> str | None:
    """The alert kind of a risk event, or ``None`` for one that is not worth an alert (an approval)."""
    kind = event.kind
    code = event.code
    if kind == "audit":
        if event.approved:
            return None
        return "stale" if code in _STALE_CODES else "risk"
    if code in _STALE_CODES:
        return "stale"
    if kind == "control":
        return "error" if code == "CONTROL_FAILED" else "halt"
    if kind == "status":
        status = event.status.value if event.status is not None else ""
        return "halt" if status == "halted" or code == "RESUMED" else "risk"
    if kind in ("error", "signal"):
        return "error"
    if kind == "alert":
        return "risk"
    return "error"


def alerts_from_record(record: StepRecord, strategy: str) -> list[Alert]:
    """The alerts of one committed step (empty for almost every candle)."""
    out: list[Alert] = []
    symbol = record.symbol
    for fill_record in record.fills:
        fill = fill_record.fill
        pnl = f", realized {fill_record.realized_pnl:+,.2f}" if fill.side.value == "sell" else ""
        out.append(Alert(
            "fill", strategy, symbol, fill.side.value.upper(),
            f"{fill.side.value} {fill.quantity:g} {fill.symbol} @ {fill.price:,.6g} (fee {fill.fee:,.4g}{pnl}) [{fill.client_order_id}]",
            fill.timestamp,
        ))
    for event in record.events:
        kind = event_kind(event)
        if kind is not None:
            status = event.status.value if event.status is not None else None
            out.append(Alert(kind, strategy, symbol, event.code, event.message, event.timestamp, status))
    return out

"""What crosses the boundary between the engine and a strategy's worker process: plain JSON.

Nothing is pickled in either direction: the engine must never run code the worker sends.
Every value that arrives from the worker is rebuilt through the validated types of
:mod:`trader.types` (a NaN size or an unknown action is refused there), and every message
is size-bounded by the receiver.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from trader.types import (
    AuditContext,
    OrderRequest,
    ParamSpec,
    PortfolioSnapshot,
    Position,
    RiskLimits,
    RiskReason,
    RiskVerdict,
    Signal,
    StrategyInfo,
)

__all__ = [
    "MAX_REPLY_BYTES",
    "MAX_TEXT",
    "encode",
    "decode",
    "info_to_wire",
    "info_from_wire",
    "signal_to_wire",
    "signal_from_wire",
    "audit_args_to_wire",
    "audit_args_from_wire",
    "verdicts_to_wire",
    "verdicts_from_wire",
]

#: The largest message the engine accepts from a worker.
MAX_REPLY_BYTES = 1 << 20
#: Free text from a plugin (reasons, messages) is cut to this many characters.
MAX_TEXT = 2000


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def decode(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value[:MAX_TEXT]


# --------------------------------------------------------------------------- strategy info


def info_to_wire(info: StrategyInfo) -> dict[str, Any]:
    data = attrs.asdict(info, recurse=True)
    data["timeframes"] = list(info.timeframes)
    data["feature_windows"] = list(info.feature_windows)
    return data


def info_from_wire(data: Mapping[str, Any]) -> StrategyInfo:
    """The worker's :class:`StrategyInfo`, rebuilt and validated (``ValueError`` when it is not one)."""
    fields = {a.name for a in attrs.fields(StrategyInfo)}
    unknown = set(data) - fields
    if unknown:
        raise ValueError(f"unknown strategy info field(s) {', '.join(sorted(map(str, unknown)))}")
    values = dict(data)
    limits = values.pop("risk_limits", None)
    if limits is not None:
        if not isinstance(limits, Mapping):
            raise ValueError("risk_limits must be a table")
        values["risk_limits"] = RiskLimits(**limits)
    for key in ("timeframes", "feature_windows", "params"):
        if key in values and not isinstance(values[key], list):
            raise ValueError(f"{key} must be a list")
    if "params" in values:  # every declaration rebuilt through ParamSpec's validators
        if not all(isinstance(p, Mapping) for p in values["params"]):
            raise ValueError("params must be a list of tables")
        values["params"] = tuple(ParamSpec(**{**p, "help": _text(p.get("help", ""))}) for p in values["params"])
    for key in ("name", "version", "description"):
        if key in values:
            values[key] = _text(values[key])
    return StrategyInfo(**values)


# --------------------------------------------------------------------------- signals


def signal_to_wire(signal: Any) -> list[Any]:
    """``[action, confidence, size, probability, reason]``, read without trusting the object."""
    action = getattr(signal, "action", None)
    action = getattr(action, "value", action)
    return [
        action if isinstance(action, str) else repr(action),
        _number(getattr(signal, "confidence", None)),
        _number(getattr(signal, "size", None)),
        _number(getattr(signal, "probability", None)),
        str(getattr(signal, "reason", ""))[:MAX_TEXT],
    ]


def _number(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return repr(value)


def signal_from_wire(data: Any) -> Signal:
    """A validated :class:`Signal` (``ValueError``/``TypeError`` for anything that is not one)."""
    if not isinstance(data, list) or len(data) != 5:
        raise ValueError(f"a signal is [action, confidence, size, probability, reason], got {str(data)[:200]}")
    action, confidence, size, probability, reason = data
    if not isinstance(action, str):
        raise ValueError(f"unknown signal action {action!r}")
    return Signal(action, confidence=confidence, size=size, probability=probability, reason=_text(reason))


# --------------------------------------------------------------------------- the strategy's own risk rules


def audit_args_to_wire(
    order: OrderRequest, portfolio: PortfolioSnapshot, limits: RiskLimits, context: AuditContext
) -> dict[str, Any]:
    return {
        "order": attrs.asdict(order),
        "portfolio": {
            "cash": portfolio.cash,
            "equity": portfolio.equity,
            "peak_equity": portfolio.peak_equity,
            "day_start_equity": portfolio.day_start_equity,
            "positions": [attrs.asdict(p) for p in portfolio.positions.values()],
            "marks": dict(portfolio.marks),
        },
        "limits": attrs.asdict(limits),
        "context": attrs.asdict(context),
    }


def audit_args_from_wire(data: Mapping[str, Any]) -> dict[str, Any]:
    portfolio = dict(data["portfolio"])
    positions = {p["symbol"]: Position(**p) for p in portfolio.pop("positions")}
    return {
        "order": OrderRequest(**data["order"]),
        "portfolio": PortfolioSnapshot(positions=positions, **portfolio),
        "limits": RiskLimits(**data["limits"]),
        "context": AuditContext(**data["context"]),
    }


def verdicts_to_wire(results: Sequence[Any]) -> list[Any]:
    """The hook's results, flattened; anything that is not a verdict is sent as its type name."""
    out: list[Any] = []
    for result in results:
        items = result if isinstance(result, (list, tuple)) else (result,)
        for item in items:
            if isinstance(item, RiskVerdict):
                out.append({
                    "approved": bool(item.approved),
                    "rule": str(item.rule)[:MAX_TEXT],
                    "reasons": [[str(r.code)[:MAX_TEXT], str(r.message)[:MAX_TEXT]] for r in item.reasons],
                    "status": getattr(item.status, "value", None),
                })
            else:
                out.append(type(item).__name__)
    return out


def verdicts_from_wire(data: Any) -> list[Any]:
    """Validated verdicts; an entry that was not a verdict stays a string (the audit fails closed on it)."""
    if not isinstance(data, list):
        raise ValueError("verdicts must be a list")
    out: list[Any] = []
    for item in data:
        if isinstance(item, str):
            out.append(item)
            continue
        if not isinstance(item, Mapping) or not isinstance(item.get("approved"), bool):
            raise ValueError(f"not a verdict: {str(item)[:200]}")
        reasons = tuple(RiskReason(_text(code), _text(message)) for code, message in item.get("reasons", ()))
        out.append(RiskVerdict(item["approved"], _text(item["rule"]), reasons, item.get("status")))
    return out

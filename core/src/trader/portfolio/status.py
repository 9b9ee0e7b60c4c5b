"""``trader status`` for an account that trades several markets: one row per market, the
portfolio limits and where the account stands against each, and the denied orders.

The figures come from the strategy's state file (the account, ``positions``, ``streams``,
``market_equity``, ``orders``, ``fills``, ``risk_events``); the limits from the strategy's
defaults and ``[plugins.NAME.risk]`` as the config says *now* (a running process keeps the
limits it started with). An account is a basket when it has the account's own stream
(symbol :data:`~trader.portfolio.session.PORTFOLIO`); a single-market account's status is
unchanged.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from trader.timeframes import format_utc

if TYPE_CHECKING:
    from trader.engine.records import SavedState
    from trader.types import RiskLimits

__all__ = ["PORTFOLIO_LIMITS", "basket_summary", "limit_standing", "format_basket", "format_denials", "RECENT_DENIALS"]

#: How many of the latest denied orders ``trader status`` lists.
RECENT_DENIALS = 10

#: (figure in ``summary["portfolio"]``, the limit in :class:`~trader.types.RiskLimits`, the reason
#: code of the rule or breaker it drives, label), in the order ``trader status`` shows them.
PORTFOLIO_LIMITS: tuple[tuple[str, str, str, str], ...] = (
    ("gross_exposure", "max_gross_exposure", "GROSS_EXPOSURE_EXCEEDED", "gross exposure"),
    ("open_positions", "max_open_positions", "MAX_OPEN_POSITIONS", "open positions"),
    ("largest_position_share", "max_position_fraction", "POSITION_EXCEEDS_MAX_FRACTION", "largest position"),
    ("daily_loss", "daily_loss_limit", "DAILY_LOSS_LIMIT", "daily loss"),
    ("drawdown", "max_drawdown", "MAX_DRAWDOWN", "drawdown"),
)


def basket_summary(db: sqlite3.Connection, state: SavedState, streams: list[dict[str, Any]]) -> dict[str, Any]:
    """``markets`` (one row per market), ``portfolio`` (the figures the portfolio limits judge)
    and ``denials`` (denied orders by reason code, the latest with their market)."""
    from trader.portfolio.session import PORTFOLIO

    equity = state.equity()
    last: dict[str, int] = {}
    for s in streams:
        if s["symbol"] != PORTFOLIO:
            last[s["symbol"]] = max(last.get(s["symbol"], s["last_candle_ts"]), s["last_candle_ts"])
    last_close = dict(db.execute(
        "SELECT m.symbol, m.close FROM market_equity m JOIN (SELECT symbol, MAX(timestamp) AS ts FROM market_equity "
        "GROUP BY symbol) l ON m.symbol = l.symbol AND m.timestamp = l.ts"
    ))
    fills = dict(db.execute("SELECT symbol, COUNT(*) FROM fills GROUP BY symbol"))
    denied = dict(db.execute("SELECT symbol, COUNT(*) FROM orders WHERE status = 'denied' GROUP BY symbol"))
    markets = []
    for symbol in sorted(set(last) | set(state.positions)):
        pos = state.positions.get(symbol)
        quantity = pos.quantity if pos is not None else 0.0
        avg = pos.avg_price if pos is not None else 0.0
        mark = state.marks.get(symbol, last_close.get(symbol, avg if pos is not None else None))
        value = quantity * mark if mark is not None else 0.0
        ts = last.get(symbol)
        markets.append({
            "symbol": symbol,
            "quantity": quantity,
            "avg_price": avg,
            "mark": mark,
            "value": value,
            "share": value / equity if equity > 0 else 0.0,
            "unrealized_pnl": quantity * (mark - avg) if mark is not None else 0.0,
            "realized_pnl": pos.realized_pnl if pos is not None else 0.0,
            "fills": fills.get(symbol, 0),
            "denied_orders": denied.get(symbol, 0),
            "last_candle_ts": ts,
            "last_candle": format_utc(ts) if ts is not None else None,
        })
    held = [m for m in markets if m["quantity"] > 0]
    largest = max(held, key=lambda m: (m["value"], m["symbol"]), default=None)
    position_value = sum(m["value"] for m in markets)
    peak = state.peak_equity
    day_start = state.day_start_equity
    portfolio = {
        "markets": len(markets),
        "position_value": position_value,
        "gross_exposure": position_value / equity if equity > 0 else 0.0,
        "open_positions": len(held),
        "largest_position": None if largest is None else largest["symbol"],
        "largest_position_share": 0.0 if largest is None else largest["share"],
        "daily_loss": max(0.0, 1.0 - equity / day_start) if day_start > 0 else 0.0,
        "drawdown": max(0.0, 1.0 - equity / peak) if peak > 0 else 0.0,
    }
    counts = dict(db.execute(
        "SELECT code, COUNT(*) FROM risk_events WHERE kind = 'audit' AND approved = 0 GROUP BY code ORDER BY code"
    ))
    cols = ("timestamp", "symbol", "side", "code", "message", "client_order_id")
    recent = [dict(zip(cols, row, strict=True)) for row in db.execute(
        "SELECT e.timestamp, o.symbol, o.side, e.code, e.message, e.client_order_id FROM risk_events e "
        "LEFT JOIN orders o ON o.client_order_id = e.client_order_id "
        "WHERE e.kind = 'audit' AND e.approved = 0 ORDER BY e.id DESC LIMIT ?", (RECENT_DENIALS,)
    )][::-1]
    return {"markets": markets, "portfolio": portfolio, "denials": {"counts": counts, "recent": recent}}


def limit_standing(portfolio: dict[str, Any], limits: RiskLimits) -> dict[str, dict[str, Any]]:
    """Each portfolio limit with the account's figure: ``state`` is ``ok``, ``at`` (the limit is
    reached: an order that adds to it is denied, or the breaker trips at the next candle) or ``over``."""
    out = {}
    for figure, name, code, _label in PORTFOLIO_LIMITS:
        value = portfolio[figure]
        limit = getattr(limits, name)
        state = "over" if value > limit * (1 + 1e-9) else "at" if value >= limit * (1 - 1e-9) else "ok"
        out[name] = {"value": value, "limit": limit, "code": code, "state": state}
    return out


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def format_basket(summary: dict[str, Any]) -> list[str]:
    """The market table and the portfolio limits, as ``trader status`` prints them."""
    lines = [f"  markets ({len(summary['markets'])}, one account):"]
    lines.append(
        f"    {'market':<14} {'quantity':>12} {'mark':>12} {'value':>12} {'share':>7} {'realized':>11} "
        f"{'unrealized':>11} {'fills':>6} {'denied':>6}  last candle"
    )
    for m in summary["markets"]:
        mark = f"{m['mark']:,.6g}" if m["mark"] is not None else "-"
        lines.append(
            f"    {m['symbol']:<14} {m['quantity']:>12g} {mark:>12} {m['value']:>12,.2f} {m['share'] * 100:>6.2f}% "
            f"{m['realized_pnl']:>+11,.2f} {m['unrealized_pnl']:>+11,.2f} {m['fills']:>6} {m['denied_orders']:>6}  "
            f"{m['last_candle'] or '-'}"
        )
    portfolio = summary["portfolio"]
    limits = summary.get("limits")
    if limits is None:
        why = summary.get("limits_error") or "the strategy is not installed"
        lines.append(f"  portfolio limits: unknown ({why})")
    else:
        lines.append("  portfolio limits (the strategy's, with [plugins.NAME.risk] as configured now):")
    for figure, name, code, label in PORTFOLIO_LIMITS:
        value = portfolio[figure]
        if figure == "open_positions":
            now = f"{value}"
        elif figure == "largest_position_share":
            now = f"{portfolio['largest_position'] or 'none'} {_pct(value)}"
        else:
            now = _pct(value)
        row = f"    {label:<17} {now:<22}"
        if limits is not None:
            standing = limits[name]
            limit = f"{standing['limit']}" if figure == "open_positions" else _pct(standing["limit"])
            row += f" {name} {limit}"
            if standing["state"] != "ok":
                row += f"  {'AT' if standing['state'] == 'at' else 'OVER'} THE LIMIT ({code})"
        lines.append(row.rstrip())
    return lines


def format_denials(summary: dict[str, Any]) -> list[str]:
    """Denied orders by reason code, and the latest with their market."""
    denials = summary["denials"]
    if not denials["counts"]:
        return ["  denied orders: none"]
    lines = ["  denied orders: " + ", ".join(f"{code} x{n}" for code, n in denials["counts"].items())]
    for d in denials["recent"]:
        where = " ".join(part for part in (d["symbol"], d["side"]) if part)
        lines.append(f"    {format_utc(d['timestamp'])} {where or '?'} {d['code']}: {d['message']}")
    return lines

"""What ``trader serve`` shows, read from the strategies' state files without writing anything.

Each request opens the file for as long as it reads (never holding a snapshot while
``trader run`` writes, WAL) with ``PRAGMA query_only``. A file is checked like
``trader status`` does (:func:`trader.engine.state_file.inspect_file`: no symbolic link,
a SQLite header, a namespace that is the folder's name) and a strategy whose file cannot be
read is listed with the reason, never hiding the others. The expensive parts (the drawdown
over every equity row, the chart series) are cached per file until the file changes
(size and modification time of ``state.sqlite`` and its ``-wal``).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trader.engine import state_file
from trader.engine.summary import ACCOUNT_STREAM, percentile
from trader.errors import StateError, TraderError
from trader.log import mask_secrets
from trader.timeframes import format_utc as format_ms

__all__ = ["StateReader", "EVENT_FILTERS", "MAX_PAGE"]

#: The event lists a strategy page shows: risk events (everything but approvals) and the decision log (the audit).
#: (``+kind``: newest first along the rowid, stopping at a page, rather than every audit row through the kind index.)
EVENT_FILTERS = {
    "risk": "code != 'APPROVED'",
    "decisions": "+kind IN ('audit', 'signal')",
    "all": "1 = 1",
}
_COUNT_FILTERS = {**EVENT_FILTERS, "decisions": "kind IN ('audit', 'signal')"}
MAX_PAGE = 500
_VERSION = re.compile(r"v([1-9][0-9]*)")
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")


def _text(value: Any) -> Any:
    """Strings leave with every credential of the environment masked."""
    return mask_secrets(value) if isinstance(value, str) else value


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, TraderError) and text:
        return mask_secrets(text)
    return mask_secrets(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _last_candle(streams: list[dict[str, Any]]) -> str | None:
    """The last candle the account processed: a basket's own stream (its markets' may be older), else the last stream's."""
    for s in streams:
        if s["symbol"] == ACCOUNT_STREAM:
            return s["last_candle"]
    return streams[-1]["last_candle"] if streams else None


class _Curve:
    """The running peak and worst drawdown over the equity rows read so far (rows are only appended)."""

    __slots__ = ("inode", "last_rowid", "peak", "worst", "rows")

    def __init__(self, inode: int | None = None) -> None:
        self._reset(inode)

    def _reset(self, inode: int | None) -> None:
        self.inode = inode
        self.last_rowid = 0
        self.peak = 0.0
        self.worst = 0.0
        self.rows = 0

    def update(self, db: sqlite3.Connection, inode: int | None) -> None:
        top = db.execute("SELECT COALESCE(MAX(rowid), 0) FROM equity").fetchone()[0]
        if top < self.last_rowid or inode != self.inode:  # another file under the same name: start again
            self._reset(inode)
        peak, worst = self.peak, self.worst
        for rowid, value in db.execute("SELECT rowid, equity FROM equity WHERE rowid > ? ORDER BY rowid", (self.last_rowid,)):
            self.last_rowid = rowid
            self.rows += 1
            if value > peak:
                peak = value
            elif peak > 0:
                fall = 1 - value / peak
                if fall > worst:
                    worst = fall
        self.peak, self.worst = peak, worst


class StateReader:
    """Reads every strategy under ``HOME/strategies`` (``home``) and the model versions under ``models_dir``."""

    def __init__(self, home: Path, models_dir: Path) -> None:
        self.root = Path(home) / "strategies"
        self.models_dir = Path(models_dir)
        self._lock = threading.Lock()
        self._curves: dict[str, _Curve] = {}
        self._overviews: dict[str, tuple[tuple, dict[str, Any]]] = {}
        self._series: dict[tuple[str, int], tuple[tuple, dict[str, Any]]] = {}
        self._totals: dict[tuple[str, str, str], tuple[tuple, int]] = {}

    # ------------------------------------------------------------------ which strategies

    def names(self) -> list[str]:
        """Every strategy folder (plain names only: a folder named otherwise is not a strategy trader made)."""
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except OSError:
            return []
        return [e.name for e in entries if _NAME.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]

    def known(self, name: str) -> bool:
        return name in self.names()

    def _path(self, name: str) -> Path:
        return self.root / name / "state.sqlite"

    def _signature(self, path: Path) -> tuple[tuple[int, int, int] | None, ...]:
        out: list[tuple[int, int, int] | None] = []
        for p in (path, Path(f"{path}-wal")):
            try:
                st = os.lstat(p)
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    @contextlib.contextmanager
    def _open(self, name: str) -> Iterator[sqlite3.Connection]:
        path = self._path(name)
        if not state_file.inspect_file(path):
            raise FileNotFoundError(name)
        db = state_file.connect(path, readonly=True, timeout=2.0)
        try:
            db.execute("PRAGMA query_only = ON")
            owner = db.execute("SELECT value FROM meta WHERE key = 'namespace'").fetchone()
            if owner is None or owner[0] != name:
                raise StateError(f"state file {path} belongs to {None if owner is None else owner[0]!r}, not {name!r}")
            yield db
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state file {path} is unreadable: {' '.join(str(exc).split())}") from None
        finally:
            db.close()

    # ------------------------------------------------------------------ overview

    def overview(self) -> list[dict[str, Any]]:
        return [self.strategy(name) for name in self.names()]

    def strategy(self, name: str) -> dict[str, Any]:
        """One strategy's overview row: status, money, positions, last candle, latency, model (cached until the file changes)."""
        from trader.engine.lock import lock_holder

        running = lock_holder(self.root / name)
        path = self._path(name)
        try:
            signature = self._signature(path)
            with self._lock:
                cached = self._overviews.get(name)
            if cached is not None and cached[0] == signature:
                row = dict(cached[1])
            else:
                with self._open(name) as db:
                    row = self._read_overview(name, db, signature[0][0] if signature[0] else None)
                with self._lock:
                    self._overviews[name] = (signature, row)
                row = dict(row)
        except FileNotFoundError:
            row = {"strategy": name, "account": None}
        except Exception as exc:  # a broken file: named with the reason, the others still shown
            row = {"strategy": name, "account": None, "error": _reason(exc)}
        row["running_pid"] = running
        return row

    def _read_overview(self, name: str, db: sqlite3.Connection, inode: int | None) -> dict[str, Any]:
        account = db.execute(
            "SELECT initial_cash, cash, fees_paid, realized_pnl, status, status_reason, status_since FROM account WHERE id = 1"
        ).fetchone()
        if account is None:
            return {"strategy": name, "account": None}
        initial, cash, fees, realized, status, reason, since = account
        positions = []
        value = 0.0
        unrealized = 0.0
        for sym, qty, avg, pos_realized, last in db.execute(
            "SELECT symbol, quantity, avg_price, realized_pnl, last_price FROM positions ORDER BY symbol"
        ):
            mark = avg if last is None else last
            value += qty * mark
            unrealized += qty * (mark - avg)
            if qty > 0:
                positions.append({"symbol": sym, "quantity": qty, "avg_price": avg, "mark": mark, "value": qty * mark,
                                  "unrealized_pnl": qty * (mark - avg), "realized_pnl": pos_realized})
        equity = cash + value
        with self._lock:
            curve = self._curves.setdefault(name, _Curve())
            curve.update(db, inode)
            drawdown = curve.worst
            peak = curve.peak
            candles = curve.rows
        current_dd = equity / peak - 1 if peak > 0 and equity < peak else 0.0
        streams = [
            {"symbol": s, "timeframe": tf, "last_candle_ts": ts, "last_candle": format_ms(ts)}
            for s, tf, ts in db.execute("SELECT symbol, timeframe, last_candle_ts FROM streams ORDER BY symbol, timeframe")
        ]
        latencies = sorted(ms for (ms,) in db.execute("SELECT inference_ms FROM latency ORDER BY id DESC LIMIT 1000"))
        pending = [c for (c,) in db.execute("SELECT command FROM control WHERE applied_at IS NULL ORDER BY id")]
        counts = {"fills": db.execute("SELECT COUNT(*) FROM fills").fetchone()[0]}
        return {
            "strategy": name,
            "account": {
                "initial_cash": initial,
                "cash": cash,
                "equity": equity,
                "pnl": equity - initial,
                "return": equity / initial - 1 if initial else 0.0,
                "realized_pnl": realized,
                "unrealized_pnl": unrealized,
                "fees_paid": fees,
                "max_drawdown": -drawdown if drawdown else 0.0,  # <= 0, as trader status reports it
                "drawdown": current_dd,
                "candles": candles,
            },
            "risk": {"status": status, "reason": _text(reason), "since": since, "pending_requests": pending},
            "positions": positions,
            "streams": streams,
            "last_candle": _last_candle(streams),
            "latency": {"samples": len(latencies), "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99)},
            "model": self._model(name, streams),
            "counts": counts,
        }

    def _model(self, name: str, streams: list[dict[str, Any]]) -> str | None:
        """The newest stored model version of the strategy's market(s), e.g. ``v3``; ``None`` without one."""
        from trader.models.persistence import model_key

        found = []
        for s in streams:
            if s["symbol"] == ACCOUNT_STREAM:  # a basket's own stream: its markets' streams name their models
                continue
            base = self.models_dir / name / model_key(s["symbol"], s["timeframe"])
            try:
                numbers = [int(m.group(1)) for e in os.scandir(base)
                           if (m := _VERSION.fullmatch(e.name)) and e.is_dir(follow_symlinks=False)]
            except OSError:
                continue
            if numbers:
                found.append(f"v{max(numbers)}")
        return ", ".join(found) or None

    # ------------------------------------------------------------------ charts and lists

    def series(self, name: str, points: int = 600) -> dict[str, Any]:
        """Equity and drawdown (<= 0), at most ``points`` of each: each bucket keeps its lowest equity and deepest drawdown."""
        points = max(10, min(int(points), 5000))
        path = self._path(name)
        signature = self._signature(path)
        key = (name, points)
        with self._lock:
            cached = self._series.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        with self._open(name) as db:
            rows = db.execute("SELECT timestamp, SUM(equity) FROM equity GROUP BY timestamp ORDER BY timestamp").fetchall()
        n = len(rows)
        step = max(1, -(-n // points))
        ts_out: list[int] = []
        eq_out: list[float] = []
        dd_out: list[float] = []
        peak = 0.0
        for start in range(0, n, step):
            worst_eq = None
            worst_dd = 0.0
            last_ts = rows[start][0]
            for ts, value in rows[start:start + step]:
                peak = max(peak, value)
                dd = 1 - value / peak if peak > 0 else 0.0
                if worst_eq is None or value < worst_eq:
                    worst_eq = value
                worst_dd = max(worst_dd, dd)
                last_ts = ts
            ts_out.append(last_ts)
            eq_out.append(worst_eq if step > 1 and worst_eq is not None else rows[start][1])
            dd_out.append(-worst_dd if worst_dd else 0.0)
        out = {"strategy": name, "rows": n, "step": step, "timestamp": ts_out, "equity": eq_out, "drawdown": dd_out}
        with self._lock:
            self._series[key] = (signature, out)
        return out

    def page(self, name: str, table: str, page: int = 1, per_page: int = 50, events: str = "risk") -> dict[str, Any]:
        """One page of ``orders``, ``fills`` or ``events`` (newest first), with the total count."""
        per_page = max(1, min(int(per_page), MAX_PAGE))
        page = max(1, int(page))
        offset = (page - 1) * per_page
        cols: tuple[str, ...]
        if table == "orders":
            cols = ("client_order_id", "symbol", "side", "quantity", "price", "order_type", "candle_ts", "status",
                    "filled_quantity", "message", "updated_at")
            sql, where, order = "orders", "1 = 1", "candle_ts DESC, client_order_id DESC"
        elif table == "fills":
            cols = ("id", "client_order_id", "trade_id", "symbol", "side", "quantity", "price", "fee", "timestamp", "realized_pnl")
            sql, where, order = "fills", "1 = 1", "id DESC"
        elif table == "events":
            cols = ("id", "timestamp", "kind", "code", "message", "client_order_id", "approved", "status")
            sql, where, order = "risk_events", EVENT_FILTERS[events], "id DESC"
        else:
            raise ValueError(table)
        signature = self._signature(self._path(name))
        key = (name, table, events if table == "events" else "")
        with self._lock:
            cached = self._totals.get(key)
        with self._open(name) as db:
            if cached is not None and cached[0] == signature:
                total = cached[1]
            else:
                count_where = _COUNT_FILTERS[events] if table == "events" else where
                total = db.execute(f"SELECT COUNT(*) FROM {sql} WHERE {count_where}").fetchone()[0]
                with self._lock:
                    self._totals[key] = (signature, total)
            rows = db.execute(
                f"SELECT {', '.join(cols)} FROM {sql} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?", (per_page, offset)
            ).fetchall()
        items = [{c: _text(v) for c, v in zip(cols, row, strict=True)} for row in rows]
        return {"strategy": name, "page": page, "per_page": per_page, "total": total,
                "pages": max(1, -(-total // per_page)), "items": items}

"""What a fill costs: fees, slippage and half the bid-ask spread, estimated from past candles.

A buy fills at ``close * (1 + (spread_bps / 2 + slippage_bps) / 10_000)``, a sell at
``close * (1 - (spread_bps / 2 + slippage_bps) / 10_000)``, and both pay ``fee_bps`` of the
filled notional (:class:`trader.engine.PaperBroker`). ``spread_bps`` is either fixed
(``--spread-bps``, ``[broker] spread_bps``) or, by default, estimated for each candle from
the ``DEFAULT_WINDOW`` candles strictly BEFORE it with EDGE (Ardia, Guidotti and
Kroencke, "Efficient estimation of bid-ask spreads from open, high, low, and close
prices", Journal of Financial Economics 161, 2024). Corwin and Schultz (Journal of
Finance, 2012) and Abdi and Ranaldo (Review of Financial Studies, 2017) are computed
beside it as cross-checks. Negative estimates are set to 0, as the papers do; a candle
with fewer than ``MIN_BARS`` candles before it gets no estimate and pays no spread.

The contract other modules use::

    CostModel(fee_bps, slippage_bps, spread_bps=None, spread_source="...", spread_multiplier=1.0)
    trader.engine.paper_broker(config, spread_bps=...).costs   # flags win over [broker], then defaults
    model.spreads(candles) -> np.ndarray          # bps per row, multiplier applied
    model.scaled(2.0) -> CostModel                # the same model at twice the spread
    spread_series(candles, window=DEFAULT_WINDOW) -> np.ndarray   # EDGE, bps per row, NaN before MIN_BARS
    describe_costs(model, spreads_bps) -> dict    # what every report prints
    SpreadTable(model)                            # per-candle spread for the paper broker

A backtest at twice the spread (``trader.backtest.runner``)::

    market2 = scope.market.with_spread_multiplier(2.0)
    simulate(manager, name, scope.limits, market2, timestamps, closes, signals, symbol=..., timeframe=...)

Each estimate depends only on the candles of its own window (never on where the frame
starts or what follows it), so a backtest and a replay of the same candles pay the same
spread on every candle.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_WINDOW",
    "MIN_BARS",
    "ESTIMATORS",
    "CostModel",
    "SpreadTable",
    "edge",
    "corwin_schultz",
    "abdi_ranaldo",
    "rolling_spread",
    "spread_series",
    "describe_costs",
    "format_costs",
]

#: Candles per rolling estimate (the window ends just before the candle it prices).
DEFAULT_WINDOW = 500
#: Fewest past candles for an estimate; earlier candles pay no spread.
MIN_BARS = 30
EDGE_SOURCE = f"estimated per candle: EDGE over the {DEFAULT_WINDOW} candles before it"


def _non_negative(instance: Any, attribute: Any, value: Any) -> None:
    if value is None and attribute.name == "spread_bps":
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")
    if attribute.name.endswith("_bps") and value >= 10_000:
        raise ValueError(f"{attribute.name} must be below 10000 (100 %), got {value!r}")


# ---------------------------------------------------------------------------- estimators
#
# Each estimator works on a matrix of windows (one window per row, oldest candle first), so
# the rolling series and a single estimate run the very same arithmetic.


def _logs(open_: Any, high: Any, low: Any, close: Any) -> tuple[np.ndarray, ...]:
    arrays = [np.log(np.asarray(x, dtype=np.float64)) for x in (open_, high, low, close)]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError("open, high, low and close must have the same length")
    return tuple(arrays)


def _edge_rows(o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Signed EDGE estimates (fractions), one per row of the ``(k, n)`` log-price windows."""
    m = (h + low) / 2.0
    h1, l1, c1, m1 = h[:, :-1], low[:, :-1], c[:, :-1], m[:, :-1]
    o, h, low, m = o[:, 1:], h[:, 1:], low[:, 1:], m[:, 1:]
    tau = ((h != low) | (low != c1)).astype(np.float64)  # the bar traded, or moved from the last close
    pt = tau.mean(axis=1)
    po = (tau * (o != h)).mean(axis=1) + (tau * (o != low)).mean(axis=1)
    pc = (tau * (c1 != h1)).mean(axis=1) + (tau * (c1 != l1)).mean(axis=1)
    ok = (pt > 0) & (po > 0) & (pc > 0)
    pt, po, pc = (np.where(ok, x, 1.0)[:, None] for x in (pt, po, pc))
    r1, r2, r3, r4, r5 = m - o, o - m1, m - c1, c1 - m1, o - c1
    d1 = r1 - tau * r1.mean(axis=1, keepdims=True) / pt
    d3 = r3 - tau * r3.mean(axis=1, keepdims=True) / pt
    d5 = r5 - tau * r5.mean(axis=1, keepdims=True) / pt
    x1 = -4.0 / po * d1 * r2 - 4.0 / pc * d3 * r4
    x2 = -4.0 / po * d1 * r5 - 4.0 / pc * d5 * r4
    e1, e2 = x1.mean(axis=1), x2.mean(axis=1)
    v1 = (x1 * x1).mean(axis=1) - e1 * e1
    v2 = (x2 * x2).mean(axis=1) - e2 * e2
    vt = v1 + v2
    with np.errstate(divide="ignore", invalid="ignore"):  # two equally good moments: their plain mean
        s2 = np.where(vt > 0, (v2 * e1 + v1 * e2) / np.where(vt > 0, vt, 1.0), (e1 + e2) / 2.0)
    s = np.sign(s2) * np.sqrt(np.abs(s2))
    return np.where(ok, s, np.nan)


def _corwin_schultz_terms(h1: np.ndarray, l1: np.ndarray, c1: np.ndarray, h2: np.ndarray, l2: np.ndarray) -> np.ndarray:
    """Corwin-Schultz (2012) two-bar estimates from log prices, the second bar's gap taken out."""
    gap = np.maximum(0.0, c1 - h2) + np.minimum(0.0, c1 - l2)  # the move between the bars
    h2, l2 = h2 + gap, l2 + gap
    beta = (h1 - l1) ** 2 + (h2 - l2) ** 2
    gamma = (np.maximum(h1, h2) - np.minimum(l1, l2)) ** 2
    k = 3.0 - 2.0 * math.sqrt(2.0)
    alpha = (math.sqrt(2.0) - 1.0) * np.sqrt(beta) / k - np.sqrt(gamma / k)
    return 2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha))


def _corwin_schultz_rows(o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Corwin-Schultz: the two-bar estimates averaged over each row's window (signed)."""
    return _corwin_schultz_terms(h[:, :-1], low[:, :-1], c[:, :-1], h[:, 1:], low[:, 1:]).mean(axis=1)


def _abdi_ranaldo_rows(o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Abdi-Ranaldo (2017): ``4 (c_t - eta_t)(c_t - eta_{t+1})`` averaged over each row's window (signed)."""
    eta = (h + low) / 2.0
    s2 = (4.0 * (c[:, :-1] - eta[:, :-1]) * (c[:, :-1] - eta[:, 1:])).mean(axis=1)
    return np.sign(s2) * np.sqrt(np.abs(s2))


ESTIMATORS = {"edge": _edge_rows, "corwin_schultz": _corwin_schultz_rows, "abdi_ranaldo": _abdi_ranaldo_rows}


def _one(rows: Any, open_: Any, high: Any, low: Any, close: Any, signed: bool) -> float:
    logs = _logs(open_, high, low, close)
    if logs[0].ndim != 1 or logs[0].size < 3:
        return math.nan
    value = float(rows(*(x[None, :] for x in logs))[0])
    return value if signed or math.isnan(value) else max(value, 0.0)


def edge(open_: Any, high: Any, low: Any, close: Any, *, signed: bool = False) -> float:
    """The EDGE spread (a fraction: 0.01 is 1 %) of one OHLC series in time order.

    Negative estimates are 0 unless ``signed``; NaN when the prices never move.
    """
    return _one(_edge_rows, open_, high, low, close, signed)


def corwin_schultz(open_: Any, high: Any, low: Any, close: Any, *, signed: bool = False) -> float:
    """The Corwin-Schultz spread (a fraction) of one OHLC series, two-bar estimates averaged."""
    return _one(_corwin_schultz_rows, open_, high, low, close, signed)


def abdi_ranaldo(open_: Any, high: Any, low: Any, close: Any, *, signed: bool = False) -> float:
    """The Abdi-Ranaldo spread (a fraction) of one OHLC series."""
    return _one(_abdi_ranaldo_rows, open_, high, low, close, signed)


def _frame_logs(candles: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return _logs(*(candles[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close")))


def _pairs(logs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Per-row terms of a candle and the one before it (row ``t`` pairs ``t - 1`` with ``t``; row 0 is 0)."""
    o, h, low, c = logs
    m = (h + low) / 2.0

    def lagged(x: np.ndarray) -> np.ndarray:
        return np.concatenate((x[:1], x[:-1]))

    h1, l1, c1, m1 = lagged(h), lagged(low), lagged(c), lagged(m)
    tau = ((h != low) | (low != c1)).astype(np.float64)
    phi_o = tau * (o != h) + tau * (o != low)
    phi_c = tau * (c1 != h1) + tau * (c1 != l1)
    terms = (tau, phi_o, phi_c, m - o, o - m1, m - c1, c1 - m1, o - c1)
    for x in terms:
        x[0] = 0.0
    return terms


class _Window:
    """Means over the pairs of each window ``[max(0, end - window), end)``, by running sums.

    Running sums are accumulated from the first row, in order, so a row's mean never
    depends on the rows after its window (nor on how many there are).
    """

    def __init__(self, ends: np.ndarray, window: int) -> None:
        self.hi = ends
        self.lo = np.maximum(ends - window, 0) + 1  # the first pair of the window
        self.count = np.maximum(self.hi - self.lo, 0).astype(np.float64)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        sums = np.concatenate(([0.0], np.cumsum(x)))
        with np.errstate(divide="ignore", invalid="ignore"):
            return (sums[self.hi] - sums[self.lo]) / self.count


def _edge_rolling(logs: tuple[np.ndarray, ...], ends: np.ndarray, window: int) -> np.ndarray:
    """Signed EDGE for each window, the moments of :func:`_edge_rows` expanded into running means."""
    tau, phi_o, phi_c, r1, r2, r3, r4, r5 = _pairs(logs)
    mean = _Window(ends, window)
    pt, po, pc = mean(tau), mean(phi_o), mean(phi_c)
    ok = (pt > 0) & (po > 0) & (pc > 0)
    pt, po, pc = (np.where(ok, x, 1.0) for x in (pt, po, pc))
    a, b = -4.0 / po, -4.0 / pc
    k1, k3, k5 = mean(r1) / pt, mean(r3) / pt, mean(r5) / pt

    def moments(u: np.ndarray, rb: np.ndarray, kb: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # x = a * (r1 - tau k1) * u + b * (rb - tau kb) * v: its mean and mean square
        first = a * (mean(r1 * u) - k1 * mean(tau * u)) + b * (mean(rb * v) - kb * mean(tau * v))
        da2 = mean(r1 * r1 * u * u) - 2 * k1 * mean(tau * r1 * u * u) + k1 * k1 * mean(tau * u * u)
        db2 = mean(rb * rb * v * v) - 2 * kb * mean(tau * rb * v * v) + kb * kb * mean(tau * v * v)
        cross = (mean(r1 * rb * u * v) - kb * mean(tau * r1 * u * v) - k1 * mean(tau * rb * u * v)
                 + k1 * kb * mean(tau * u * v))
        return first, a * a * da2 + b * b * db2 + 2 * a * b * cross

    e1, q1 = moments(r2, r3, k3, r4)
    e2, q2 = moments(r5, r5, k5, r4)
    v1, v2 = q1 - e1 * e1, q2 - e2 * e2
    tiny = np.finfo(np.float64).eps  # running sums leave rounding where a variance is exactly 0
    v1, v2 = np.where(v1 > tiny, v1, 0.0), np.where(v2 > tiny, v2, 0.0)
    vt = v1 + v2
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(vt > 0, (v2 * e1 + v1 * e2) / np.where(vt > 0, vt, 1.0), (e1 + e2) / 2.0)
    return np.where(ok, np.sign(s2) * np.sqrt(np.abs(s2)), np.nan)


def _corwin_schultz_rolling(logs: tuple[np.ndarray, ...], ends: np.ndarray, window: int) -> np.ndarray:
    o, h, low, c = logs
    terms = np.zeros(h.size)
    if h.size > 1:
        terms[1:] = _corwin_schultz_terms(h[:-1], low[:-1], c[:-1], h[1:], low[1:])
    return _Window(ends, window)(terms)


def _abdi_ranaldo_rolling(logs: tuple[np.ndarray, ...], ends: np.ndarray, window: int) -> np.ndarray:
    o, h, low, c = logs
    eta = (h + low) / 2.0
    terms = np.zeros(h.size)
    terms[1:] = 4.0 * (c[:-1] - eta[:-1]) * (c[:-1] - eta[1:])
    s2 = _Window(ends, window)(terms)
    return np.sign(s2) * np.sqrt(np.abs(s2))


_ROLLING = {"edge": _edge_rolling, "corwin_schultz": _corwin_schultz_rolling, "abdi_ranaldo": _abdi_ranaldo_rolling}


def _estimates_before(logs: tuple[np.ndarray, ...], ends: np.ndarray, window: int, estimator: str) -> np.ndarray:
    """The estimate for each ``end``, from rows ``[max(0, end - window), end)`` (NaN under MIN_BARS)."""
    out = _ROLLING[estimator](logs, ends, window) if ends.size else np.empty(0)
    out = np.where(np.minimum(ends, window) >= MIN_BARS, out, np.nan)
    return np.maximum(out, 0.0)  # negative estimates are 0, as in the papers; NaN stays NaN


def rolling_spread(candles: pd.DataFrame, window: int = DEFAULT_WINDOW, estimator: str = "edge") -> np.ndarray:
    """Spread (a fraction) for every row, from the ``window`` candles strictly before it.

    Rows with fewer than ``MIN_BARS`` candles before them are NaN. Changing a candle never
    changes the estimate of an earlier row.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown spread estimator {estimator!r} (choose from {', '.join(ESTIMATORS)})")
    if isinstance(window, bool) or not isinstance(window, int) or window < MIN_BARS:
        raise ValueError(f"window must be an integer >= {MIN_BARS}, got {window!r}")
    logs = _frame_logs(candles)
    return _estimates_before(logs, np.arange(logs[0].size, dtype=np.int64), window, estimator)


def spread_series(candles: pd.DataFrame, window: int = DEFAULT_WINDOW) -> np.ndarray:
    """EDGE spread in basis points for every row, from the ``window`` candles strictly before it
    (NaN where fewer than ``MIN_BARS`` candles precede it)."""
    return rolling_spread(candles, window, "edge") * 10_000.0


# ---------------------------------------------------------------------------- the cost model


@attrs.frozen
class CostModel:
    """Fees, slippage and the spread a fill pays, in basis points.

    ``spread_bps`` ``None`` means estimated per candle (EDGE over ``window`` past candles);
    ``spread_multiplier`` scales the spread (2.0 is the cost-robustness run).
    """

    fee_bps: float = attrs.field(validator=_non_negative)
    slippage_bps: float = attrs.field(validator=_non_negative)
    spread_bps: float | None = attrs.field(default=None, validator=_non_negative)
    spread_source: str = ""
    spread_multiplier: float = attrs.field(default=1.0, validator=_non_negative)
    window: int = DEFAULT_WINDOW

    def __attrs_post_init__(self) -> None:
        if not self.spread_source:
            source = EDGE_SOURCE if self.spread_bps is None else "fixed"
            object.__setattr__(self, "spread_source", source.replace(str(DEFAULT_WINDOW), str(self.window)))

    @property
    def estimated(self) -> bool:
        return self.spread_bps is None

    def scaled(self, multiplier: float) -> CostModel:
        """The same model with its spread multiplied by ``multiplier`` (on top of the current one)."""
        return attrs.evolve(self, spread_multiplier=self.spread_multiplier * multiplier)

    def spreads(self, candles: pd.DataFrame) -> np.ndarray:
        """The spread (bps, multiplier applied) each row's fills pay: 0 where there is no estimate."""
        if self.spread_bps is not None:
            return np.full(len(candles), float(self.spread_bps) * self.spread_multiplier)
        return np.nan_to_num(spread_series(candles, self.window), nan=0.0) * self.spread_multiplier


def _median(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None


def describe_costs(model: CostModel, spreads_bps: np.ndarray | None = None, candles: pd.DataFrame | None = None,
                   rows: slice | None = None) -> dict[str, Any]:
    """What a report prints about costs: the model and the spread over the traded candles.

    ``spreads_bps`` are the spreads the fills paid on the traded candles; with ``candles``
    (the frame the backtest saw, ``rows`` the traded ones) the Corwin-Schultz and
    Abdi-Ranaldo estimates over the same windows are added as cross-checks.
    """
    spreads = np.asarray(spreads_bps if spreads_bps is not None else [], dtype=np.float64)
    median = _median(spreads)
    out: dict[str, Any] = {
        "fee_bps": model.fee_bps,
        "slippage_bps": model.slippage_bps,
        "spread_bps": model.spread_bps,
        "spread_source": model.spread_source,
        "spread_multiplier": model.spread_multiplier,
        "spread_bps_median": median,
        "spread_bps_mean": float(spreads.mean()) if spreads.size else None,
        "spread_bps_p90": float(np.percentile(spreads, 90)) if spreads.size else None,
        "round_trip_bps": None if median is None else 2 * (model.fee_bps + model.slippage_bps) + median,
    }
    if model.estimated:
        out["spread_window"] = model.window
    if model.estimated and candles is not None:
        rows = rows if rows is not None else slice(0, len(candles))
        logs = _frame_logs(candles)
        ends = np.arange(logs[0].size, dtype=np.int64)[rows]
        out["unestimated_candles"] = int(np.isnan(_estimates_before(logs, ends, model.window, "edge")).sum()) if ends.size else 0
        checks = {}
        for name in ("corwin_schultz", "abdi_ranaldo"):
            values = _estimates_before(logs, ends, model.window, name) * 10_000.0 if ends.size else np.empty(0)
            checks[name] = _median(values)
        out["spread_cross_checks_bps_median"] = checks
    return out


def format_costs(costs: dict[str, Any]) -> str:
    """One line for the terminal, e.g. ``fees 10 bps, slippage 2 bps, spread 8.1 bps median, estimated ...``."""
    median = costs.get("spread_bps_median")
    spread = "spread not estimated (too few candles)" if median is None else f"spread {median:.3g} bps"
    if costs.get("spread_bps") is None and median is not None:
        spread += " median"
    if costs.get("spread_multiplier", 1.0) != 1.0:
        spread += f" (x{costs['spread_multiplier']:g})"
    parts = [f"fees {costs['fee_bps']:g} bps", f"slippage {costs['slippage_bps']:g} bps", spread]
    if costs.get("spread_source"):
        parts[-1] += f", {costs['spread_source']}"
    checks = costs.get("spread_cross_checks_bps_median") or {}
    if checks:
        named = {"corwin_schultz": "Corwin-Schultz", "abdi_ranaldo": "Abdi-Ranaldo"}
        parts[-1] += " (cross-checks: " + ", ".join(
            f"{named[k]} {'-' if v is None else format(v, '.3g')}" for k, v in checks.items()) + ")"
    return ", ".join(parts) + "; a fill pays half the spread"


# ---------------------------------------------------------------------------- for the paper broker


class SpreadTable:
    """The spread (bps) the paper broker charges on the candle opened at a given time.

    Fixed models answer their constant. Estimated ones answer from the candles handed to
    :meth:`watch` (``trader run``: the replay's frame, or the live feed's history and each
    new candle), with the same windows as :func:`spread_series`, so a replay and a backtest
    of the same candles pay the same spread on every candle.
    """

    def __init__(self, model: CostModel) -> None:
        self.model = model
        # Candles priced in bulk (watch) as two sorted arrays: 16 bytes a candle, where a dict
        # took about 120; candles priced one by one (the live feed) in a dict.
        self._known_ts = np.empty(0, dtype=np.int64)
        self._known_bps = np.empty(0, dtype=np.float64)
        self._bps: dict[int, float] = {}
        self._ts = np.empty(0, dtype=np.int64)
        self._logs: tuple[np.ndarray, ...] = tuple(np.empty(0) for _ in range(4))

    @classmethod
    def of(cls, model: CostModel, candles: pd.DataFrame | None = None, rows: slice | None = None) -> SpreadTable:
        """A table holding the estimates for ``candles[rows]`` (all rows by default)."""
        table = cls(model)
        if candles is not None and model.estimated:
            table.watch(candles, rows)
        return table

    def scaled(self, multiplier: float) -> SpreadTable:
        table = SpreadTable(self.model.scaled(multiplier))
        table._known_ts, table._known_bps = self._known_ts, self._known_bps * multiplier
        table._bps = {ts: bps * multiplier for ts, bps in self._bps.items()}
        table._ts, table._logs = self._ts, self._logs
        return table

    def watch(self, candles: pd.DataFrame, rows: slice | None = None) -> None:
        """Price ``candles[rows]`` (all rows by default) from the frame's own earlier candles, and keep
        its last window for candles that come later (:meth:`watch_candle`)."""
        if not self.model.estimated or len(candles) == 0:
            return
        ts = candles["timestamp"].to_numpy(dtype=np.int64)
        logs = _frame_logs(candles)
        ends = np.arange(ts.size, dtype=np.int64)[rows if rows is not None else slice(None)]
        if ends.size:
            values = _estimates_before(logs, ends, self.model.window, "edge") * 10_000.0
            k = self.model.spread_multiplier
            self._remember(ts[ends], np.where(np.isnan(values), 0.0, values) * k)
        keep = self.model.window + 1
        self._ts, self._logs = ts[-keep:].copy(), tuple(x[-keep:].copy() for x in logs)

    def _remember(self, ts: np.ndarray, bps: np.ndarray) -> None:
        """Keep ``bps`` for the candles opened at ``ts``; a candle priced again takes its new value."""
        for t in ts.tolist():
            self._bps.pop(t, None)
        if self._known_ts.size:
            keep = ~np.isin(self._known_ts, ts)
            ts = np.concatenate((self._known_ts[keep], ts))
            bps = np.concatenate((self._known_bps[keep], bps))
        order = np.argsort(ts, kind="stable")
        self._known_ts, self._known_bps = ts[order], bps[order]

    def watch_candle(self, timestamp: int, open_: float, high: float, low: float, close: float) -> None:
        """Learn one more candle (the live feed), after the ones already known."""
        if not self.model.estimated or (self._ts.size and timestamp <= self._ts[-1]):
            return
        self._ts = np.append(self._ts, np.int64(timestamp))
        self._logs = tuple(np.append(x, math.log(v)) for x, v in zip(self._logs, (open_, high, low, close), strict=True))
        keep = self.model.window + 1
        if self._ts.size > 4 * keep:  # only the last window is ever needed
            self._ts, self._logs = self._ts[-keep:], tuple(x[-keep:] for x in self._logs)

    def charged(self) -> np.ndarray:
        """The spreads priced so far (bps): one per candle, or the fixed spread once."""
        if not self.model.estimated:
            return np.array([float(self.model.spread_bps) * self.model.spread_multiplier])  # type: ignore[arg-type]
        return np.concatenate((self._known_bps, np.fromiter(self._bps.values(), dtype=np.float64, count=len(self._bps))))

    def known_bps(self, timestamps: np.ndarray) -> np.ndarray:
        """:meth:`bps` of each of ``timestamps`` already priced in bulk (:meth:`watch`), NaN for the
        others (left to :meth:`bps`): one lookup for many candles, pricing nothing."""
        ts = np.asarray(timestamps, dtype=np.int64)
        if not self.model.estimated:
            return np.full(ts.size, float(self.model.spread_bps) * self.model.spread_multiplier)  # type: ignore[arg-type]
        out = np.full(ts.size, np.nan)
        known_ts = self._known_ts
        if known_ts.size and ts.size:
            at = np.minimum(known_ts.searchsorted(ts), known_ts.size - 1)
            hit = known_ts[at] == ts
            out[hit] = self._known_bps[at[hit]]
        return out

    def bps(self, timestamp: int) -> float:
        """The spread charged on the candle opened at ``timestamp``."""
        if not self.model.estimated:
            return float(self.model.spread_bps) * self.model.spread_multiplier  # type: ignore[arg-type]
        known_ts = self._known_ts
        if known_ts.size:
            i = int(known_ts.searchsorted(timestamp))
            if i < known_ts.size and known_ts[i] == timestamp:
                return float(self._known_bps[i])
        known = self._bps.get(timestamp)
        if known is not None:
            return known
        end = int(np.searchsorted(self._ts, timestamp, side="left"))
        start = max(0, end - self.model.window)
        if end - start < MIN_BARS:
            return 0.0
        logs = tuple(x[start:end] for x in self._logs)
        value = float(_estimates_before(logs, np.array([end - start]), self.model.window, "edge")[0]) * 10_000.0
        value = (0.0 if math.isnan(value) else value) * self.model.spread_multiplier
        self._bps[timestamp] = value
        return value

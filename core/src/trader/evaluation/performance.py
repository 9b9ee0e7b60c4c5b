"""Performance metrics of a backtest: returns, risk, drawdowns and trades, in numpy.

Conventions (documented in ``docs/backtesting.md``):

- ``equity`` is the portfolio value after each bar (quote currency), starting with the
  value before the first bar; per-bar returns are ``equity[t] / equity[t-1] - 1``.
- Crypto trades around the clock: a year is ``365 * 24 h`` of bars of the timeframe.
- Sharpe and Sortino use a zero risk-free rate and are annualised by ``sqrt(periods per
  year)``; volatility is the annualised standard deviation (``ddof=1``); Sortino's
  downside deviation is ``sqrt(mean(min(r, 0)^2))`` over all bars.
- A *trade* is a round trip from flat to flat (spot, long only); a position still open
  at the end is marked at the last close and counted, flagged ``open``.
- Undefined values (Sharpe of a flat curve, win rate without trades) are NaN, and
  ``None`` in JSON.
- Annualised figures (annual return, volatility, Sharpe, Sortino, Calmar) over a window
  shorter than :data:`MIN_ANNUALISED_DAYS` days extrapolate a few days to a year: reports
  mark them (:func:`annualised_caveat`) rather than print them as if meaningful.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import attrs
import numpy as np

from trader.timeframes import DAY_MS, timeframe_to_ms

__all__ = [
    "YEAR_MS",
    "MIN_ANNUALISED_DAYS",
    "ANNUALISED_KEYS",
    "window_days",
    "annualised_caveat",
    "Trade",
    "PerformanceMetrics",
    "periods_per_year",
    "equity_returns",
    "drawdown_curve",
    "max_drawdown",
    "sharpe_ratio",
    "sortino_ratio",
    "round_trip_trades",
    "performance_metrics",
]

YEAR_MS = 365 * DAY_MS


#: Below this many days of bars an annualised figure is an extrapolation, not a measurement.
MIN_ANNUALISED_DAYS = 30.0

#: The :class:`PerformanceMetrics` fields that are annualised.
ANNUALISED_KEYS = ("annual_return", "volatility", "sharpe", "sortino", "calmar")


def window_days(bars: int, timeframe: str) -> float:
    """How many days ``bars`` bars of ``timeframe`` span."""
    return bars * timeframe_to_ms(timeframe) / DAY_MS


def annualised_caveat(bars: int, timeframe: str) -> str | None:
    """A one-line warning when ``bars`` bars are too few days to annualise (``None`` when they are enough)."""
    days = window_days(bars, timeframe)
    if days >= MIN_ANNUALISED_DAYS:
        return None
    return (f"annualised figures extrapolate {days:.3g} days to a year (under {MIN_ANNUALISED_DAYS:g} days): "
            "they are not meaningful")


def periods_per_year(timeframe: str) -> float:
    """Bars per year for a 24/7 market: ``"1h"`` -> 8760."""
    return YEAR_MS / timeframe_to_ms(timeframe)


def equity_returns(equity: Sequence[float] | np.ndarray) -> np.ndarray:
    """Simple per-bar returns of an equity curve (one fewer than the curve)."""
    values = np.asarray(equity, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"equity must be one-dimensional, got shape {values.shape}")
    if values.size and (not np.all(np.isfinite(values)) or np.any(values < 0)):
        raise ValueError("equity must be finite and non-negative")
    if values.size < 2:
        return np.empty(0)
    previous = values[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.where(previous > 0, values[1:] / np.where(previous > 0, previous, 1.0) - 1.0, 0.0)
    return returns


def drawdown_curve(equity: Sequence[float] | np.ndarray) -> np.ndarray:
    """``equity / running peak - 1`` at every bar (0 at a new high, negative below it)."""
    values = np.asarray(equity, dtype=np.float64)
    if values.size == 0:
        return np.empty(0)
    peak = np.maximum.accumulate(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, values / np.where(peak > 0, peak, 1.0) - 1.0, 0.0)


def max_drawdown(equity: Sequence[float] | np.ndarray) -> tuple[float, int]:
    """``(depth, duration)``: the deepest fall from a peak as a fraction of it (<= 0: ``-0.25`` is a
    quarter below the peak) and the longest time under water in bars (from a peak to the bar that
    regains it, or to the end). The one drawdown of the project: backtests, ``trader run`` and
    ``trader status`` report this depth (the risk limit ``max_drawdown`` is the size of the fall allowed)."""
    curve = drawdown_curve(equity)
    if curve.size == 0:
        return 0.0, 0
    above = np.flatnonzero(curve >= -1e-12)  # bars at a peak
    bounds = np.concatenate(([-1], above, [curve.size]))
    longest = int(np.max(np.diff(bounds))) - 1
    return float(curve.min()), longest


#: Per-bar returns this small are float rounding of the equity curve, not risk: a deviation below it
#: makes a ratio undefined (NaN) rather than astronomical and dependent on the starting capital.
RETURN_NOISE = 1e-12


def sharpe_ratio(returns: np.ndarray, periods: float) -> float:
    """Annualised Sharpe ratio (zero risk-free rate); NaN when undefined."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return math.nan
    sd = float(np.std(r, ddof=1))
    mean = float(np.mean(r))
    if sd <= max(RETURN_NOISE, 1e-15 * abs(mean)):
        return math.nan
    return mean / sd * math.sqrt(periods)


def sortino_ratio(returns: np.ndarray, periods: float) -> float:
    """Annualised Sortino ratio: mean over downside deviation; NaN without losing bars."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return math.nan
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside <= max(RETURN_NOISE, 1e-9 * float(np.max(np.abs(r)))):  # no losses worth the name: undefined
        return math.nan
    return float(np.mean(r)) / downside * math.sqrt(periods)


def _annualise(total: float, years_inverse: float) -> float:
    """``(1 + total) ** (bars per year / bars) - 1``; infinite when it overflows."""
    if not math.isfinite(total):
        return math.nan
    if total <= -1.0:
        return -1.0
    try:
        return math.expm1(years_inverse * math.log1p(total))
    except OverflowError:
        return math.inf


# --------------------------------------------------------------------------- trades


@attrs.frozen
class Trade:
    """One round trip from flat to flat. ``pnl`` is net of fees; ``open`` marks a position
    still held at the end (valued at the last close)."""

    entry_timestamp: int
    exit_timestamp: int
    entry_price: float
    exit_price: float
    quantity: float
    pnl: float
    return_pct: float
    fees: float
    fills: int
    open: bool = False

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _field(fill: Any, name: str) -> Any:
    return fill[name] if isinstance(fill, Mapping) else getattr(fill, name)


def _side(value: Any) -> str:
    return value.lower() if type(value) is str else str(getattr(value, "value", value)).lower()


def _fill_columns(fills: Iterable[Any]) -> tuple[list[str], list[float], list[float], list[float], list[int]]:
    """Side, quantity, price, fee and timestamp of each fill, read once (a dict row without the ``Mapping`` check)."""
    sides: list[str] = []
    quantities: list[float] = []
    prices: list[float] = []
    fees: list[float] = []
    stamps: list[int] = []
    for fill in fills:
        row = fill if type(fill) is dict or isinstance(fill, Mapping) else None
        get = row.__getitem__ if row is not None else partial(getattr, fill)
        sides.append(_side(get("side")))
        quantities.append(float(get("quantity")))
        prices.append(float(get("price")))
        fees.append(float(get("fee")))
        stamps.append(int(get("timestamp")))
    return sides, quantities, prices, fees, stamps


def round_trip_trades(fills: Iterable[Any], last_price: float | None = None, last_timestamp: int | None = None) -> list[Trade]:
    """Group fills (objects or mappings with ``side``, ``quantity``, ``price``, ``fee``,
    ``timestamp``) into flat-to-flat trades; an open remainder is marked at ``last_price``."""
    return _round_trips(*_fill_columns(fills), last_price, last_timestamp)


def _round_trips(sides: list[str], quantities: list[float], prices: list[float], fill_fees: list[float],
                 stamps: list[int], last_price: float | None, last_timestamp: int | None) -> list[Trade]:
    trades: list[Trade] = []
    qty = cost = proceeds = fees = peak = buy_qty = sell_qty = sell_value = 0.0
    entry_ts = 0
    count = 0
    for side, quantity, price, fee, ts in zip(sides, quantities, prices, fill_fees, stamps, strict=True):
        if count == 0:
            if side != "buy":
                continue  # a sell without a position cannot happen on a spot paper account
            entry_ts = ts
        count += 1
        fees += fee
        if side == "buy":
            qty += quantity
            cost += quantity * price
            buy_qty += quantity
        else:
            qty -= quantity
            proceeds += quantity * price
            sell_qty += quantity
            sell_value += quantity * price
        peak = max(peak, qty)
        if qty <= 1e-9 * max(peak, 1e-300):
            pnl = proceeds - cost - fees
            trades.append(
                Trade(entry_ts, ts, cost / buy_qty, sell_value / sell_qty, peak, pnl, pnl / cost if cost else 0.0, fees, count)
            )
            qty = cost = proceeds = fees = peak = buy_qty = sell_qty = sell_value = 0.0
            count = 0
    if count and last_price is not None:
        value = qty * float(last_price)
        pnl = proceeds + value - cost - fees
        exit_price = (sell_value + value) / (sell_qty + qty)
        trades.append(
            Trade(entry_ts, int(last_timestamp if last_timestamp is not None else entry_ts), cost / buy_qty, exit_price,
                  peak, pnl, pnl / cost if cost else 0.0, fees, count, open=True)
        )
    return trades


# --------------------------------------------------------------------------- summary


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@attrs.frozen
class PerformanceMetrics:
    """What a backtest achieved, net of fees and slippage."""

    start: int
    end: int
    bars: int
    initial_equity: float
    final_equity: float
    total_return: float
    annual_return: float
    volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_bars: int
    max_drawdown_days: float
    trades: int
    open_trades: int
    win_rate: float
    profit_factor: float
    avg_trade_return: float
    exposure: float
    avg_exposure: float
    turnover: float
    fees_paid: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN and infinities become ``None``."""
        return {key: _clean(value) for key, value in attrs.asdict(self).items()}


def performance_metrics(
    equity: Sequence[float] | np.ndarray,
    timestamps: Sequence[int] | np.ndarray,
    timeframe: str,
    *,
    fills: Sequence[Any] = (),
    exposure: Sequence[float] | np.ndarray | None = None,
    last_price: float | None = None,
) -> PerformanceMetrics:
    """Metrics of an equity curve.

    :param equity: value before the first bar followed by the value after each bar.
    :param timestamps: open time (ms) of each bar, one fewer than ``equity``.
    :param fills: the fills of the run, in order (for trades, fees and turnover).
    :param exposure: position value over equity after each bar (0..1 for spot).
    :param last_price: the last close, to value a position still open.
    """
    values = np.asarray(equity, dtype=np.float64)
    ts = np.asarray(timestamps, dtype=np.int64)
    if values.size != ts.size + 1:
        raise ValueError(f"equity has {values.size} values for {ts.size} bars (expected bars + 1)")
    if values.size < 2:
        raise ValueError("a backtest needs at least one bar")
    periods = periods_per_year(timeframe)
    returns = equity_returns(values)
    n = returns.size
    total = values[-1] / values[0] - 1.0 if values[0] > 0 else math.nan
    annual = _annualise(total, periods / n)
    volatility = float(np.std(returns, ddof=1)) * math.sqrt(periods) if n >= 2 else math.nan
    depth, duration = max_drawdown(values)
    calmar = annual / abs(depth) if depth < 0 else math.nan
    columns = _fill_columns(fills)
    trades = _round_trips(*columns, last_price, int(ts[-1]))
    pnls = np.array([t.pnl for t in trades])
    wins = pnls[pnls > 0].sum() if pnls.size else 0.0
    losses = -pnls[pnls < 0].sum() if pnls.size else 0.0
    traded = sum(map(operator.mul, columns[1], columns[2]))  # in fill order, as before: the same float
    fees = sum(columns[3])
    expo = np.asarray(exposure, dtype=np.float64) if exposure is not None else np.zeros(n)
    if expo.size != n:
        raise ValueError(f"exposure has {expo.size} values for {n} bars")
    bar_ms = timeframe_to_ms(timeframe)
    return PerformanceMetrics(
        start=int(ts[0]),
        end=int(ts[-1]),
        bars=int(n),
        initial_equity=float(values[0]),
        final_equity=float(values[-1]),
        total_return=float(total),
        annual_return=float(annual),
        volatility=volatility,
        sharpe=sharpe_ratio(returns, periods),
        sortino=sortino_ratio(returns, periods),
        calmar=float(calmar),
        max_drawdown=depth,
        max_drawdown_bars=duration,
        max_drawdown_days=duration * bar_ms / DAY_MS,
        trades=len(trades),
        open_trades=sum(1 for t in trades if t.open),
        win_rate=float(np.mean(pnls > 0)) if pnls.size else math.nan,
        profit_factor=float(wins / losses) if losses > 0 else (math.inf if wins > 0 else math.nan),
        avg_trade_return=float(np.mean([t.return_pct for t in trades])) if trades else math.nan,
        exposure=float(np.mean(expo > 1e-9)) if n else 0.0,
        avg_exposure=float(np.mean(expo)) if n else 0.0,
        turnover=float(traded / np.mean(values)) if np.mean(values) > 0 else math.nan,
        fees_paid=float(fees),
    )

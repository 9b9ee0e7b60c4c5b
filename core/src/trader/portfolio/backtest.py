"""Backtests of a basket: one account over several markets, judged against the equal-weight basket.

The simulation is :class:`~trader.portfolio.session.PortfolioSession` on an in-memory
store, the step ``trader run`` takes on a basket, so a replay of the same candles makes
the same trades. The baseline is the equal-weight buy-and-hold basket: ``buy_and_hold``
run on the same markets, cash, costs and timeline, buying ``1/M`` of the account into
each market at its first candle in the range (topped up, never sold). The verdict's three questions
(:mod:`trader.backtest.verdict`) compare the account with that basket (whose value
stands in for "the market"), with random timings of the same exposure, and with itself
at twice the spread.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs
import numpy as np

from trader.backtest.results import SimulatedRun, jsonable
from trader.backtest.runner import BASELINE, BacktestSettings, effective_limits, quiet_engine_logs
from trader.errors import DataError
from trader.portfolio.align import Basket
from trader.portfolio.broker import BasketPaperBroker
from trader.portfolio.session import PortfolioSession

if TYPE_CHECKING:
    from trader.config import TraderConfig
    from trader.engine import MemoryState
    from trader.plugins import TraderPluginManager
    from trader.types import RiskLimits

__all__ = ["BasketResult", "BasketRun", "simulate_basket", "run_basket_backtest", "basket_range"]


@attrs.frozen
class BasketRun:
    """A basket simulated step by step: the account's run and each market's rows."""

    run: SimulatedRun
    session: PortfolioSession
    markets: Mapping[str, Mapping[str, Any]]
    orders: tuple[Any, ...]

    def market_shares(self) -> dict[str, np.ndarray]:
        """Each market's position as a share of the account's equity after every step, in symbol
        order (the basket report's exposure chart). A market without a candle at a step keeps its
        last traded value, as the account values it."""
        timestamps = np.asarray(self.run.timestamps)
        equity = np.asarray(self.run.equity[1:], dtype=np.float64)
        rows = cast("MemoryState", self.session.store).market_history()
        row_ts = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        row_symbol = np.array([r[1] for r in rows], dtype=object)
        row_value = np.fromiter((r[4] for r in rows), dtype=np.float64, count=len(rows))
        out: dict[str, np.ndarray] = {}
        safe = np.where(equity > 0, equity, 1.0)
        for symbol in self.session.symbols:
            mine = np.flatnonzero(row_symbol == symbol)
            latest = np.full(timestamps.size, -1, dtype=np.intp)
            latest[np.searchsorted(timestamps, row_ts[mine])] = np.arange(mine.size)
            latest = np.maximum.accumulate(latest)
            value = np.where(latest >= 0, row_value[mine][np.maximum(latest, 0)], 0.0) if mine.size else np.zeros(timestamps.size)
            out[symbol] = np.where(equity > 0, value / safe, 0.0)
        return out


@attrs.frozen
class BasketResult:
    """A basket backtest, its equal-weight buy-and-hold baseline and the verdict."""

    strategy: str
    symbols: tuple[str, ...]
    timeframe: str
    sources: Mapping[str, str]
    settings: Mapping[str, Any]
    result: BasketRun
    benchmark: BasketRun | None
    verdict: Any = None
    timings: Mapping[str, float] = attrs.field(factory=dict)
    model: Mapping[str, Any] | None = None

    @property
    def run(self) -> SimulatedRun:
        return self.result.run

    def to_dict(self) -> dict[str, Any]:
        run = self.run
        bench = self.benchmark
        return jsonable(
            {
                "strategy": self.strategy,
                "symbols": list(self.symbols),
                "timeframe": self.timeframe,
                "sources": dict(self.sources),
                "settings": dict(self.settings),
                "range": {"start": int(run.timestamps[0]), "end": int(run.timestamps[-1]), "steps": int(run.timestamps.size)},
                "metrics": run.metrics,
                "markets": {s: dict(m) for s, m in self.result.markets.items()},
                "benchmark": None if bench is None else {
                    "strategy": "equal-weight buy-and-hold basket",
                    "metrics": bench.run.metrics,
                    "markets": {s: dict(m) for s, m in bench.markets.items()},
                },
                "verdict": self.verdict,
                "fills": len(run.fills),
                "denied_orders": run.denied_orders(),
                "final_status": run.final_status,
                "halt": run.halt(),
                "model": self.model,
                "timings": dict(self.timings),
            }
        )

    def describe(self) -> str:
        from trader.timeframes import format_utc

        run = self.run
        m = run.metrics
        lines = [
            f"{self.strategy} on a basket of {len(self.symbols)} markets ({', '.join(self.symbols)}) {self.timeframe}: "
            f"{format_utc(int(run.timestamps[0]))} .. {format_utc(int(run.timestamps[-1]))}, {run.timestamps.size:,} steps",
            f"  total return {m.total_return * 100:+.2f}%  sharpe {m.sharpe:.2f}  max drawdown {m.max_drawdown * 100:.2f}%  "
            f"fills {len(run.fills)}  fees {m.fees_paid:,.2f}  status {run.final_status}",
        ]
        if self.benchmark is not None:
            b = self.benchmark.run.metrics
            lines.append(f"  equal-weight buy-and-hold basket {b.total_return * 100:+.2f}%  max drawdown {b.max_drawdown * 100:.2f}%")
        lines.append("  per market: contribution (PnL)  return of the market  average exposure  fills")
        for symbol, figures in self.result.markets.items():
            lines.append(
                f"    {symbol:<14} {figures['pnl']:+12,.2f}  {figures['market_return'] * 100:+8.2f}%  "
                f"{figures['avg_exposure'] * 100:6.2f}%  {figures['fills']}"
            )
        denied = run.denied_orders()
        if denied:
            lines.append("  denied orders: " + ", ".join(f"{code} {n}" for code, n in sorted(denied.items())))
        if self.verdict is not None:
            lines.append(f"  {self.verdict.line}")  # "verdict: ...", as one market's summary ends
        return "\n".join(lines)


def basket_range(basket: Basket, start: int | None, end: int | None) -> tuple[int, int]:
    """Timeline positions ``[first, last]`` of the steps opened within ``[start, end]`` (ms)."""
    ts = basket.timestamps
    first = 0 if start is None else int(np.searchsorted(ts, start, side="left"))
    last = ts.size - 1 if end is None else int(np.searchsorted(ts, end, side="right")) - 1
    if first > last:
        raise DataError("no candle of the basket falls within the requested range")
    return first, last


def basket_broker(config: TraderConfig | None, settings: BacktestSettings, basket: Basket, first: int, last: int,
                  multiplier: float | None = None) -> BasketPaperBroker:
    """One paper broker per market, each charging its own market's spread over the traded range."""
    from trader.costs import SpreadTable
    from trader.engine import paper_broker

    template = paper_broker(config, fee_bps=settings.fee_bps, slippage_bps=settings.slippage_bps, spread_bps=settings.spread_bps)
    brokers = {}
    end_ts = int(basket.timestamps[last])
    start_ts = int(basket.timestamps[first])
    for symbol in basket.symbols:
        frame = basket.frames[symbol]
        ts = frame["timestamp"].to_numpy()
        rows = slice(int(np.searchsorted(ts, start_ts, side="left")), int(np.searchsorted(ts, end_ts, side="right")))
        table = SpreadTable.of(template.costs, frame.iloc[: rows.stop], rows)
        if multiplier is not None:
            table = table.scaled(multiplier)
        brokers[symbol] = template.with_spreads(table)
    return BasketPaperBroker(brokers)


def simulate_basket(
    manager: TraderPluginManager,
    strategy_name: str,
    limits: RiskLimits,
    basket: Basket,
    answers: Sequence[Mapping[str, Any]],
    first: int,
    last: int,
    *,
    broker: BasketPaperBroker,
    cash: float,
    rebalance_band: float,
    fast: bool = True,
) -> BasketRun:
    """Step a :class:`PortfolioSession` through positions ``first..last`` with precomputed signals
    (``fast=False``: one full step per position, the reference the fast paths are held to). With
    ``fast``, the float-only simulation (:mod:`trader.portfolio.fastbasket`) where it applies (no
    plugin risk rule), else the quiet steps in bulk (:mod:`trader.portfolio.quiet`)."""
    from trader.engine import MemoryState, RiskAuditAgent
    from trader.evaluation.performance import performance_metrics
    from trader.portfolio import fastbasket

    store = MemoryState(strategy_name)
    session = PortfolioSession(
        strategy_name, basket.symbols, basket.timeframe, limits=limits, broker=broker, store=store,
        audit=RiskAuditAgent.for_strategy(manager, strategy_name, limits), initial_cash=cash,
        rebalance_band=rebalance_band, latency_denies=False,
    )
    timestamps = basket.timestamps[first : last + 1]
    closes = basket.closes[first : last + 1]
    with quiet_engine_logs():
        if not fast or fastbasket.run_floats(session, np.asarray(timestamps), closes, answers) is None:
            session.run(timestamps, closes, answers, fast=fast)
    store.close()
    equities = np.asarray(store.equities, dtype=np.float64)
    position_value = np.asarray(store.position_values, dtype=np.float64)
    equity = np.concatenate(([cash], equities))
    with np.errstate(divide="ignore", invalid="ignore"):
        exposure = np.where(equity[1:] > 0, position_value / np.where(equity[1:] > 0, equity[1:], 1.0), 0.0)
    fills = tuple(store.fills())
    by_market: dict[str, list[Any]] = {s: [] for s in basket.symbols}
    for fill in fills:
        by_market[fill["symbol"]].append(fill)
    ordered = tuple(f for s in basket.symbols for f in by_market[s])  # round trips per market
    metrics = performance_metrics(equity, timestamps, basket.timeframe, fills=ordered, exposure=exposure)
    markets = _market_figures(store.market_columns(), by_market, equity[1:], timestamps, basket, first, last)
    actions = np.zeros(timestamps.size, dtype=np.int8)
    run = SimulatedRun(
        strategy=strategy_name, timestamps=np.asarray(timestamps), close=np.asarray(equity[1:]), equity=equity,
        position_value=position_value, actions=actions, fills=fills, events=tuple(store.risk_events()),
        metrics=metrics, final_status=session.status.value,
    )
    return BasketRun(run, session, markets, tuple(store.orders()))


#: Market rows read at a time by :func:`_market_figures`.
_ROW_BLOCK = 1 << 16


def _market_figures(columns: Mapping[str, Any], fills: Mapping[str, list[Any]], equity: np.ndarray,
                    timestamps: np.ndarray, basket: Basket, first: int, last: int) -> dict[str, dict[str, Any]]:
    """Each market's contribution (PnL: proceeds - costs - fees + the position at its last mark),
    its average exposure over the account's steps, its fills and its own return over the range."""
    out: dict[str, dict[str, Any]] = {}
    n, symbols = timestamps.size, basket.symbols
    row_ts, values = columns["timestamp"], columns["position_value"]
    # the store's market codes as basket columns (a market outside the basket: a column of its own, unused)
    column = {symbol: j for j, symbol in enumerate(symbols)}
    names = columns["symbols"]
    for name in names:
        column.setdefault(name, len(column))
    of_code = np.asarray([column[name] for name in names], dtype=np.intp)
    width = len(column)
    # each market's latest row at each step (a market that does not trade keeps its last value), the rows
    # taken a block at a time (a million rows' indices would be several arrays of 8 MB)
    latest = np.full((width, n), -1, dtype=np.int32 if row_ts.size < 2**31 else np.int64)
    last_row = np.full(width, -1, dtype=np.intp)
    for r0 in range(0, row_ts.size, _ROW_BLOCK):
        ts = row_ts[r0 : r0 + _ROW_BLOCK]
        code = of_code[columns["symbol"][r0 : r0 + _ROW_BLOCK]]
        if n:
            k = _steps_of(timestamps, ts)
            rows = np.flatnonzero((k < n) & (timestamps[np.minimum(k, n - 1)] == ts))
            latest[code[rows], k[rows]] = rows + r0
        last_row[code] = np.arange(r0, r0 + code.size)  # each market's last row (a later row overwrites an earlier one)
    np.maximum.accumulate(latest, axis=1, out=latest)
    safe = np.where(equity > 0, equity, 1.0)
    closes = basket.closes[first : last + 1]
    traded = ~np.isnan(closes)
    candles = traded.sum(axis=0)
    opened, closed = traded.argmax(axis=0), n - 1 - traded[::-1].argmax(axis=0)
    for j, symbol in enumerate(symbols):
        spent = received = fees = held = 0.0
        for fill in fills[symbol]:
            notional = fill["quantity"] * fill["price"]
            fees += fill["fee"]
            if fill["side"] == "buy":
                spent += notional
                held += fill["quantity"]
            else:
                received += notional
                held -= fill["quantity"]
        r = int(last_row[j])
        value = held * (float(columns["close"][r]) if r >= 0 else 0.0)
        rows_j = latest[j]  # one market at a time: no (markets x steps) array of floats
        position_at = np.where(rows_j >= 0, values[np.maximum(rows_j, 0)], 0.0) if row_ts.size else np.zeros(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(equity > 0, position_at / safe, 0.0)
        out[symbol] = {
            "pnl": received - spent - fees + value,
            "fees": fees,
            "fills": len(fills[symbol]),
            "final_value": value,
            "avg_exposure": float(share.mean()) if n else 0.0,
            "candles": int(candles[j]),
            "market_return": float(closes[closed[j], j] / closes[opened[j], j] - 1.0) if candles[j] else 0.0,
        }
    return out


def _steps_of(timestamps: np.ndarray, row_ts: np.ndarray) -> np.ndarray:
    """``np.searchsorted(timestamps, row_ts)``, searched once per run of equal times (a step's rows are
    consecutive)."""
    if not row_ts.size:
        return np.zeros(0, dtype=np.intp)
    starts = np.flatnonzero(np.concatenate(([True], row_ts[1:] != row_ts[:-1])))
    return np.repeat(np.searchsorted(timestamps, row_ts[starts]), np.diff(np.append(starts, row_ts.size)))


def run_basket_backtest(
    manager: TraderPluginManager,
    config: TraderConfig,
    strategy_name: str,
    basket: Basket,
    *,
    sources: Mapping[str, str] | None = None,
    start: int | None = None,
    end: int | None = None,
    settings: BacktestSettings | None = None,
    models: Mapping[str, Any] | None = None,
    model_info: Mapping[str, Any] | None = None,
) -> BasketResult:
    """Backtest ``strategy_name`` on ``basket`` over the steps opened within ``[start, end]``."""
    from trader.backtest.verdict import judge_runs
    from trader.engine import initial_cash, rebalance_band
    from trader.portfolio.signals import basket_signals
    from trader.strategy import Strategy  # noqa: F401 - for the type of manager.strategy

    settings = settings or BacktestSettings()
    began = time.perf_counter()
    strategy = manager.strategy(strategy_name)
    limits = effective_limits(strategy, config)
    first, last = basket_range(basket, start, end)
    cash = initial_cash(config, settings.cash)
    band = rebalance_band(config)
    from trader.backtest.runner import configured_params

    answers, signal_s = basket_signals(strategy, basket, first, last, models=models,
                                       params=configured_params(config, strategy.info),
                                       workdir=config.plugin_workdir(strategy_name))
    t0 = time.perf_counter()
    result = simulate_basket(manager, strategy_name, limits, basket, answers, first, last,
                             broker=basket_broker(config, settings, basket, first, last), cash=cash, rebalance_band=band)
    sim_s = time.perf_counter() - t0
    bench = None
    if settings.benchmark:
        baseline = manager.strategy(BASELINE)
        b_answers, _ = basket_signals(baseline, basket, first, last)
        bench = simulate_basket(manager, BASELINE, effective_limits(baseline, config), basket, b_answers, first, last,
                                broker=basket_broker(config, settings, basket, first, last), cash=cash, rebalance_band=band)
    # "The market" of a basket is the equal-weight basket itself: the verdict compares with its value.
    run = result.run
    if bench is not None:
        run = attrs.evolve(run, close=bench.run.equity[1:])
        result = attrs.evolve(result, run=run)
    wide = None
    if settings.spread_multiplier is not None:
        wide = simulate_basket(manager, strategy_name, limits, basket, answers, first, last,
                               broker=basket_broker(config, settings, basket, first, last, settings.spread_multiplier),
                               cash=cash, rebalance_band=band).run
    verdict = None
    if run.timestamps.size >= 3 and strategy_name != BASELINE:
        verdict = judge_runs(run, bench.run if bench is not None else None, wide,
                             spread_multiplier=settings.spread_multiplier or 2.0, n_resamples=settings.n_resamples,
                             seed=settings.seed)
    return BasketResult(
        strategy=strategy_name,
        symbols=basket.symbols,
        timeframe=basket.timeframe,
        sources=dict(sources or {}),
        settings={"cash": cash, "rebalance_band": band, "limits": attrs.asdict(limits), "fee_bps": settings.fee_bps,
                  "slippage_bps": settings.slippage_bps, "spread_bps": settings.spread_bps},
        result=result,
        benchmark=bench,
        verdict=verdict,
        timings={"signals_s": signal_s, "simulation_s": sim_s, "total_s": time.perf_counter() - began},
        model=dict(model_info) if model_info else None,
    )

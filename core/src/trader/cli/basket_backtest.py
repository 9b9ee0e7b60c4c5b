"""``trader backtest`` with two or more ``--symbol``: one account over a basket of stored markets.

The markets' stored candles are aligned on the union of their timestamps
(:func:`trader.portfolio.align`) and run through :func:`trader.portfolio.backtest.run_basket_backtest`,
judged against the equal-weight buy-and-hold basket. A basket is backtested on stored candles
only: the synthetic market would give every symbol the same series.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from trader.errors import ConfigError, DataError, ModelNotFoundError

if TYPE_CHECKING:
    from trader.backtest.runner import BacktestSettings
    from trader.cli.main import AppContext
    from trader.portfolio.models import BasketModels
    from trader.strategy import Strategy

__all__ = ["backtest_basket", "basket_candles", "markets_in_range", "halt_line"]


def basket_candles(home: Any, symbols: Sequence[str], timeframe: str, exchange: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """Each market's stored candles and where they came from; :class:`DataError` naming a market with none."""
    from trader.data import CandleStore, resolve_candles

    store = CandleStore(home)
    frames: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for symbol in symbols:
        if exchange is None and not store.exchanges_with(symbol, timeframe):
            raise DataError(
                f"no stored {symbol} {timeframe} candles: a basket is backtested on stored candles only; import, "
                "download or generate them (`trader data import` / `trader data download` / `trader data synth`)"
            )
        frames[symbol], sources[symbol] = resolve_candles(home, symbol, timeframe, exchange=exchange)
    return frames, sources


def markets_in_range(frames: dict[str, Any], start: int | None, end: int | None) -> None:
    """:class:`DataError` naming the markets with no candle opened within ``[start, end]`` (ms, ``None``: open):
    such a market would sit in the basket untraded, and the equal-weight basket would keep its share in cash."""
    import numpy as np

    from trader.timeframes import format_utc

    outside = []
    for symbol, frame in frames.items():
        ts = frame["timestamp"].to_numpy()
        lo = 0 if start is None else int(np.searchsorted(ts, start, side="left"))
        hi = ts.size if end is None else int(np.searchsorted(ts, end, side="right"))
        if ts.size and lo >= hi:
            outside.append(f"{symbol} ({format_utc(int(ts[0]))} .. {format_utc(int(ts[-1]))})")
    if outside and len(outside) == len(frames):
        raise DataError(f"no candle of the basket falls within the requested range: {', '.join(outside)}")
    if outside:
        raise DataError(f"no candle within the requested range for {', '.join(outside)}: leave "
                        f"{'it' if len(outside) == 1 else 'them'} out of the basket, or move --from/--to")


def halt_line(summary: dict[str, Any]) -> str | None:
    """``  halted since TIME UTC (CODE: message)`` when the account ended halted (a result's ``to_dict()``)."""
    halt = summary.get("halt")
    if summary.get("final_status") != "halted" or not halt:
        return None
    from trader.data import format_ms

    return f"  halted since {format_ms(halt.get('timestamp'))} UTC ({halt.get('code')}: {halt.get('message')})"


def _models(app: AppContext, strategy: Strategy, symbols: Sequence[str], timeframe: str,
            version: str | None) -> BasketModels | None:
    """Each market's model for a strategy that uses one (``None`` otherwise, or when an optional one is missing)."""
    if not strategy.info.requires_model and not strategy.trainable:
        return None
    from trader.portfolio.models import load_basket_models

    try:
        return load_basket_models(strategy, app.config.models_dir, symbols, timeframe, version=version)
    except ModelNotFoundError:
        if strategy.info.requires_model:
            raise
        return None


def backtest_basket(
    app: AppContext,
    manager: Any,
    strategy: Strategy,
    symbols: Sequence[str],
    timeframe: str,
    *,
    exchange: str | None,
    start: int | None,
    end: int | None,
    settings: BacktestSettings,
    model_version: str | None,
    report_dir: str | None,
    as_json: bool,
) -> None:
    """Backtest ``strategy`` on the basket ``symbols`` and print the result (text or ``--json``)."""
    from trader.portfolio import align
    from trader.portfolio.backtest import run_basket_backtest
    from trader.portfolio.session import mixed_quotes

    problem = mixed_quotes(symbols)
    if problem is not None:
        raise ConfigError(f"--symbol: {problem}")
    frames, sources = basket_candles(app.home, symbols, timeframe, exchange)
    markets_in_range(frames, start, end)
    basket = align(frames, timeframe)
    models = _models(app, strategy, basket.symbols, timeframe, model_version)
    warning = models.warning(strategy.name) if models is not None else None
    if warning:
        click.echo(f"warning: {warning}", err=True)
    result = run_basket_backtest(
        manager, app.config, strategy.name, basket, sources=sources, start=start, end=end, settings=settings,
        models=models.models if models is not None else None,
        model_info=models.describe() if models is not None else None,
    )
    if report_dir is not None:
        from trader.portfolio.report import write_basket_report

        write_basket_report(result, report_dir)
    summary = result.to_dict()
    if as_json:
        click.echo(json.dumps(summary, indent=2, allow_nan=False))
        return
    click.echo(result.describe())
    halted = halt_line(summary)
    if halted:
        click.echo(halted)
    for symbol in basket.symbols:
        click.echo(f"  data {symbol}: {sources[symbol]}")
    if report_dir is not None:
        click.echo(f"report: {report_dir}/report.html")

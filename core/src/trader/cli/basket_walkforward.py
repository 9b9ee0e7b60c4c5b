"""``trader backtest --walk-forward`` with two or more ``--symbol``: a basket's walk-forward.

The markets' stored candles (as :mod:`trader.cli.basket_backtest` reads them) are aligned on
their union timeline and walked forward by :func:`trader.portfolio.walkforward.run_basket_walk_forward`:
the model is retrained for every fold (one pooled model for a strategy that declares
``pooled_training``), the folds run one after the other in this process.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from trader.errors import ConfigError

if TYPE_CHECKING:
    from trader.backtest.runner import BacktestSettings
    from trader.backtest.walkforward import WalkForwardPlan
    from trader.cli.main import AppContext
    from trader.strategy import Strategy

__all__ = ["walk_forward_basket"]


def walk_forward_basket(
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
    plan: WalkForwardPlan,
    as_json: bool,
    no_progress: bool,
    report_dir: str | None = None,
    distributed: bool = False,
) -> None:
    """Walk ``strategy`` forward over the basket ``symbols`` and print the result (text or ``--json``)."""
    from trader.cli.basket_backtest import basket_candles, halt_line, markets_in_range
    from trader.portfolio import align
    from trader.portfolio.session import mixed_quotes
    from trader.portfolio.walkforward import run_basket_walk_forward

    if distributed:
        raise ConfigError("--executor, --workers and --ray-address do not apply to a basket's walk-forward, "
                          "whose folds run one after the other in this process")
    if report_dir is not None:
        raise ConfigError("--report is not available for a basket's walk-forward: leave it out, or use --json")
    problem = mixed_quotes(symbols)
    if problem is not None:
        raise ConfigError(f"--symbol: {problem}")
    frames, sources = basket_candles(app.home, symbols, timeframe, exchange)
    markets_in_range(frames, start, end)
    basket = align(frames, timeframe)
    from trader.cli.backtest_cmd import _FoldProgress

    with _FoldProgress(enabled=not no_progress and not as_json, where="this process") as progress:
        result = run_basket_walk_forward(manager, app.config, strategy.name, basket, plan, sources=sources, start=start,
                                         end=end, settings=settings, progress=progress)
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

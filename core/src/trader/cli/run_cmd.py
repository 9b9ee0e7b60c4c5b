"""``trader run``: trade one strategy (or several, one process each) on a feed."""

from __future__ import annotations

from typing import Any

import click

from trader.cli.main import AppContext, pass_app
from trader.cli.market_options import symbols_callback, timeframe_callback
from trader.errors import ConfigError

DEFAULT_SYMBOL = "BTC/USDT"
DEFAULT_TIMEFRAME = "1h"


@click.command()
@click.option("--plugin", "plugin_names", multiple=True, required=True, help="Strategy to run (repeat to run several, one process each).")
@click.option("--symbol", multiple=True, callback=symbols_callback,
              help="Market to trade [default: [plugins.NAME] symbols, else BTC/USDT]; repeat it for a basket: one "
                   "account trading every market (see docs/portfolios.md).")
@click.option("--timeframe", default=None, callback=timeframe_callback,
              help="Candle timeframe (1m, 5m, 1h, 4h, 1d, ...) [default: [plugins.NAME] timeframe, else 1h].")
@click.option("--exchange", default=None, help="Exchange id (default: [exchange] id; for replay, any stored dataset).")
@click.option("--feed", type=click.Choice(["replay", "live"]), default="replay", show_default=True,
              help="replay: the local candle store (or the synthetic market when it is empty); live: poll the exchange.")
@click.option("--live", "live_orders", is_flag=True, help="Send REAL orders through the exchange (needs --feed live and API keys in the environment).")
@click.option("--speed", type=float, default=0.0, show_default=True, help="Replay pace, times real time (0 = as fast as possible).")
@click.option("--from", "start_from", default=None, metavar="DATE", help="Replay from this UTC date/time; earlier candles only warm up the features (e.g. after a model's training range).")
@click.option("--max-candles", type=int, default=None, help="Stop after processing this many new candles.")
@click.option("--fee-bps", type=float, default=None, help="Paper broker fee in basis points [default: [broker] fee_bps or 10].")
@click.option("--slippage-bps", type=float, default=None, help="Paper broker slippage in basis points [default: [broker] slippage_bps or 2].")
@click.option("--spread-bps", type=click.FloatRange(min=0, max=10_000, max_open=True), default=None,
              help="Paper broker bid-ask spread in basis points; fills pay half of it [default: [broker] spread_bps, else estimated per candle from the candles before it (EDGE)].")
@click.option("--cash", type=float, default=None, help="Starting cash of a new account [default: [broker] cash or 10000].")
@click.option("--model-version", default=None, help="Model version to load (default: the latest).")
@click.option("--bars", "synthetic_bars", type=int, default=5000, show_default=True, help="Bars of the synthetic market when no data is stored.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic market.")
@click.option("--isolation", type=click.Choice(["process", "inline"]), default="process", show_default=True,
              help="process: the strategy's code runs in a worker process without API keys, which the engine never "
                   "imports; inline: in the engine's process (faster to start, no protection from the strategy).")
@click.option("--quiet", is_flag=True, help="Log only the candles that traded or raised a risk event.")
@click.option("--json", "as_json", is_flag=True, help="Print the end-of-run summary as JSON.")
@pass_app
def run(app: AppContext, plugin_names: tuple[str, ...], as_json: bool, **options) -> None:
    """Run a strategy on the replay or live feed with the paper (default) or live broker.

    Ctrl-C or SIGTERM finishes the current candle, commits and exits 0; a restart
    continues after the last processed candle. `trader status` shows where it stands.

    With two or more markets (--symbol repeated, or [plugins.NAME] symbols in trader.toml)
    the strategy trades them all from one account, on their stored candles.
    """
    if len(set(plugin_names)) != len(plugin_names):
        raise click.UsageError("each --plugin may be given once")
    if len(plugin_names) > 1:
        manager = app.plugins_for(())
        for name in plugin_names:  # refuse an unknown or broken name before starting any process
            record = manager.records.get(name)
            if manager.entry_point(name) is None or record is None or not record.is_strategy or record.status == "error":
                manager.strategy(name)  # the manager's own one-line error: unknown, disabled, failed or in conflict
        from trader.engine.parallel import run_in_subprocesses

        code = run_in_subprocesses(app, plugin_names, options, as_json=as_json)
        if code:
            raise SystemExit(code)  # the worst exit status of the strategies' processes
        return

    from trader.engine.parallel import run_one

    symbols, timeframe = run_markets(app.config, plugin_names[0], options["symbol"], options["timeframe"])
    options.update(symbol=symbols[0], symbols=symbols, timeframe=timeframe)
    summary = run_one(app, plugin_names[0], options)
    if as_json:
        import json

        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        click.echo(summary.describe())


def run_markets(config: Any, name: str, symbols: tuple[str, ...], timeframe: str | None) -> tuple[tuple[str, ...], str]:
    """The markets and timeframe ``trader run --plugin NAME`` trades: ``--symbol``/``--timeframe``, else
    ``[plugins.NAME] symbols``/``timeframe``, else BTC/USDT 1h. Two or more symbols are a basket."""
    from trader.cli.market_options import named_twice
    from trader.data.frame import check_symbol
    from trader.errors import DataError
    from trader.timeframes import normalize_timeframe

    listed, configured = config.plugin_markets(name)
    where = f"{config.path or 'trader.toml'}: [plugins.{name}]"
    if timeframe is None and configured is not None:
        try:
            timeframe = normalize_timeframe(configured)
        except ValueError as exc:
            raise ConfigError(f"{where} timeframe: {exc}") from None
    if symbols:
        return tuple(symbols), timeframe or DEFAULT_TIMEFRAME
    out: list[str] = []
    for item in listed:
        try:
            symbol = check_symbol(item)
        except DataError as exc:
            raise ConfigError(f"{where} symbols: {exc}") from None
        out.append(symbol)
    problem = named_twice(out, given=False)
    if problem is not None:
        raise ConfigError(f"{where} symbols {problem}")
    return tuple(out) or (DEFAULT_SYMBOL,), timeframe or DEFAULT_TIMEFRAME

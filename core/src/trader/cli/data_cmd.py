"""``trader data``: list, import, download and synthesise candle datasets."""

from __future__ import annotations

import json
import sys

import click

from trader.cli.main import AppContext, pass_app
from trader.cli.market_options import symbol_callback, timeframe_callback

_CONFLICT = click.Choice(["keep-last", "keep-first", "fail"])
_INVALID = click.Choice(["fail", "drop"])


@click.group()
def data() -> None:
    """Market data: the candle store under TRADER_HOME/data."""


def _echo_json(payload: object) -> None:
    click.echo(json.dumps(payload, indent=2))


@data.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_(app: AppContext, as_json: bool) -> None:
    """Stored datasets: exchange, symbol, timeframe, first, last, rows, gaps."""
    from trader.data.report import render_datasets
    from trader.data.store import CandleStore

    infos = CandleStore(app.home).list()
    if as_json:
        _echo_json([i.as_dict() for i in infos])
        return
    for line in render_datasets(infos):
        click.echo(line)


@data.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--symbol", callback=symbol_callback, help="Market symbol, e.g. BTC/USDT [default: the file's symbol column, else its name].")
@click.option("--timeframe", callback=timeframe_callback, help="Bar length, e.g. 1h [default: from the file name].")
@click.option("--exchange", "exchange", help="Exchange label in the store [default: from a CryptoDataDownload file name, else 'imported'].")
@click.option("--on-conflict", type=_CONFLICT, default="keep-last", show_default=True, help="Rows with the same time and different values: keep the later row in the file, the earlier, or refuse the file.")
@click.option("--on-invalid", type=_INVALID, default="fail", show_default=True, help="Rows with an unreadable time or impossible values: refuse the file, or drop them (reported).")
@click.option("--fill-gaps", is_flag=True, help="Fill missing bars with flat zero-volume candles, flagged as filled.")
@click.option("--drop-outliers", is_flag=True, help="Drop extreme spikes instead of only reporting them.")
@click.option("--drop-incomplete/--keep-incomplete", default=True, show_default=True,
              help="A final bar with 5x less volume than the bars before it may still have been forming: drop it (flagged either way).")
@click.option("--dry-run", is_flag=True, help="Validate and report; store nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def import_(
    app: AppContext,
    path: str,
    symbol: str | None,
    timeframe: str | None,
    exchange: str | None,
    on_conflict: str,
    on_invalid: str,
    fill_gaps: bool,
    drop_outliers: bool,
    drop_incomplete: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Validate a candle file and merge it into the store.

    Reads ccxt/freqtrade JSON, freqtrade feather, CryptoDataDownload CSV and generic
    CSV/Parquet files; the report says what was found and what was done. A file that
    fails validation, or is larger than the [data] limits of trader.toml, changes nothing in the store.
    """
    from trader.data.ingest import import_candle_file
    from trader.data.limits import DEFAULT_MAX_FILL_BARS, ImportLimits
    from trader.data.report import render_import
    from trader.data.validate import ImportPolicy

    settings = app.config.data_limits()
    limits = ImportLimits.from_settings(settings)
    policy = ImportPolicy(on_conflict=on_conflict, on_invalid=on_invalid, fill_gaps=fill_gaps, drop_outliers=drop_outliers,
                          max_fill_bars=settings.get("max_fill_bars", DEFAULT_MAX_FILL_BARS))
    result = import_candle_file(app.home, path, symbol, timeframe, exchange, policy, dry_run=dry_run, limits=limits,
                                drop_incomplete=drop_incomplete)
    if as_json:
        _echo_json(result.as_dict())
        return
    for line in render_import(result):
        click.echo(line)


@data.command("download")
@click.option("--exchange", "exchange_id", help="ccxt exchange id, e.g. binance [default: [exchange] id in trader.toml].")
@click.option("--symbol", required=True, callback=symbol_callback, help="Market symbol, e.g. BTC/USDT.")
@click.option("--timeframe", required=True, callback=timeframe_callback, help="Bar length, e.g. 1h.")
@click.option("--since", required=True, help="First bar, UTC: 2024-01-01 or 2024-01-01T12:00.")
@click.option("--until", help="End (exclusive), UTC [default: now].")
@click.option("--on-invalid", type=_INVALID, default="fail", show_default=True, help="Bars with impossible values: stop, or drop them (reported).")
@click.option("--max-retries", type=click.IntRange(0, 100), default=5, show_default=True, help="Retries in a row for network errors and rate limits.")
@click.option("--backoff", type=click.FloatRange(0, 3600), default=1.0, show_default=True, help="First retry delay in seconds; doubles each retry.")
@click.option("--backoff-cap", type=click.FloatRange(0, 3600), default=30.0, show_default=True, help="Longest retry delay in seconds.")
@click.option("--progress/--no-progress", default=None, help="Progress bar [default: when stderr is a terminal].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def download(
    app: AppContext,
    exchange_id: str | None,
    symbol: str,
    timeframe: str,
    since: str,
    until: str | None,
    on_invalid: str,
    max_retries: int,
    backoff: float,
    backoff_cap: float,
    progress: bool | None,
    as_json: bool,
) -> None:
    """Download candles from an exchange through ccxt, resuming where the store ends.

    Uses [exchange] id and the [exchange.ccxt] table of trader.toml (passed verbatim to
    ccxt: urls, options, timeout, ...). Network errors and rate limits are retried with
    capped exponential backoff; an interrupted download continues on the next run.
    """
    from trader.data.download import RetryPolicy, download_candles, make_exchange
    from trader.data.frame import check_symbol, check_timeframe, parse_time_ms
    from trader.data.report import render_download
    from trader.data.store import CandleStore
    from trader.data.validate import ImportPolicy
    from trader.errors import ConfigError, DataError

    try:
        symbol = check_symbol(symbol)
        check_timeframe(timeframe)
        since_ms = parse_time_ms(since, "--since")
        until_ms = parse_time_ms(until, "--until") if until else None
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    if until_ms is not None and until_ms <= since_ms:
        raise ConfigError("--until must be later than --since")
    exchange = make_exchange(app.config, exchange_id, credentials=False)
    show = sys.stderr.isatty() if progress is None else progress
    retry = RetryPolicy(max_retries=max_retries, backoff=backoff, backoff_cap=backoff_cap)
    kwargs = dict(
        exchange_id=exchange.id,
        policy=ImportPolicy(on_invalid=on_invalid),
        retry=retry,
    )
    store = CandleStore(app.home)
    if show:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
            task = bar.add_task(f"{exchange.id} {symbol} {timeframe}", total=None)

            def report(done: int, expected: int) -> None:
                bar.update(task, completed=done, total=expected)

            result = download_candles(exchange, store, symbol, timeframe, since_ms, until_ms, progress=report, **kwargs)
    else:
        result = download_candles(exchange, store, symbol, timeframe, since_ms, until_ms, **kwargs)
    if as_json:
        _echo_json(result.as_dict())
        return
    for line in render_download(result):
        click.echo(line)


@data.command("synth")
@click.option("--symbol", default="SYN/USDT", show_default=True, callback=symbol_callback, help="Symbol to store it under.")
@click.option("--timeframe", default="1h", show_default=True, callback=timeframe_callback, help="Bar length.")
@click.option("--bars", type=click.IntRange(1, 50_000_000), default=5000, show_default=True, help="Number of bars.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Random seed; the same seed gives byte-identical data.")
@click.option("--start", default="2024-01-01", show_default=True, help="Open time of the first bar, UTC.")
@click.option("--planted-signal", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Strength of the planted, learnable pattern (0 = none).")
@click.option("--bounce-bps", type=click.FloatRange(0, 5000, max_open=True), default=0.0, show_default=True,
              help="Bid-ask spread in basis points: opens and closes trade at the bid or the ask around the mid (a bid-ask bounce; 0 = none).")
@click.option("--output", type=click.Path(dir_okay=False), help="Write a CSV, Parquet or JSON file instead of storing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def synth(
    app: AppContext,
    symbol: str,
    timeframe: str,
    bars: int,
    seed: int,
    start: str,
    planted_signal: float,
    bounce_bps: float,
    output: str | None,
    as_json: bool,
) -> None:
    """Generate the synthetic market (see docs/data.md) into the store as exchange 'synthetic'."""
    from trader.data.export import write_candles_file
    from trader.data.frame import format_ms
    from trader.data.store import CandleStore
    from trader.data.synth import synthetic_candles
    from trader.errors import ConfigError, DataError

    try:
        df = synthetic_candles(symbol=symbol, timeframe=timeframe, bars=bars, seed=seed, start=start, planted_signal=planted_signal,
                               bounce_bps=bounce_bps)
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    if output:
        where = write_candles_file(df, output)
        payload = {"output": str(where), "rows": len(df), "seed": seed}
        text = f"wrote {len(df):,} synthetic bars (seed {seed}) to {where}"
    else:
        merge = CandleStore(app.home).write("synthetic", symbol, timeframe, df, replace=True)
        payload = {"store": merge.as_dict(), "seed": seed, "bounce_bps": bounce_bps}
        text = (
            f"stored synthetic {symbol} {timeframe}: {len(df):,} bars (seed {seed}, planted signal {planted_signal:g}"
            + (f", bid-ask bounce {bounce_bps:g} bps" if bounce_bps else "") + ") "
            f"{format_ms(merge.info.first)} .. {format_ms(merge.info.last)}"
        )
    if as_json:
        _echo_json(payload)
    else:
        click.echo(text)

"""``trader status`` (where each strategy stands), ``trader resume`` (clear a halt) and ``trader halt`` (the kill switch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from trader.cli.main import AppContext, pass_app

if TYPE_CHECKING:
    from trader.engine.store import StateStore


def _namespaces(app: AppContext, names: tuple[str, ...]) -> list[str]:
    """The asked strategies, or every strategy with a state folder."""
    from trader.errors import UnknownPluginError

    root = app.home / "strategies"
    have = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not names:
        return have
    for name in names:
        if name not in have and name not in app.plugins.strategy_names():
            installed = ", ".join(app.plugins.strategy_names()) or "none"
            raise UnknownPluginError(f"unknown strategy {name!r}; installed strategies: {installed}")
    return list(names)


def _open(app: AppContext, name: str) -> StateStore | None:
    """The strategy's store through ``trader_state_store`` (its own namespace only), or ``None`` without state.

    Creates nothing: without a strategy folder there is no state to read.
    """
    directory = app.config.strategy_dir(name)
    if not directory.is_dir():
        return None
    from trader.engine.runner import open_state_store

    if name in app.plugins.strategy_names():
        return open_state_store(app.plugins_for([name]), app.config, name)
    from trader.engine.state import TradingState  # the strategy is uninstalled: its state is still readable

    return TradingState.open(name, directory, create=False)


def _summary(app: AppContext, name: str) -> dict:
    """One strategy's summary, read without writing or creating anything; ``error`` says why it could not be read."""
    from trader.engine.lock import lock_holder
    from trader.engine.state import StateMissingError, reading_only

    running = lock_holder(app.config.strategy_dir(name))
    try:
        with reading_only():
            store = _open(app, name)
            if store is None:
                return {"strategy": name, "account": None, "running_pid": running}
            try:
                summary = store.summary()
            finally:
                store.close()
    except StateMissingError:
        return {"strategy": name, "account": None, "running_pid": running}
    except Exception as exc:  # a broken file or a failing store hook: named, and the others still shown
        return {"strategy": name, "account": None, "running_pid": running, "error": _reason(exc)}
    summary["running_pid"] = running
    if summary.get("markets") is not None:
        _add_limits(app, name, summary)
    return summary


def _add_limits(app: AppContext, name: str, summary: dict) -> None:
    """A basket's portfolio limits as the config says now, beside the account's figures (``limits`` is
    ``None`` with ``limits_error`` when they cannot be known: the strategy is not installed, a bad value)."""
    from trader.engine import strategy_limits
    from trader.portfolio.status import limit_standing

    if name not in app.plugins.strategy_names():
        summary.update(limits=None, limits_error="the strategy is not installed")
        return
    try:
        limits = strategy_limits(app.plugins_for([name]).strategy(name).info, app.config)
    except Exception as exc:  # shown with the figures, which are still worth seeing
        summary.update(limits=None, limits_error=_reason(exc))
        return
    summary["limits"] = limit_standing(summary["portfolio"], limits)


def _reason(exc: BaseException) -> str:
    from trader.errors import TraderError

    text = " ".join(str(exc).split())
    return text if isinstance(exc, TraderError) and text else f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@click.command()
@click.option("--plugin", "plugin_names", multiple=True, help="Only this strategy (repeatable); default: every strategy with state.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def status(app: AppContext, plugin_names: tuple[str, ...], as_json: bool) -> None:
    """Positions, cash, equity, PnL, risk state and reason, and latency of each strategy.

    Changes no state file and leaves nothing behind. A strategy whose state cannot be read is named with the
    reason (``error`` in --json) and the others are still shown; the exit code is then 1.
    """
    import json

    from trader.engine.summary import format_status

    summaries = [_summary(app, name) for name in _namespaces(app, plugin_names)]
    failed = any("error" in s for s in summaries)
    if as_json:
        click.echo(json.dumps(summaries, indent=2, default=str))
    elif not summaries:
        click.echo(f"no strategy has run yet in {app.home} (start one with: trader run --plugin NAME)")
    else:
        click.echo("\n\n".join(format_status(s) for s in summaries))
    if failed:
        click.get_current_context().exit(1)


def _control_manager(app: AppContext, name: str):
    """The manager that opens ``name``'s store through ``trader_state_store``; ``None`` when it is not installed."""
    return app.plugins_for([name]) if name in app.plugins.strategy_names() else None


@click.command()
@click.option("--plugin", "plugin_name", required=True, help="Strategy whose halt to clear.")
@click.option("--note", default="", help="Why (recorded with the resume).")
@pass_app
def resume(app: AppContext, plugin_name: str, note: str) -> None:
    """Clear a halt (and the breaker counters) so the strategy trades again.

    The drawdown peak and the day's starting equity restart from the current equity.
    If the strategy is running, its process applies the resume at its next candle.
    """
    from trader.engine.control import request_resume

    _namespaces(app, (plugin_name,))
    click.echo(request_resume(app.config, plugin_name, note, manager=_control_manager(app, plugin_name)).describe())


@click.command()
@click.option("--plugin", "plugin_name", required=True, help="Strategy to halt.")
@click.option("--note", default="", help="Why (recorded with the halt and sent with its alert).")
@pass_app
def halt(app: AppContext, plugin_name: str, note: str) -> None:
    """Halt a strategy (the kill switch): it sends no order until `trader resume`.

    If the strategy is running, its process applies the halt before its next candle; the
    halt is stored with the account, so a restart stays halted.
    """
    from trader.engine.control import request_halt

    _namespaces(app, (plugin_name,))
    click.echo(request_halt(app.config, plugin_name, note, manager=_control_manager(app, plugin_name)).describe())

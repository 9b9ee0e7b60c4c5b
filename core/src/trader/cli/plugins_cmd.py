"""``trader plugins``: what is installed, what it implements, what failed to load, what is slow.

The plugins are imported by the probe (:mod:`trader.plugin_probe`), never by this process.
"""

from __future__ import annotations

import json

import click

from trader.cli.main import AppContext, pass_app


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--hook", "hook_filter", help="Only plugins implementing this hook.")
@pass_app
def plugins(app: AppContext, as_json: bool, hook_filter: str | None) -> None:
    """List installed plugins: name, distribution, version, hooks, status and import time."""
    from trader.plugin_probe import SLOW_IMPORT_MS

    records = list(app.plugin_listing().records.values())
    if hook_filter:
        records = [r for r in records if hook_filter in r.hooks]
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    for r in records:
        kind = "strategy" if r.is_strategy else "plugin"
        timing = f", import {r.import_ms:.0f} ms" if r.import_ms is not None else ""
        click.echo(f"{ascii(r.name)[1:-1]:<16} {r.distribution} {r.version}  [{r.status}, {kind}{timing}]")
        if r.error:
            click.echo(f"    error: {r.error}")
        elif r.hooks:
            click.echo(f"    hooks: {', '.join(r.hooks)}")
    slow = [r for r in records if r.import_ms is not None and r.import_ms > SLOW_IMPORT_MS]
    if slow:
        listed = ", ".join(f"{r.name} ({r.import_ms / 1000:.1f} s)" for r in slow)
        click.echo(f"slow to import (over {SLOW_IMPORT_MS / 1000:g} s): {listed}")

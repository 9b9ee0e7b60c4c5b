"""The ``trader`` command group: global options, lazy sub-commands and error handling.

Sub-commands live in their own modules and are imported only when used, so
``trader --help`` and ``trader plugins`` never import torch, pandas, ccxt or
scikit-learn.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterable
from typing import Any

import click

from trader import __version__
from trader.errors import TraderError

__all__ = ["cli", "main", "AppContext", "pass_app"]

#: command name -> "module:attribute". A module that does not exist yet is not listed.
LAZY_COMMANDS: dict[str, str] = {
    "plugins": "trader.cli.plugins_cmd:plugins",
    "data": "trader.cli.data_cmd:data",
    "run": "trader.cli.run_cmd:run",
    "status": "trader.cli.status_cmd:status",
    "resume": "trader.cli.status_cmd:resume",
    "halt": "trader.cli.status_cmd:halt",
    "serve": "trader.cli.serve_cmd:serve",
    "train": "trader.cli.train_cmd:train",
    "models": "trader.cli.train_cmd:models",
    "compare": "trader.cli.compare_cmd:compare",
    "tune": "trader.cli.tune_cmd:tune",
    "backtest": "trader.cli.backtest_cmd:backtest",
    "check": "trader.cli.check_cmd:check",
    "new-plugin": "trader.cli.authoring_cmd:new_plugin",
    "install": "trader.cli.authoring_cmd:install",
    "uninstall": "trader.cli.authoring_cmd:uninstall",
}


class AppContext:
    """What every command gets: home, config and a plugin manager built on first use."""

    def __init__(self, home: str | None, config_path: str | None, debug: bool, log_format: str) -> None:
        self.home_option = home
        self.config_path = config_path
        self.debug = debug
        self.log_format = log_format
        self._config = None
        self._manager = None
        self._managers: dict[frozenset[str], Any] = {}

    @property
    def config(self):
        if self._config is None:
            from trader.config import load_config

            self._config = load_config(self.config_path, self.home_option)
        return self._config

    @property
    def home(self):
        return self.config.home

    @property
    def plugin_cache(self):
        """Where the plugin probe's classification is kept (see :mod:`trader.plugin_probe`)."""
        return self.home / "cache" / "plugins.json"

    @property
    def plugins(self):
        """A manager that knows every plugin and imports a strategy the first time it is asked for.

        Commands that name their strategies use :meth:`plugins_for`, which imports no other.
        """
        if self._manager is None:
            from trader.plugins import TraderPluginManager

            self._manager = TraderPluginManager(strategies=(), on_demand=True, probe_cache=self.plugin_cache)
        return self._manager

    def plugins_for(self, names: Iterable[str]):
        """A manager that imports the non-strategy plugins and the strategies ``names``, no other strategy."""
        key = frozenset(names)
        if key not in self._managers:
            from trader.plugins import TraderPluginManager

            self._managers[key] = TraderPluginManager(strategies=key, probe_cache=self.plugin_cache)
        return self._managers[key]

    def plugin_listing(self):
        """A manager for ``trader plugins``: a fresh probe of every plugin, none imported here."""
        from trader.plugins import TraderPluginManager

        return TraderPluginManager(strategies=(), import_plugins=False, probe_cache=self.plugin_cache, refresh_probe=True)


pass_app = click.make_pass_decorator(AppContext)


class LazyGroup(click.Group):
    def __init__(self, *args: Any, lazy_commands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands or {}

    def _available(self, name: str) -> bool:
        module_name = self.lazy_commands[name].split(":")[0]
        return importlib.util.find_spec(module_name) is not None

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [name for name in self.lazy_commands if self._available(name)]
        return sorted(set(super().list_commands(ctx)) | set(lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands and self._available(cmd_name):
            module_name, attr = self.lazy_commands[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy_commands=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trader")
@click.option("--home", envvar="TRADER_HOME", type=click.Path(file_okay=False), help="Where data, state and models live [env TRADER_HOME; default ~/.trader].")
@click.option("--config", "config_path", envvar="TRADER_CONFIG", type=click.Path(dir_okay=False), help="TOML settings file [env TRADER_CONFIG; default HOME/trader.toml].")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Log line format on stderr.")
@click.pass_context
def cli(ctx: click.Context, home: str | None, config_path: str | None, debug: bool, log_format: str) -> None:
    """trader: crypto trading strategies as plugins, with a risk audit strategies cannot bypass."""
    from trader.log import configure_logging

    configure_logging(log_format, logging.DEBUG if debug else logging.INFO)
    ctx.obj = AppContext(home, config_path, debug, log_format)
    if not ctx.resilient_parsing and "--help" not in sys.argv and "-h" not in sys.argv:
        _ = ctx.obj.config  # a broken trader.toml is reported before any command runs


def _wants_debug(argv: list[str]) -> bool:
    return "--debug" in argv


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI, turning :class:`TraderError` into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # Without standalone mode, click returns ctx.exit(n)'s code instead of raising it.
        exit_code = cli.main(args=args, prog_name="trader", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except TraderError as exc:
        if _wants_debug(args):
            import traceback

            traceback.print_exc()
        from trader.log import mask_secrets

        click.echo(f"Error: {mask_secrets(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: still one line unless --debug
        if _wants_debug(args):
            raise
        from trader.log import mask_secrets

        click.echo(f"Internal error: {type(exc).__name__}: {mask_secrets(str(exc))} (run with --debug for the traceback)",
                   err=True)
        sys.exit(1)
    sys.exit(exit_code if isinstance(exit_code, int) else 0)

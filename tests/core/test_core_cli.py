"""The `trader` command as a user meets it: version, listing, refusals, config errors, start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys

from cli_runner import TRADER_EXE, run_trader

from trader import __version__

HEAVY = ("torch", "pandas", "sklearn", "ccxt", "matplotlib", "pyarrow")


def test_version(trader_home):
    result = run_trader("--version", home=trader_home)
    assert result.returncode == 0
    assert result.stdout.strip() == f"trader, version {__version__}"


def test_plugins_lists_the_shipped_strategies_with_versions(trader_home):
    result = run_trader("plugins", "--json", home=trader_home)
    assert result.returncode == 0, result.stderr
    records = {r["name"]: r for r in json.loads(result.stdout)}
    for name, dist in [("dl_lstm", "trader-dl-lstm"), ("dl_transformer", "trader-dl-transformer"),
                       ("ensemble", "trader-ensemble")]:
        assert records[name]["distribution"] == dist
        assert records[name]["version"] == "0.1.0"
        assert records[name]["status"] == "loaded"
        assert records[name]["is_strategy"]
    assert records["core_risk"]["status"] == "core"


def test_plugins_text_listing_and_hook_filter(trader_home):
    result = run_trader("plugins", "--hook", "trader_audit_order", home=trader_home)
    assert result.returncode == 0
    assert "core_risk" in result.stdout and "dl_lstm" not in result.stdout


def test_unknown_plugin_exits_2_naming_installed(trader_home):
    result = run_trader("run", "--plugin", "nope", home=trader_home)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line == ("Error: unknown strategy 'nope'; installed strategies: buy_and_hold, dl_lstm, dl_transformer, ensemble, "
                    "momentum_rank, sma_cross")


def test_help_and_plugins_import_nothing_heavy():
    code = (
        "import sys\n"
        "from trader.cli.main import cli\n"
        "for args in (['--help'], ['plugins'], ['run', '--help']):\n"
        "    try:\n"
        "        cli.main(args=args, prog_name='trader', standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY="


def test_bad_config_is_one_line_and_exit_2(trader_home):
    (trader_home / "trader.toml").write_text("[exchange\nid = 1\n")
    result = run_trader("plugins", home=trader_home)
    assert result.returncode == 2
    assert result.stderr.startswith(f"Error: {trader_home / 'trader.toml'}: invalid TOML")
    assert len(result.stderr.strip().splitlines()) == 1
    missing = run_trader("--config", str(trader_home / "missing.toml"), "run", "--plugin", "buy_and_hold",
                         home=trader_home)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"Error: config file not found: {trader_home / 'missing.toml'}"


def test_credentials_in_config_are_refused(trader_home):
    from trader.config import load_config
    from trader.errors import ConfigError

    (trader_home / "trader.toml").write_text('[exchange]\nid = "binance"\n[exchange.ccxt]\napiKey = "k"\n')
    try:
        load_config(home=trader_home)  # refused at load, for every command
    except ConfigError as exc:
        assert "TRADER_API_KEY" in str(exc)
    else:
        raise AssertionError("credentials in trader.toml must be refused")


def test_unexpected_errors_are_one_line_unless_debug(trader_home, tmp_path):
    # A plugin whose metadata hook raises: `run` must not dump a traceback without --debug.
    pkg = tmp_path / "crashy"
    pkg.mkdir()
    (pkg / "crashy_plugin.py").write_text(
        "from trader import hookimpl\n"
        "@hookimpl\n"
        "def trader_strategy_info():\n"
        "    raise ZeroDivisionError('metadata exploded')\n"
    )
    code = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import crashy_plugin\n"
        "from trader.plugins import TraderPluginManager\n"
        "from trader.cli import main\n"
        "orig = TraderPluginManager.__init__\n"
        "def init(self, **kw):\n"
        "    orig(self, **kw)\n"
        "    self.register(crashy_plugin, 'crashy')\n"
        "TraderPluginManager.__init__ = init\n"
        "main(sys.argv[2:])\n"
    )
    plain = subprocess.run([sys.executable, "-c", code, str(pkg), "run", "--plugin", "crashy"],
                           capture_output=True, text=True, env={"TRADER_HOME": str(trader_home), "PATH": ""})
    assert plain.returncode == 1
    assert "Traceback" not in plain.stderr
    assert plain.stderr.strip() == (
        "Error: plugin 'crashy': trader_strategy_info raised ZeroDivisionError: metadata exploded"
    )
    debug = subprocess.run([sys.executable, "-c", code, str(pkg), "--debug", "run", "--plugin", "crashy"],
                           capture_output=True, text=True, env={"TRADER_HOME": str(trader_home), "PATH": ""})
    assert "Traceback" in debug.stderr


def test_console_script_exists():
    assert TRADER_EXE.exists()


def test_ctx_exit_code_reaches_the_shell():
    code = (
        "import click, sys\n"
        "from trader.cli.main import cli, main\n"
        "@cli.command('exit-three')\n"
        "@click.pass_context\n"
        "def exit_three(ctx):\n"
        "    ctx.exit(3)\n"
        "main(['exit-three'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 3, result.stderr

"""Plugin loading against hostile packages: impostors, bad names, exits at import, import-time patching, slow imports.

Every package here is a real distribution, pip-installed (in one call) into a folder put on PYTHONPATH;
every command is a real ``trader`` process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import plugin_packages
import pytest
from cli_runner import run_trader
from plugin_packages import pip_install

from trader.entrypoints import DisabledPlugins, PluginSpec, name_problem
from trader.errors import ConfigError

pytestmark = pytest.mark.slow

#: A hanging import is cut after this many seconds (the slow plugin's 2 s stay under it).
TIMEOUT_S = "4"

STRATEGY = """
    import os, sys

    with open(os.environ["{marker_var}"], "a") as marker:  # who imported this plugin
        marker.write(os.path.basename(sys.argv[0]) + "\\n")
    {extra}

    from trader import Signal, StrategyInfo, hookimpl

    @hookimpl
    def trader_strategy_info():
        return StrategyInfo(name="{name}", version="6.6.6", description="{description}")

    @hookimpl
    def trader_generate_signals(request):
        return [Signal("buy", size=1.0) for _ in request.at]
"""
PATCH_RISK = """
with open(os.environ["PATCHER_MARKER"] + ".env", "a") as seen:  # does the importing process hold a credential?
    seen.write(str("MY_EXCHANGE_TOKEN" in os.environ) + "\\n")
import trader.engine.risk as risk
risk.core_verdicts = lambda *args, **kwargs: []     # the core rules allow everything
risk.state_verdicts = lambda *args, **kwargs: []
risk.CORE_RISK_PLUGIN = "nobody"
"""

AUDITOR = """
import os, sys

with open(os.environ["AUDITOR_MARKER"], "a") as marker:
    marker.write(os.path.basename(sys.argv[0]) + "\\n")

from trader import hookimpl

@hookimpl
def trader_audit_order(order):
    return None
"""


def strategy_body(name: str, marker_var: str, extra: str = "", description: str = "") -> str:
    return STRATEGY.format(name=name, marker_var=marker_var, extra=extra.strip().replace("\n", "\n    "),
                           description=description)


#: distribution -> ({entry-point name: module}, {module: source})
PACKAGES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    # Claims the name of the shipped dl_lstm strategy.
    "trader-impostor": ({"dl_lstm": "trader_impostor"},
                        {"trader_impostor": strategy_body("dl_lstm", "IMPOSTOR_MARKER", description="impostor")}),
    # Names that must never be used, nor even imported.
    "trader-bad-names": ({"zz/../buy_and_hold": "trader_bad_names", "Bad-Name": "trader_bad_names",
                          "core_risk": "trader_bad_names", "strat\u0663": "trader_bad_names"},
                         {"trader_bad_names": strategy_body("bad", "BAD_NAMES_MARKER")}),
    # Ends or interrupts its import.
    "trader-exits": ({"exits": "trader_exits"}, {"trader_exits": "import sys\nsys.exit(3)\n"}),
    "trader-interrupts": ({"interrupts": "trader_interrupts"}, {"trader_interrupts": "raise KeyboardInterrupt\n"}),
    "trader-vanishes": ({"vanishes": "trader_vanishes"}, {"trader_vanishes": "import os\nos._exit(0)\n"}),
    "trader-killed": ({"killed": "trader_killed"},
                      {"trader_killed": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"}),
    "trader-custom-base": ({"custom_base": "trader_custom_base"},
                           {"trader_custom_base": "class Doom(BaseException):\n    pass\n\nraise Doom('the end')\n"}),
    "trader-hangs": ({"hangs": "trader_hangs"}, {"trader_hangs": "import time\ntime.sleep(600)\n"}),
    # A strategy never run by the commands below that switches the core risk rules off when imported.
    "trader-patcher": ({"patcher": "trader_patcher"},
                       {"trader_patcher": strategy_body("patcher", "PATCHER_MARKER", PATCH_RISK)}),
    # A plugin that is not a strategy: trusted by installation, imported by every command.
    "trader-auditor": ({"auditor": "trader_auditor"}, {"trader_auditor": AUDITOR}),
    # A strategy whose import takes 2 s.
    "trader-slowpoke": ({"slowpoke": "trader_slowpoke"},
                        {"trader_slowpoke": strategy_body("slowpoke", "SLOWPOKE_MARKER", "import time\ntime.sleep(2)")}),
}
MARKERS = ("IMPOSTOR_MARKER", "BAD_NAMES_MARKER", "PATCHER_MARKER", "SLOWPOKE_MARKER", "AUDITOR_MARKER")
PROBE = "-c"  # sys.argv[0] of the probe process (python -I -c ...)


def write_distribution(root: Path, dist: str, entries: dict[str, str], modules: dict[str, str]) -> Path:
    return plugin_packages.write_distribution(root, dist, entries, modules, "6.6.6")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Every hostile distribution, built and pip-installed in one call into a folder put on PYTHONPATH."""
    src = tmp_path_factory.mktemp("hostile-src")
    target = tmp_path_factory.mktemp("hostile-site")
    return pip_install(target, [write_distribution(src, dist, *parts) for dist, parts in PACKAGES.items()])


@pytest.fixture(scope="module")
def markers(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("markers")


def hostile_env(site: Path, markers: Path, **extra: str) -> dict[str, str]:
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "TRADER_PLUGIN_IMPORT_TIMEOUT": TIMEOUT_S}
    env.update({var: str(markers / var.lower()) for var in MARKERS})
    env.update(extra)
    return env


def importers(markers: Path, var: str) -> list[str]:
    """The processes (their ``sys.argv[0]``) that imported the plugin writing marker ``var``."""
    path = markers / var.lower()
    return path.read_text().split() if path.exists() else []


@pytest.fixture(scope="module")
def listing(site, markers, tmp_path_factory) -> tuple[subprocess.CompletedProcess, float, Path]:
    """``trader plugins --json`` in a fresh home: its output, its time, and the home (its probe cache is warm)."""
    home = tmp_path_factory.mktemp("listing") / "home"
    home.mkdir()
    start = time.perf_counter()
    result = run_trader("plugins", "--json", home=home, env=hostile_env(site, markers, MY_EXCHANGE_TOKEN="s3cret"))
    return result, time.perf_counter() - start, home


@pytest.fixture
def warm_home(listing, tmp_path) -> Path:
    """A new home holding the probe cache that ``trader plugins`` wrote."""
    home = tmp_path / "home"
    shutil.copytree(listing[2] / "cache", home / "cache")
    return home


def by_name(records: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for record in records:
        found.setdefault(record["name"], []).append(record)
    return found


# ----------------------------------------------------------------------------- listing


def test_listing_reports_every_hostile_plugin_and_keeps_the_genuine_ones(listing, markers):
    result, _, _ = listing
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    records = by_name(json.loads(result.stdout))

    # The impostor: both registrations of dl_lstm are listed, both in error, each naming both distributions.
    claims = {r["distribution"]: r for r in records["dl_lstm"]}
    assert set(claims) == {"trader-dl-lstm", "trader-impostor"}
    for record in claims.values():
        assert record["status"] == "error"
        assert "trader-dl-lstm 0.1.0" in record["error"] and "trader-impostor 6.6.6" in record["error"]
        assert "TRADER_DISABLED_PLUGINS=dl_lstm@trader-dl-lstm or dl_lstm@trader-impostor" in record["error"]

    # Bad names: refused with the reason; the package was never imported, not even by the probe.
    for name in ("zz/../buy_and_hold", "Bad-Name", "strat\u0663"):
        (record,) = records[name]
        assert record["status"] == "error" and "invalid plugin name" in record["error"], record
    reserved = [r for r in records["core_risk"] if r["distribution"] == "trader-bad-names"]
    assert reserved[0]["status"] == "error" and "reserved for trader-core" in reserved[0]["error"]
    assert [r["status"] for r in records["core_risk"] if r["distribution"] == "trader-core"] == ["core"]
    assert [r["status"] for r in records["buy_and_hold"]] == ["builtin"]
    assert importers(markers, "BAD_NAMES_MARKER") == []

    # Exits, interrupts and crashes at import: that plugin's error, and the listing goes on.
    errors = {name: records[name][0]["error"] for name in
              ("exits", "interrupts", "vanishes", "killed", "custom_base", "hangs")}
    assert errors == {
        "exits": "import raised SystemExit: 3",
        "interrupts": "import raised KeyboardInterrupt",
        "vanishes": "import ended the process (exit code 0)",
        "killed": "import ended the process (killed by SIGKILL)",
        "custom_base": "import raised Doom: the end",
        "hangs": f"import did not finish within {TIMEOUT_S} s (TRADER_PLUGIN_IMPORT_TIMEOUT)",
    }
    for name in errors:
        assert records[name][0]["status"] == "error"

    # The strategies that load are classified by the probe, with their import time.
    for name in ("patcher", "slowpoke", "dl_transformer", "ensemble"):
        (record,) = records[name]
        assert record["status"] == "loaded" and record["is_strategy"], record
    assert records["slowpoke"][0]["import_ms"] >= 2000
    assert records["patcher"][0]["import_ms"] < 2000
    # ... by the probe: trader plugins itself imported none of them, and the probe holds no credential.
    assert set(importers(markers, "PATCHER_MARKER")) == {PROBE}
    assert set((markers / "patcher_marker.env").read_text().split()) == {"False"}


def test_text_listing_names_the_slow_plugin(site, markers, warm_home):
    probed = len(importers(markers, "SLOWPOKE_MARKER"))
    result = run_trader("plugins", home=warm_home, env=hostile_env(site, markers))
    assert result.returncode == 0, result.stderr
    assert len(importers(markers, "SLOWPOKE_MARKER")) == probed + 1  # trader plugins probes afresh, cache or not
    slow_lines = [line for line in result.stdout.splitlines() if line.startswith("slow to import")]
    assert len(slow_lines) == 1 and "slowpoke (2." in slow_lines[0] and "patcher" not in slow_lines[0]
    assert "strat\\u0663" in result.stdout  # a name is shown escaped, never as raw text
    assert "auditor          trader-auditor 6.6.6  [loaded, plugin]" in result.stdout


def test_a_bad_timeout_setting_is_one_line(site, markers, trader_home):
    result = run_trader("plugins", home=trader_home, env=hostile_env(site, markers, TRADER_PLUGIN_IMPORT_TIMEOUT="soon"))
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: TRADER_PLUGIN_IMPORT_TIMEOUT must be a positive number of seconds, not 'soon'"


# ----------------------------------------------------------------------------- naming them


def test_running_a_conflicting_name_is_refused_naming_both_distributions(site, markers, warm_home):
    result = run_trader("run", "--plugin", "dl_lstm", "--max-candles", "5", home=warm_home,
                        env=hostile_env(site, markers))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "trader-dl-lstm 0.1.0" in lines[0] and "trader-impostor 6.6.6" in lines[0]
    assert importers(markers, "IMPOSTOR_MARKER") == []  # neither was imported


@pytest.mark.parametrize(("name", "error"), [
    ("exits", "import raised SystemExit: 3"),
    ("interrupts", "import raised KeyboardInterrupt"),
    ("vanishes", "import ended the process (exit code 0)"),
    ("custom_base", "import raised Doom: the end"),
])
def test_a_plugin_that_ends_its_import_is_refused_by_name(site, markers, warm_home, name, error):
    result = run_trader("backtest", "--plugin", name, home=warm_home, env=hostile_env(site, markers))
    assert result.returncode == 2
    assert result.stderr.strip() == f"Error: strategy {name!r} failed to load (trader-{name.replace('_', '-')} 6.6.6): {error}"


def test_an_invalid_name_is_refused_and_no_path_is_built_from_it(site, markers, warm_home):
    result = run_trader("run", "--plugin", "zz/../buy_and_hold", "--max-candles", "5", home=warm_home,
                        env=hostile_env(site, markers))
    assert result.returncode == 2
    assert "invalid plugin name 'zz/../buy_and_hold'" in result.stderr and "Traceback" not in result.stderr
    assert not (warm_home / "strategies").exists()


def test_disabling_the_impostors_registration_lets_the_genuine_strategy_run(site, markers, trader_home):
    env = hostile_env(site, markers, TRADER_DISABLED_PLUGINS="dl_lstm@trader-impostor")
    listing = by_name(json.loads(run_trader("plugins", "--json", home=trader_home, env=env).stdout))
    assert {(r["distribution"], r["status"]) for r in listing["dl_lstm"]} == {("trader-dl-lstm", "loaded"),
                                                                              ("trader-impostor", "disabled")}
    train = run_trader("train", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--synthetic-bars", "1500", "--epochs", "1",
                       "--no-progress", "--param", "hidden_size=8", "--param", "head_hidden=0",
                       "--param", "sequence_length=12", "--param", "threads=1", home=trader_home, env=env, timeout=300)
    assert train.returncode == 0, train.stderr
    assert "stored dl_lstm v1" in train.stdout
    assert importers(markers, "IMPOSTOR_MARKER") == []


# ----------------------------------------------------------------------------- other strategies' commands


def test_commands_for_one_strategy_never_import_the_others(site, markers, warm_home):
    """buy_and_hold runs beside a strategy that switches the risk rules off at import, and one that takes 2 s to import."""
    env = hostile_env(site, markers)
    probed_slowpoke = importers(markers, "SLOWPOKE_MARKER")
    (warm_home / "trader.toml").write_text("[plugins.buy_and_hold.risk]\nmax_position_fraction = 0.2\nmax_drawdown = 0.001\n")

    start = time.perf_counter()
    run = run_trader("run", "--plugin", "buy_and_hold", "--max-candles", "20", "--json", home=warm_home, env=env)
    run_s = time.perf_counter() - start
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["processed"] == 20 and summary["trades"] >= 1
    # The core's rules held: buy_and_hold wants all of its equity, the operator allows 20%, and the
    # 0.1% drawdown breaker halts it (with the patcher's patch in this process, it would stay active).
    assert summary["equity"] - summary["cash"] <= 0.2 * summary["equity"] * 1.01
    assert summary["status"] == "halted" and summary["status_reason"].startswith("MAX_DRAWDOWN"), summary

    backtest = run_trader("backtest", "--plugin", "buy_and_hold", "--synthetic-bars", "400", home=warm_home, env=env)
    assert backtest.returncode == 0, backtest.stderr
    status = run_trader("status", home=warm_home, env=env)
    assert status.returncode == 0, status.stderr
    assert "buy_and_hold" in status.stdout

    # Only probes ever imported the patcher; the slow plugin was not imported again (the probe's cache held).
    assert set(importers(markers, "PATCHER_MARKER")) == {PROBE}
    assert importers(markers, "SLOWPOKE_MARKER") == probed_slowpoke
    # The plugin that is not a strategy is imported by the commands themselves.
    assert "trader" in importers(markers, "AUDITOR_MARKER")
    assert run_s < 10  # a loose bound for a busy machine; the run imports nothing that sleeps


def test_a_fresh_home_pays_the_probe_once(listing):
    """The first command in a new home probes every plugin: here the slow one's 2 s and the hanging one's timeout."""
    result, seconds, home = listing
    assert seconds >= 2 + float(TIMEOUT_S)
    assert (home / "cache" / "plugins.json").is_file()


# ----------------------------------------------------------------------------- the rules, in-process


@pytest.mark.parametrize("name", ["zz/../x", "Bad-Name", "strat\u0663", "dl_lstm\n", "x" * 65, "", "_x", "9x", "déjà"])
def test_invalid_names(name):
    assert "invalid plugin name" in name_problem(name)


@pytest.mark.parametrize("name", ["core_risk", "core_anything", "buy_and_hold", "trader_x"])
def test_reserved_names(name):
    assert "reserved for trader-core" in name_problem(name)


def test_valid_names():
    assert name_problem("dl_lstm") is None and name_problem("a" * 64) is None


def test_disabling_by_name_or_by_registration():
    impostor = PluginSpec("dl_lstm", "trader_impostor", "Trader_Impostor", "6.6.6")
    genuine = PluginSpec("dl_lstm", "trader_dl_lstm:plugin", "trader-dl-lstm", "0.1.0")
    by_registration = DisabledPlugins.parse(["dl_lstm@trader-impostor"])
    assert by_registration.disables(impostor) and not by_registration.disables(genuine)
    by_name_only = DisabledPlugins.parse([" dl_lstm "])
    assert by_name_only.disables(impostor) and by_name_only.disables(genuine)


def test_import_timeout_setting(monkeypatch):
    from trader.plugin_probe import import_timeout

    monkeypatch.delenv("TRADER_PLUGIN_IMPORT_TIMEOUT", raising=False)
    assert import_timeout() == 30
    monkeypatch.setenv("TRADER_PLUGIN_IMPORT_TIMEOUT", "2.5")
    assert import_timeout() == 2.5
    monkeypatch.setenv("TRADER_PLUGIN_IMPORT_TIMEOUT", "0")
    with pytest.raises(ConfigError, match="positive number of seconds"):
        import_timeout()


# ----------------------------------------------------------------------------- eager loading (the Python API)

EAGER = """
import json
from trader.plugins import TraderPluginManager
manager = TraderPluginManager()
print(json.dumps({key: [r.status, r.error] for key, r in manager.records.items()}))
"""


def test_eager_loading_applies_the_same_rules_in_process(site, markers, tmp_path):
    env = {**os.environ, **hostile_env(site, markers, TRADER_DISABLED_PLUGINS="vanishes,killed,hangs")}
    result = subprocess.run([sys.executable, "-c", EAGER], capture_output=True, text=True, env=env, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert records["exits"] == ["error", "import raised SystemExit: 3"]
    assert records["interrupts"] == ["error", "import raised KeyboardInterrupt"]
    assert records["dl_lstm"][0] == records["dl_lstm@trader-impostor"][0] == "error"
    assert "invalid plugin name" in records["zz/../buy_and_hold"][1]
    assert records["patcher"] == ["loaded", None] and records["vanishes"] == ["disabled", None]


def test_eager_loading_cannot_survive_a_plugin_that_ends_the_process(site, markers, tmp_path):
    """Documented: without the probe, os._exit at import ends the caller."""
    env = {**os.environ, **hostile_env(site, markers, TRADER_DISABLED_PLUGINS="killed,hangs")}
    result = subprocess.run([sys.executable, "-c", EAGER], capture_output=True, text=True, env=env, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == ""

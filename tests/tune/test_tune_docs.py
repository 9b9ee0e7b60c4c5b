"""docs/tuning.md, sentence by sentence: the promises no other tune test holds. The core's ``sma_cross``
(it marks ``fast`` and ``slow`` ``tune=True`` and refuses ``fast >= slow``) on a synthetic market, real
``trader`` processes, real SQLite studies; no plugin to install, so each command takes a second or two."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.cli_runner import copied_home, one_line_error, run_trader, synth_markets

optuna = pytest.importorskip("optuna", reason="trader-core[tune] (optuna) is not installed")

DOC = Path(__file__).resolve().parents[2] / "docs" / "tuning.md"
MARKET = ("--symbol", "AAA/USDT", "--timeframe", "1h")
QUICK = ("--no-progress", "--workers", "1")
HOUR = 3_600_000


@pytest.fixture(scope="module")
def market_home(tmp_path_factory) -> Path:
    return synth_markets(tmp_path_factory.mktemp("market"), [MARKET[1]], 1500)


@pytest.fixture
def home(tmp_path, market_home) -> Path:
    return copied_home(market_home, tmp_path)


def tune(home: Path, *args: str, toml: str | None = None, env: dict[str, str] | None = None):
    if toml is not None:
        (home / "trader.toml").write_text(toml)
    return run_trader("tune", "--plugin", "sma_cross", *args, home=home, env=env, timeout=240)


def stored(home: Path, study: str = "sma_cross-AAA-USDT-1h") -> list:
    return optuna.load_study(study_name=study, storage=f"sqlite:///{home / 'tune' / 'studies.db'}").get_trials()


def doc_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S)
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines() if line.startswith("trader ")]


@pytest.mark.parametrize("line", doc_commands())
def test_every_command_the_page_shows_parses(line):
    from trader.cli.main import cli

    result = CliRunner().invoke(cli, [*shlex.split(line)[1:], "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_the_defaults_a_refused_combination_too_few_trades_and_the_held_out_tail(home):
    done = tune(home, *MARKET, *QUICK, "--trials", "6", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # split once: 20% of the 1,500 bars held out; 4 test windows after a training window twice as long, purge 24
    t0, t1 = report["tuning_range"]
    h0, h1 = report["holdout_range"]
    assert (t1 - t0) // HOUR + 1 == 1200 and (h1 - h0) // HOUR + 1 == 300 and h0 == t1 + HOUR
    assert report["plan"] == {"train_bars": 392, "test_bars": 196, "purge": 24, "embargo": 0}
    # trial 0: the declared defaults, which lie in the space
    assert report["default"]["number"] == 0 and report["default"]["params"] == {"fast": 20, "slow": 50}
    trials = stored(home)
    assert len(trials) == report["n_trials"] == 6  # failed trials count; the search went on past them
    failed = {t.number: t.user_attrs["failed"] for t in trials if t.state.name == "FAIL"}
    refused = [why for why in failed.values() if "must be below slow" in why]
    idle = [why for why in failed.values() if re.fullmatch(r"\d trade\(s\), fewer than --min-trades 5", why)]
    assert refused and idle and len(refused) + len(idle) == len(failed)  # each failure's reason is stored
    assert report["trials"] == {"complete": 6 - len(failed), "pruned": 0, "fail": len(failed)}
    # the best parameters once more on the tuning range, then once on the tail: one fold, trained on the bars
    # just before it less the purge, tested on the whole tail
    assert report["tuning"]["range"]["start"] >= t0 and report["tuning"]["range"]["end"] == t1
    folds = report["holdout"]["folds"]
    assert len(folds) == 1
    assert folds[0]["test_start_time"] == h0 and folds[0]["test_end_time"] == h1 and folds[0]["test_rows"] == 300
    assert folds[0]["train_end_time"] == h0 - 25 * HOUR
    assert folds[0]["train_end_time"] - folds[0]["train_start_time"] == (392 - 1) * HOUR
    sharpe = report["holdout"]["significance"]["sharpe"]
    assert sharpe["confidence"] == 0.95 and sharpe["low"] <= sharpe["estimate"] <= sharpe["high"]
    assert report["holdout"]["verdict"]["line"] and report["holdout"]["benchmark"]
    assert report["importances"] is None  # fewer than two trials completed


@pytest.mark.slow
def test_pruning_stops_a_trial_winning_not_its_folds_and_trial_0_needs_settings_in_the_space(home):
    toml = "[plugins.sma_cross.tune]\nfast = { low = 2, high = 15 }\nslow = { low = 30, high = 120 }\n"
    done = tune(home, *MARKET, *QUICK, "--trials", "16", "--min-trades", "0", "--json", toml=toml)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["default"] is None  # fast = 20 lies outside the narrowed range: no trial of the current settings
    trials = stored(home)
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned and report["trials"]["pruned"] == len(pruned)
    assert all(len(t.user_attrs["folds"]) == 4 for t in pruned)  # every fold ran: pruning saved no time
    assert report["best"]["number"] not in {t.number for t in pruned}
    assert all(2 <= t.params["fast"] <= 15 and 30 <= t.params["slow"] <= 120 for t in trials)
    assert set(report["importances"]) == {"fast", "slow"}


@pytest.mark.slow
def test_a_parameter_not_searched_keeps_its_value_and_the_market_defaults_to_btc_usdt_1h(home):
    toml = ("[plugins.sma_cross]\nslow = 30\n\n"
            "[plugins.sma_cross.tune]\nfast = { low = 26, high = 33 }\nslow = false\n")
    done = tune(home, *MARKET, *QUICK, "--trials", "8", "--min-trades", "0", toml=toml)
    assert done.returncode == 0, done.stderr
    trials = stored(home)
    assert all(set(t.params) == {"fast"} for t in trials)
    for t in trials:  # slow stays 30, so a fast of 30 or more is refused by the strategy
        assert (t.state.name == "FAIL") == (t.params["fast"] >= 30), (t.params, t.user_attrs.get("failed"))
    assert {t.state.name for t in trials} == {"FAIL", "COMPLETE"}
    assert all("must be below slow (30)" in t.user_attrs["failed"] for t in trials if t.state.name == "FAIL")
    # no --symbol/--timeframe and no [plugins.NAME] symbols: BTC/USDT 1h (here the synthetic market, none stored);
    # without --workers the pool has one worker per usable core
    (home / "trader.toml").unlink()
    done = tune(home, "--no-progress", "--trials", "1", "--min-trades", "0", "--synthetic-bars", "1000", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["study"], report["symbol"], report["timeframe"]) == ("sma_cross-BTC-USDT-1h", "BTC/USDT", "1h")
    cores = len(os.sched_getaffinity(0))
    assert report["executor"] == ("local executor, in this process" if cores == 1
                                  else f"local executor, up to {cores} worker processes")


def test_without_optuna_the_command_says_how_to_install_it(home, tmp_path):
    fake = tmp_path / "no_optuna" / "optuna"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no optuna here')\n")
    line = one_line_error(tune(home, *MARKET, env={"PYTHONPATH": str(fake.parent)}))
    assert line == "Error: trader tune needs Optuna: pip install 'trader-core[tune]'"
    assert tune(home, *MARKET, env={"PYTHONPATH": str(fake.parent)}).returncode == 2


def test_an_unknown_tune_key_is_one_line_and_exit_2(home):
    done = tune(home, *MARKET, toml="[plugins.sma_cross.tune]\nfastest = true\n")
    assert done.returncode == 2
    assert one_line_error(done) == ("Error: [plugins.sma_cross.tune]: 'fastest' is not a declared parameter "
                                    "(known: fast, slow)")
    assert not (home / "tune" / "studies.db").exists() or not stored_names(home)


def stored_names(home: Path) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{home / 'tune' / 'studies.db'}")]


@pytest.mark.slow
def test_timeout_stops_asking_for_new_rounds(home):
    done = tune(home, *MARKET, *QUICK, "--trials", "40", "--batch", "2", "--min-trades", "0", "--timeout", "0.05",
                "--json")
    assert done.returncode == 0, done.stderr
    n = json.loads(done.stdout)["n_trials"]
    assert 2 <= n < 40 and n % 2 == 0  # whole rounds of --batch, then no new one


@pytest.mark.slow
def test_apply_leaves_trader_toml_as_written_and_every_command_reads_the_tuned_file(home):
    toml = "# my settings, kept\n[plugins.sma_cross]\nslow = 60  # mine\n\n[plugins.sma_cross.tune]\nfast = { low = 5, high = 15 }\nslow = true\n"
    done = tune(home, *MARKET, *QUICK, "--trials", "4", "--min-trades", "0", "--apply", toml=toml)
    assert done.returncode == 0, done.stderr
    assert (home / "trader.toml").read_text() == toml  # never rewritten
    assert "warning: trader.toml sets slow, which wins over the tuned value(s)" in done.stdout
    tuned = home / "tuned" / "sma_cross.toml"
    text = tuned.read_text()
    assert "[tuned]" in text and "[plugins.sma_cross]" in text and 'study = "sma_cross-AAA-USDT-1h"' in text
    # checked like trader.toml by every command that reads settings: a key the strategy does not declare
    tuned.write_text(text.replace("[plugins.sma_cross]\n", "[plugins.sma_cross]\nfastest = 3\n"))
    for command in (("run", "--max-candles", "5"), ("backtest",), ("compare",), ("check",)):
        line = one_line_error(run_trader(*command, "--plugin", "sma_cross", *MARKET, home=home, timeout=120))
        assert f"(with {tuned}): unknown key 'fastest' in [plugins.sma_cross]" in line or \
            f"(with {tuned}): unknown key fastest in [plugins.sma_cross]" in line, (command, line)
    tuned.unlink()  # delete the file to go back
    back = run_trader("backtest", "--plugin", "sma_cross", *MARKET, "--json", home=home, timeout=120)
    assert back.returncode == 0, back.stderr


def test_the_shipped_strategies_mark_what_the_page_says():
    from trader.plugins import TraderPluginManager

    manager = TraderPluginManager(disabled=())
    marks = {"ensemble": {"buy_threshold", "sell_threshold"}, "dl_lstm": {"buy_threshold", "sell_threshold"},
             "dl_transformer": {"buy_threshold", "sell_threshold"}, "sma_cross": {"fast", "slow"},
             "momentum_rank": {"lookback"}}
    for name, expected in marks.items():
        assert {p.name for p in manager.strategy(name).info.params if p.tune} == expected, name


def test_make_install_includes_the_postgres_extra():
    makefile = (DOC.parents[1] / "Makefile").read_text()
    assert re.search(r"pip install .*-e 'core\[[^\]]*\bpostgres\b", makefile)


def test_the_space_uses_log_scales_true_false_and_train_dot_name():
    from trader.errors import ConfigError
    from trader.tune.space import search_space
    from trader.types import ParamSpec, StrategyInfo

    info = StrategyInfo(name="s", version="1", params=(
        ParamSpec("rate", "float", 0.01, low=1e-4, high=1.0, log=True, tune=True),
        ParamSpec("flag", "bool", False, tune=True),
        ParamSpec("epochs", "int", 5, low=1, high=50),
        ParamSpec("epochs", "int", 10, low=1, high=100, section="train"),
    ))
    dims = {d.key: d for d in search_space(info, {"train.epochs": {"low": 2, "high": 20}}).dimensions}
    assert dims["rate"].log and dims["flag"].choices == (False, True)
    assert (dims["train.epochs"].section, dims["train.epochs"].bounds) == ("train", (2, 20))
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    trial = study.ask()
    for dim in dims.values():
        dim.suggest(trial)
    assert trial.distributions["rate"].log and list(trial.distributions["flag"].choices) == [False, True]
    # declared in both tables: the bare name is the [plugins.NAME] one; a name only the train table declares
    # needs no prefix
    assert [d.key for d in search_space(info, {"epochs": True, "rate": False, "flag": False}).dimensions] == ["epochs"]
    only_train = StrategyInfo(name="t", version="1", params=(ParamSpec("lr", "float", 0.1, low=0.01, high=1.0,
                                                                       section="train"),))
    assert [d.key for d in search_space(only_train, {"lr": True}).dimensions] == ["train.lr"]
    with pytest.raises(ConfigError, match="'train.nope' is not a declared parameter"):
        search_space(info, {"train.nope": True})


@pytest.mark.slow
def test_trials_of_a_trainable_strategy_keep_no_model(home):
    done = run_trader("tune", "--plugin", "ensemble", *MARKET, *QUICK, "--trials", "2", "--folds", "2", "--min-trades", "0",
                      "--json", home=home, timeout=240)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n_trials"] == 2
    assert not (home / "models").exists()
    assert run_trader("models", "list", home=home).stdout.count("ensemble") == 0


@pytest.mark.slow
def test_resuming_with_other_settings_is_refused_naming_the_first_difference(home):
    assert tune(home, *MARKET, *QUICK, "--trials", "2", "--min-trades", "0").returncode == 0
    for args, key in ((("--batch", "3"), "batch"), (("--seed", "1"), "seed"), (("--min-trades", "1"), "min_trades"),
                      (("--purge-bars", "10"), "plan"), (("--holdout", "0.3"), "tuning_range")):
        defaults = {"--min-trades": "0"}
        given = dict(zip(args[::2], args[1::2], strict=True))
        extra = [a for k, v in {**defaults, **given}.items() for a in (k, v)]
        line = one_line_error(tune(home, *MARKET, *QUICK, "--trials", "2", *extra))
        assert f"study 'sma_cross-AAA-USDT-1h' was started with another {key} (" in line, (args, line)
        assert line.endswith("run with its settings to resume, or give another --study")
    line = one_line_error(tune(home, *MARKET, *QUICK, "--trials", "2", "--min-trades", "0",
                               toml="[plugins.sma_cross.tune]\nfast = { low = 2, high = 30 }\n"))
    assert "was started with another space (" in line

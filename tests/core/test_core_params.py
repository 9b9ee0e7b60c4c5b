"""Strategies declare their parameters; ``[plugins.NAME]`` is checked before any command starts.

The validator is held by property tests against a rule stated once; the shipped declarations
are held against the strategies' own parsing; real ``trader`` processes show that a typo in
``[plugins.dl_lstm]`` is refused by every command before it trains, loads state or trades,
and that a pip-installed strategy without declarations still gets its table as it is.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import textwrap
from pathlib import Path

import attrs
import pytest
from cli_runner import run_trader
from hypothesis import given
from hypothesis import strategies as st
from limited_runner import tree_digest
from plugin_packages import pip_install, plugin_env, write_plugin

from trader import ParamSpec, StrategyInfo
from trader.engine.wire import info_from_wire, info_to_wire
from trader.errors import ConfigError
from trader.params import validate_params, validate_section

# --------------------------------------------------------------------------- ParamSpec


def _expected(kind: str, low, high, value) -> bool:
    """The rule, stated once: ints are ints (not bools), floats are finite numbers (not bools), within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == "int" and not isinstance(value, int):
        return False
    if not math.isfinite(value):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


values = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                   st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2))


@given(kind=st.sampled_from(["int", "float"]), low=st.none() | st.integers(-1000, 1000),
       span=st.none() | st.integers(0, 2000), value=values)
def test_a_number_is_accepted_exactly_when_the_rule_says_so(kind, low, span, value):
    high = None if span is None else (low or 0) + span
    spec = ParamSpec("x", kind, low=low, high=high)
    if _expected(kind, low, high, value):
        checked = spec.check(value)
        assert checked == value and type(checked) is (float if kind == "float" else int)
    else:
        with pytest.raises(ValueError, match="^must be "):
            spec.check(value)


@given(value=values)
def test_bool_str_and_choice_accept_only_their_own(value):
    assert (value is True or value is False) == _accepts(ParamSpec("x", "bool"), value)
    assert isinstance(value, str) == _accepts(ParamSpec("x", "str"), value)
    choice = ParamSpec("x", "choice", choices=("a", "b", 3))
    assert (value in ("a", "b", 3) and not isinstance(value, bool)) == _accepts(choice, value)


def _accepts(spec: ParamSpec, value) -> bool:
    try:
        spec.check(value)
    except ValueError:
        return False
    return True


def test_a_list_checks_every_item_and_a_special_value_passes_beside_the_range():
    windows = ParamSpec("windows", "int", (5, 10), low=2, many=True)
    assert windows.check([2, 7]) == [2, 7]
    with pytest.raises(ValueError, match="^item 2 must be >= 2, got 1$"):
        windows.check([5, 1])
    with pytest.raises(ValueError, match="must be a list"):
        windows.check(5)
    threshold = ParamSpec("label_threshold", "float", 0.0, low=0.0, choices=("fee",))
    assert threshold.check("fee") == "fee" and threshold.check(1) == 1.0
    with pytest.raises(ValueError, match="must be a number or 'fee', got 'fees'"):
        threshold.check("fees")


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "x", "kind": "list"}, "kind"),
    ({"name": "1x", "kind": "int"}, "name must be a word"),
    ({"name": "x" * 65, "kind": "int"}, "at most 64"),
    ({"name": "risk", "kind": "int"}, "sub-table"),
    ({"name": "x", "kind": "int", "default": 9, "high": 5}, "must be <= 5"),
    ({"name": "x", "kind": "int", "default": True}, "whole number"),
    ({"name": "x", "kind": "float", "low": 2.0, "high": 1.0}, "above high"),
    ({"name": "x", "kind": "float", "low": float("nan")}, "finite"),
    ({"name": "x", "kind": "int", "low": 0.5}, "integers"),
    ({"name": "x", "kind": "str", "low": 1}, "bound an int or float"),
    ({"name": "x", "kind": "choice"}, "needs choices"),
    ({"name": "x", "kind": "bool", "choices": ("a",)}, "choices apply"),
    ({"name": "x", "kind": "float", "log": True, "low": 0.0}, "low > 0"),
    ({"name": "x", "kind": "int", "section": "risk"}, "section"),
])
def test_an_invalid_declaration_cannot_exist(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ParamSpec(**kwargs)


def test_a_strategy_declares_a_name_once_per_table():
    with pytest.raises(ValueError, match="declares 'a' twice"):
        StrategyInfo("s", "1", params=(ParamSpec("a", "int"), ParamSpec("a", "float")))
    StrategyInfo("s", "1", params=(ParamSpec("a", "int"), ParamSpec("a", "float", section="train")))


# --------------------------------------------------------------------------- validate_params

INFO = StrategyInfo("toy", "1.0", params=(
    ParamSpec("level", "int", 3, low=1, high=5),
    ParamSpec("mode", "choice", "hold", choices=("buy", "hold")),
    ParamSpec("scale", "float", None, low=0.0),
    ParamSpec("epochs", "int", 10, low=1, section="train"),
))
DEFAULTS = {"level": 3, "mode": "hold"}


@given(table=st.dictionaries(st.sampled_from(["level", "mode", "scale"]) | st.text(min_size=1, max_size=12),
                             st.integers(-3, 8) | st.sampled_from(["buy", "hold", "sell"]) | st.floats(), max_size=4))
def test_a_table_passes_with_defaults_filled_in_or_is_refused_in_one_line_naming_the_key(table):
    known = {p.name: p for p in INFO.params if not p.section}
    try:
        params = validate_params(INFO, table, "home/trader.toml")
    except ConfigError as exc:
        text = str(exc)
        assert text.startswith("home/trader.toml: ") and "\n" not in text and "[plugins.toy]" in text
        first = next(k for k, v in table.items() if k not in known or not _accepts(known[k], v))
        if first not in known:
            assert "unknown key" in text
        else:  # a known key whose value breaks its declaration
            assert f"[plugins.toy] {first} must be" in text
        return
    assert set(table) <= set(known)
    assert all(_accepts(known[k], v) for k, v in table.items())
    assert params == {**DEFAULTS, **{k: known[k].check(v) for k, v in table.items()}}


@given(table=st.dictionaries(st.text(max_size=12), st.integers() | st.text() | st.floats(), max_size=5))
def test_a_strategy_that_declares_nothing_gets_its_table_unchanged(table):
    assert validate_params(StrategyInfo("plain", "1"), table, "t") == table


def test_the_train_table_is_checked_and_kept_as_given_and_risk_is_left_alone():
    params = validate_params(INFO, {"train": {"epochs": 2}, "risk": {"max_drawdown": 0.1}}, "t")
    assert params == {**DEFAULTS, "train": {"epochs": 2}, "risk": {"max_drawdown": 0.1}}
    assert validate_params(INFO, {"train": {}}, "t")["train"] == {}  # no training default filled in
    with pytest.raises(ConfigError, match=r"^t: \[plugins.toy.train\] epochs must be >= 1, got 0$"):
        validate_params(INFO, {"train": {"epochs": 0}}, "t")
    with pytest.raises(ConfigError, match=r"^t: unknown key epochs in \[plugins.toy\]: it belongs in \[plugins.toy.train\]$"):
        validate_params(INFO, {"epochs": 2}, "t")
    with pytest.raises(ConfigError, match=r"^--param: unknown key epoch in \[plugins.toy.train\]; did you mean 'epochs'\?$"):
        validate_section(INFO, "train", {"epoch": 2}, "--param")


def test_epochs_from_the_command_line_is_added_after_the_check():
    from trader.cli.train_cmd import training_params
    from trader.config import TraderConfig

    info = StrategyInfo("toy", "1.0", params=(ParamSpec("max_iter", "int", 300, low=1, section="train"),))
    config = TraderConfig(home=Path("."), data={"plugins": {"toy": {"train": {"max_iter": 50}}}})
    assert training_params(config, "toy", ("max_iter=60",), 3, info) == {"max_iter": 60, "epochs": 3}
    with pytest.raises(ConfigError, match=r"^--param: unknown key epochs in \[plugins.toy.train\] \(known: max_iter\)$"):
        training_params(config, "toy", ("epochs=3",), None, info)


def test_a_sequence_plugin_without_architecture_params_declares_nothing():
    from trader.ml.plugin import SequenceStrategyPlugin

    plain = SequenceStrategyPlugin(name="my_gru", version="0.1.0", description="", spec="my_gru.spec:SPEC")
    assert plain.trader_strategy_info().params == ()
    declared = SequenceStrategyPlugin(name="my_gru", version="0.1.0", description="", spec="my_gru.spec:SPEC",
                                      architecture_params=(ParamSpec("hidden_size", "int", 64, section="train"),))
    assert "hidden_size" in {p.name for p in declared.trader_strategy_info().params}


def _shipped_infos():
    import trader_dl_lstm
    import trader_dl_transformer
    import trader_ensemble
    from trader.builtin import buy_and_hold, momentum_rank, sma_cross

    return {"dl_lstm": trader_dl_lstm.plugin.trader_strategy_info(),
            "dl_transformer": trader_dl_transformer.plugin.trader_strategy_info(),
            "ensemble": trader_ensemble.trader_strategy_info(),
            "buy_and_hold": buy_and_hold.trader_strategy_info(),
            "sma_cross": sma_cross.trader_strategy_info(),
            "momentum_rank": momentum_rank.trader_strategy_info()}


SHIPPED = _shipped_infos()


@given(name=st.sampled_from(["dl_lstm", "dl_transformer", "ensemble"]), data=st.data())
def test_a_one_letter_typo_of_a_shipped_key_gets_a_did_you_mean(name, data):
    info = SHIPPED[name]
    section = data.draw(st.sampled_from(["", "train"]))
    names = [p.name for p in info.params if p.section == section]
    key = data.draw(st.sampled_from([n for n in names if len(n) >= 5]))
    i = data.draw(st.integers(0, len(key) - 1))
    typo = key[:i] + key[i + 1:]  # one letter dropped
    if typo in {p.name for p in info.params}:
        return
    table = {"train": {typo: 1}} if section else {typo: 1}
    with pytest.raises(ConfigError) as exc:
        validate_params(info, table, "t")
    suggestion = str(exc.value).split("did you mean ")[1].rstrip("?").strip("'")
    assert suggestion in names


def test_the_shipped_strategies_declare_what_their_parsing_reads_with_the_same_defaults():
    import trader_dl_lstm.spec
    import trader_dl_transformer.spec
    from trader.ml.sequence import DataSettings
    from trader.ml.thresholds import SequenceSignalSettings
    from trader.ml.train_classifier import known_training_keys as _known_keys
    from trader.ml.training import TrainConfig
    from trader_ensemble.params import EnsembleParams, signal_thresholds

    for info, spec in ((SHIPPED["dl_lstm"], trader_dl_lstm.plugin.spec()), (SHIPPED["dl_transformer"], trader_dl_transformer.plugin.spec())):
        train = {p.name: p.default for p in info.params if p.section == "train"}
        assert set(train) == _known_keys(spec)  # the pipeline's own strict check knows the same keys
        defaults = {**attrs.asdict(DataSettings()), **attrs.asdict(TrainConfig()),
                    **spec.architecture_defaults, "sequence_length": spec.sequence_length, "windows": spec.feature_windows}
        assert all(train[k] == defaults[k] for k in train if k != "max_len"), info.name
        signal = validate_params(info, {}, "t")
        parsed = attrs.asdict(SequenceSignalSettings.from_params(signal))  # a None default is filled in by no one
        assert signal == {k: v for k, v in parsed.items() if v is not None} and parsed["batch_threads"] is None
    ensemble = SHIPPED["ensemble"]
    train = {p.name: p.default for p in ensemble.params if p.section == "train"}
    assert set(train) == {a.name for a in attrs.fields(EnsembleParams)} | {"epochs"}
    fields = attrs.asdict(EnsembleParams())
    assert all(train[k] == fields[k] for k in fields)
    signal = validate_params(ensemble, {}, "t")
    assert signal == attrs.asdict(signal_thresholds(signal))
    assert SHIPPED["buy_and_hold"].params == ()  # reads no parameter, so declares none and checks none
    from trader.builtin import momentum_rank, sma_cross

    assert sma_cross.windows(validate_params(SHIPPED["sma_cross"], {}, "t")) == sma_cross.windows({}) == (20, 50)
    assert momentum_rank.settings(validate_params(SHIPPED["momentum_rank"], {}, "t")) == momentum_rank.settings({}) == (24, 2)


def test_declarations_cross_the_worker_boundary_rebuilt_through_their_validators():
    for info in SHIPPED.values():
        assert info_from_wire(json.loads(json.dumps(info_to_wire(info)))) == info
    wire = info_to_wire(SHIPPED["dl_lstm"])
    for bad in ({"name": "x", "kind": "pickle"}, {"name": "x", "kind": "int", "default": 1.5},
                {"name": "x", "kind": "int", "exec": "rm"}, "level"):
        with pytest.raises((ValueError, TypeError)):
            info_from_wire({**wire, "params": [bad]})
    with pytest.raises(ValueError, match="params must be a list"):
        info_from_wire({**wire, "params": {"name": "x"}})


# --------------------------------------------------------------------------- real trader processes

TYPO = "[plugins.dl_lstm]\nbuy_treshold = 0.6\n"
DID_YOU_MEAN = "unknown key buy_treshold in [plugins.dl_lstm]; did you mean 'buy_threshold'?"


@pytest.fixture(scope="module")
def lstm_home(tmp_path_factory) -> Path:
    """A home with a small trained dl_lstm model and a state from three traded candles."""
    home = tmp_path_factory.mktemp("lstm") / "home"
    home.mkdir()
    train = run_trader("train", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--synthetic-bars", "600", "--epochs", "1",
                       "--param", "hidden_size=8", "--param", "head_hidden=8", "--param", "sequence_length=16",
                       "--no-progress", home=home, timeout=300)
    assert train.returncode == 0, train.stderr
    run = run_trader("run", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--max-candles", "3", home=home, timeout=300)
    assert run.returncode == 0, run.stderr
    assert (home / "strategies" / "dl_lstm" / "state.sqlite").exists()
    return home


def _stored(home: Path) -> dict[str, str]:
    return {k: v for k, v in tree_digest(home).items() if k.startswith(("models", "strategies"))}


COMMANDS = {
    "run": ("run", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--max-candles", "3"),
    "run inline": ("run", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--max-candles", "3", "--isolation", "inline"),
    "backtest": ("backtest", "--plugin", "dl_lstm", "--symbol", "SYN/USDT"),
    "walk-forward": ("backtest", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--walk-forward", "--train-bars", "300",
                     "--test-bars", "100", "--epochs", "1"),
    "train": ("train", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--synthetic-bars", "600", "--epochs", "1"),
    "check": ("check", "--plugin", "dl_lstm", "--symbol", "SYN/USDT"),
    "compare": ("compare", "--plugin", "dl_lstm", "--symbol", "SYN/USDT"),
}


@pytest.mark.slow
def test_a_typo_in_plugins_dl_lstm_is_refused_by_every_command_before_anything_is_touched(lstm_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(lstm_home, home)
    (home / "trader.toml").write_text(TYPO)
    before = _stored(home)
    assert any(k.endswith("weights.safetensors") for k in before) and any(k.endswith("state.sqlite") for k in before)
    for what, args in COMMANDS.items():
        result = run_trader(*args, home=home, timeout=300)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (what, result.stderr)
        assert lines[-1] == f"Error: {home / 'trader.toml'}: {DID_YOU_MEAN}", (what, result.stderr)
        assert "Traceback" not in result.stderr and "training dl_lstm" not in result.stderr, what
        assert _stored(home) == before, what  # no model trained or stored, no state written


@pytest.mark.slow
def test_the_typo_is_found_before_a_missing_model_is(trader_home):
    (trader_home / "trader.toml").write_text(TYPO)
    for what in ("run", "run inline", "backtest", "compare"):
        result = run_trader(*COMMANDS[what], home=trader_home)
        assert result.returncode == 2 and result.stderr.strip().endswith(DID_YOU_MEAN), (what, result.stderr)
    assert sorted(p.name for p in trader_home.iterdir()) == ["cache", "trader.toml"]


@pytest.mark.slow
def test_a_value_out_of_its_declared_range_is_refused_naming_the_key(lstm_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(lstm_home, home)
    before = _stored(home)
    (home / "trader.toml").write_text('[plugins.dl_lstm]\nbuy_threshold = "high"\n')
    result = run_trader(*COMMANDS["backtest"], home=home)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("[plugins.dl_lstm] buy_threshold must be a number, got 'high'")
    (home / "trader.toml").write_text("[plugins.dl_lstm.train]\nnum_layers = 99\n")
    result = run_trader(*COMMANDS["train"], home=home)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("[plugins.dl_lstm.train] num_layers must be within [1, 16], got 99")
    (home / "trader.toml").unlink()
    result = run_trader(*COMMANDS["train"], "--param", "learning_rate=0", home=home)
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: --param: [plugins.dl_lstm.train] learning_rate must be within [1e-07, 10.0], got 0"
    assert _stored(home) == before


# --------------------------------------------------------------------------- third-party plugins

STRATEGY = """
    from trader import ParamSpec, Signal, StrategyInfo, hookimpl

    PARAMS = {params}

    @hookimpl
    def trader_strategy_info():
        return StrategyInfo(name="{name}", version="1.0", params=PARAMS)

    @hookimpl
    def trader_generate_signals(request):
        # BUY only when the table says so: what the strategy got shows in the fills.
        buy = request.params.get("mode") == "buy" and request.params.get("level", 3) == 3
        return [Signal("buy", size=1.0) if buy else Signal("hold", size=0.0) for _ in request.at]
"""
DECLARED = ('(ParamSpec("level", "int", 3, low=1, high=5), '
            'ParamSpec("mode", "choice", "hold", choices=("buy", "hold")))')


# Imported in its worker, it replaces the worker's check with one that lets everything through.
PATCHER = """
    import trader.params
    trader.params.validate_params = lambda info, table, where: dict(table)
"""


def write_package(root: Path, name: str, params: str, prelude: str = "") -> Path:
    body = textwrap.dedent(prelude) + textwrap.dedent(STRATEGY.format(name=name, params=params))
    return write_plugin(root, f"trader-{name}", f"trader_{name}", name, body)


@pytest.fixture(scope="module")
def third_party(tmp_path_factory) -> dict[str, str]:
    """Real distributions (declaring their parameters, not declaring them, disabling the worker's check),
    pip-installed in one call."""
    src = tmp_path_factory.mktemp("src")
    target = tmp_path_factory.mktemp("site")
    packages = [write_package(src, "undeclared", "()"), write_package(src, "declared", DECLARED),
                write_package(src, "patcher", DECLARED, PATCHER)]
    return plugin_env(pip_install(target, packages))


def _fills(result: subprocess.CompletedProcess[str], key: str) -> int:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[key]


@pytest.mark.slow
def test_a_plugin_without_declarations_still_gets_its_table_as_it_is(third_party, trader_home):
    (trader_home / "trader.toml").write_text('[plugins.undeclared]\nmode = "buy"\nanything = 1\n')
    backtest = run_trader("backtest", "--plugin", "undeclared", "--symbol", "SYN/USDT", "--json", home=trader_home,
                          env=third_party)
    assert _fills(backtest, "fills") > 0
    run = run_trader("run", "--plugin", "undeclared", "--symbol", "SYN/USDT", "--max-candles", "5", "--json",
                     home=trader_home, env=third_party)
    assert _fills(run, "trades") > 0


@pytest.mark.slow
def test_a_declared_plugin_in_its_worker_gets_its_defaults_and_a_typo_is_refused_before_it_trades(third_party, trader_home):
    config = trader_home / "trader.toml"
    config.write_text('[plugins.declared]\nmode = "buy"\n')  # level = 3 comes from the declaration
    run = run_trader("run", "--plugin", "declared", "--symbol", "SYN/USDT", "--max-candles", "5", "--json",
                     home=trader_home, env=third_party)
    assert _fills(run, "trades") > 0
    state = trader_home / "strategies" / "declared"
    before = tree_digest(state)
    for table, message in ((
        'mode = "buy"\nlevle = 4\n', "unknown key levle in [plugins.declared]; did you mean 'level'?"), (
        "level = 9\n", "[plugins.declared] level must be within [1, 5], got 9"), (
        'mode = "sell"\n', "[plugins.declared] mode must be one of buy, hold; got 'sell'"),
    ):
        config.write_text(f"[plugins.declared]\n{table}")
        refused = run_trader("run", "--plugin", "declared", "--symbol", "SYN/USDT", "--max-candles", "5",
                             home=trader_home, env=third_party)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.strip().splitlines()[-1] == f"Error: {config}: {message}"
        assert tree_digest(state) == before


@pytest.mark.slow
def test_a_worker_that_disables_its_own_check_is_still_refused_by_the_engine(third_party, trader_home):
    config = trader_home / "trader.toml"
    config.write_text('[plugins.patcher]\nmode = "buy"\nlevle = 4\n')
    refused = run_trader("run", "--plugin", "patcher", "--symbol", "SYN/USDT", "--max-candles", "5",
                         home=trader_home, env=third_party)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        f"Error: {config}: unknown key levle in [plugins.patcher]; did you mean 'level'?")
    assert not (trader_home / "strategies" / "patcher").exists()


def test_the_reference_example_builds_and_its_messages_are_the_real_ones():
    text = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    section = text.split("## Declared parameters")[1].split("\n## ")[0]
    block = section.split("```python\n")[1].split("```")[0]
    scope: dict = {}
    exec(block, scope)
    assert [p.name for p in scope["info"].params] == ["threshold", "mode", "windows", "learning_rate"]
    flat = " ".join(section.split())
    for table in ({"buy_treshold": 0.6}, {"train": {"num_layers": 99}}):
        with pytest.raises(ConfigError) as exc:
            validate_params(SHIPPED["dl_lstm"], table, "trader.toml")
        assert str(exc.value).removeprefix("trader.toml: ") in flat
    assert "`trader.toml: unknown key buy_treshold" in flat

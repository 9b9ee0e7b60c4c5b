"""What docs/api.md promises a third-party author: the strategy's own folder (in ``trader run``,
backtests, walk-forward, ``trader check`` and the conformance suite), ``request.at`` always a 1-D
int64 array, ``Signal.hold()``, a sequence spec held to its plugin's window length and feature windows."""

from __future__ import annotations

import re
import textwrap
import types
from pathlib import Path

import pytest
from cli_runner import run_trader
from plugin_packages import pip_install, plugin_env, write_plugin

from trader.errors import PluginError
from trader.types import Signal, SignalAction

DIARY = """
import numpy as np

from trader.hookspecs import hookimpl
from trader.types import Signal, StrategyInfo


@hookimpl
def trader_strategy_info():
    return StrategyInfo(name="diary", version="1.0", description="writes a line per signal into its own folder")


@hookimpl
def trader_generate_signals(request):
    at = request.at
    if not (type(at) is np.ndarray and at.dtype == np.int64 and at.ndim == 1):
        raise TypeError(f"request.at is {type(at).__name__} {getattr(at, 'dtype', '')}, not a 1-D int64 array")
    with open(request.workdir / "seen.txt", "a", encoding="utf-8") as f:
        f.write(f"{request.workdir}\\n")
    return [Signal.hold("diary") for _ in request.at]
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    return pip_install(tmp_path_factory.mktemp("site"), [write_plugin(src, "trader-diary", "trader_diary", "diary", DIARY)])


def test_hold_claims_no_confidence():
    hold = Signal.hold("warm-up")
    assert (hold.action, hold.confidence, hold.size, hold.reason) == (SignalAction.HOLD, 0.0, 0.0, "warm-up")


@pytest.mark.slow
@pytest.mark.parametrize("isolation", ["process", "inline"])
def test_a_strategy_writes_into_its_own_folder_under_trader_home(installed, tmp_path, isolation):
    home, user_home = tmp_path / "home", tmp_path / "user"
    home.mkdir()
    user_home.mkdir()
    result = run_trader("run", "--plugin", "diary", "--isolation", isolation, "--max-candles", "3", "--quiet",
                        home=home, env=plugin_env(installed, HOME=str(user_home)))
    assert result.returncode == 0, result.stderr
    folder = home / "strategies" / "diary" / "plugin"
    lines = (folder / "seen.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and set(lines) == {str(folder)}
    assert not any(user_home.iterdir())  # nothing under the user's own home


@pytest.mark.slow
def test_backtests_walk_forward_and_check_give_the_strategy_its_folder_and_at_as_int64_rows(installed, tmp_path):
    home = tmp_path / "home"
    env = plugin_env(installed)
    folder = home / "strategies" / "diary" / "plugin"
    backtest = run_trader("backtest", "--plugin", "diary", "--synthetic-bars", "400", home=home, env=env)
    assert backtest.returncode == 0, backtest.stderr
    assert (folder / "seen.txt").read_text(encoding="utf-8").splitlines() == [str(folder)]  # one batched request
    walk = run_trader("backtest", "--plugin", "diary", "--synthetic-bars", "400", "--walk-forward", "--train-bars", "100",
                      "--test-bars", "100", "--purge-bars", "0", home=home, env=env)
    assert walk.returncode == 0, walk.stderr
    lines = (folder / "seen.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) > 2 and set(lines) == {str(folder)}  # one request per fold
    check = run_trader("check", "--plugin", "diary", "--bars", "300", home=tmp_path / "check-home", env=env)
    assert check.returncode == 0, check.stdout + check.stderr  # the sandbox's folder: every check passes
    assert not (tmp_path / "check-home" / "strategies").exists()  # the checks wrote in the sandbox, not here


def test_the_conformance_suite_gives_the_strategy_its_folder_and_at_as_int64_rows(tmp_path):
    from trader.testing import run_conformance

    module = types.ModuleType("diary_inline")
    exec(compile(DIARY, "diary_inline", "exec"), module.__dict__)
    report = run_conformance(module)
    assert report.ok, str(report)  # the signal checks raise without a folder or with another type of `at`


def test_at_is_converted_to_one_type_for_a_request_built_by_hand():
    import numpy as np
    import pandas as pd

    from trader.types import SignalRequest

    request = SignalRequest("s", "SYN/USDT", "1h", pd.DataFrame(), at=[3, 4])
    assert type(request.at) is np.ndarray and request.at.dtype == np.int64 and request.at.tolist() == [3, 4]
    with pytest.raises(ValueError, match="one-dimensional"):
        SignalRequest("s", "SYN/USDT", "1h", pd.DataFrame(), at=[[3]])


SPEC_MODULE = """
from torch import nn

from trader.ml.spec import SequenceClassifierSpec


class Tiny(nn.Module):
    def __init__(self, input_size, num_classes, hidden_size=4):
        super().__init__()
        self.head = nn.Linear(input_size, num_classes)

    def forward(self, x):
        return self.head(x[:, -1])


SPEC = SequenceClassifierSpec(plugin="tiny", model_class=Tiny, input_weight="head.weight",
                              architecture_defaults={{"hidden_size": 4}}{extra})
"""


@pytest.mark.parametrize(("extra", "error"), [
    ("", None),
    (", sequence_length=30", "the spec's sequence_length 30 differs from the plugin's 20"),
    (", feature_windows=(5, 10)", "the spec's feature_windows [5, 10] differs from the plugin's [5, 20]"),
])
def test_a_sequence_spec_takes_its_plugins_window_length_and_windows_or_is_refused(tmp_path, monkeypatch, extra, error):
    pytest.importorskip("torch")
    from trader.ml.plugin import SequenceStrategyPlugin

    module = f"tiny_spec_{abs(hash(extra))}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(SPEC_MODULE.format(extra=extra)), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = SequenceStrategyPlugin(name="tiny", version="0.1", description="tiny", spec=f"{module}:SPEC",
                                    feature_windows=(5, 20), sequence_length=20)
    info = plugin.trader_strategy_info()
    if error is None:
        spec = plugin.spec()
        assert (spec.sequence_length, spec.feature_windows) == (20, (5, 20))
        assert info.warmup_bars == 20 + 20 - 1  # the warm-up reads the same numbers training does
        return
    with pytest.raises(PluginError) as refused:
        plugin.spec()
    assert str(refused.value).startswith(f"tiny: {module}:SPEC: {error}")


# ---------------------------------------------------------------------- the docs' own examples

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^```python(?P<attrs>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)


def _python_blocks(page: str) -> list[tuple[str, str]]:
    return [(m["attrs"].strip(), m["body"]) for m in FENCE.finditer((DOCS / page).read_text(encoding="utf-8"))]


def _strategy_examples() -> list[tuple[str, str, str]]:
    """``(page, name, source)`` of every python block in the reference pages that is a whole strategy."""
    found = []
    for page in ("api.md", "plugins.md"):
        for _, body in _python_blocks(page):
            if "def trader_strategy_info" in body and "def trader_generate_signals" in body:
                found.append((page, re.search(r'StrategyInfo\(name="([a-z_]+)"', body).group(1), body))
    return found


def test_the_reference_pages_hold_two_strategy_examples():
    assert {(page, name) for page, name, _ in _strategy_examples()} == {("api.md", "momentum"), ("plugins.md", "my_strategy")}


@pytest.mark.slow
@pytest.mark.parametrize(("page", "name", "source"), _strategy_examples(), ids=lambda v: v if len(v) < 20 else "")
def test_every_strategy_example_in_the_docs_passes_the_conformance_suite(page, name, source):
    from trader.testing import run_conformance

    module = types.ModuleType(f"docs_example_{name}")
    exec(compile(source, f"{page}:{name}", "exec"), module.__dict__)  # noqa: S102 - the docs' own example
    report = run_conformance(module, name, bars=300, cut_points=4)
    assert report.ok, f"{page}: {report}"
    assert {r.outcome for r in report.results} <= {"passed", "skipped"}


def test_the_candle_forms_example_of_the_api_page_runs():
    (block,) = [body for attrs, body in _python_blocks("api.md") if "dated" in body]
    exec(compile(block, "api.md:candle forms", "exec"), {})  # noqa: S102 - asserts inside

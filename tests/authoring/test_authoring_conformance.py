"""The conformance suite passes honest strategies and catches each kind of misbehaviour, naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from trader import Signal, SignalAction, StrategyInfo, TrainResult, hookimpl
from trader.testing import CHECKS, ConformanceError, assert_conformance, run_conformance
from trader.testing.conformance import ConformanceRun, ConformanceSettings

FAST = {"bars": 300, "cut_points": 4}


class Crossover:
    """Honest and rule-based: BUY while close is above its 10-bar mean."""

    name = "crossover"

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0.0", description="close above its mean", warmup_bars=10)

    def decide(self, request, row, close, mean):
        return Signal(SignalAction.BUY if close[row] > mean[row] else SignalAction.SELL, size=1.0)

    @hookimpl
    def trader_generate_signals(self, request):
        close = request.candles["close"].to_numpy()
        mean = request.candles["close"].rolling(10).mean().to_numpy()
        return [self.decide(request, row, close, mean) for row in request.at]


class PeeksAtNextCandle(Crossover):
    """Leaky: decides row t with the close of row t + 1."""

    name = "peeker"

    def decide(self, request, row, close, mean):
        if row + 1 >= len(close):
            return Signal.hold("no next candle")
        return Signal(SignalAction.BUY if close[row + 1] > close[row] else SignalAction.SELL, size=1.0)


class PeeksAtNextFeature(Crossover):
    """Leaky through a core feature: decides row t with the one-bar return of row t + 1."""

    name = "feature_peeker"

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0.0", description="next return", warmup_bars=10,
                            feature_windows=(5,))

    @hookimpl
    def trader_generate_signals(self, request):
        ret = request.features["ret_1"].to_numpy()
        return [Signal.hold("no next row") if row + 1 >= ret.size
                else Signal(SignalAction.BUY if ret[row + 1] > 0 else SignalAction.SELL, size=1.0) for row in request.at]


class NormalisesOverTheBatch(Crossover):
    """Leaky in backtests only: compares each row with the mean over all requested rows."""

    name = "batch_normaliser"

    @hookimpl
    def trader_generate_signals(self, request):
        close = request.candles["close"].to_numpy()
        level = close[np.asarray(request.at)].mean()
        return [Signal(SignalAction.BUY if close[row] > level else SignalAction.SELL, size=1.0) for row in request.at]


class LinearModel(Crossover):
    """Honest with a model: a seeded random projection of recent returns, saved as JSON."""

    name = "linear"

    def fit(self, request):
        rng = np.random.default_rng(request.seed)
        return {"w": rng.normal(size=3).tolist()}

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0.0", description="linear model", warmup_bars=4, requires_model=True)

    @hookimpl
    def trader_train(self, request):
        return TrainResult(model=self.fit(request), architecture={"inputs": 3})

    @hookimpl
    def trader_save_model(self, model, directory):
        (directory / "weights.json").write_text(json.dumps(model))
        return ["weights.json"]

    @hookimpl
    def trader_load_model(self, directory, manifest):
        return json.loads((directory / "weights.json").read_text())

    @hookimpl
    def trader_generate_signals(self, request):
        ret = np.diff(np.log(request.candles["close"].to_numpy()), prepend=np.nan)
        w = np.asarray(request.model["w"])
        out = []
        for row in request.at:
            score = float(w @ ret[row - 2 : row + 1])
            p = 1 / (1 + np.exp(-100 * score))
            out.append(Signal(SignalAction.BUY if p > 0.5 else SignalAction.SELL, confidence=p, probability=p))
        return out


class UnseededModel(LinearModel):
    name = "unseeded"

    def fit(self, request):
        return {"w": np.random.default_rng().normal(size=3).tolist()}


class LossyPersistence(LinearModel):
    name = "lossy"

    @hookimpl
    def trader_save_model(self, model, directory):
        (directory / "weights.json").write_text(json.dumps({"w": [round(x, 1) for x in model["w"]]}))
        return ["weights.json"]


class WritesIntoTheHome(Crossover):
    """Writes a note straight into TRADER_HOME while deciding (a Python-level write)."""

    name = "scribbler"

    @hookimpl
    def trader_generate_signals(self, request):
        Path(os.environ["TRADER_HOME"], "notes.txt").write_text("seen a candle\n")
        return super().trader_generate_signals(request)


class SharesACacheBesideItsModels(LinearModel):
    """Saves its weights properly, plus a cache in models/ shared with nobody's consent (native write)."""

    name = "sharer"

    @hookimpl
    def trader_save_model(self, model, directory):
        from safetensors.numpy import save_file

        # directory is models/sharer/SYMBOL_TF/.tmp-...; three levels up is models/
        save_file({"w": np.asarray(model["w"])}, str(directory.parents[2] / "shared_cache.safetensors"))
        (directory / "weights.json").write_text(json.dumps(model))
        return ["weights.json"]


class WritesToTheUsersHome(Crossover):
    """Keeps a cache in the user's home folder, only when trading live-style (one row at a time)."""

    name = "homebody"

    @hookimpl
    def trader_generate_signals(self, request):
        if len(request.at) == 1:
            (Path.home() / ".homebody_cache").write_text(str(request.at[0]))
        return super().trader_generate_signals(request)


class WritesIntoAnotherStrategy(Crossover):
    name = "trespasser"

    @hookimpl
    def trader_generate_signals(self, request):
        other = Path(os.environ["TRADER_HOME"], "strategies", "crossover")
        other.mkdir(parents=True, exist_ok=True)
        (other / "state.json").write_text("{}")
        return super().trader_generate_signals(request)


class TidyTempFiles(LinearModel):
    """Uses a temporary file while saving and removes it: allowed."""

    name = "tidy"

    @hookimpl
    def trader_save_model(self, model, directory):
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".json") as scratch:
            scratch.write(json.dumps(model))
        (directory / "weights.json").write_text(json.dumps(model))
        return ["weights.json"]


class MutatesTheCandles(Crossover):
    name = "mutator"

    @hookimpl
    def trader_generate_signals(self, request):
        request.candles["close"] = request.candles["close"] * 2
        return super().trader_generate_signals(request)


class MisnamedStrategy(Crossover):
    name = "misnamed"

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name="something_else", version="1.0.0", description="x")


class CountsWrong(Crossover):
    name = "miscounter"

    @hookimpl
    def trader_generate_signals(self, request):
        return super().trader_generate_signals(request)[:-1] if len(request.at) > 1 else [Signal.hold()]


def outcomes(report):
    return {r.check: r.outcome for r in report.results}


def message(report, check):
    return next(r.message for r in report.results if r.check == check)


# ---------------------------------------------------------------------- honest strategies


def test_an_honest_rule_based_strategy_passes_and_persistence_is_skipped():
    report = run_conformance(Crossover(), **FAST)
    assert report.ok, str(report)
    assert outcomes(report) == {c: "passed" for c in CHECKS} | {"persistence": "skipped"}


def test_an_honest_model_strategy_passes_every_check():
    report = assert_conformance(LinearModel(), **FAST)
    assert outcomes(report) == {c: "passed" for c in CHECKS}
    assert "weights.json" in message(report, "persistence")


def test_a_temporary_file_that_is_removed_again_is_not_a_trespass():
    assert outcomes(run_conformance(TidyTempFiles(), **FAST))["isolation"] == "passed"


def test_the_builtin_baseline_conforms():
    import trader.builtin.buy_and_hold as buy_and_hold

    assert run_conformance(buy_and_hold, "buy_and_hold", **FAST).ok


# ---------------------------------------------------------------------- caught


def test_a_strategy_reading_the_next_candle_fails_lookahead_naming_row_and_column():
    report = run_conformance(PeeksAtNextCandle(), **FAST)
    assert outcomes(report)["lookahead"] == "failed"
    text = message(report, "lookahead")
    assert "row 10 (2024-01-01 10:00 UTC)" in text
    assert "depends on later candles" in text
    assert "candle column 'close'" in text and "'open'" not in text
    assert outcomes(report)["signals"] == "passed"  # its signals are well-formed: only the leak is wrong


def test_a_strategy_reading_the_next_rows_feature_fails_lookahead_naming_the_feature():
    text = message(run_conformance(PeeksAtNextFeature(), **FAST), "lookahead")
    assert "depends on later candles" in text
    assert "feature 'ret_1'" in text and "candle column" not in text


def test_lookahead_and_trader_check_find_the_same_leak():
    """One implementation behind both: the suite and ``trader check`` name the same input."""
    from trader.backtest.lookahead import CheckContext, check_truncation
    from trader.testing.fixtures import make_candles

    run = ConformanceRun(PeeksAtNextCandle(), settings=ConformanceSettings(**FAST))
    with run:
        suite = run.result("lookahead")
        ctx = CheckContext(run.strategy, make_candles(300, seed=0), "SYN/USDT", "1h", samples=6)
        check = check_truncation(ctx)
    assert suite.outcome == "failed" and check.status == "fail"
    assert "candle column 'close'" in suite.message and "candle column 'close'" in check.detail


def test_normalising_over_the_requested_rows_fails_lookahead():
    text = message(run_conformance(NormalisesOverTheBatch(), **FAST), "lookahead")
    assert "depends on which other rows are requested" in text


def test_python_level_writes_into_the_home_fail_isolation_naming_file_and_hook():
    report = run_conformance(WritesIntoTheHome(), **FAST)
    assert outcomes(report)["isolation"] == "failed"
    assert "TRADER_HOME/notes.txt (open, during trader_generate_signals)" in message(report, "isolation")


def test_native_writes_beside_the_models_fail_isolation():
    report = run_conformance(SharesACacheBesideItsModels(), **FAST)
    assert outcomes(report)["persistence"] == "passed"
    text = message(report, "isolation")
    assert "TRADER_HOME/models/shared_cache.safetensors (snapshot, during trader_save_model)" in text


def test_writes_to_the_users_home_fail_isolation():
    text = message(run_conformance(WritesToTheUsersHome(), **FAST), "isolation")
    assert "HOME/.homebody_cache (open, during trader_generate_signals)" in text
    assert "during trader run" in text  # the run loop asks one row at a time too


def test_isolation_trades_through_the_run_loop():
    text = message(run_conformance(LinearModel(), **FAST), "isolation")
    assert "trader run traded 14 candles" in text  # warm-up 4 + run_candles 10, with the stored model


def test_writing_into_another_strategys_namespace_fails_isolation():
    text = message(run_conformance(WritesIntoAnotherStrategy(), **FAST), "isolation")
    assert "TRADER_HOME/strategies/crossover/state.json" in text


def test_unseeded_training_fails_determinism():
    report = run_conformance(UnseededModel(), **FAST)
    assert outcomes(report)["determinism"] == "failed"
    assert "two trainings with seed 7 give different signals" in message(report, "determinism")


def test_a_model_that_changes_on_disk_fails_persistence():
    report = run_conformance(LossyPersistence(), **FAST)
    assert outcomes(report)["persistence"] == "failed"
    assert "the model loaded back from disk gives different signals" in message(report, "persistence")


def test_mutating_the_request_fails_signals():
    assert "changed request.candles in place" in message(run_conformance(MutatesTheCandles(), **FAST), "signals")


def test_a_wrong_signal_count_fails_signals():
    assert "returned 289 signals for 290 rows" in message(run_conformance(CountsWrong(), **FAST), "signals")


def test_metadata_naming_another_strategy_fails():
    report = run_conformance(MisnamedStrategy(), "misnamed", **FAST)
    assert outcomes(report)["metadata"] == "failed"
    assert "names itself 'something_else'" in message(report, "metadata")


def test_assert_conformance_lists_every_failed_check():
    with pytest.raises(ConformanceError) as caught:
        assert_conformance(PeeksAtNextCandle(), **FAST)
    assert "FAIL lookahead" in str(caught.value) and "PASS metadata" in str(caught.value)


def test_an_uninstalled_plugin_name_is_refused_clearly():
    from trader.errors import UnknownPluginError

    with pytest.raises(UnknownPluginError, match="no installed plugin is called 'not_installed_anywhere'"):
        run_conformance("not_installed_anywhere")


def test_the_plugin_is_unregistered_and_the_environment_restored(tmp_path):
    before = (os.getcwd(), os.environ.get("TRADER_HOME"), os.environ.get("HOME"))
    with ConformanceRun(Crossover(), settings=ConformanceSettings(**FAST), workdir=tmp_path) as run:
        run.report()
        manager = run.manager
    assert "crossover" not in manager.records
    assert (os.getcwd(), os.environ.get("TRADER_HOME"), os.environ.get("HOME")) == before


# ---------------------------------------------------------------------- through pytest


def test_the_one_line_pytest_suite_reports_each_check(tmp_path):
    """A plugin author's test module, run by pytest in a subprocess: the leak fails test_lookahead only."""
    module = tmp_path / "test_peeker.py"
    module.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from test_authoring_conformance import PeeksAtNextCandle
            from trader.testing import conformance_tests

            TestConformance = conformance_tests(PeeksAtNextCandle(), bars=300, cut_points=4)


            def test_fixtures(trader_home, trader_candles, trader_plugin_manager):
                import os
                assert os.environ["TRADER_HOME"] == str(trader_home)
                assert len(trader_candles(50)) == 50
                with trader_plugin_manager(PeeksAtNextCandle()) as manager:
                    assert manager.strategy("peeker").info.name == "peeker"
                assert "peeker" not in manager.records
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(module), "-q", "-p", "no:cacheprovider", "-rA", "-o", "addopts="],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "1 failed, 5 passed, 1 skipped" in out
    assert "FAILED test_peeker.py::TestConformance::test_lookahead" in out
    assert "conformance check 'lookahead' of strategy 'peeker' failed: look-ahead" in out and "row 10 (" in out
    assert "Traceback" not in out

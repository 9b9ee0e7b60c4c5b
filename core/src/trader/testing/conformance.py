"""The conformance suite: what every strategy plugin must do to be safe to run.

Six checks, each reported on its own with the reason it failed:

``metadata``
    ``trader_strategy_info`` returns a valid, stable :class:`~trader.types.StrategyInfo`
    whose name is the plugin's name; the hooks a model needs come together.
``signals``
    one valid :class:`~trader.types.Signal` per requested row, for a whole batch
    (as a backtest asks) and for the last row alone (as live trading asks); the
    request's candles and features are left untouched.
``lookahead``
    at ``cut_points`` prefix lengths ``L``, every row before ``L`` asked on
    ``candles[:L]`` gives the signal (and core features) it has on the full
    history. A failure names the row, how far before the cut signals change (far:
    a statistic of the whole frame) and, by perturbing the candles after the cut one
    input at a time, the candle column or feature that leaks.
``determinism``
    the same request twice, in reverse row order and in fresh processes gives
    the same signals (randomness, call-count dependence and state kept between calls
    are told apart); two trainings with the same seed give models with the same signals.
``persistence``
    a trained model saved through :class:`trader.models.ModelPersistence` (weights
    as data, with a verified manifest) and loaded back gives identical signals.
``isolation``
    everything the plugin wrote while training, saving, loading, generating
    signals and trading a few candles through the run loop (``trader run``'s
    :class:`~trader.engine.runner.StrategyRunner`, paper broker, the model saved
    by the persistence check) lies in its own namespace,
    ``TRADER_HOME/strategies/NAME/`` or ``TRADER_HOME/models/NAME/`` (see
    :mod:`trader.testing.write_watch`).

Every plugin call runs in a sandbox (:class:`trader.testing.sandbox.Sandbox`):
``TRADER_HOME``, the working folder, ``HOME`` and the temporary folder point into a
fresh folder, and every write is recorded.

The look-ahead, determinism and batch comparisons are those of ``trader check``
(:func:`trader.backtest.lookahead.lookahead_result`,
:func:`~trader.backtest.lookahead.determinism_result` and
:func:`~trader.backtest.lookahead.batch_mismatches`), with the same defaults, asked
through the sandbox.

Parameters: ``train_params`` is passed as ``TrainRequest.params`` (what a user
puts in ``[plugins.NAME.train]``) and ``params`` as ``SignalRequest.params`` (the
``[plugins.NAME]`` table). A plugin with a model passes small training parameters
here (one epoch, a tiny network) so that its conformance tests stay fast.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs

from trader.backtest.lookahead import DEFAULT_PREFIXES, DEFAULT_TOLERANCE
from trader.errors import TraderError
from trader.types import Signal, SignalRequest, StrategyInfo, TrainRequest, TrainResult

if TYPE_CHECKING:
    import pandas as pd

    from trader.backtest.lookahead import CheckResult

_T = TypeVar("_T")

__all__ = [
    "CHECKS",
    "CheckOutcome",
    "ConformanceError",
    "ConformanceReport",
    "ConformanceRun",
    "ConformanceSettings",
    "run_conformance",
    "assert_conformance",
]

#: The checks, in the order they run.
CHECKS = ("metadata", "signals", "lookahead", "determinism", "persistence", "isolation")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class CheckFailed(AssertionError):
    """A check found a problem; the message says what and where."""


class CheckSkipped(Exception):
    """A check does not apply to this strategy (e.g. persistence without a model)."""


class ConformanceError(AssertionError):
    """Raised by :func:`assert_conformance`; its message lists every failed check."""

    def __init__(self, report: ConformanceReport) -> None:
        super().__init__(str(report))
        self.report = report


@attrs.frozen
class ConformanceSettings:
    """How the suite exercises a strategy. Defaults suit a rule-based strategy.

    ``train_params`` and ``params`` are the plugin's own parameters (see the module
    docstring); ``bars`` candles of the synthetic market (seed ``data_seed``) are
    used, raised to ``warmup_bars + 100`` if needed; the model is trained on the
    first ``train_fraction`` of them with seed ``seed``. ``cut_points`` prefix
    lengths are checked for look-ahead at every row before them (``trader check
    --prefixes``, same default). ``model`` is a ready model for a strategy that needs one
    but cannot train it. ``tolerance`` is the absolute difference allowed between
    two confidences, sizes or probabilities that should be equal. The isolation
    check also trades ``run_candles`` candles past the warm-up through the run loop.
    """

    train_params: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    symbol: str = "SYN/USDT"
    timeframe: str | None = None
    bars: int = 600
    data_seed: int = 0
    planted_signal: float = 0.3
    seed: int = 7
    train_fraction: float = 0.7
    cut_points: int = DEFAULT_PREFIXES
    model: Any = None
    tolerance: float = DEFAULT_TOLERANCE
    run_candles: int = 10


@attrs.frozen
class CheckOutcome:
    """One check of the suite: ``passed``, ``failed`` or ``skipped``, with a message and its time.

    (A look-ahead check of ``trader check`` gives a :class:`trader.backtest.lookahead.CheckResult`; the
    suite turns each into one of these.)"""

    check: str
    outcome: str
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"

    def __str__(self) -> str:
        label = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[self.outcome]
        return f"{label} {self.check}" + (f": {self.message}" if self.message else "")


@attrs.frozen
class ConformanceReport:
    """Every check's result for one strategy."""

    strategy: str
    results: tuple[CheckOutcome, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> list[CheckOutcome]:
        return [r for r in self.results if not r.ok]

    def __str__(self) -> str:
        lines = [f"conformance of strategy {self.strategy!r}: {'passed' if self.ok else 'FAILED'}"]
        lines += [f"  {r}" for r in self.results]
        return "\n".join(lines)


# ---------------------------------------------------------------------- helpers


def _error(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, TraderError) else f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------- the run


class _SandboxedSource:
    """The run's strategy as the shared checks of :mod:`trader.backtest.lookahead` ask it.

    Requests run in the sandbox with the run's model and parameters; a failing call
    raises :class:`CheckFailed` naming what was asked.
    """

    def __init__(self, run: ConformanceRun) -> None:
        self.run = run

    def features(self, candles: pd.DataFrame) -> pd.DataFrame | None:
        return self.run.features(candles)

    def signals(self, candles: pd.DataFrame, at: Any, features: Any = None, model: Any = None) -> list[Signal]:
        run = self.run
        if len(at) == 1:
            row = int(at[0])
            what = f"the last {run._row(row)} alone" if row == len(run.candles) - 1 else f"{run._row(row)} alone"
        else:
            what = f"a batch of {len(at)} rows"
        request = run.request(candles, at, model=run.model if model is None else model, features=features)
        return run.signals(request, what)


class ConformanceRun:
    """One strategy under test: its manager, candles, trained model and sandbox.

    Checks share what they build (a model is trained once and reused). Call
    :meth:`close` (or use it as a context manager) to unregister the plugin and
    remove the sandbox.
    """

    def __init__(
        self,
        plugin: object | str,
        name: str | None = None,
        settings: ConformanceSettings | None = None,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        from trader.strategy import Strategy
        from trader.testing.fixtures import installed_distribution, load_plugin, plugin_manager, plugin_name
        from trader.testing.sandbox import Sandbox

        self.settings = settings or ConformanceSettings()
        self._stack = ExitStack()
        self._owned_dir = workdir is None
        root = Path(tempfile.mkdtemp(prefix="trader-conformance-")) if workdir is None else Path(workdir)
        self.sandbox = Sandbox(root)
        self._cache: dict[str, Any] = {}
        self.distribution: tuple[str, str] | None = None
        try:
            self.entry_point = plugin if isinstance(plugin, str) else None
            if isinstance(plugin, str):
                self.name = name or plugin
                self.distribution = installed_distribution(plugin)
                plugin = load_plugin(plugin)
            else:
                self.name = name or plugin_name(plugin)
            self.plugin = plugin
            self.manager = self._stack.enter_context(plugin_manager(plugin, self.name))
            # Not manager.strategy(): that refuses broken metadata, which check_metadata must report.
            self.strategy = Strategy(self.manager, self.name)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._stack.close()
        if self._owned_dir:
            shutil.rmtree(self.sandbox.root, ignore_errors=True)

    def __enter__(self) -> ConformanceRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ running checks

    def result(self, check: str) -> CheckOutcome:
        """Run ``check`` and return its result (never raises for a failing plugin)."""
        if check not in CHECKS:
            raise ValueError(f"unknown check {check!r} (choose from {', '.join(CHECKS)})")
        start = time.perf_counter()
        try:
            message = getattr(self, f"check_{check}")() or ""
            outcome = "passed"
        except CheckSkipped as exc:
            outcome, message = "skipped", str(exc)
        except CheckFailed as exc:
            outcome, message = "failed", str(exc)
        except Exception as exc:  # the plugin (or its set-up) broke in a way no check foresaw
            outcome, message = "failed", f"unexpected error: {_error(exc)}"
        return CheckOutcome(check, outcome, message, time.perf_counter() - start)

    def report(self, checks: tuple[str, ...] = CHECKS) -> ConformanceReport:
        return ConformanceReport(self.name, tuple(self.result(c) for c in checks))

    # ------------------------------------------------------------------ shared material

    def _memo(self, key: str, build: Callable[[], _T]) -> _T:
        if key not in self._cache:
            try:
                self._cache[key] = ("ok", build())
            except CheckFailed as exc:
                self._cache[key] = ("failed", exc)
        status, value = self._cache[key]
        if status == "failed":
            raise CheckFailed(str(value))
        return cast(_T, value)  # the cache holds what build() returned for this key

    @property
    def info(self) -> StrategyInfo:
        def build() -> StrategyInfo:
            try:
                with self.sandbox.phase("trader_strategy_info"):
                    return self.strategy.info
            except Exception as exc:
                raise CheckFailed(f"trader_strategy_info failed: {_error(exc)}") from exc

        return self._memo("info", build)

    @property
    def timeframe(self) -> str:
        if self.settings.timeframe:
            return self.settings.timeframe
        return "1h" if "1h" in self.info.timeframes else self.info.timeframes[0]

    @property
    def candles(self) -> Any:
        def build() -> Any:
            from trader.testing.fixtures import make_candles

            bars = max(self.settings.bars, self.info.warmup_bars + 100)
            return make_candles(
                bars,
                symbol=self.settings.symbol,
                timeframe=self.timeframe,
                seed=self.settings.data_seed,
                planted_signal=self.settings.planted_signal,
            )

        return self._memo("candles", build)

    @property
    def rows(self) -> list[int]:
        """The rows the batch checks ask signals for: every row after the warm-up."""
        return list(range(min(self.info.warmup_bars, len(self.candles) - 1), len(self.candles)))

    @property
    def train_candles(self) -> Any:
        cut = max(int(len(self.candles) * self.settings.train_fraction), self.info.warmup_bars + 50)
        return self.candles.iloc[:cut].reset_index(drop=True)

    def features(self, candles: Any) -> Any:
        """The core's features for ``candles``, as the engine gives them to the strategy."""
        windows = self.info.feature_windows
        if not windows:
            return None
        try:
            from trader.features import FeatureEngineer
        except ImportError as exc:
            raise CheckFailed(f"strategy reads core features {windows}, but trader.features is unavailable: {exc}") from exc
        return FeatureEngineer(windows=list(windows)).transform(candles)

    @property
    def full_features(self) -> Any:
        return self._memo("full_features", lambda: self.features(self.candles))

    def train(self, label: str = "trader_train") -> TrainResult:
        request = TrainRequest(
            strategy=self.name,
            symbol=self.settings.symbol,
            timeframe=self.timeframe,
            candles=self.train_candles,
            params=dict(self.settings.train_params),
            seed=self.settings.seed,
        )
        try:
            with self.sandbox.phase(label):
                return self.strategy.train(request)
        except Exception as exc:
            raise CheckFailed(
                f"trader_train failed on {len(request.candles)} candles with params {dict(request.params)}: {_error(exc)}"
            ) from exc

    @property
    def trained(self) -> TrainResult | None:
        """The model trained once for all checks; ``None`` for a strategy without ``trader_train``."""

        def build() -> TrainResult | None:
            return self.train() if self.strategy.trainable else None

        return self._memo("trained", build)

    @property
    def model(self) -> Any:
        if self.settings.model is not None:
            return self.settings.model
        if self.trained is not None:
            return self.trained.model
        if self.info.requires_model:
            raise CheckFailed(
                "the strategy requires a model but implements no trader_train; "
                "pass a ready model to the suite (model=...)"
            )
        return None

    @property
    def workdir(self) -> Path:
        """The strategy's own folder (``SignalRequest.workdir``), in the sandbox's ``TRADER_HOME``."""
        from trader.config import strategy_workdir

        return strategy_workdir(self.sandbox.home, self.name)

    def request(self, candles: Any, at: Any, *, model: Any = None, features: Any = "compute") -> SignalRequest:
        return SignalRequest(
            strategy=self.name,
            symbol=self.settings.symbol,
            timeframe=self.timeframe,
            candles=candles,
            at=at,
            features=self.features(candles) if isinstance(features, str) else features,
            model=model,
            state={},
            params=dict(self.settings.params),
            workdir=self.workdir,
        )

    def signals(self, request: SignalRequest, what: str) -> list[Signal]:
        try:
            with self.sandbox.phase("trader_generate_signals"):
                return self.strategy.generate_signals(request)
        except Exception as exc:
            raise CheckFailed(f"trader_generate_signals failed for {what}: {_error(exc)}") from exc

    def _row(self, row: int) -> str:
        from trader.backtest.lookahead import describe_row

        return describe_row(self.candles, row, "row")

    @property
    def batch_signals(self) -> list[Signal]:
        """Signals for every row after the warm-up, asked in one batch as a backtest does."""

        def build() -> list[Signal]:
            import numpy as np

            request = self.request(self.candles, np.asarray(self.rows, dtype=np.int64), model=self.model,
                                   features=self.full_features)
            return self.signals(request, f"a batch of {len(self.rows)} rows")

        return self._memo("batch_signals", build)

    # ------------------------------------------------------------------ checks

    def check_metadata(self) -> str:
        info = self.info
        problems = []
        if not _NAME.match(self.name):
            problems.append(
                f"name {self.name!r} must be lower-case letters, digits and underscores, starting with a letter "
                "(it names folders under TRADER_HOME)"
            )
        if not info.description.strip():
            problems.append("description is empty (trader plugins shows it; say in one line what the strategy does)")
        try:
            from packaging.version import InvalidVersion, Version

            Version(info.version)
        except InvalidVersion:
            problems.append(f"version {info.version!r} is not a PEP 440 version (e.g. 0.1.0)")
        except ImportError:  # packaging is not installed: nothing to compare with
            pass
        if self.distribution is not None and info.version != self.distribution[1]:
            problems.append(
                f"version {info.version!r} differs from the installed distribution {self.distribution[0]} "
                f"{self.distribution[1]} (reinstall, or read the version from package metadata)"
            )
        if not info.timeframes:
            problems.append("timeframes is empty: the strategy could never run")
        for tf in info.timeframes:
            try:
                from trader.timeframes import timeframe_to_ms

                timeframe_to_ms(tf)
            except ValueError as exc:
                problems.append(f"timeframes: {exc}")
        for window in info.feature_windows:
            if isinstance(window, bool) or not isinstance(window, int) or window < 1:
                problems.append(f"feature_windows: {window!r} is not a positive number of bars")
        from trader.types import RiskLimits

        if not isinstance(info.risk_limits, RiskLimits):
            problems.append(f"risk_limits is a {type(info.risk_limits).__name__}, not trader.types.RiskLimits")
        hooks = set(self.strategy.record.hooks)
        if "trader_generate_signals" not in hooks:
            problems.append("does not implement trader_generate_signals: it can never trade")
        if "trader_train" in hooks:
            missing = [h for h in ("trader_save_model", "trader_load_model") if h not in hooks]
            if missing:
                problems.append(f"implements trader_train but not {' and '.join(missing)}: a trained model could never be stored")
        if info.requires_model and not ({"trader_train", "trader_load_model"} & hooks):
            problems.append("requires_model is set but the plugin can neither train nor load a model")
        try:
            with self.sandbox.phase("trader_strategy_info"):
                again = self.manager.subset_hook("trader_strategy_info", [self.name])()
        except Exception as exc:
            problems.append(f"a second call of trader_strategy_info failed: {_error(exc)}")
        else:
            if again != info:
                problems.append("trader_strategy_info returns different metadata on a second call")
        if problems:
            raise CheckFailed("; ".join(problems))
        return f"{info.name} {info.version}, warm-up {info.warmup_bars} bars"

    def check_signals(self) -> str:
        from trader.backtest.lookahead import batch_mismatches
        from trader.models import candles_hash

        candles = self.candles
        rows = self.rows
        before = candles_hash(candles)
        features = self.full_features
        features_before = features.copy() if features is not None else None
        signals = self.batch_signals
        if candles_hash(candles) != before or list(candles.columns) != ["timestamp", "open", "high", "low", "close", "volume"]:
            raise CheckFailed("trader_generate_signals changed request.candles in place; copy before modifying")
        if features is not None and not features.equals(features_before):
            raise CheckFailed("trader_generate_signals changed request.features in place; copy before modifying")
        last = len(candles) - 1
        mismatches = batch_mismatches(_SandboxedSource(self), candles, [last], [signals[-1]], batch_size=len(rows),
                                      features=features, tolerance=self.settings.tolerance)
        if mismatches:
            raise CheckFailed(mismatches[0].message(self._row(last)))
        counts = {a: 0 for a in ("buy", "sell", "hold")}
        for signal in signals:
            counts[signal.action.value] += 1
        return f"{len(rows)} rows: " + ", ".join(f"{n} {a}" for a, n in counts.items())

    def _verdict(self, result: CheckResult) -> str:
        """A shared check's :class:`~trader.backtest.lookahead.CheckResult` as this suite's outcome."""
        if result.status == "skip":
            raise CheckSkipped(result.detail)
        if result.status == "fail":
            shown = "; ".join(result.offending[:3])
            raise CheckFailed(f"{result.detail}: {shown}" if shown else result.detail)
        return result.detail

    def check_lookahead(self) -> str:
        from trader.backtest.lookahead import lookahead_result

        rows = self.rows
        return self._verdict(lookahead_result(
            _SandboxedSource(self), self.candles, rows[0], features=self.full_features, full=self.batch_signals,
            prefixes=self.settings.cut_points, tolerance=self.settings.tolerance, seed=self.settings.seed,
            describe=self._row, name="lookahead"))

    def _fresh(self) -> tuple[Callable[[], Any] | None, str]:
        """How the determinism check asks fresh processes (``None`` and why, when they cannot load the strategy)."""
        import numpy as np

        from trader.backtest.fresh import FreshPlugin, fresh_signals

        plugin = FreshPlugin.installed(self.entry_point, self.name) if self.entry_point else None
        plugin = plugin or FreshPlugin.of(self.manager, self.name, self.plugin)
        if plugin is None:
            return None, "the plugin is an object in this process, not an installed plugin or importable module"
        if self.settings.model is not None:
            return None, "the model was handed to the suite and cannot be loaded by another process"
        if self.trained is not None:
            try:
                loaded = self.persisted
            except CheckFailed as exc:
                return None, f"the model could not be saved for it ({exc})"
            plugin = plugin.with_model(self.sandbox.home / "models", str(loaded.version))
        rows = np.asarray(self.rows, dtype=np.int64)

        def ask() -> Any:
            return fresh_signals(plugin, self.candles, rows, features=self.full_features, symbol=self.settings.symbol,
                                 timeframe=self.timeframe, params=self.settings.params,
                                 env=self.sandbox.environment(), cwd=self.sandbox.work, processes=1,
                                 workdir=self.workdir)[0]

        return ask, ""

    def check_determinism(self) -> str:
        import numpy as np

        from trader.backtest.lookahead import determinism_result

        rows = np.asarray(self.rows, dtype=np.int64)
        first = self.batch_signals
        fresh, note = self._fresh()
        message = self._verdict(determinism_result(
            _SandboxedSource(self), self.candles, rows, features=self.full_features, tolerance=self.settings.tolerance,
            fresh=fresh, fresh_note=note, describe=self._row))
        if self.trained is None or self.settings.model is not None:
            return message + " (no model to retrain)"
        second = self.train("trader_train (second run)")
        retrained = self.signals(
            self.request(self.candles, rows, model=second.model, features=self.full_features), "the retrained model"
        )
        self._compare(first, retrained, f"two trainings with seed {self.settings.seed} give")
        return f"{message}; two trainings with seed {self.settings.seed} give the same {len(first)} signals"

    def _compare(self, expected: list[Signal], actual: list[Signal], what: str) -> None:
        from trader.backtest.lookahead import describe_signal, signal_differences

        differ = signal_differences(expected, actual, self.settings.tolerance)
        if differ:
            i, diff = differ[0]
            raise CheckFailed(
                f"{what} different signals at {len(differ)} of {len(expected)} rows, first at {self._row(self.rows[i])}: "
                f"{describe_signal(expected[i])} vs {describe_signal(actual[i])} ({diff})"
            )

    @property
    def persisted(self) -> Any:
        """The trained model saved to the sandbox's TRADER_HOME and loaded back."""

        def build() -> Any:
            from trader.models import ModelPersistence, candles_hash, candles_range

            store = ModelPersistence(self.sandbox.home / "models")
            train = self.train_candles
            trained = self.trained
            if trained is None:
                raise CheckFailed("the strategy trained no model: nothing to persist")
            try:
                with self.sandbox.phase("trader_save_model"):
                    version = store.save(
                        self.strategy,
                        trained,
                        symbol=self.settings.symbol,
                        timeframe=self.timeframe,
                        data_range=candles_range(train),
                        data_hash=candles_hash(train),
                        seed=self.settings.seed,
                    )
            except Exception as exc:
                raise CheckFailed(f"saving the trained model failed: {_error(exc)}") from exc
            try:
                with self.sandbox.phase("trader_load_model"):
                    loaded = store.load(self.strategy, self.settings.symbol, self.timeframe)
            except Exception as exc:
                raise CheckFailed(f"loading the saved model {version.directory} failed: {_error(exc)}") from exc
            if loaded is None:
                raise CheckFailed(f"the saved model {version.directory} could not be found again")
            return loaded

        return self._memo("persisted", build)

    def check_persistence(self) -> str:
        import numpy as np

        if not self.strategy.trainable:
            raise CheckSkipped("the strategy trains no model: nothing to persist")
        loaded = self.persisted
        rows = np.asarray(self.rows, dtype=np.int64)
        restored = self.signals(
            self.request(self.candles, rows, model=loaded.model, features=self.full_features), "the reloaded model"
        )
        self._compare(self.batch_signals, restored, "the model loaded back from disk gives")
        files = ", ".join(entry["name"] for entry in loaded.manifest["files"])
        return f"saved as {files} ({loaded.version}); the reloaded model gives the same {len(restored)} signals"

    def check_isolation(self) -> str:
        self.batch_signals  # noqa: B018 - make sure every hook ran at least once in the sandbox
        if self.strategy.trainable:
            self.persisted  # noqa: B018
        if "trader_state_store" in self.strategy.record.hooks:
            directory = self.sandbox.home / "strategies" / self.name
            directory.mkdir(parents=True, exist_ok=True)
            try:
                with self.sandbox.phase("trader_state_store"):
                    store = self.manager.subset_hook("trader_state_store", [self.name])(namespace=self.name, directory=directory)
                    close = getattr(store, "close", None)
                    if callable(close):
                        close()
            except Exception as exc:
                raise CheckFailed(f"trader_state_store failed: {_error(exc)}") from exc
        ran = self._run_engine()
        from trader.testing.sandbox import isolation_offences

        offending = isolation_offences(self.sandbox, self.name)
        if offending:
            raise CheckFailed(
                f"the strategy wrote outside its namespace (allowed: TRADER_HOME/strategies/{self.name}/ and "
                f"TRADER_HOME/models/{self.name}/): {'; '.join(offending)}"
            )
        phases = sorted({label for label, _, _ in self.sandbox.logs})
        return f"every write lies in its namespace ({ran}; watched: {', '.join(phases)})"

    def _run_engine(self) -> str:
        """Trade a few candles past the warm-up through the real run loop, in the sandbox."""
        from trader.testing.sandbox import trade_through_run_loop

        if self.info.requires_model and not self.strategy.trainable:
            return "run loop skipped: the model was handed to the suite, not stored"
        try:
            return trade_through_run_loop(self.sandbox, self.manager, self.name, self.info, timeframe=self.timeframe,
                                          symbol=self.settings.symbol, params=self.settings.params,
                                          candles=self.settings.run_candles, bars=self.settings.bars,
                                          seed=self.settings.data_seed)
        except Exception as exc:
            steps = self.info.warmup_bars + self.settings.run_candles
            raise CheckFailed(f"trading {steps} candles with the run loop (trader run) failed: {_error(exc)}") from exc


# ---------------------------------------------------------------------- entry points


def run_conformance(
    plugin: object | str,
    name: str | None = None,
    *,
    checks: tuple[str, ...] = CHECKS,
    settings: ConformanceSettings | None = None,
    **options: Any,
) -> ConformanceReport:
    """Run the suite on ``plugin`` (a module/object, or the name of an installed plugin).

    ``options`` are :class:`ConformanceSettings` fields (``train_params=...``,
    ``params=...``, ``bars=...``); they are ignored when ``settings`` is given.
    """
    settings = settings or ConformanceSettings(**options)
    with ConformanceRun(plugin, name, settings) as run:
        return run.report(checks)


def assert_conformance(plugin: object | str, name: str | None = None, **options: Any) -> ConformanceReport:
    """:func:`run_conformance`, raising :class:`ConformanceError` listing the failures."""
    report = run_conformance(plugin, name, **options)
    if not report.ok:
        raise ConformanceError(report)
    return report

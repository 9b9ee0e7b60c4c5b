"""The checks behind ``trader check`` and the conformance suite: look-ahead, batch, determinism, warm-up.

Each check passes, fails (naming the candle and the input at fault) or is skipped:

- **truncation** (the suite's ``lookahead``): at several prefix lengths ``L``
  (:data:`DEFAULT_PREFIXES`, spread over the candles with a seeded jitter), EVERY row
  before ``L`` is asked in one batch on ``candles[:L]`` (features recomputed on it) and
  compared with its signal on all candles. A difference means something read a candle
  at or after ``L``: the failure names the row, how far before the cut the signals
  change (rows far before it mean a statistic of the whole frame, e.g. a mean or a
  standard deviation over all candles) and, by perturbing one input at a time after the
  cut, the candle column or feature that leaks.
- **batch**: a row asked alone equals the same row asked among all rows.
- **determinism**: the same request twice, the rows in reverse order, and fresh
  processes (:mod:`trader.backtest.fresh`) against this one, which has asked the
  strategy many times by then: randomness, call-count dependence and state kept
  between calls are each named as such, never as look-ahead.
- **warm-up**: with only ``warmup_bars`` candles of history the signal is the one with
  all history; advice to raise ``warmup_bars`` is given only when more history makes the
  signals agree, and never while look-ahead or non-determinism is found.
- **persistence**: a model saved and loaded again gives the same signals.
- **isolation** (``trader check`` with a sandbox): every write lies in the strategy's namespace.

The conformance suite (:mod:`trader.testing.conformance`) runs :func:`lookahead_result`,
:func:`determinism_result` and :func:`batch_mismatches` with the same defaults, asking
the strategy through any :class:`SignalSource`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import numpy as np

from trader.backtest.determinism import determinism_result, differing_rows
from trader.backtest.signals import request_signals, signals_differ, strategy_features
from trader.errors import TraderError

if TYPE_CHECKING:
    import pandas as pd

    from trader.strategy import Strategy
    from trader.types import Signal

__all__ = [
    "CHECK_NAMES",
    "DEFAULT_PREFIXES",
    "DEFAULT_TOLERANCE",
    "BatchMismatch",
    "CheckResult",
    "CheckContext",
    "PrefixLeak",
    "SignalSource",
    "batch_mismatches",
    "check_truncation",
    "check_batch",
    "check_determinism",
    "check_warmup",
    "check_persistence",
    "check_isolation",
    "describe_row",
    "describe_signal",
    "determinism_result",
    "lookahead_result",
    "prefix_ends",
    "run_checks",
    "signal_differences",
]

CHECK_NAMES = ("truncation", "batch", "determinism", "warmup", "persistence", "isolation")
#: prefix lengths compared at every row by default (``trader check --prefixes``, the suite's ``cut_points``)
DEFAULT_PREFIXES = 24
#: absolute difference allowed between two sizes, confidences or probabilities that should be equal
DEFAULT_TOLERANCE = 1e-5
#: signals changing this many bars before a cut cannot come from a bounded look-ahead of a usual horizon
WHOLE_FRAME_BARS = 100
#: candle columns perturbed, one at a time, to find the input that leaks
CANDLE_INPUTS = ("open", "high", "low", "close", "volume")
#: at most this many feature columns are perturbed
MAX_FEATURE_PROBES = 256
#: ``(scale, shift)``: the values after the cut become ``x * scale + shift``, one after
#: the other until a signal changes (up, sign flipped, down: a threshold on a later
#: value flips under one of them)
PERTURBATIONS = ((1.37, 1.0), (-1.0, 0.0), (0.6, 0.0))


class SignalSource(Protocol):
    """How the shared checks ask a strategy: core features, and signals for rows of any candles.

    ``model=None`` means the source's own model. :class:`CheckContext` is one; the
    conformance suite wraps its sandboxed strategy in another.
    """

    def features(self, candles: pd.DataFrame) -> pd.DataFrame | None: ...

    def signals(self, candles: pd.DataFrame, at: Sequence[int] | np.ndarray, features: Any = None, model: Any = None) -> list[Signal]: ...


def describe_signal(signal: Signal) -> str:
    """``BUY (confidence 0.8000, size 1.0000, probability 0.8000)``."""
    text = f"{signal.action.value.upper()} (confidence {signal.confidence:.4f}, size {signal.size:.4f}"
    if signal.probability is not None:
        text += f", probability {signal.probability:.4f}"
    return text + ")"


def describe_row(candles: pd.DataFrame, row: int, noun: str = "candle") -> str:
    """``candle 57 (2024-01-03 09:00 UTC)``: the row's number and its candle's open time."""
    from trader.data import format_ms

    return f"{noun} {row} ({format_ms(int(candles['timestamp'].iloc[row]))} UTC)"


def signal_differences(expected: Sequence[Signal], actual: Sequence[Signal], tolerance: float) -> list[tuple[int, str]]:
    """``(position, what differs)`` for each pair of signals that disagree beyond ``tolerance``."""
    return [(int(i), signals_differ(expected[i], actual[i], tolerance) or "")
            for i in differing_rows(expected, actual, tolerance)]


def _error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, TraderError | AssertionError) else f"{type(exc).__name__}: {exc}"


def _texts(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _row_tuple(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


@attrs.frozen
class CheckResult:
    """One check's outcome: ``status`` is ``pass``, ``fail`` or ``skip``."""

    name: str
    status: str = attrs.field(validator=attrs.validators.in_(("pass", "fail", "skip")))
    detail: str
    offending: tuple[str, ...] = attrs.field(default=(), converter=_texts)

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "offending": list(self.offending)}


# ---------------------------------------------------------------------- look-ahead: every row of several prefixes


def prefix_ends(first: int, n: int, count: int = DEFAULT_PREFIXES, seed: int = 0) -> list[int]:
    """Prefix lengths ``L`` (``candles[:L]``) to compare at every row in ``[first, L)``.

    The shortest ends right after ``first``, the longest drops only the last candle; the
    others are one per equal stretch between them, at a seeded random place (a look-ahead
    of ``h`` bars shows at a row when some ``L`` falls within ``h`` bars after it).
    """
    lo, hi = first + 1, n - 1
    if hi < lo or count < 1:
        return []
    if count == 1:
        return [hi]
    rng = np.random.default_rng(seed)
    edges = np.linspace(lo, hi, count + 1)
    ends = {lo, hi}
    for a, b in zip(edges[1:-2], edges[2:-1], strict=True):
        low, high = math.ceil(a), max(math.ceil(a), math.floor(b))
        ends.add(int(rng.integers(low, high + 1)))
    return sorted(e for e in ends if lo <= e <= hi)


@attrs.frozen
class PrefixLeak:
    """What changed when the candles from ``end`` on were removed.

    ``kind`` is ``error`` (the request on ``candles[:end]`` failed with ``error``),
    ``batch`` (the same rows asked with all candles agree with the prefix: the signal
    depends on which rows are requested), ``later candles`` or ``features`` (only core
    features changed). ``rows`` are the rows whose signal changed, ``first`` the first of
    them with its signal on all candles (``full``) and on the prefix (``truncated``);
    ``compared`` the number of rows compared; ``inputs`` the candle columns and features
    whose values after the cut change signals before it; ``features`` the core features
    that differ (``name (full vs truncated)``).
    """

    end: int
    kind: str = attrs.field(validator=attrs.validators.in_(("error", "batch", "later candles", "features")))
    compared: int
    rows: tuple[int, ...] = attrs.field(default=(), converter=_row_tuple)
    full: Signal | None = None
    truncated: Signal | None = None
    difference: str | None = None
    error: str | None = None
    inputs: tuple[str, ...] = attrs.field(default=(), converter=_texts)
    features: tuple[str, ...] = attrs.field(default=(), converter=_texts)

    @property
    def reach(self) -> int:
        """How many bars before the cut's last row the farthest changed signal lies."""
        return self.end - 1 - min(self.rows) if self.rows else 0

    def message(self, describe: Callable[[int], str]) -> str:
        """One line naming the first changed row, both signals and the inputs at fault."""
        cut = self.end - 1
        if self.kind == "error":
            text = (f"{describe(cut)}: with the history truncated after this row, {self.error} "
                    "(the strategy needs rows after the one it decides on)")
        elif self.kind == "features":
            text = f"{describe(cut)}: the signal is unchanged, but the core features before it are not"
        else:
            assert self.full is not None and self.truncated is not None  # set for "batch" and "later candles"
            row = self.rows[0]
            changed = f"{len(self.rows)} of {self.compared} rows up to row {cut} change"
            if self.kind == "batch":
                text = (f"{describe(row)}: asked with the rows up to {cut} the signal is {describe_signal(self.truncated)}, "
                        f"asked among all rows it is {describe_signal(self.full)} ({self.difference}); {changed}: the "
                        "signal depends on which other rows are requested (e.g. normalising over the whole batch), "
                        "so backtests see the future")
            else:
                text = (f"{describe(row)}: the signal depends on later candles: with the full history it is "
                        f"{describe_signal(self.full)}, with the history truncated after row {cut} it is "
                        f"{describe_signal(self.truncated)} ({self.difference}); {changed}, the farthest "
                        f"{self.reach} bars before the cut")
                if self.reach >= WHOLE_FRAME_BARS:
                    text += " (a statistic of the whole frame, e.g. a mean or standard deviation over all candles)"
                if self.inputs:
                    text += f"; it changes when {' or '.join(self.inputs)} after row {cut} change"
        if self.features:
            text += f"; features that read later candles: {', '.join(self.features[:8])}"
        return text


def _prefix_leak(source: SignalSource, candles: pd.DataFrame, first: int, end: int, full: Sequence[Signal],
                 features: pd.DataFrame | None, tolerance: float) -> tuple[PrefixLeak | None, list[Signal] | None]:
    """The leak at prefix ``end`` (``None`` if none) and the control signals (same rows, all candles)."""
    prefix = candles.iloc[:end]
    prefix_features = source.features(prefix)
    leaked = tuple(_differing_feature_columns(features, prefix_features, first, end, tolerance))
    rows = np.arange(first, end, dtype=np.int64)
    compared = int(rows.size)
    try:
        truncated = source.signals(prefix, rows, prefix_features)
    except Exception as exc:  # noqa: BLE001 - the strategy breaking without the later rows is the finding
        return PrefixLeak(end, "error", compared, error=_error_text(exc), features=leaked), None
    expected = full[: rows.size]
    changed = differing_rows(expected, truncated, tolerance)
    if changed.size == 0:
        return (PrefixLeak(end, "features", compared, features=leaked) if leaked else None), None
    control = source.signals(candles, rows, features)
    later = differing_rows(control, truncated, tolerance)
    if later.size == 0:
        i = int(changed[0])
        return PrefixLeak(end, "batch", compared, rows=(first + changed).tolist(), full=expected[i], truncated=truncated[i],
                          difference=signals_differ(expected[i], truncated[i], tolerance), features=leaked), control
    i = int(later[0])
    return PrefixLeak(end, "later candles", compared, rows=(first + later).tolist(), full=control[i],
                      truncated=truncated[i], difference=signals_differ(control[i], truncated[i], tolerance),
                      features=leaked), control


def leaking_inputs(source: SignalSource, candles: pd.DataFrame, first: int, end: int, control: Sequence[Signal],
                   features: pd.DataFrame | None, tolerance: float) -> tuple[str, ...]:
    """The candle columns (then, if none, the features) whose values from ``end`` on change signals before ``end``.

    Each input is perturbed on its own from ``end`` on (see :data:`PERTURBATIONS`) and the
    rows ``first..end-1`` are asked in one batch; ``control`` is their signals with the
    inputs unchanged. Any change is proof: only a strategy that reads the input there can see it.
    """
    rows = np.arange(first, end, dtype=np.int64)

    def changes(column: str, in_features: bool) -> bool:
        for scale, shift in PERTURBATIONS:
            try:
                if in_features:
                    got = source.signals(candles, rows, _perturbed_from(features, end, column, scale, shift))
                else:
                    got = source.signals(_perturbed_from(candles, end, column, scale, shift), rows, features)
            except Exception:  # noqa: BLE001, S112 - a strategy that breaks on odd values names no input
                continue
            if differing_rows(control, got, tolerance).size:
                return True
        return False

    found = [f"candle column {name!r}" for name in CANDLE_INPUTS if name in candles.columns and changes(name, False)]
    if not found and features is not None:
        found = [f"feature {name!r}" for name in list(features.columns)[:MAX_FEATURE_PROBES] if changes(name, True)]
    return tuple(found)


def _perturbed_from(frame: pd.DataFrame, end: int, column: str, scale: float, shift: float) -> pd.DataFrame:
    changed = frame.copy()
    values = changed[column].to_numpy(dtype=np.float64, copy=True)
    values[end:] = values[end:] * scale + shift
    changed[column] = values
    return changed


def _differing_feature_columns(full: pd.DataFrame | None, part: pd.DataFrame | None, first: int, end: int,
                               tolerance: float) -> list[str]:
    """``name (full vs truncated)`` for each core feature that differs in rows ``first..end-1``."""
    if full is None or part is None:
        return []
    a = full.iloc[first:end].to_numpy(dtype=np.float64)
    b = part.iloc[first:end].to_numpy(dtype=np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    with np.errstate(invalid="ignore"):
        bad = (nan_a != nan_b) | (~nan_a & ~nan_b & (np.abs(a - b) > 1e-12 + 1e-9 * np.abs(a)))
    names = []
    for j in np.flatnonzero(bad.any(axis=0)):
        i = int(np.flatnonzero(bad[:, j])[0])
        names.append(f"{full.columns[j]} ({a[i, j]:.6g} vs {b[i, j]:.6g})")
    return names


def lookahead_result(
    source: SignalSource,
    candles: pd.DataFrame,
    first: int,
    *,
    features: pd.DataFrame | None = None,
    full: Sequence[Signal] | None = None,
    prefixes: int = DEFAULT_PREFIXES,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    describe: Callable[[int], str] | None = None,
    name: str = "truncation",
) -> CheckResult:
    """Every row from ``first`` of each prefix (:func:`prefix_ends`) against its signal on all candles.

    ``full`` are the signals of rows ``first..n-1`` asked in one batch with all candles and
    their ``features`` (asked here when ``None``). The check is skipped when the same full
    request, asked again afterwards, no longer gives ``full``: differences are then not
    evidence of look-ahead (the determinism check reports them).
    """
    n = len(candles)
    describe = describe or (lambda row: describe_row(candles, row))
    ends = prefix_ends(first, n, prefixes, seed)
    if not ends:
        return CheckResult(name, "skip", f"{n} candles leave no row after the {first} warm-up bars to cut after")
    all_rows = np.arange(first, n, dtype=np.int64)
    if features is None:
        features = source.features(candles)
    if full is None:
        full = source.signals(candles, all_rows, features)
    found: list[tuple[PrefixLeak, list[Signal] | None]] = []
    for end in ends:
        leak, control = _prefix_leak(source, candles, first, end, full, features, tolerance)
        if leak is not None:
            found.append((leak, control))
    if not found:
        return CheckResult(name, "pass", f"every row before {len(ends)} cuts ({n - first:,} rows after the warm-up) gives "
                                         "the same signal (and features) without the candles after the cut")
    again = source.signals(candles, all_rows, features)
    repeat = differing_rows(full, again, tolerance)
    if repeat.size:
        return CheckResult(name, "skip", "look-ahead not judged: the same request asked again gives different signals "
                                         f"at {repeat.size} rows, so a difference after a cut proves nothing (see the "
                                         "determinism check)")
    leaks = [leak for leak, _ in found]
    later = sorted((pair for pair in found if pair[0].kind == "later candles"), key=lambda p: -len(p[0].rows))
    for leak, control in later[:2]:
        assert control is not None  # a "later candles" leak comes with its control signals
        inputs = leaking_inputs(source, candles, first, leak.end, control, features, tolerance)
        if inputs:
            leaks[leaks.index(leak)] = attrs.evolve(leak, inputs=inputs)
            break
    return CheckResult(name, "fail", _summary(leaks, len(ends)), [leak.message(describe) for leak in leaks])


def _summary(leaks: list[PrefixLeak], cuts: int) -> str:
    kinds = {leak.kind for leak in leaks}
    if "later candles" in kinds or "error" in kinds:
        rows = sum(len(leak.rows) for leak in leaks)
        text = f"look-ahead: removing the candles after the cut changes {rows} earlier signals at {len(leaks)} of {cuts} cuts"
        reach = max((leak.reach for leak in leaks if leak.kind == "later candles"), default=0)
        if reach >= WHOLE_FRAME_BARS:
            text += (f", up to {reach} bars before the cut: the strategy reads a statistic of the whole frame "
                     "(e.g. a mean or standard deviation over all candles, later ones included)")
        elif reach:
            text += f", up to {reach} bars before the cut: it reads at least {reach + 1} bars ahead"
        inputs = next((leak.inputs for leak in leaks if leak.inputs), ())
        if inputs:
            text += f"; the signal changes with later values of {' or '.join(inputs)}"
        return text
    if "batch" in kinds:
        return f"the signal depends on which other rows are requested (at {len(leaks)} of {cuts} cuts)"
    return f"core features read later candles (at {len(leaks)} of {cuts} cuts)"


# ---------------------------------------------------------------------- batch against single row


@attrs.frozen
class BatchMismatch:
    """``row`` asked alone gives ``alone``; asked among ``batch_size`` rows it gives ``batched``."""

    row: int
    alone: Signal
    batched: Signal
    batch_size: int
    difference: str

    def message(self, where: str) -> str:
        return (f"{where}: asked alone the signal is {describe_signal(self.alone)}, in a batch of {self.batch_size} "
                f"rows it is {describe_signal(self.batched)} ({self.difference}); "
                "live trading and backtests would disagree")


def batch_mismatches(
    source: SignalSource,
    candles: pd.DataFrame,
    rows: Sequence[int] | np.ndarray,
    batched: Sequence[Signal],
    *,
    batch_size: int,
    features: pd.DataFrame | None,
    tolerance: float,
) -> list[BatchMismatch]:
    """Each of ``rows`` asked alone (as live trading asks) against ``batched``, its signal in the batch.

    A row whose answer alone changes when asked alone again is left out: that is
    non-determinism (the determinism check's finding), not batch dependence.
    """
    out = []
    for row, expected in zip(rows, batched, strict=True):
        alone = source.signals(candles, [row], features)[0]
        diff = signals_differ(alone, expected, tolerance)
        if diff and signals_differ(alone, source.signals(candles, [row], features)[0], tolerance) is None:
            out.append(BatchMismatch(row, alone, expected, batch_size, diff))
    return out


# ---------------------------------------------------------------------- trader check


@attrs.define
class CheckContext:
    """What every check of ``trader check`` needs: the strategy, candles, model and parameters.

    ``sandbox`` (a :class:`trader.testing.sandbox.Sandbox`) runs every strategy call with a
    temporary ``TRADER_HOME``, ``HOME``, temporary and working folder and records its
    writes; ``fresh`` says how a fresh process loads the strategy (``None``: it cannot);
    ``manager`` is needed by the isolation check's run loop.
    """

    strategy: Strategy
    candles: pd.DataFrame
    symbol: str
    timeframe: str
    model: Any = None
    #: what to save in the persistence check (the training result, or one rebuilt from a manifest)
    train_result: Any = None
    params: Mapping[str, Any] = attrs.field(factory=dict)
    samples: int = 12
    seed: int = 0
    tolerance: float = DEFAULT_TOLERANCE
    warmup_tolerance: float = 1e-3
    prefixes: int = DEFAULT_PREFIXES
    sandbox: Any = None
    fresh: Any = None
    fresh_note: str = "the strategy is not an installed plugin a fresh process can load"
    manager: Any = None
    #: the strategy's own folder (``SignalRequest.workdir``): in ``trader check`` the sandbox's
    workdir: Path | None = None
    _memo: dict = attrs.field(factory=dict, init=False, repr=False)

    @property
    def warmup(self) -> int:
        return self.strategy.info.warmup_bars

    @property
    def first(self) -> int:
        """The first row judged: the one after the warm-up (never past the last candle)."""
        return min(self.warmup, len(self.candles) - 1)

    def phase(self, label: str) -> Any:
        return self.sandbox.phase(label) if self.sandbox is not None else nullcontext()

    def features(self, candles: pd.DataFrame) -> pd.DataFrame | None:
        return strategy_features(self.strategy.info, candles, self.timeframe)

    def signals(self, candles: pd.DataFrame, at: Sequence[int] | np.ndarray, features: Any = None, model: Any = None) -> list[Signal]:
        with self.phase("trader_generate_signals"):
            return request_signals(
                self.strategy, candles, at, symbol=self.symbol, timeframe=self.timeframe, features=features,
                model=self.model if model is None else model, params=self.params, workdir=self.workdir,
            )

    @property
    def full_features(self) -> pd.DataFrame | None:
        if "features" not in self._memo:
            self._memo["features"] = self.features(self.candles)
        return self._memo["features"]

    @property
    def full_signals(self) -> list:
        """Every row after the warm-up asked in one batch with all candles (the first request of the checks)."""
        if "full" not in self._memo:
            rows = np.arange(self.first, len(self.candles), dtype=np.int64)
            self._memo["full"] = self.signals(self.candles, rows, self.full_features)
        return self._memo["full"]

    def saved_model(self) -> tuple[Path, str, Any]:
        """The model saved (to the sandbox's ``TRADER_HOME/models``, else a temporary folder) and loaded back:
        ``(models folder, version, loaded model)``; :class:`TraderError` when that fails."""
        if "saved" not in self._memo:
            self._memo["saved"] = self._save_and_load()
        return self._memo["saved"]

    def _save_and_load(self) -> tuple[Path, str, Any]:
        import tempfile

        from trader.models import ModelPersistence, candles_hash, candles_range

        if self.sandbox is not None:
            folder = self.sandbox.home / "models"
        else:
            folder = Path(tempfile.mkdtemp(prefix="trader-check-"))
        store = ModelPersistence(folder)
        models_log = logging.getLogger("trader.models")
        level = models_log.level
        models_log.setLevel(logging.WARNING)  # the temporary save is not news
        try:
            with self.phase("trader_save_model"):
                store.save(self.strategy, self.train_result, symbol=self.symbol, timeframe=self.timeframe,
                           data_range=candles_range(self.candles), data_hash=candles_hash(self.candles), seed=self.seed)
            with self.phase("trader_load_model"):
                loaded = store.load(self.strategy, self.symbol, self.timeframe)
        finally:
            models_log.setLevel(level)
        if loaded is None:
            raise TraderError("the saved model could not be found again")
        return folder, str(loaded.version), loaded

    def fresh_request(self) -> tuple[Any, str]:
        """``(FreshPlugin with its saved model, "")``, or ``(None, why no fresh process can load it)``."""
        if "fresh" not in self._memo:
            plugin, note = self.fresh, self.fresh_note
            if plugin is not None and self.model is not None:
                try:
                    folder, version, _ = self.saved_model()
                    plugin = plugin.with_model(folder, version)
                except TraderError as exc:
                    plugin, note = None, f"the model could not be saved for it ({exc})"
            self._memo["fresh"] = (plugin, "" if plugin is not None else note)
        return self._memo["fresh"]

    def start_fresh(self, again: bool = False) -> Any:
        """A :class:`~trader.backtest.fresh.FreshProcess` asking for every row after the warm-up.

        The first one is started once and kept (``trader check`` starts it before the other
        checks, so it runs meanwhile); ``again`` takes it, or starts a new one once it was taken.
        """
        from trader.backtest.fresh import FreshProcess

        plugin = self.fresh_request()[0]
        started = self._memo.pop("fresh_process", None) if again else self._memo.get("fresh_process")
        if started is None:
            env = self.sandbox.environment() if self.sandbox is not None else None
            cwd = self.sandbox.work if self.sandbox is not None else None
            started = FreshProcess(plugin, self.candles, np.arange(self.first, len(self.candles)),
                                   features=self.full_features, symbol=self.symbol, timeframe=self.timeframe,
                                   params=self.params, env=env, cwd=cwd, workdir=self.workdir)
            if not again:
                self._memo["fresh_process"] = started
        return started

    def close(self) -> None:
        """Stop a fresh process nobody asked for."""
        started = self._memo.pop("fresh_process", None)
        if started is not None:
            started.close()

    def sample_rows(self, low: int, high: int) -> list[int]:
        """Up to ``samples`` rows in ``[low, high]``: both ends and random ones between."""
        if high < low:
            return []
        rng = np.random.default_rng(self.seed)
        count = min(self.samples, high - low + 1)
        picks = {low, high} if count >= 2 else {high}
        inner = np.arange(low + 1, high)
        if inner.size and count > len(picks):
            picks.update(int(x) for x in rng.choice(inner, size=min(count - len(picks), inner.size), replace=False))
        return sorted(picks)

    def describe_row(self, row: int) -> str:
        return describe_row(self.candles, row)


def check_truncation(ctx: CheckContext, prior: Sequence[CheckResult] = ()) -> CheckResult:
    if len(ctx.candles) - 1 <= ctx.first:
        return CheckResult("truncation", "skip", f"{len(ctx.candles)} candles leave no row after the {ctx.warmup} warm-up bars")
    return lookahead_result(ctx, ctx.candles, ctx.first, features=ctx.full_features, full=ctx.full_signals,
                            prefixes=ctx.prefixes, tolerance=ctx.tolerance, seed=ctx.seed, describe=ctx.describe_row)


def check_batch(ctx: CheckContext, prior: Sequence[CheckResult] = ()) -> CheckResult:
    n = len(ctx.candles)
    rows = ctx.sample_rows(ctx.first, n - 1)
    if not rows:
        return CheckResult("batch", "skip", f"{n} candles leave no row after the {ctx.warmup} warm-up bars")
    # asked now rather than reusing the first request: a strategy that changes with the call count
    # must not look batch-dependent (the determinism check names that)
    full = dict(zip(range(ctx.first, n), ctx.signals(ctx.candles, np.arange(ctx.first, n), ctx.full_features),
                    strict=True))
    batched = [full[row] for row in rows]
    mismatches = batch_mismatches(ctx, ctx.candles, rows, batched, batch_size=n - ctx.first,
                                  features=ctx.full_features, tolerance=ctx.tolerance)
    if mismatches:
        return CheckResult("batch", "fail", "signals depend on which other rows are requested",
                           [m.message(ctx.describe_row(m.row)) for m in mismatches])
    return CheckResult("batch", "pass", f"{len(rows)} candles give the same signal asked alone and in a batch")


def check_determinism(ctx: CheckContext, prior: Sequence[CheckResult] = ()) -> CheckResult:
    rows = np.arange(ctx.first, len(ctx.candles), dtype=np.int64)
    ask_fresh = None
    if ctx.fresh_request()[0] is not None:

        def ask_fresh() -> list:
            return ctx.start_fresh(again=True).answer()

    return determinism_result(ctx, ctx.candles, rows, features=ctx.full_features, tolerance=ctx.tolerance,
                              fresh=ask_fresh, fresh_note=ctx.fresh_request()[1], describe=ctx.describe_row)


def check_warmup(ctx: CheckContext, prior: Sequence[CheckResult] = ()) -> CheckResult:
    blocked = [r.name for r in prior if r.name in ("truncation", "determinism")
               and (r.status == "fail" or (r.status == "skip" and "not judged" in r.detail))]
    if blocked:
        return CheckResult("warmup", "skip", f"not judged while {' and '.join(blocked)} found a problem: a signal that "
                           "reads later candles or varies from call to call also changes with the length of its "
                           "history, and no warmup_bars setting would fix that")
    n, w = len(ctx.candles), ctx.warmup
    offending: list[str] = []
    features = ctx.full_features
    if features is not None and n > w:
        after = features.iloc[w:]
        bad = after.columns[after.isna().any().to_numpy()]
        for name in bad[:8]:
            first = int(np.flatnonzero(after[name].isna().to_numpy())[0]) + w
            offending.append(f"feature {name} is NaN at {ctx.describe_row(first)}, after the {w} warm-up bars")
    rows = ctx.sample_rows(2 * w + 1, n - 1) if w > 0 else []
    if w > 0 and not rows:
        return CheckResult("warmup", "skip", f"{n} candles are too few to test {w} warm-up bars (need {2 * w + 2})")
    settled: list[int] = []
    unsettled: list[int] = []
    for row in rows:
        # both requests end at ``row``, so a look-ahead (caught by "truncation") does not show here
        prefix = ctx.candles.iloc[: row + 1]
        prefix_features = ctx.features(prefix)
        expected = ctx.signals(prefix, [row], prefix_features)[0]
        got, window_features = _with_history(ctx, row, w)
        diff = signals_differ(expected, got, ctx.warmup_tolerance)
        if not diff:
            continue
        unconverged = _differing_features(prefix_features, window_features, row, w, rtol=ctx.warmup_tolerance, atol=1e-9)
        what = f"{ctx.describe_row(row)}: with only {w} bars of history the signal differs ({diff})"
        if unconverged:
            what += f"; features not warmed up: {', '.join(unconverged[:8])}"
        offending.append(what)
        history = 2 * w
        while history <= row // 2:
            if signals_differ(expected, _with_history(ctx, row, history)[0], ctx.warmup_tolerance) is None:
                settled.append(history)
                break
            history *= 2
        else:
            if history > 4 * w:
                unsettled.append(history // 2)
    if not offending:
        if w == 0:
            return CheckResult("warmup", "pass", "the strategy declares no warm-up and its features have no NaN")
        return CheckResult("warmup", "pass", f"{len(rows)} sampled candles give the same signal with only {w} bars of history")
    if unsettled and not settled:
        return CheckResult("warmup", "fail", f"the signal depends on the whole history before a candle: even with "
                           f"{max(unsettled)} bars of history it differs from the one with all of it (an expanding "
                           "statistic or a state that never settles); no warmup_bars is enough: use a fixed window", offending)
    if settled:
        return CheckResult("warmup", "fail", f"warmup_bars={w} is not enough: with {max(settled)} bars of history the "
                           "sampled signals agree with the full history", offending)
    return CheckResult("warmup", "fail", f"warmup_bars={w} is not enough (too few candles to tell how many are)", offending)


def _with_history(ctx: CheckContext, row: int, history: int) -> tuple[Signal, Any]:
    window = ctx.candles.iloc[max(row - history, 0) : row + 1].reset_index(drop=True)
    window_features = ctx.features(window)
    return ctx.signals(window, [len(window) - 1], window_features)[0], window_features


def _differing_features(full: pd.DataFrame | None, part: pd.DataFrame | None, row_full: int, row_part: int,
                        rtol: float, atol: float) -> list[str]:
    if full is None or part is None:
        return []
    a = full.iloc[row_full]
    b = part.iloc[row_part]
    names = []
    for name in full.columns:
        x, y = float(a[name]), float(b[name])
        if math.isnan(x) and math.isnan(y):
            continue
        if math.isnan(x) != math.isnan(y) or abs(x - y) > atol + rtol * abs(x):
            names.append(f"{name} ({x:.6g} vs {y:.6g})")
    return names


def check_persistence(ctx: CheckContext, prior: Sequence[CheckResult] = ()) -> CheckResult:
    strategy = ctx.strategy
    if not strategy.trainable:
        return CheckResult("persistence", "skip", f"strategy {strategy.name!r} has no model")
    if ctx.model is None or ctx.train_result is None:
        return CheckResult("persistence", "skip", "no model to round-trip")
    rows = ctx.sample_rows(ctx.first, len(ctx.candles) - 1)
    before = ctx.signals(ctx.candles, rows, ctx.full_features)
    try:
        _, version, loaded = ctx.saved_model()
    except TraderError as exc:
        return CheckResult("persistence", "fail", f"save or load failed: {exc}", (str(exc),))
    after = ctx.signals(ctx.candles, rows, ctx.full_features, model=loaded.model)
    offending = [f"{ctx.describe_row(rows[i])}: the reloaded model's signal differs ({diff})"
                 for i, diff in signal_differences(before, after, 0.0)]
    if offending:
        return CheckResult("persistence", "fail", "the model does not survive a save and load unchanged", offending)
    return CheckResult("persistence", "pass", f"saved, verified and reloaded: identical signals at {len(rows)} candles")


def check_isolation(ctx: CheckContext, prior: Sequence[CheckResult] = ()) -> CheckResult:
    if ctx.sandbox is None or ctx.manager is None:
        return CheckResult("isolation", "skip", "no sandbox to watch the strategy's writes in")
    from trader.testing.sandbox import isolation_offences, trade_through_run_loop

    name, info = ctx.strategy.name, ctx.strategy.info
    ran = "run loop skipped: no model the run loop could load"
    runnable = not info.requires_model or ctx.model is not None
    if ctx.model is not None:
        try:
            ctx.saved_model()
        except TraderError:
            runnable = False
    if runnable:
        try:
            ran = trade_through_run_loop(ctx.sandbox, ctx.manager, name, info, timeframe=ctx.timeframe,
                                         symbol=ctx.symbol, params=ctx.params, candles=10, bars=info.warmup_bars + 200,
                                         seed=ctx.seed)
        except Exception as exc:  # noqa: BLE001 - the strategy failing in the run loop is the finding
            return CheckResult("isolation", "fail", f"trading with the run loop (trader run) failed: {_error_text(exc)}")
    offending = isolation_offences(ctx.sandbox, name)
    if offending:
        return CheckResult("isolation", "fail", f"the strategy wrote outside its namespace (allowed: TRADER_HOME/strategies/"
                           f"{name}/ and TRADER_HOME/models/{name}/)", offending)
    phases = sorted({label for label, _, _ in ctx.sandbox.logs})
    return CheckResult("isolation", "pass", f"every write lies in its namespace ({ran}; watched: {', '.join(phases)})")


CHECKS = {
    "truncation": check_truncation,
    "batch": check_batch,
    "determinism": check_determinism,
    "warmup": check_warmup,
    "persistence": check_persistence,
    "isolation": check_isolation,
}


def run_checks(ctx: CheckContext, names: Sequence[str] = CHECK_NAMES) -> list[CheckResult]:
    """Run the named checks in :data:`CHECK_NAMES` order; a check that raises fails with the error as its reason.

    The warm-up check needs the look-ahead and determinism verdicts (a leak must never
    become warm-up advice), so asking for ``warmup`` runs those two first.
    """
    wanted = set(names)
    if "warmup" in wanted:
        wanted |= {"truncation", "determinism"}
    results: list[CheckResult] = []
    for name in CHECK_NAMES:
        if name not in wanted:
            continue
        try:
            results.append(CHECKS[name](ctx, results))
        except TraderError as exc:
            results.append(CheckResult(name, "fail", f"error: {exc}", (str(exc),)))
    return results

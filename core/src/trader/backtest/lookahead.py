"""The checks behind ``trader check``: look-ahead, recursion (warm-up) and persistence.

Each check passes, fails (naming the candle or feature at fault) or is skipped:

- **truncation**: the signal for row ``t`` computed on ``candles[:t+1]`` (features
  recomputed on that prefix) equals the signal for row ``t`` computed with the full
  data; the features of row ``t`` must agree likewise. A difference means the strategy
  or a feature read a candle after ``t``.
- **batch**: the signal for row ``t`` asked alone equals the one asked among all rows
  (a strategy must not, e.g., normalise over the rows of ``request.at``), and asking
  twice gives the same answer.
- **warm-up**: with only ``warmup_bars`` candles of history before ``t`` the signal is
  the one computed with all history (recursive indicators such as EMAs have converged),
  and no feature is NaN from row ``warmup_bars`` on.
- **persistence**: a model saved and loaded again gives the same signals.

The conformance suite (:mod:`trader.testing.conformance`) runs the same comparisons
through :func:`truncation_leak` (its ``lookahead`` check) and :func:`batch_mismatches`
(its ``signals`` check), asking the strategy through any :class:`SignalSource`.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import numpy as np

from trader.backtest.signals import request_signals, signals_differ, strategy_features
from trader.errors import TraderError

if TYPE_CHECKING:
    import pandas as pd

    from trader.strategy import Strategy
    from trader.types import Signal

__all__ = [
    "LEAK_KINDS",
    "BatchMismatch",
    "CheckResult",
    "CheckContext",
    "SignalSource",
    "TruncationLeak",
    "batch_mismatches",
    "check_truncation",
    "check_batch",
    "check_warmup",
    "check_persistence",
    "describe_row",
    "describe_signal",
    "leaking_inputs",
    "run_checks",
    "signal_differences",
    "truncation_leak",
]

CHECK_NAMES = ("truncation", "batch", "warmup", "persistence")
#: candle columns perturbed, one at a time, to find the input that leaks
CANDLE_INPUTS = ("open", "high", "low", "close", "volume")
#: at most this many feature columns are perturbed
MAX_FEATURE_PROBES = 256
#: ``(scale, shift)``: the values after the row become ``x * scale + shift``, one after
#: the other until the signal changes (up, sign flipped, down: a threshold on a later
#: value flips under one of them)
PERTURBATIONS = ((1.37, 1.0), (-1.0, 0.0), (0.6, 0.0))


class SignalSource(Protocol):
    """How the shared checks ask a strategy: core features, and signals for rows of any candles.

    ``model=None`` means the source's own model. :class:`CheckContext` is one; the
    conformance suite wraps its sandboxed strategy in another.
    """

    def features(self, candles: pd.DataFrame) -> pd.DataFrame | None: ...

    def signals(self, candles: pd.DataFrame, at: Sequence[int], features: Any = None, model: Any = None) -> list: ...


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
    out = []
    for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
        diff = signals_differ(a, b, tolerance)
        if diff:
            out.append((i, diff))
    return out


def _error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, TraderError | AssertionError) else f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------- look-ahead (truncation)


LEAK_KINDS = ("error", "batch", "later candles", "features")


@attrs.frozen(eq=False)
class TruncationLeak:
    """Why the signal at ``row`` is not the same without the candles after it.

    ``kind`` is ``error`` (the request on ``candles[:row+1]`` failed with ``error``),
    ``batch`` (asked alone the signal agrees: it depends on the other requested rows),
    ``later candles`` (the strategy read candles after ``row``) or ``features`` (only
    the core features of ``row`` changed). ``batched`` is the signal with all candles,
    asked among ``batch_size`` rows; ``truncated`` the one with ``candles[:row+1]``;
    ``alone`` the one with all candles asked for ``row`` alone; ``difference`` what
    differs between ``batched`` and ``truncated``. ``inputs`` are the
    candle columns and features whose values after ``row`` change the signal;
    ``features`` the core features of ``row`` that change when the later candles are
    removed (``name (full vs truncated)``).
    """

    row: int
    kind: str = attrs.field(validator=attrs.validators.in_(LEAK_KINDS))
    batched: Signal
    batch_size: int
    truncated: Signal | None = None
    alone: Signal | None = None
    error: str | None = None
    difference: str | None = None
    inputs: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    features: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def message(self, where: str) -> str:
        """One line naming the row (``where``), both signals and the inputs at fault."""
        kind = self.kind
        if kind == "error":
            text = (f"{where}: with the history truncated after this row, {self.error} "
                    "(the strategy needs rows after the one it decides on)")
        elif kind == "batch":
            text = (f"{where}: asked alone the signal is {describe_signal(self.alone)}, but in a batch of "
                    f"{self.batch_size} rows it is {describe_signal(self.batched)} ({self.difference}); the signal "
                    "depends on which other rows are requested (e.g. normalising over the whole batch), so backtests "
                    "see the future")
        elif kind == "later candles":
            text = (f"{where}: the signal depends on later candles: with the full history it is "
                    f"{describe_signal(self.alone)}, with the history truncated after this row it is "
                    f"{describe_signal(self.truncated)} ({self.difference})")
            if self.inputs:
                text += f"; it changes when {' or '.join(self.inputs)} after row {self.row} change"
        else:
            text = f"{where}: the signal is unchanged, but the core features of this row are not"
        if self.features:
            text += f"; features that read later candles: {', '.join(self.features[:8])}"
        return text


def truncation_leak(
    source: SignalSource,
    candles: pd.DataFrame,
    row: int,
    batched: Signal,
    *,
    batch_size: int,
    features: pd.DataFrame | None,
    tolerance: float,
    find_inputs: bool = True,
) -> TruncationLeak | None:
    """``None`` when the signal (and the features) of ``row`` survive removing the candles after it.

    ``batched`` is the signal for ``row`` asked with all ``candles`` (and their
    ``features``) among ``batch_size`` rows. On a difference the row is asked alone:
    agreeing with the truncated signal means the batch is at fault; otherwise each
    input is perturbed after ``row`` to name the one that leaks (``find_inputs``).
    """
    prefix = candles.iloc[: row + 1]
    prefix_features = source.features(prefix)
    leaked = tuple(_differing_features(features, prefix_features, row, row, rtol=1e-9, atol=1e-12))
    try:
        truncated = source.signals(prefix, [row], prefix_features)[0]
    except Exception as exc:  # noqa: BLE001 - the strategy breaking without the later rows is the finding
        return TruncationLeak(row, "error", batched, batch_size, error=_error_text(exc), features=leaked)
    difference = signals_differ(batched, truncated, tolerance)
    if difference is None:
        if not leaked:
            return None
        return TruncationLeak(row, "features", batched, batch_size, truncated=truncated, features=leaked)
    alone = source.signals(candles, [row], features)[0]
    if signals_differ(alone, truncated, tolerance) is None:
        return TruncationLeak(row, "batch", batched, batch_size, truncated=truncated, alone=alone,
                              difference=difference, features=leaked)
    inputs = leaking_inputs(source, candles, row, alone, features, tolerance) if find_inputs else ()
    return TruncationLeak(row, "later candles", batched, batch_size, truncated=truncated, alone=alone,
                          difference=signals_differ(alone, truncated, tolerance), inputs=inputs, features=leaked)


def leaking_inputs(
    source: SignalSource,
    candles: pd.DataFrame,
    row: int,
    reference: Signal,
    features: pd.DataFrame | None,
    tolerance: float,
) -> tuple[str, ...]:
    """The candle columns and features whose values after ``row`` change the signal at ``row``.

    Each input is perturbed on its own after ``row`` (see :data:`PERTURBATIONS`) and
    ``row`` is asked alone; ``reference`` is its signal with the inputs unchanged. Any
    change is proof: only a strategy that reads the input after ``row`` can see it.
    """
    def changes(column: str, in_features: bool) -> bool:
        for scale, shift in PERTURBATIONS:
            try:
                if in_features:
                    signal = source.signals(candles, [row], _perturbed_after(features, row, column, scale, shift))[0]
                else:
                    signal = source.signals(_perturbed_after(candles, row, column, scale, shift), [row], features)[0]
            except Exception:  # noqa: BLE001, S112 - a strategy that breaks on odd values names no input
                continue
            if signals_differ(signal, reference, tolerance) is not None:
                return True
        return False

    found = [f"candle column {name!r}" for name in CANDLE_INPUTS if name in candles.columns and changes(name, False)]
    if features is not None:
        found += [f"feature {name!r}" for name in list(features.columns)[:MAX_FEATURE_PROBES] if changes(name, True)]
    return tuple(found)


def _perturbed_after(frame: pd.DataFrame, row: int, column: str, scale: float, shift: float) -> pd.DataFrame:
    changed = frame.copy()
    values = changed[column].to_numpy(dtype=np.float64, copy=True)
    values[row + 1 :] = values[row + 1 :] * scale + shift
    changed[column] = values
    return changed


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
    rows: Sequence[int],
    batched: Sequence[Signal],
    *,
    batch_size: int,
    features: pd.DataFrame | None,
    tolerance: float,
) -> list[BatchMismatch]:
    """Each of ``rows`` asked alone (as live trading asks) against ``batched``, its signal in the batch."""
    out = []
    for row, expected in zip(rows, batched, strict=True):
        alone = source.signals(candles, [row], features)[0]
        diff = signals_differ(alone, expected, tolerance)
        if diff:
            out.append(BatchMismatch(row, alone, expected, batch_size, diff))
    return out


@attrs.frozen
class CheckResult:
    """One check's outcome: ``status`` is ``pass``, ``fail`` or ``skip``."""

    name: str
    status: str = attrs.field(validator=attrs.validators.in_(("pass", "fail", "skip")))
    detail: str
    offending: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "offending": list(self.offending)}


@attrs.define
class CheckContext:
    """What every check needs: the strategy, candles, model and parameters."""

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
    tolerance: float = 1e-5
    warmup_tolerance: float = 1e-3

    @property
    def warmup(self) -> int:
        return self.strategy.info.warmup_bars

    def features(self, candles: pd.DataFrame) -> pd.DataFrame | None:
        return strategy_features(self.strategy.info, candles, self.timeframe)

    def signals(self, candles: pd.DataFrame, at: Sequence[int], features: Any = None, model: Any = None) -> list:
        return request_signals(
            self.strategy, candles, at, symbol=self.symbol, timeframe=self.timeframe, features=features,
            model=self.model if model is None else model, params=self.params,
        )

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


def _full_signals(ctx: CheckContext, rows: list[int]) -> tuple[Any, list]:
    features = ctx.features(ctx.candles)
    return features, ctx.signals(ctx.candles, rows, features)


def check_truncation(ctx: CheckContext) -> CheckResult:
    n = len(ctx.candles)
    rows = ctx.sample_rows(ctx.warmup, n - 2)
    if not rows:
        return CheckResult("truncation", "skip", f"{n} candles leave no row after the {ctx.warmup} warm-up bars")
    features, full = _full_signals(ctx, rows)
    leaks: list[TruncationLeak] = []
    for row, expected in zip(rows, full, strict=True):
        # perturbing every input costs requests: look for the leaking inputs until found, at three rows at most
        searched = [leak for leak in leaks if leak.kind == "later candles"]
        find_inputs = len(searched) < 3 and not any(leak.inputs for leak in searched)
        leak = truncation_leak(ctx, ctx.candles, row, expected, batch_size=len(rows), features=features,
                               tolerance=ctx.tolerance, find_inputs=find_inputs)
        if leak is not None:
            leaks.append(leak)
    if leaks:
        detail = f"look-ahead at {len(leaks)} of {len(rows)} sampled candles"
        inputs = next((leak.inputs for leak in leaks if leak.inputs), ())
        if inputs:
            detail += f"; the signal changes with later values of {' or '.join(inputs)}"
        return CheckResult("truncation", "fail", detail, [leak.message(ctx.describe_row(leak.row)) for leak in leaks])
    return CheckResult("truncation", "pass", f"{len(rows)} sampled candles give the same signal (and features) without the candles after them")


def check_batch(ctx: CheckContext) -> CheckResult:
    n = len(ctx.candles)
    rows = ctx.sample_rows(ctx.warmup, n - 1)
    if not rows:
        return CheckResult("batch", "skip", f"{n} candles leave no row after the {ctx.warmup} warm-up bars")
    features, batched = _full_signals(ctx, rows)
    again = ctx.signals(ctx.candles, rows, features)
    offending = [f"{ctx.describe_row(rows[i])}: two identical requests disagree ({diff})"
                 for i, diff in signal_differences(batched, again, 0.0)]
    mismatches = batch_mismatches(ctx, ctx.candles, rows, batched, batch_size=len(rows), features=features,
                                  tolerance=ctx.tolerance)
    offending += [m.message(ctx.describe_row(m.row)) for m in mismatches]
    if offending:
        return CheckResult("batch", "fail", "signals depend on which other rows are requested or are not deterministic", offending)
    return CheckResult("batch", "pass", f"{len(rows)} candles give the same signal asked alone, in a batch and twice")


def check_warmup(ctx: CheckContext) -> CheckResult:
    n, w = len(ctx.candles), ctx.warmup
    offending: list[str] = []
    features = ctx.features(ctx.candles)
    if features is not None and n > w:
        after = features.iloc[w:]
        bad = after.columns[after.isna().any().to_numpy()]
        for name in bad[:8]:
            first = int(np.flatnonzero(after[name].isna().to_numpy())[0]) + w
            offending.append(f"feature {name} is NaN at {ctx.describe_row(first)}, after the {w} warm-up bars")
    rows = ctx.sample_rows(2 * w + 1, n - 1) if w > 0 else []
    if w > 0 and not rows:
        return CheckResult("warmup", "skip", f"{n} candles are too few to test {w} warm-up bars (need {2 * w + 2})")
    for row in rows:
        # both requests end at ``row``, so a look-ahead (caught by "truncation") does not show here
        prefix = ctx.candles.iloc[: row + 1]
        prefix_features = ctx.features(prefix)
        expected = ctx.signals(prefix, [row], prefix_features)[0]
        window = ctx.candles.iloc[row - w : row + 1].reset_index(drop=True)
        window_features = ctx.features(window)
        got = ctx.signals(window, [w], window_features)[0]
        diff = signals_differ(expected, got, ctx.warmup_tolerance)
        if diff:
            unconverged = _differing_features(prefix_features, window_features, row, w, rtol=ctx.warmup_tolerance, atol=1e-9)
            what = f"{ctx.describe_row(row)}: with only {w} bars of history the signal differs ({diff})"
            if unconverged:
                what += f"; features not warmed up: {', '.join(unconverged[:8])}"
            offending.append(what)
    if offending:
        return CheckResult("warmup", "fail", f"warmup_bars={w} is not enough", offending)
    if w == 0:
        return CheckResult("warmup", "pass", "the strategy declares no warm-up and its features have no NaN")
    return CheckResult("warmup", "pass", f"{len(rows)} sampled candles give the same signal with only {w} bars of history")


def check_persistence(ctx: CheckContext) -> CheckResult:
    strategy = ctx.strategy
    if not strategy.trainable:
        return CheckResult("persistence", "skip", f"strategy {strategy.name!r} has no model")
    if ctx.model is None or ctx.train_result is None:
        return CheckResult("persistence", "skip", "no model to round-trip")
    from trader.models import ModelPersistence

    rows = ctx.sample_rows(ctx.warmup, len(ctx.candles) - 1)
    features = ctx.features(ctx.candles)
    before = ctx.signals(ctx.candles, rows, features)
    models_log = logging.getLogger("trader.models")
    level = models_log.level
    models_log.setLevel(logging.WARNING)  # the temporary save is not news
    try:
        return _round_trip(ctx, rows, features, before, ModelPersistence)
    finally:
        models_log.setLevel(level)


def _round_trip(ctx: CheckContext, rows: list[int], features: Any, before: list, persistence: Any) -> CheckResult:
    from trader.models import candles_hash, candles_range

    strategy = ctx.strategy
    with tempfile.TemporaryDirectory(prefix="trader-check-") as tmp:
        store = persistence(Path(tmp))
        try:
            store.save(strategy, ctx.train_result, symbol=ctx.symbol, timeframe=ctx.timeframe,
                       data_range=candles_range(ctx.candles), data_hash=candles_hash(ctx.candles), seed=ctx.seed)
            loaded = store.load(strategy, ctx.symbol, ctx.timeframe)
        except TraderError as exc:
            return CheckResult("persistence", "fail", f"save or load failed: {exc}", (str(exc),))
        if loaded is None:
            return CheckResult("persistence", "fail", "the saved model could not be found again")
        after = ctx.signals(ctx.candles, rows, features, model=loaded.model)
    offending = [f"{ctx.describe_row(rows[i])}: the reloaded model's signal differs ({diff})"
                 for i, diff in signal_differences(before, after, 0.0)]
    if offending:
        return CheckResult("persistence", "fail", "the model does not survive a save and load unchanged", offending)
    return CheckResult("persistence", "pass", f"saved, verified and reloaded: identical signals at {len(rows)} candles")


CHECKS = {
    "truncation": check_truncation,
    "batch": check_batch,
    "warmup": check_warmup,
    "persistence": check_persistence,
}


def run_checks(ctx: CheckContext, names: Sequence[str] = CHECK_NAMES) -> list[CheckResult]:
    """Run the named checks in order; a check that raises fails with the error as its reason."""
    results = []
    for name in names:
        try:
            results.append(CHECKS[name](ctx))
        except TraderError as exc:
            results.append(CheckResult(name, "fail", f"error: {exc}", (str(exc),)))
    return results

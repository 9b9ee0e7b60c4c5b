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
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from trader.backtest.signals import request_signals, signals_differ, strategy_features
from trader.errors import TraderError

if TYPE_CHECKING:
    import pandas as pd

    from trader.strategy import Strategy

__all__ = ["CheckResult", "CheckContext", "check_truncation", "check_batch", "check_warmup", "check_persistence", "run_checks"]

CHECK_NAMES = ("truncation", "batch", "warmup", "persistence")


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
        from trader.data import format_ms

        return f"candle {row} ({format_ms(int(self.candles['timestamp'].iloc[row]))} UTC)"


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
    offending: list[str] = []
    for row, expected in zip(rows, full, strict=True):
        prefix = ctx.candles.iloc[: row + 1]
        prefix_features = ctx.features(prefix)
        leaked = _differing_features(features, prefix_features, row, row, rtol=1e-9, atol=1e-12)
        got = ctx.signals(prefix, [row], prefix_features)[0]
        diff = signals_differ(expected, got, ctx.tolerance)
        if diff or leaked:
            what = f"{ctx.describe_row(row)}: signal with all candles differs from the signal with candles up to it"
            what += f" ({diff})" if diff else " (signals agree)"
            if leaked:
                what += f"; features that read later candles: {', '.join(leaked[:8])}"
            offending.append(what)
    if offending:
        return CheckResult("truncation", "fail", f"look-ahead at {len(offending)} of {len(rows)} sampled candles", offending)
    return CheckResult("truncation", "pass", f"{len(rows)} sampled candles give the same signal (and features) without the candles after them")


def check_batch(ctx: CheckContext) -> CheckResult:
    n = len(ctx.candles)
    rows = ctx.sample_rows(ctx.warmup, n - 1)
    if not rows:
        return CheckResult("batch", "skip", f"{n} candles leave no row after the {ctx.warmup} warm-up bars")
    features, batched = _full_signals(ctx, rows)
    again = ctx.signals(ctx.candles, rows, features)
    offending = []
    for row, a, b in zip(rows, batched, again, strict=True):
        diff = signals_differ(a, b, 0.0)
        if diff:
            offending.append(f"{ctx.describe_row(row)}: two identical requests disagree ({diff})")
    for row, expected in zip(rows, batched, strict=True):
        diff = signals_differ(expected, ctx.signals(ctx.candles, [row], features)[0], ctx.tolerance)
        if diff:
            offending.append(f"{ctx.describe_row(row)}: asked alone it differs from asked among {len(rows)} rows ({diff})")
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
    offending = []
    for row, a, b in zip(rows, before, after, strict=True):
        diff = signals_differ(a, b, 0.0)
        if diff:
            offending.append(f"{ctx.describe_row(row)}: the reloaded model's signal differs ({diff})")
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

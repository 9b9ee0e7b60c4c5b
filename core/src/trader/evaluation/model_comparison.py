"""Models side by side on the same held-out candles, beside the majority baseline and buy-and-hold.

For every strategy: its stored model (latest, or a pinned version) is loaded and
verified; signals are asked for every held-out row in one batched call; the
signals' probabilities are scored against each model's own label definition
(classification metrics beside the majority-class baseline of its training
labels); and a simple long/flat simulation with fees shows what the signals
would have earned (BUY goes long ``size``, SELL goes flat, HOLD keeps the
position; no risk rules: ``trader backtest`` runs the full simulation).

The held-out range starts after the last row any compared model saw in training
or validation (the latest test-split start among the manifests), unless given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from trader.errors import ArtifactError, DataError, ModelError, PluginError, train_command
from trader.types import SignalAction, SignalRequest

if TYPE_CHECKING:
    import pandas as pd

    from trader.plugins import TraderPluginManager

__all__ = ["ComparedStrategy", "Comparison", "compare_strategies", "held_out_start", "long_flat_returns"]


@attrs.frozen
class ComparedStrategy:
    """One row of a comparison: a strategy's status, classification metrics and trading outcome."""

    plugin: str
    status: str  # "ok" | "no model" | "refused" | "error"
    version: str | None = None
    message: str = ""
    samples: int = 0
    classification: Mapping[str, Any] | None = None
    trading: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Comparison:
    symbol: str
    timeframe: str
    source: str
    start: int
    end: int
    rows: int
    fee_bps: float
    strategies: tuple[ComparedStrategy, ...]
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        from trader.data import format_ms

        return {
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "source": self.source,
            "held_out": {"start": self.start, "end": self.end, "start_iso": format_ms(self.start),
                         "end_iso": format_ms(self.end), "rows": self.rows},
            "fee_bps": self.fee_bps,
            "strategies": [s.as_dict() for s in self.strategies],
            "notes": list(self.notes),
        }


def held_out_start(manifests: Sequence[Mapping[str, Any]]) -> int | None:
    """The latest first test-window timestamp among the manifests (None when none records a split)."""
    starts = []
    for manifest in manifests:
        split = manifest.get("extra", {}).get("split", {})
        test = split.get("test") if isinstance(split, Mapping) else None
        if isinstance(test, Mapping) and isinstance(test.get("first_end"), int):
            starts.append(test["first_end"])
    return max(starts) if starts else None


def long_flat_returns(
    close: np.ndarray, actions: np.ndarray, sizes: np.ndarray, fee_bps: float
) -> dict[str, float]:
    """Long/flat simulation over ``close`` (one decision per bar, acting on the bar's close).

    Returns total return, trades (position changes), exposure (share of bars in a
    position) and max drawdown of the equity curve, fees included.
    """
    n = len(close)
    position = np.zeros(n)
    current = 0.0
    for i in range(n):
        if actions[i] == 1:
            current = float(sizes[i])
        elif actions[i] == -1:
            current = 0.0
        position[i] = current
    if n < 2:
        return {"total_return": 0.0, "trades": 0, "exposure": 0.0, "max_drawdown": 0.0}
    bar_returns = close[1:] / close[:-1] - 1.0
    held = position[:-1]
    changes = np.abs(np.diff(np.concatenate(([0.0], held))))
    net = held * bar_returns - changes * fee_bps / 10_000.0
    equity = np.cumprod(1.0 + net)
    peak = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    return {
        "total_return": float(equity[-1] - 1.0),
        "trades": int(np.count_nonzero(changes)),
        "exposure": float(np.mean(held > 0)),
        "max_drawdown": float(np.max(1.0 - equity / peak)) if len(equity) else 0.0,
    }


def _classification(manifest: Mapping[str, Any], candles: pd.DataFrame, rows: np.ndarray, probabilities: np.ndarray,
                    timeframe: str) -> dict[str, Any] | None:
    from trader.evaluation.classification import evaluate_classifier
    from trader.features import LabelDefinition

    label = manifest.get("label") or {}
    try:
        definition = LabelDefinition.from_dict(label)
    except ValueError:
        return None
    labels = definition.compute(candles, timeframe).to_numpy(dtype=np.float64)[rows]
    if definition.kind == "ternary":
        return None  # P(up) alone does not score three classes
    keep = np.isfinite(labels) & np.isfinite(probabilities)
    if keep.sum() < 2:
        return None
    counts = label.get("train_class_counts")
    train_labels = None
    if isinstance(counts, list) and len(counts) == 2 and all(isinstance(c, int) and c >= 0 for c in counts) and sum(counts):
        train_labels = np.repeat(np.arange(2), counts)
    report = evaluate_classifier(labels[keep].astype(np.int64), probabilities[keep], train_labels=train_labels)
    return {**report.to_dict(), "label": {k: label.get(k) for k in ("kind", "horizon", "threshold")}}


def compare_strategies(
    manager: TraderPluginManager,
    names: Sequence[str],
    candles: pd.DataFrame,
    *,
    symbol: str,
    timeframe: str,
    models_dir: Path,
    source: str = "",
    start: int | None = None,
    end: int | None = None,
    fee_bps: float = 10.0,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    versions: Mapping[str, str] | None = None,
) -> Comparison:
    """Evaluate ``names`` on the same held-out rows of ``candles`` (see the module docstring)."""
    from trader.backtest.signals import strategy_features
    from trader.models import ModelPersistence

    store = ModelPersistence(models_dir)
    params = params or {}
    versions = versions or {}
    notes: list[str] = []
    loaded: dict[str, Any] = {}
    rows_out: dict[str, ComparedStrategy] = {}
    for name in names:
        strategy = manager.strategy(name)
        if not strategy.info.requires_model:
            continue
        try:
            model = store.load(strategy, symbol, timeframe, version=versions.get(name))
        except ModelError as exc:  # refused artifacts and missing pinned versions are reported, not fatal
            rows_out[name] = ComparedStrategy(name, "refused" if isinstance(exc, ArtifactError) else "no model", message=str(exc))
            continue
        if model is None:
            rows_out[name] = ComparedStrategy(
                name, "no model",
                message=f"no trained model; train one with: {train_command(name, symbol, timeframe)}",
            )
            continue
        loaded[name] = model
    timestamps = candles["timestamp"].to_numpy(dtype=np.int64)
    if start is None:
        start = held_out_start([m.manifest for m in loaded.values()])
        if start is None:
            start = int(timestamps[int(len(timestamps) * 0.85)])
            notes.append("no model records its test split: using the last 15% of the candles")
    first = int(np.searchsorted(timestamps, start, side="left"))
    last = int(np.searchsorted(timestamps, end, side="right")) - 1 if end is not None else len(timestamps) - 1
    if last - first + 1 < 2:
        raise DataError(
            f"the held-out range has {max(last - first + 1, 0)} candles; the compared models were trained on "
            "data that ends after these candles (give --from, or compare on the data they were trained on)"
        )
    rows = np.arange(first, last + 1)
    for name, model in loaded.items():
        data_end = model.manifest.get("data", {}).get("range", {}).get("end")
        if isinstance(data_end, int) and data_end < int(timestamps[first]):
            continue
        split = model.manifest.get("extra", {}).get("split", {}).get("test", {})
        if isinstance(split.get("first_end"), int) and split["first_end"] > int(timestamps[first]):
            notes.append(f"{name} {model.version}: the range starts before its test split, so it overlaps its training data")
    close = candles["close"].to_numpy(dtype=np.float64)[rows]
    features_cache: dict[tuple[int, ...], Any] = {}
    results: list[ComparedStrategy] = []
    for name in [*names, *(["buy_and_hold"] if "buy_and_hold" not in names else [])]:
        if name in rows_out:
            results.append(rows_out[name])
            continue
        strategy = manager.strategy(name)
        info = strategy.info
        windows = tuple(info.feature_windows)
        if windows and windows not in features_cache:
            features_cache[windows] = strategy_features(info, candles, timeframe)
        model = loaded.get(name)
        request = SignalRequest(
            strategy=name, symbol=symbol, timeframe=timeframe, candles=candles, at=rows,
            features=features_cache.get(windows), model=model.model if model else None, params=params.get(name, {}),
        )
        try:
            signals = strategy.generate_signals(request)
        except (PluginError, DataError, ModelError) as exc:
            results.append(ComparedStrategy(name, "error", model.version if model else None, message=str(exc)))
            continue
        codes = {SignalAction.BUY: 1, SignalAction.SELL: -1, SignalAction.HOLD: 0}
        actions = np.array([codes[s.action] for s in signals])
        sizes = np.array([s.size for s in signals])
        probabilities = np.array([s.probability if s.probability is not None else math.nan for s in signals])
        classification = None
        if model is not None and np.isfinite(probabilities).any():
            classification = _classification(model.manifest, candles, rows, probabilities, timeframe)
        results.append(ComparedStrategy(
            name, "ok", model.version if model else None, samples=len(rows), classification=classification,
            trading=long_flat_returns(close, actions, sizes, fee_bps),
        ))
    return Comparison(symbol, timeframe, source, int(timestamps[first]), int(timestamps[last]), len(rows), fee_bps,
                      tuple(results), tuple(notes))

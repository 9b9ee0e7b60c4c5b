"""What a backtest produces: per-bar series, fills, metrics, and the summary as JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from trader.evaluation.performance import PerformanceMetrics, drawdown_curve

__all__ = ["SimulatedRun", "BacktestResult", "jsonable"]


def jsonable(value: Any) -> Any:
    """Plain JSON data: numpy values unwrapped, NaN and infinities as ``None``."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return jsonable(value.to_dict())
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "value") and isinstance(value.value, str):  # enums
        return value.value
    return value


@attrs.frozen
class SimulatedRun:
    """One strategy simulated candle by candle over a range.

    ``equity`` holds the starting cash followed by the equity after each bar, so it is one
    longer than ``timestamps``; ``position_value`` is the value held after each bar.
    """

    strategy: str
    timestamps: np.ndarray
    close: np.ndarray
    equity: np.ndarray
    position_value: np.ndarray
    actions: np.ndarray
    fills: tuple[Mapping[str, Any], ...]
    events: tuple[Mapping[str, Any], ...]
    metrics: PerformanceMetrics
    final_status: str = "active"

    @property
    def exposure(self) -> np.ndarray:
        equity = self.equity[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(equity > 0, self.position_value / np.where(equity > 0, equity, 1.0), 0.0)

    @property
    def drawdown(self) -> np.ndarray:
        return drawdown_curve(self.equity)[1:]

    def denied_orders(self) -> dict[str, int]:
        """How many audit reasons denied orders, by code."""
        counts: dict[str, int] = {}
        for event in self.events:
            if event.get("kind") == "audit" and event.get("approved") is False:
                counts[event["code"]] = counts.get(event["code"], 0) + 1
        return counts

    def halt(self) -> dict[str, Any] | None:
        """Why trading halted (the last change to ``halted``: time, rule code, message), ``None`` if it did not."""
        for event in reversed(self.events):
            if event.get("kind") == "status" and event.get("status") == "halted":
                return {"timestamp": event.get("timestamp"), "code": event.get("code"), "message": event.get("message")}
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "metrics": self.metrics.to_dict(),
            "fills": len(self.fills),
            "denied_orders": self.denied_orders(),
            "final_status": self.final_status,
            "halt": self.halt(),
        }


@attrs.frozen
class BacktestResult:
    """A backtest (or the stitched out-of-sample part of a walk-forward) and its baseline."""

    strategy: str
    symbol: str
    timeframe: str
    source: str
    settings: Mapping[str, Any]
    run: SimulatedRun
    benchmark: SimulatedRun | None = None
    significance: Any = None  # trader.backtest.bootstrap.Significance
    classification: Mapping[str, Any] | None = None
    folds: Sequence[Mapping[str, Any]] = ()
    model: Mapping[str, Any] | None = None
    timings: Mapping[str, float] = attrs.field(factory=dict)
    verdict: Any = None  # trader.backtest.verdict.Verdict
    plausibility: Any = None  # trader.backtest.verdict.Plausibility
    wide_spread: SimulatedRun | None = None  # the same signals at a wider spread (robust_to_costs)

    @property
    def days(self) -> float:
        """Days the range spans (bars x bar length)."""
        from trader.evaluation.performance import window_days

        return window_days(int(self.run.timestamps.size), self.timeframe)

    @property
    def sample(self) -> str:
        """``out_of_sample``, ``in_sample``, ``trained_later`` or ``unknown`` (see :func:`trader.backtest.runner.model_summary`);
        a walk-forward and a strategy without a model are out of sample."""
        if self.settings.get("walk_forward") or not self.model:
            return "out_of_sample"
        return str(self.model.get("sample", "unknown"))

    @property
    def market_return(self) -> float:
        """Close-to-close change of the price over the range (fully invested, no fees)."""
        first_open = self.settings.get("first_price")
        start = float(first_open) if first_open else float(self.run.close[0])
        return float(self.run.close[-1]) / start - 1.0

    def to_dict(self) -> dict[str, Any]:
        """The summary written as ``results.json`` and printed by ``--json``."""
        return jsonable(
            {
                "strategy": self.strategy,
                "symbol": self.symbol,
                "timeframe": self.timeframe,
                "source": self.source,
                "settings": dict(self.settings),
                "range": {"start": int(self.run.timestamps[0]), "end": int(self.run.timestamps[-1]),
                          "bars": int(self.run.timestamps.size), "days": self.days},
                "sample": self.sample,
                "verdict": self.verdict,
                "plausibility": self.plausibility,
                "annualised_caveat": self._caveat(),
                "market_return": self.market_return,
                "metrics": self.run.metrics,
                "benchmark": self.benchmark.summary() if self.benchmark is not None else None,
                "significance": self.significance,
                "classification": self.classification,
                "fills": len(self.run.fills),
                "denied_orders": self.run.denied_orders(),
                "final_status": self.run.final_status,
                "halt": self.run.halt(),
                "wide_spread": self._wide_summary(),
                "folds": list(self.folds),
                "model": self.model,
                "timings": dict(self.timings),
            }
        )

    def _caveat(self) -> str | None:
        from trader.evaluation.performance import annualised_caveat

        return annualised_caveat(int(self.run.timestamps.size), self.timeframe)

    def _wide_summary(self) -> dict[str, Any] | None:
        if self.wide_spread is None:
            return None
        return {"spread_multiplier": self.settings.get("wide_spread_multiplier"), **self.wide_spread.summary()}

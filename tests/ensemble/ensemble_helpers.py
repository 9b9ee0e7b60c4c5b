"""Shared helpers of the ensemble tests: small training settings, a trained model, payload classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trader.types import TrainRequest

#: Small members so a training takes seconds; the direction label (threshold 0, the default) is "up" about half the time.
FAST_PARAMS: dict[str, Any] = {
    "threads": 1,
    "trees": 30,
    "tree_min_samples_leaf": 30,
    "hgb_max_iter": 60,
    "hgb_min_samples_leaf": 40,
    "label_threshold": 0.0,
}


def candles(bars: int = 3000, seed: int = 3, planted_signal: float = 0.3) -> Any:
    from trader.data import synthetic_candles

    return synthetic_candles("SYN/USDT", "1h", bars=bars, seed=seed, planted_signal=planted_signal)


def train_request(data: Any, seed: int = 0, **params: Any) -> TrainRequest:
    return TrainRequest(
        strategy="ensemble", symbol="SYN/USDT", timeframe="1h", candles=data, params={**FAST_PARAMS, **params}, seed=seed
    )


def ensemble_strategy() -> Any:
    """The installed ``ensemble`` plugin, through a fresh plugin manager (as the CLI reaches it)."""
    from trader.plugins import TraderPluginManager

    return TraderPluginManager(disabled=()).strategy("ensemble")


class MarkerOnLoad:
    """A payload: rebuilding it (``__setstate__``) writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __getstate__(self) -> dict[str, Any]:
        return {"marker": self.marker}

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text("payload ran\n")
        self.marker = state["marker"]


class MarkerOnUnpickle:
    """A payload: unpickling it calls ``Path.write_text`` on the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = Path(marker)

    def __reduce__(self) -> Any:
        return (Path.write_text, (self.marker, "payload ran\n"))

"""A sequence classifier's signals for a whole basket at once (``trader_generate_basket_signals``).

Each market is read with its own candles, features and model, exactly as the per-market
hook reads it (:func:`trader.ml.signals.generate_sequence_signals`); what changes is how
many forward passes it takes:

- **one step** (``trader run``: ``request.at`` holds one position): the window of every
  market trading at that time goes through the network in ONE batched forward pass per
  distinct model (one pass for a pooled model), instead of one pass per market. A batch of
  windows is summed in another order than one window, so a probability may differ from the
  per-market hook's in the last float32 bits (about 1e-7); the actions are the same unless a
  probability sits that close to a threshold.
- **many positions** (a backtest): each market's rows are asked through the per-market path,
  batched over the rows as a single-market backtest batches them: the same signals, bit for bit.

A market answers at a position only when it has a candle opened at that time and is past
the warm-up (``StrategyInfo.warmup_bars`` of its own candles), the rule of per-market strategies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trader.errors import ArtifactError, ModelNotFoundError, train_command
from trader.hookspecs import hookimpl
from trader.ml.plugin import SequenceStrategyPlugin
from trader.types import BasketRequest, Signal, SignalRequest

if TYPE_CHECKING:
    import numpy as np

__all__ = ["BasketSequenceStrategyPlugin", "generate_sequence_basket_signals"]


def _model(plugin: str, request: BasketRequest, symbol: str) -> Any:
    from trader.ml.model import SequenceModel

    model = request.models.get(symbol) if request.models else None
    if model is None:
        model = request.model
    if model is None:
        raise ModelNotFoundError(
            f"{plugin} has no trained model for {symbol} {request.timeframe}; train one with: "
            + train_command(plugin, symbol, request.timeframe)
        )
    if not isinstance(model, SequenceModel):
        raise ArtifactError(f"{plugin}: the model of {symbol} is a {type(model).__name__}, not a loaded SequenceModel")
    return model


def _features(model: Any, request: BasketRequest, symbol: str) -> Any:
    features = request.features.get(symbol) if request.features else None
    if features is None or not model.reads(features):  # none given, or computed for other windows
        from trader.features import FeatureEngineer

        engineer = FeatureEngineer(windows=model.windows, timeframe=request.timeframe, max_fill_bars=model.max_fill_bars)
        features = engineer.transform(request.candles[symbol])
    return features


def _rows(request: BasketRequest, symbol: str, at: np.ndarray, warm: int) -> tuple[np.ndarray, np.ndarray]:
    """``(k, rows)``: the positions ``at[k]`` where ``symbol`` has a candle past its warm-up, and those candles' rows."""
    import numpy as np

    ts = request.candles[symbol]["timestamp"].to_numpy(dtype=np.int64)
    wanted = np.asarray(request.timestamps, dtype=np.int64)[at]
    rows = np.searchsorted(ts, wanted)
    inside = rows < ts.size
    hit = np.zeros(at.size, dtype=bool)
    hit[inside] = ts[rows[inside]] == wanted[inside]
    hit &= rows >= warm
    k = np.flatnonzero(hit)
    return k, rows[k]


def generate_sequence_basket_signals(spec: Any, request: BasketRequest, warmup_bars: int) -> list[dict[str, Signal]]:
    """The ``trader_generate_basket_signals`` hook of a sequence classifier (see the module docstring)."""
    import numpy as np

    from trader.ml.signals import generate_sequence_signals
    from trader.ml.thresholds import SequenceSignalSettings

    at = np.asarray(request.at, dtype=np.int64)
    out: list[dict[str, Signal]] = [{} for _ in range(at.size)]
    if at.size == 0:
        return out
    thresholds = SequenceSignalSettings.from_params(request.params)
    live: list[tuple[str, Any, Any, int]] = []
    for symbol in request.symbols:
        k, rows = _rows(request, symbol, at, warmup_bars)
        if k.size == 0:
            continue
        model = _model(spec.plugin, request, symbol)
        features = _features(model, request, symbol)
        if at.size == 1:
            live.append((symbol, model, features, int(rows[0])))
            continue
        signals = generate_sequence_signals(spec, SignalRequest(
            strategy=request.strategy, symbol=symbol, timeframe=request.timeframe, candles=request.candles[symbol],
            at=rows, features=features, model=model, state=request.state, params=request.params, workdir=request.workdir,
        ))
        for position, signal in zip(k.tolist(), signals, strict=True):
            out[position][symbol] = signal
    if live:
        out[0].update(_one_step(live, thresholds))
    return out


def _one_step(markets: Sequence[tuple[str, Any, Any, int]], thresholds: Any) -> Mapping[str, Signal]:
    """Each market's signal at its row: one batched forward pass per distinct model."""
    import numpy as np
    import torch

    from trader.ml.seeding import torch_threads
    from trader.ml.thresholds import signal_from_probability, warmup_signal

    answers: dict[str, Signal] = {}
    groups: dict[int, list[tuple[str, Any, np.ndarray]]] = {}
    for symbol, model, features, end in markets:
        length = model.sequence_length
        window = model.scaled_window(features, end - length + 1, end + 1) if end >= length - 1 else None
        if window is None or window.shape[0] != length or not np.isfinite(window).all():
            answers[symbol] = warmup_signal(length)
            continue
        groups.setdefault(id(model), []).append((symbol, model, window))
    for group in groups.values():
        model = group[0][1]
        x = torch.from_numpy(np.stack([window for _, _, window in group]))
        with torch_threads(thresholds.inference_threads), torch.inference_mode():
            balanced = torch.softmax(model.module(x), dim=-1).numpy()
        for (symbol, _, _), row in zip(group, balanced, strict=True):
            p_up = float(model.calibrate(row.astype(np.float64))[model.up_class])
            answers[symbol] = signal_from_probability(p_up, thresholds)
    return answers


class BasketSequenceStrategyPlugin(SequenceStrategyPlugin):
    """:class:`SequenceStrategyPlugin` with ``trader_generate_basket_signals``: a basket's markets
    in one batched forward pass per step (see the module docstring)."""

    @hookimpl
    def trader_generate_basket_signals(self, request: BasketRequest) -> Sequence[Mapping[str, Signal]]:
        return generate_sequence_basket_signals(self.spec(), request, self.trader_strategy_info().warmup_bars)

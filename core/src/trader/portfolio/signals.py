"""A basket's signals for many steps at once (backtests), from either kind of strategy.

- A *per-market* strategy (``trader_generate_signals``) is asked once per market, over that
  market's own candles and features, exactly as a single-market backtest asks it; its
  warm-up counts from the market's own first candle.
- A *cross-sectional* strategy (``trader_generate_basket_signals``) is asked once for the
  whole range, with every market's candles and features (:class:`trader.types.BasketRequest`).

Either way the answer (:class:`BasketAnswers`) reads as one mapping per timeline position,
holding signals only for the markets that have a candle there and are past their warm-up; it
keeps them per market, so a backtest's fast path reads each market's column as it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from trader.backtest.runner import batch_signals
from trader.backtest.signals import strategy_features
from trader.engine.factory import first_signal_row
from trader.types import BasketRequest

if TYPE_CHECKING:
    from trader.portfolio.align import Basket
    from trader.strategy import Strategy

__all__ = ["BasketAnswers", "basket_signals", "basket_features"]

StepAnswer = dict[str, Any]


class BasketAnswers(Sequence[StepAnswer]):
    """A basket's signals at ``length`` timeline positions, kept as one column per market.

    ``answers[k]`` is the mapping of step ``k`` (the markets with a signal there); ``columns[j]``
    holds market ``symbols[j]``'s signal at every position, ``None`` where it has none.
    """

    def __init__(self, symbols: Iterable[str], length: int, columns: Sequence[np.ndarray | None] | None = None) -> None:
        self.symbols = tuple(symbols)
        self._length = int(length)
        given = list(columns) if columns is not None else [None] * len(self.symbols)
        self.columns = [c if c is not None else np.full(self._length, None, dtype=object) for c in given]

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, k: int) -> StepAnswer: ...

    @overload
    def __getitem__(self, k: slice) -> list[StepAnswer]: ...

    def __getitem__(self, k: int | slice) -> StepAnswer | list[StepAnswer]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(self._length))]
        if k < 0:
            k += self._length
        if not 0 <= k < self._length:
            raise IndexError(k)
        out = {}
        for symbol, column in zip(self.symbols, self.columns, strict=True):
            signal = column[k]
            if signal is not None:
                out[symbol] = signal
        return out

    def column(self, symbol: str) -> list[Any]:
        """``symbol``'s signal at every position (``None`` where it has none)."""
        return self.columns[self.symbols.index(symbol)].tolist()


def _objects(values: Sequence[Any]) -> np.ndarray:
    """``values`` as a 1-d object array (``fromiter``: no look into each object for a nested sequence)."""
    return np.fromiter(values, dtype=object, count=len(values))


def basket_features(strategy: Strategy, basket: Basket) -> dict[str, Any]:
    """The core's features of each market (``None`` for a strategy that reads none)."""
    return {s: strategy_features(strategy.info, basket.frames[s], basket.timeframe) for s in basket.symbols}


def basket_signals(
    strategy: Strategy,
    basket: Basket,
    first: int,
    last: int,
    *,
    models: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    workdir: Path | None = None,
    features: Mapping[str, Any] | None = None,
) -> tuple[BasketAnswers, float]:
    """Signals for timeline positions ``first..last`` (inclusive) and the seconds the strategy took.

    ``models`` maps each symbol to the model its market uses (one pooled model may serve all).
    Nothing after ``last`` is ever shown to the strategy.
    """
    models = models or {}
    features = dict(features) if features is not None else basket_features(strategy, basket)
    warm = first_signal_row(strategy.info)
    length = last + 1 - first
    spent = 0.0
    if strategy.cross_sectional:
        answers = BasketAnswers(basket.symbols, length)
        spent = _cross_sectional(strategy, basket, first, last, answers, models, params, workdir, features, warm)
        return answers, spent
    columns: list[np.ndarray | None] = []
    for j, symbol in enumerate(basket.symbols):
        rows = basket.rows[first : last + 1, j]
        present = np.flatnonzero(rows >= 0)
        if present.size == 0:
            columns.append(None)
            continue
        r_first, r_last = int(rows[present[0]]), int(rows[present[-1]])
        batch = batch_signals(
            strategy, basket.frames[symbol], r_first, r_last, symbol=symbol, timeframe=basket.timeframe,
            features=features.get(symbol), model=models.get(symbol), params=params, workdir=workdir,
        )
        spent += batch.seconds
        got = _objects(batch.signals)
        if r_last - r_first + 1 != present.size:  # not one row per position: pick each position's row
            got = got[rows[present] - r_first]
        if present.size == length:  # a candle at every position (markets on one clock): the column as it came
            columns.append(got)
            continue
        column = np.full(length, None, dtype=object)
        p_first, p_last = int(present[0]), int(present[-1])
        if p_last - p_first + 1 == present.size:
            column[p_first : p_last + 1] = got
        else:
            column[present] = got
        columns.append(column)
    return BasketAnswers(basket.symbols, length, columns), spent


def _cross_sectional(
    strategy: Strategy,
    basket: Basket,
    first: int,
    last: int,
    answers: BasketAnswers,
    models: Mapping[str, Any],
    params: Mapping[str, Any] | None,
    workdir: Path | None,
    features: Mapping[str, Any],
    warm: int,
) -> float:
    rows = basket.rows[first : last + 1]
    eligible = (rows >= warm) & (rows >= 0)
    asked = np.flatnonzero(eligible.any(axis=1))
    if asked.size == 0:
        return 0.0
    end_ts = int(basket.timestamps[last])
    candles, feats = {}, {}
    for symbol in basket.symbols:
        frame = basket.frames[symbol]
        cut = int(np.searchsorted(frame["timestamp"].to_numpy(), end_ts, side="right"))
        candles[symbol] = frame.iloc[:cut]
        f = features.get(symbol)
        feats[symbol] = f.iloc[:cut] if f is not None else None
    distinct = {id(m) for m in models.values()}
    model = next(iter(models.values())) if models and len(distinct) == 1 else None
    request = BasketRequest(
        strategy=strategy.name, symbols=basket.symbols, timeframe=basket.timeframe,
        timestamps=basket.timestamps[: last + 1], candles=candles, at=asked + first, features=feats,
        model=model, params=dict(params or {}), workdir=workdir, models=dict(models),
    )
    began = time.perf_counter()
    got = strategy.generate_basket_signals(request, keep_invalid=True)
    spent = time.perf_counter() - began
    # A strategy often repeats one answer (buy-and-hold's every row): each distinct mapping is read once.
    ids = np.fromiter(map(id, got), dtype=np.uint64, count=len(got))
    _, first_of, which = np.unique(ids, return_index=True, return_inverse=True)
    rows_read = [got[k] for k in first_of.tolist()]
    for j, symbol in enumerate(basket.symbols):
        column = _objects([answer.get(symbol) for answer in rows_read])[which]
        keep = eligible[asked, j]
        answers.columns[j][asked[keep]] = column[keep]  # a market not yet warm, or without a candle, gets none
    return spent

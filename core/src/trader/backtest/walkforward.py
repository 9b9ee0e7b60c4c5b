"""Walk-forward folds: train on a rolling window, test on the bars right after it.

For fold ``k`` (``s = first_test + k * step``)::

    train = [s - gap - train_bars, s - gap)      gap = purge + embargo
    test  = [s, s + test_bars)

- **purge**: training rows whose label looks forward into the test window would carry
  test prices into training. A label over ``H`` bars at row ``i`` reads up to ``i + H``,
  so ``purge = H`` drops exactly those rows. (The trainer only ever receives candles
  before ``s - gap``, so nothing of the test window can reach it.)
- **embargo**: extra bars skipped after the purge, against slow serial correlation.

Test windows do not overlap when ``step >= test_bars`` (the default ``step`` is
``test_bars``), so the out-of-sample results can be stitched into one curve.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["WalkForwardFold", "walk_forward_folds"]


def _non_negative_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be an integer >= 0, got {value!r}")


@attrs.frozen
class WalkForwardFold:
    """Row ranges (half-open, positions in the candle frame) of one fold."""

    index: int = attrs.field(validator=_non_negative_int)
    train_start: int = attrs.field(validator=_non_negative_int)
    train_end: int = attrs.field(validator=_non_negative_int)
    test_start: int = attrs.field(validator=_non_negative_int)
    test_end: int = attrs.field(validator=_non_negative_int)

    def __attrs_post_init__(self) -> None:
        if not self.train_start < self.train_end <= self.test_start < self.test_end:
            raise ValueError(
                f"fold {self.index}: need train_start < train_end <= test_start < test_end, got "
                f"{self.train_start}, {self.train_end}, {self.test_start}, {self.test_end}"
            )

    @property
    def gap(self) -> int:
        return self.test_start - self.train_end

    def to_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def walk_forward_folds(
    n_rows: int,
    train_bars: int,
    test_bars: int,
    step: int | None = None,
    *,
    purge: int = 0,
    embargo: int = 0,
    first_test: int | None = None,
    anchored: bool = False,
    allow_partial_test: bool = True,
) -> list[WalkForwardFold]:
    """The folds over ``n_rows`` candles.

    :param first_test: first test row; by default the earliest row leaving a full
        training window and the gap before it.
    :param anchored: train from row 0 every time (an expanding window) instead of a
        rolling one of ``train_bars``.
    :param allow_partial_test: keep a last test window shorter than ``test_bars``.
    :raises ValueError: naming the argument that makes the folds impossible.
    """
    _count("n_rows", n_rows)
    _positive("train_bars", train_bars)
    _positive("test_bars", test_bars)
    step = _positive("step", step if step is not None else test_bars)
    _count("purge", purge)
    _count("embargo", embargo)
    gap = purge + embargo
    earliest = train_bars + gap
    start = earliest if first_test is None else _count("first_test", first_test)
    if start < earliest:
        raise ValueError(f"first_test {start} leaves fewer than train_bars + purge + embargo = {earliest} rows before it")
    if start >= n_rows:
        raise ValueError(
            f"{n_rows} candles are too few for train_bars={train_bars}, purge={purge}, embargo={embargo}: "
            f"the first test row would be {start}"
        )
    folds = []
    s = start
    while s < n_rows:
        end = min(s + test_bars, n_rows)
        if end - s < test_bars and not allow_partial_test:
            break
        train_end = s - gap
        train_start = 0 if anchored else train_end - train_bars
        folds.append(WalkForwardFold(len(folds), train_start, train_end, s, end))
        s += step
    if not folds:
        raise ValueError(f"{n_rows} candles leave no complete test window of {test_bars} bars")
    return folds

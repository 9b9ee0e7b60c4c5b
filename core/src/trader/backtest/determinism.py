"""Is the same question always given the same answer? Randomness, call count and call order, told apart.

:func:`determinism_result` asks one request (all rows after the warm-up, all candles) in
this process twice in a row and with the rows in reverse order, then in two fresh
processes three times each (:mod:`trader.backtest.fresh`; the second only when the first
differs from this process). The diagnosis, first match wins:

- two fresh processes disagree on their first answer: **not deterministic** (unseeded
  randomness, the clock, another outside input);
- they agree call by call, but a later call differs from the first: the signals depend
  on **how many times the strategy was called**;
- this process, after the calls the checks made, differs from a fresh one: the signals
  depend on **the calls made before** (state kept between calls);
- without a fresh process, two identical requests in a row that disagree are reported
  as non-deterministic or call-count dependent, saying that no fresh process could tell which;
- the rows asked in reverse order differ: the signals depend on **the order of the rows**.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from trader.backtest.signals import signal_arrays, signals_differ

if TYPE_CHECKING:
    import pandas as pd

    from trader.types import Signal

__all__ = ["determinism_result", "differing_rows"]


def differing_rows(a: Sequence[Signal], b: Sequence[Signal], tolerance: float) -> np.ndarray:
    """Positions where two equally long signal lists disagree (action, or size/confidence/probability beyond ``tolerance``)."""
    if len(a) != len(b):
        raise ValueError(f"comparing {len(a)} signals with {len(b)}")
    x, y = signal_arrays(a), signal_arrays(b)
    bad = x.action != y.action
    bad |= np.abs(x.size - y.size) > tolerance
    bad |= np.abs(x.confidence - y.confidence) > tolerance
    px, py = np.isnan(x.probability), np.isnan(y.probability)
    with np.errstate(invalid="ignore"):
        bad |= (px != py) | (~px & ~py & (np.abs(x.probability - y.probability) > tolerance))
    return np.flatnonzero(bad)


def _first(expected: Sequence[Signal], actual: Sequence[Signal], differ: np.ndarray, rows: np.ndarray,
           describe: Callable[[int], str], tolerance: float) -> str:
    from trader.backtest.lookahead import describe_signal

    i = int(differ[0])
    return (f"{differ.size} of {len(expected)} rows differ, first at {describe(int(rows[i]))}: "
            f"{describe_signal(expected[i])} vs {describe_signal(actual[i])} ({signals_differ(expected[i], actual[i], tolerance)})")


def determinism_result(
    source: Any,
    candles: pd.DataFrame,
    rows: Sequence[int] | np.ndarray,
    *,
    features: pd.DataFrame | None,
    tolerance: float,
    fresh: Callable[[], list[list[Signal]]] | None,
    fresh_note: str = "",
    describe: Callable[[int], str],
    name: str = "determinism",
) -> Any:
    """A :class:`~trader.backtest.lookahead.CheckResult` diagnosing how the answers vary (module docstring).

    ``fresh()`` returns ``[call] -> signals`` of one fresh process asked the same request
    several times, or raises :class:`~trader.backtest.fresh.FreshUnavailable`; ``None``
    (with ``fresh_note`` saying why) when no fresh process can load the strategy. A second
    fresh process is started only when the first one's answers differ from this process's.
    """
    from trader.backtest.fresh import FreshUnavailable
    from trader.backtest.lookahead import CheckResult

    at = np.asarray(rows, dtype=np.int64)
    here = source.signals(candles, at, features)
    here_again = source.signals(candles, at, features)
    reverse = list(reversed(source.signals(candles, at[::-1], features)))
    calls: list[list[list[Signal]]] | None = None
    if fresh is not None:
        try:
            calls = [fresh()]
            if any(differing_rows(here, answer, tolerance).size for answer in calls[0]):
                calls.append(fresh())  # a second process tells randomness from call count
        except FreshUnavailable as exc:
            calls, fresh_note = None, str(exc)
    if calls is not None and len(calls) == 2:
        first, second = calls[0], calls[1]
        differ = differing_rows(first[0], second[0], tolerance)
        if differ.size:
            return CheckResult(name, "fail", "not deterministic: two fresh processes asked the same request give different "
                               "signals (unseeded randomness, the clock or another outside input)",
                               [_first(first[0], second[0], differ, at, describe, tolerance)])
        agree = all(differing_rows(a, b, tolerance).size == 0 for a, b in zip(first, second, strict=True))
        for k in range(1, len(first)):
            differ = differing_rows(first[0], first[k], tolerance)
            if differ.size and agree:
                return CheckResult(name, "fail", f"depends on how many times the strategy was called: in a fresh process "
                                   f"call {k + 1} of the same request differs from call 1, and two fresh processes agree "
                                   "call by call (so it is not randomness)",
                                   [_first(first[0], first[k], differ, at, describe, tolerance)])
        differ = differing_rows(first[0], here, tolerance)
        if differ.size:
            return CheckResult(name, "fail", "depends on the calls made before: after the requests of this check this "
                               "process gives different signals from a fresh process asked the same request (state kept "
                               "between calls, or the call count)",
                               [_first(first[0], here, differ, at, describe, tolerance)])
    differ = differing_rows(here, here_again, tolerance)
    if differ.size:
        why = f" (no fresh process could tell which: {fresh_note})" if fresh_note else ""
        return CheckResult(name, "fail", "not deterministic, or dependent on how many times the strategy was called: the "
                           f"same request asked twice in a row gives different signals{why}",
                           [_first(here, here_again, differ, at, describe, tolerance)])
    differ = differing_rows(here, reverse, tolerance)
    if differ.size:
        return CheckResult(name, "fail", "depends on the order the rows are asked in: the rows asked in reverse order "
                           "give different signals", [_first(here, reverse, differ, at, describe, tolerance)])
    done = f"{len(at):,} rows: the same request twice and in reverse order gives the same signals"
    if calls is not None:
        done += f", as does a fresh process asked {len(calls[0])} times"
    elif fresh_note:
        done += f" (no fresh process: {fresh_note})"
    return CheckResult(name, "pass", done)

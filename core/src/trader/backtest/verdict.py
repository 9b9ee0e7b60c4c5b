"""The verdict of a backtest: skill, or only exposure, luck and cheap fills?

A positive Sharpe ratio is not skill: in a bull market any strategy that is mostly long has
one. The verdict asks three questions, in this order, each with an estimate, a 95 %
interval and a one-sided p-value (:class:`Question`):

1. ``beats_buy_and_hold``: does the strategy end with more than buy-and-hold over the same
   bars? Paired test: the per-bar differences of log returns ``log(1 + r) - log(1 + b)``
   are resampled with the stationary block bootstrap (the same blocks as
   :mod:`trader.backtest.bootstrap`); their sum is the log of the ratio of the two final
   equities, so the estimate is exactly ``strategy final equity / buy-and-hold's - 1``.
2. ``beats_random_timing``: does its timing beat chance? The null keeps the strategy's
   trades (each a maximal run of bars holding a position: its holding time and its
   per-bar exposure and costs) and moves them: the trades are put in a random order and
   the flat bars are split at random between the gaps (every split of the flat bars that
   keeps at least one flat bar between two trades is equally likely). That keeps the
   number of trades, every holding time, the long/flat mix, the sizes and the costs, and
   draws the entry times uniformly. Each re-timing is valued on the market's own path;
   the statistic is the total log return. Bootstrapping the trade returns alone would test
   only whether the path is stable, not whether the timing is better than chance.
3. ``robust_to_costs``: does it still make money with the costs it assumed, and with twice
   the spread (a second simulation)? Block bootstrap of the per-bar log returns of each
   run; the p-value is the larger of the two (both must hold).

Sidedness: every p-value is one-sided, the probability under the question's null ("the
strategy is no better than the reference") of a result at least as favourable to the
strategy as the one observed. A question holds when ``p < ALPHA`` (0.025), the level at
which a 95 % percentile interval lies wholly above zero, so an interval and its p-value
never disagree (up to one resample). With ``N`` resamples the smallest p-value is
``1 / (N + 1)``; a p-value at that floor is printed as a bound (:func:`format_p`: "< 0.001").

:func:`judge` works on arrays; :func:`judge_runs` on :class:`~trader.backtest.results.SimulatedRun`
objects. :func:`plausibility` is the guard against results too good to be true.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from trader.backtest.bootstrap import default_block_length, resampled_sums

if TYPE_CHECKING:
    from trader.backtest.results import SimulatedRun

__all__ = [
    "ALPHA",
    "CONFIDENCE",
    "FLAT",
    "SHARPE_LIMIT",
    "Question",
    "Verdict",
    "Plausibility",
    "format_p",
    "p_floor",
    "trade_runs",
    "random_timings",
    "beats_buy_and_hold",
    "beats_random_timing",
    "robust_to_costs",
    "close_returns",
    "judge",
    "judge_runs",
    "question_rows",
    "plausibility",
]

#: One-sided level at which a question holds: the lower end of a 95 % interval above zero.
ALPHA = 0.025
CONFIDENCE = 0.95
#: Exposure (position value / equity) at or below this is flat.
FLAT = 1e-9
#: Annualised Sharpe ratio above which a result is implausible (see :func:`plausibility`).
SHARPE_LIMIT = 4.0

SIDEDNESS = "one-sided: H0 the strategy is no better than the reference; p = P(a result at least this favourable | H0)"


def p_floor(n_resamples: int) -> float:
    """The smallest p-value ``n_resamples`` resamples can give: ``1 / (n_resamples + 1)``."""
    return 1.0 / (n_resamples + 1)


def _bound(floor: float) -> str:
    """The floor rounded UP to one significant digit: 1/201 -> "0.005", 1/1001 -> "0.001"."""
    exponent = math.floor(math.log10(floor))
    digit = math.ceil(round(floor / 10**exponent, 9))
    if digit >= 10:
        digit, exponent = 1, exponent + 1
    return f"{digit * 10.0**exponent:.{max(0, -exponent)}f}"


def format_p(p: float | None, floor: float | None = None) -> str:
    """A p-value for people: ``"0.041"``, ``"n/a"``, or at its floor a bound such as ``"< 0.005"``."""
    if p is None or not math.isfinite(p):
        return "n/a"
    if floor is not None and floor > 0 and p <= floor * (1 + 1e-9):
        return f"< {_bound(floor)}"
    if p >= 0.001:
        return f"{p:.3f}"
    return f"{p:.1e}"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@attrs.frozen
class Question:
    """One question of the verdict and its answer.

    ``estimate``, ``low`` and ``high`` are relative (0.12 = +12 %); ``holds`` is ``None``
    when the question cannot be asked (no baseline, too few bars).
    """

    name: str
    title: str
    estimate: float
    low: float
    high: float
    p_value: float
    p_floor: float
    holds: bool | None
    method: str
    detail: Mapping[str, Any] = attrs.field(factory=dict)
    confidence: float = CONFIDENCE
    sided: str = SIDEDNESS

    @property
    def p_text(self) -> str:
        return format_p(self.p_value, self.p_floor)

    @property
    def p_at_floor(self) -> bool:
        return math.isfinite(self.p_value) and self.p_value <= self.p_floor * (1 + 1e-9)

    def answer(self) -> str:
        """``"yes (p < 0.001)"``, ``"no (p = 0.412)"`` or ``"n/a (why)"``."""
        if self.holds is None:
            return f"n/a ({self.detail.get('why', 'not asked')})"
        p = self.p_text
        return f"{'yes' if self.holds else 'no'} (p {p if p.startswith('<') else '= ' + p})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "holds": self.holds,
            "estimate": _clean(float(self.estimate)),
            "interval": {"low": _clean(float(self.low)), "high": _clean(float(self.high)), "confidence": self.confidence},
            "p_value": _clean(float(self.p_value)),
            "p_floor": self.p_floor,
            "p_text": self.p_text,
            "p_at_floor": self.p_at_floor,
            "sided": self.sided,
            "method": self.method,
            "detail": {k: _clean(v) for k, v in self.detail.items()},
        }


@attrs.frozen
class Verdict:
    """The three questions, and the one line that says which hold."""

    questions: tuple[Question, ...]
    alpha: float = ALPHA
    implausible: bool = False  # the plausibility guard fired: too good to be true

    def question(self, name: str) -> Question | None:
        return next((q for q in self.questions if q.name == name), None)

    @property
    def all_hold(self) -> bool:
        return bool(self.questions) and all(q.holds is True for q in self.questions)

    @property
    def skilful(self) -> bool:
        """Every question was asked and holds, and the result is not implausible."""
        return self.all_hold and not self.implausible

    @property
    def holding(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.questions if q.holds)

    @property
    def line(self) -> str:
        answers = "; ".join(f"{q.title}: {q.answer()}" for q in self.questions)
        if self.skilful:
            return f"verdict: SKILL: {answers}"
        if self.all_hold:
            return (f"verdict: NOT TRUSTWORTHY: every question holds, but the result is implausible (see the WARNING): "
                    f"{answers}")
        head = "NO EVIDENCE OF SKILL"
        bh, timing = self.question("beats_buy_and_hold"), self.question("beats_random_timing")
        if bh is not None and timing is not None and bh.holds and timing.holds is False:
            head += " (its edge over buy-and-hold is exposure, not timing)"
        return f"verdict: {head}: {answers}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "skilful": self.skilful,
            "implausible": self.implausible,
            "line": self.line,
            "alpha": self.alpha,
            "sided": SIDEDNESS,
            "holds": list(self.holding),
            "questions": [q.to_dict() for q in self.questions],
        }


# --------------------------------------------------------------------------- helpers


def _log_returns(returns: np.ndarray) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    return np.log1p(np.maximum(r, -1.0 + 1e-15))


def _percentile_p(draws: np.ndarray) -> float:
    """Share of resampled sums at or below zero, with the +1 of an exact test (floor ``1/(N+1)``)."""
    return float((1 + np.sum(draws <= 0.0)) / (1 + draws.size))


def _interval(draws: np.ndarray) -> tuple[float, float]:
    alpha = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _not_asked(name: str, title: str, why: str, floor: float) -> Question:
    return Question(name, title, math.nan, math.nan, math.nan, math.nan, floor, None, "", {"why": why})


# --------------------------------------------------------------------------- 1. buy-and-hold


def beats_buy_and_hold(returns: np.ndarray, benchmark_returns: np.ndarray, *, n_resamples: int = 1000,
                       mean_block: float | None = None, seed: int = 0) -> Question:
    """Paired block bootstrap of the per-bar log-return differences against buy-and-hold."""
    d = _differences(returns, benchmark_returns)
    if d is None:
        return _not_asked("beats_buy_and_hold", "beats buy-and-hold", "fewer than 3 bars", p_floor(n_resamples))
    block = mean_block if mean_block is not None else default_block_length(d.size)
    return _buy_and_hold_answer(returns, benchmark_returns, d, resampled_sums([d], n_resamples, block, seed)[0], block)


def _differences(returns: np.ndarray, benchmark_returns: np.ndarray) -> np.ndarray | None:
    """``log(1 + r) - log(1 + b)`` per bar (``None`` under 3 bars)."""
    r, b = np.asarray(returns, dtype=np.float64), np.asarray(benchmark_returns, dtype=np.float64)
    if r.size != b.size:
        raise ValueError(f"benchmark has {b.size} returns for {r.size}")
    return _log_returns(r) - _log_returns(b) if r.size >= 3 else None


def _buy_and_hold_answer(returns: np.ndarray, benchmark_returns: np.ndarray, d: np.ndarray, draws: np.ndarray,
                         block: float) -> Question:
    n_resamples = draws.size
    low, high = _interval(draws)
    p = _percentile_p(draws)
    r, b = np.asarray(returns, dtype=np.float64), np.asarray(benchmark_returns, dtype=np.float64)
    return Question(
        "beats_buy_and_hold", "beats buy-and-hold", math.expm1(float(d.sum())), math.expm1(low), math.expm1(high), p,
        p_floor(n_resamples), p < ALPHA,
        f"paired stationary block bootstrap of per-bar log-return differences ({n_resamples} resamples, "
        f"mean block {block:g} bars); estimate: final equity relative to buy-and-hold's",
        {"strategy_total_return": math.expm1(float(_log_returns(r).sum())),
         "buy_and_hold_total_return": math.expm1(float(_log_returns(b).sum())), "mean_block": float(block)},
    )


# --------------------------------------------------------------------------- 2. random timing


def trade_runs(exposure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, lengths)`` of the maximal runs of bars holding a position (exposure above :data:`FLAT`)."""
    held = np.asarray(exposure, dtype=np.float64) > FLAT
    edges = np.diff(np.concatenate(([0], held.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    return starts, np.flatnonzero(edges == -1) - starts


def _timing_draws(n: int, starts: np.ndarray, lengths: np.ndarray, n_resamples: int, seed: int = 0):
    """Yield, per re-timing, ``(new_starts, order)``: trade ``order[i]`` begins at bar ``new_starts[i]``.

    The draws of :func:`random_timings` (the same random numbers, taken in the same order)."""
    k = int(starts.size)
    rng = np.random.default_rng(seed)
    flat = n - int(lengths.sum())
    free = flat - max(k - 1, 0)
    if k == 0 or free < 0:
        raise ValueError("need at least one trade and room for the gaps between trades")
    slots = np.zeros(free + k, dtype=bool)
    for _ in range(n_resamples):
        order = rng.permutation(k)
        chosen = rng.choice(free + k, size=k, replace=False)  # stars and bars: k bars among free + k slots
        slots[chosen] = True  # sorted by marking them (distinct integers): faster than np.sort
        cuts = np.flatnonzero(slots)
        slots[chosen] = False
        # gap i (the flat bars before the i-th trade) is cuts[i] - cuts[i - 1] - 1, plus the one flat bar kept
        # between two trades, cuts[0] before the first: the gaps before the i-th trade add up to cuts[i]
        moved = lengths[order]
        yield cuts + (np.cumsum(moved) - moved), order


def random_timings(n: int, starts: np.ndarray, lengths: np.ndarray, n_resamples: int, seed: int = 0):
    """Yield, per re-timing, ``(src, new_starts, order)``: ``src[t]`` is the original bar whose
    position bar ``t`` holds (``-1`` when flat); ``new_starts[i]`` is where trade ``order[i]`` begins.

    The trades keep their lengths and go in a random order; the ``n - sum(lengths)`` flat bars
    are split uniformly at random among the ``k + 1`` gaps, at least one between two trades.
    """
    held = int(lengths.sum())
    for new_starts, order in _timing_draws(n, starts, lengths, n_resamples, seed):
        moved = lengths[order]
        offset = np.arange(held) - np.repeat(np.cumsum(moved) - moved, moved)  # bar of its trade
        src = np.full(n, -1, dtype=np.int64)
        src[np.repeat(new_starts, moved) + offset] = np.repeat(starts[order], moved) + offset
        yield src, new_starts, order


def _retimed_log_total(src: np.ndarray, new_starts: np.ndarray, order: np.ndarray, exposure: np.ndarray,
                       market: np.ndarray, costs: np.ndarray, exit_costs: np.ndarray, lengths: np.ndarray) -> float:
    """One re-timing's total log return, bar by bar (the reference :func:`_retimed_log_totals` is held to)."""
    held = src >= 0
    e = np.where(held, exposure[np.where(held, src, 0)], 0.0)
    c = np.where(held, costs[np.where(held, src, 0)], 0.0)
    exits = new_starts + lengths[order]
    inside = exits < src.size
    np.add.at(c, exits[inside], exit_costs[order][inside])
    r = np.concatenate(([0.0], e[:-1])) * market - c
    return float(_log_returns(r).sum())


def _retimed_log_totals(starts: np.ndarray, lengths: np.ndarray, exposure: np.ndarray, market: np.ndarray,
                        costs: np.ndarray, exit_costs: np.ndarray, n_resamples: int, seed: int = 0) -> np.ndarray:
    """:func:`_retimed_log_total` of every re-timing of :func:`random_timings` (same seed, same draws),
    from the bars that move with the trades only: O(bars held) per re-timing instead of O(bars).

    A flat bar after a flat bar returns exactly 0 wherever the trades go; a trade's first bar returns
    ``-costs`` of its original first bar (nothing is held before it); only the trade's later bars and
    the bar after it depend on where it goes (``exposure[s + j - 1] * market[p + j] - costs[s + j]``,
    the exit's costs on the bar after it, which does not exist when the trade ends on the last bar).
    Every bar's return is the same float as the bar-by-bar formula's; only the order of the sum
    differs, so the totals agree to rounding (about 1e-15 of the sum of the bars' absolute log returns).
    """
    n = market.size
    entry = float(_log_returns(-costs[starts]).sum())  # the first bars: the same wherever the trades go
    first = np.cumsum(lengths) - lengths  # where each trade's moving bars begin below
    step = np.arange(int(lengths.sum())) - np.repeat(first - 1, lengths)  # j = 1 .. L within each trade
    original = np.repeat(starts, lengths) + step  # the bar s + j (s + L: the bar after the trade)
    before = exposure[original - 1]
    paid = costs[np.minimum(original, n - 1)]
    last = first + lengths - 1
    paid[last] = exit_costs
    padded = np.concatenate((market, [0.0]))  # the bar after a trade ending on the last bar: returns 0, set below
    # log1p(max(r, -1 + 1e-15)) as _log_returns, without the clamp where no bar can come near -1
    clamp = float(np.abs(before).max() * np.abs(market).max() + np.abs(paid).max()) >= 0.5
    at = np.empty(starts.size, dtype=np.int64)
    r = np.empty(step.size)  # reused: no fresh pages per re-timing
    out = np.empty(n_resamples)
    for row, (new_starts, order) in enumerate(_timing_draws(n, starts, lengths, n_resamples, seed)):
        at[order] = new_starts
        bar = np.repeat(at, lengths)
        bar += step
        np.take(padded, bar, out=r, mode="clip")  # (every bar is within it; "clip" spares take a copy of r)
        np.multiply(before, r, out=r)
        r -= paid
        end = order[-1]
        if new_starts[-1] + lengths[end] == n:
            r[last[end]] = 0.0
        if clamp:
            np.maximum(r, -1.0 + 1e-15, out=r)
        out[row] = entry + float(np.log1p(r, out=r).sum())
    return out


def beats_random_timing(returns: np.ndarray, exposure: np.ndarray, market_returns: np.ndarray, *,
                        n_resamples: int = 1000, seed: int = 0) -> Question:
    """The strategy's total log return against re-timings of its own trades (see the module docstring).

    ``exposure[t]`` is position value / equity after bar ``t``; ``market_returns[t]`` the close-to-close
    return into bar ``t``; ``returns[t]`` the strategy's net return of bar ``t``. The costs a bar paid
    are what the held exposure does not explain: ``exposure[t-1] * market[t] - returns[t]``.
    """
    name, title = "beats_random_timing", "beats random timing"
    floor = p_floor(n_resamples)
    r = np.asarray(returns, dtype=np.float64)
    e = np.asarray(exposure, dtype=np.float64)
    m = np.asarray(market_returns, dtype=np.float64)
    if not r.size == e.size == m.size:
        raise ValueError(f"returns, exposure and market returns differ in length: {r.size}, {e.size}, {m.size}")
    if r.size < 3:
        return _not_asked(name, title, "fewer than 3 bars", floor)
    starts, lengths = trade_runs(e)
    observed = float(_log_returns(r).sum())
    method = (f"{n_resamples} random re-timings keeping the {starts.size} trade{'' if starts.size == 1 else 's'}, their holding times, sizes and "
              "costs, and the long/flat mix; entry times drawn uniformly")
    detail = {"trades": int(starts.size), "bars_held": int(lengths.sum()), "bars": int(r.size)}
    if starts.size == 0:
        return Question(name, title, 0.0, 0.0, 0.0, 1.0, floor, False, method, {**detail, "why": "no trades"})
    costs = np.concatenate(([0.0], e[:-1])) * m - r
    ends = starts + lengths
    exit_costs = np.where(ends < r.size, costs[np.minimum(ends, r.size - 1)], 0.0)
    null = _retimed_log_totals(starts, lengths, e, m, costs, exit_costs, n_resamples, seed)
    tol = 1e-9 * max(1.0, abs(observed))
    p = float((1 + np.sum(null >= observed - tol)) / (1 + null.size))
    q_lo, q_hi = _interval(null)
    median = float(np.median(null))
    return Question(
        name, title, math.expm1(observed - median), math.expm1(observed - q_hi), math.expm1(observed - q_lo), p,
        floor, p < ALPHA, method + "; estimate: final equity relative to the median re-timing, interval over the "
        "middle 95 % of re-timings",
        {**detail, "strategy_total_return": math.expm1(observed), "median_random_total_return": math.expm1(median),
         "share_of_retimings_as_good": float(np.mean(null >= observed - tol))},
    )


# --------------------------------------------------------------------------- 3. costs


def robust_to_costs(returns: np.ndarray, wide_returns: np.ndarray | None = None, *, spread_multiplier: float = 2.0,
                    n_resamples: int = 1000, mean_block: float | None = None, seed: int = 0) -> Question:
    """Block bootstrap of the total log return at the assumed costs and (when given) at a wider spread."""
    logs = _cost_series(returns, wide_returns)
    if logs is None:
        return _not_asked("robust_to_costs", _costs_title(wide_returns, spread_multiplier), "fewer than 3 bars",
                          p_floor(n_resamples))
    block = mean_block if mean_block is not None else default_block_length(logs[0].size)
    return _costs_answer(logs, resampled_sums(logs, n_resamples, block, seed), block, spread_multiplier)


def _costs_title(wide_returns: np.ndarray | None, spread_multiplier: float) -> str:
    return f"profitable at {spread_multiplier:g}x the spread" if wide_returns is not None else "profitable after costs"


def _cost_series(returns: np.ndarray, wide_returns: np.ndarray | None) -> list[np.ndarray] | None:
    """The per-bar log returns at the assumed costs and (when given) at the wider spread (``None`` under 3 bars)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 3:
        return None
    return [_log_returns(r)] + ([_log_returns(np.asarray(wide_returns, dtype=np.float64))] if wide_returns is not None else [])


def _costs_answer(logs: list[np.ndarray], draws: np.ndarray, block: float, spread_multiplier: float) -> Question:
    n_resamples = draws.shape[1]
    wide = len(logs) > 1
    keys = ("assumed", "wide")[: len(logs)]
    answers = {key: (float(lr.sum()), _interval(row), _percentile_p(row)) for key, lr, row in zip(keys, logs, draws, strict=True)}
    last = answers["wide" if wide else "assumed"]
    p = max(a[2] for a in answers.values())
    detail: dict[str, Any] = {"total_return": math.expm1(answers["assumed"][0]), "p_value": answers["assumed"][2],
                              "mean_block": float(block)}
    if wide:
        detail.update({"spread_multiplier": spread_multiplier, "wide_total_return": math.expm1(answers["wide"][0]),
                       "wide_p_value": answers["wide"][2]})
    else:
        detail["why_single"] = "no run at a wider spread"
    return Question(
        "robust_to_costs", _costs_title(logs[1] if wide else None, spread_multiplier), math.expm1(last[0]),
        math.expm1(last[1][0]), math.expm1(last[1][1]), p, p_floor(n_resamples), p < ALPHA,
        f"stationary block bootstrap of per-bar log returns ({n_resamples} resamples, mean block {block:g} bars) "
        + ("at the assumed costs and at a wider spread; p is the larger of the two" if wide else "at the assumed costs"),
        detail,
    )


# --------------------------------------------------------------------------- the verdict


def judge(returns: np.ndarray, exposure: np.ndarray, market_returns: np.ndarray,
          benchmark_returns: np.ndarray | None = None, wide_returns: np.ndarray | None = None, *,
          spread_multiplier: float = 2.0, n_resamples: int = 1000, mean_block: float | None = None,
          seed: int = 0, implausible: bool = False) -> Verdict:
    """The three questions for one strategy (arrays per bar, aligned; see each question's function).
    ``implausible``: the plausibility guard fired, so the verdict cannot be SKILL."""
    floor = p_floor(n_resamples)
    d = _differences(returns, benchmark_returns) if benchmark_returns is not None else None
    logs = _cost_series(returns, wide_returns)
    # both bootstrap questions resample the same bars with the same seed: one draw of blocks for all their series
    series = ([d] if d is not None else []) + (logs or [])
    block = mean_block if mean_block is not None else default_block_length(series[0].size) if series else 1
    if all(x.size == series[0].size for x in series):
        draws = resampled_sums(series, n_resamples, block, seed) if series else np.empty((0, n_resamples))
    else:  # a wide run of another length: each series on its own blocks, as its question alone would
        draws = np.stack([resampled_sums([x], n_resamples, block, seed)[0] for x in series])
    if benchmark_returns is None:
        first = _not_asked("beats_buy_and_hold", "beats buy-and-hold", "no buy-and-hold baseline", floor)
    elif d is None:
        first = _not_asked("beats_buy_and_hold", "beats buy-and-hold", "fewer than 3 bars", floor)
    else:
        first = _buy_and_hold_answer(returns, benchmark_returns, d, draws[0], block)
    costs = (_costs_answer(logs, draws[len(series) - len(logs):], block, spread_multiplier) if logs is not None else
             _not_asked("robust_to_costs", _costs_title(wide_returns, spread_multiplier), "fewer than 3 bars", floor))
    return Verdict((
        first,
        beats_random_timing(returns, exposure, market_returns, n_resamples=n_resamples, seed=seed),
        costs,
    ), implausible=implausible)


def close_returns(close: np.ndarray) -> np.ndarray:
    """Close-to-close returns into each bar (0 for the first)."""
    c = np.asarray(close, dtype=np.float64)
    out = np.zeros(c.size)
    if c.size > 1:
        out[1:] = c[1:] / c[:-1] - 1.0
    return out


def judge_runs(run: SimulatedRun, benchmark: SimulatedRun | None = None, wide: SimulatedRun | None = None, *,
               spread_multiplier: float = 2.0, n_resamples: int = 1000, seed: int = 0,
               implausible: bool = False) -> Verdict:
    """:func:`judge` for simulated runs over the same bars (``wide``: the same signals at a wider spread)."""
    from trader.evaluation.performance import equity_returns

    returns = equity_returns(run.equity)
    return judge(
        returns, run.exposure, close_returns(run.close),
        equity_returns(benchmark.equity) if benchmark is not None else None,
        equity_returns(wide.equity) if wide is not None else None,
        spread_multiplier=spread_multiplier, n_resamples=n_resamples, seed=seed, implausible=implausible,
    )


# --------------------------------------------------------------------------- words


#: What each question's estimate measures, for reports.
MEASURES = {
    "beats_buy_and_hold": "final equity vs buy-and-hold's",
    "beats_random_timing": "final equity vs the median random re-timing",
    "robust_to_costs": "total return",
}


def question_rows(verdict: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """``(title, estimate [interval], measure, p, answer)`` per question of a verdict's ``to_dict()``:
    the same words in the terminal and in the HTML report."""

    def pct(value: Any) -> str:
        return "n/a" if value is None else f"{value * 100:+,.1f}%"

    rows = []
    for q in verdict.get("questions", []):
        interval = q.get("interval") or {}
        measure = MEASURES.get(q["name"], "")
        if q["name"] == "robust_to_costs" and (q.get("detail") or {}).get("spread_multiplier"):
            measure = f"total return at {q['detail']['spread_multiplier']:g}x the spread"
        answer = "n/a" if q["holds"] is None else "yes" if q["holds"] else "no"
        p = q.get("p_text", "n/a")
        rows.append((q["title"], f"{pct(q.get('estimate'))} [{pct(interval.get('low'))}, {pct(interval.get('high'))}]",
                     measure, p if p.startswith("<") or p == "n/a" else f"= {p}", answer))
    return rows


# --------------------------------------------------------------------------- plausibility


@attrs.frozen
class Plausibility:
    """Why a result looks too good to be true (nothing when it does not)."""

    reasons: tuple[str, ...]
    causes: tuple[str, ...]
    check: str

    @property
    def warning(self) -> bool:
        return bool(self.reasons)

    @property
    def line(self) -> str:
        if not self.reasons:
            return ""
        return (f"WARNING: implausible result: {'; '.join(self.reasons)}. Usual causes: {', '.join(self.causes)}. "
                f"Check with: {self.check}")

    def to_dict(self) -> dict[str, Any]:
        return {"warning": self.warning, "reasons": list(self.reasons), "causes": list(self.causes),
                "check": self.check, "line": self.line, "sharpe_limit": SHARPE_LIMIT}


def plausibility(*, sharpe: float | None, total_return: float | None, market_return: float | None, days: float,
                 strategy: str, symbol: str, timeframe: str, in_sample: bool = False) -> Plausibility:
    """The guard: an annualised Sharpe above :data:`SHARPE_LIMIT`, or final equity more than twice what
    holding the market would have given (``(1 + R) > 2 * max(1, 1 + M)``) within less than a year."""
    reasons = []
    if sharpe is not None and math.isfinite(sharpe) and sharpe > SHARPE_LIMIT:
        reasons.append(f"Sharpe {sharpe:.2f} is above {SHARPE_LIMIT:g}")
    if (total_return is not None and market_return is not None and math.isfinite(total_return)
            and math.isfinite(market_return) and days < 365
            and 1.0 + total_return > 2.0 * max(1.0, 1.0 + market_return)):
        reasons.append(f"{total_return * 100:+,.1f}% in {days:.3g} days while the market moved "
                       f"{market_return * 100:+,.1f}%")
    causes = ["look-ahead (a feature, label or normalisation that reads later candles)",
              "bid-ask bounce (fills at the close of short, thin bars)", "too little data"]
    if in_sample:
        causes.insert(0, "the range overlaps the model's training data")
    return Plausibility(tuple(reasons), tuple(causes),
                        f"trader check --plugin {strategy} --symbol {symbol} --timeframe {timeframe}")

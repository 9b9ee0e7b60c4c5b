"""Is a backtest distinguishable from chance? Block-bootstrap intervals and the deflated Sharpe ratio.

- :func:`stationary_bootstrap` resamples per-bar returns in blocks of random (geometric)
  length, which keeps the short-range dependence of market returns (Politis and Romano,
  1994). Intervals are percentile intervals; the one-sided p-value for "Sharpe <= 0" is the
  share of resamples at or below zero (with the +1 of an exact test, so its floor is
  ``1 / (N + 1)``), the same convention as :mod:`trader.backtest.verdict`: ``p < 0.025``
  exactly when the 95 % interval lies above zero (up to one resample).
- :func:`probabilistic_sharpe_ratio` is the probability that the true Sharpe ratio beats a
  benchmark, given the sample's length, skew and kurtosis; :func:`deflated_sharpe_ratio`
  raises that benchmark to the best Sharpe expected from ``n_trials`` unskilled trials
  (Bailey and Lopez de Prado, 2014).
- Against buy-and-hold, the same resampled bars are used for both curves (a paired
  bootstrap), so the interval of the Sharpe difference reflects only what differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from statistics import NormalDist
from typing import Any

import attrs
import numpy as np

__all__ = [
    "Interval",
    "Significance",
    "default_block_length",
    "stationary_blocks",
    "stationary_bootstrap",
    "bootstrap_distribution",
    "resampled_sums",
    "probabilistic_sharpe_ratio",
    "expected_max_sharpe",
    "deflated_sharpe_ratio",
    "significance",
]

_NORMAL = NormalDist()
_EULER_GAMMA = 0.5772156649015329


def default_block_length(n: int) -> int:
    """Mean block length ``round(n ** (1/3))`` (at least 1): a common rule for hourly data."""
    return max(1, int(round(n ** (1.0 / 3.0))))


def _check(n: int, n_resamples: int, mean_block: float) -> None:
    if n < 1 or n_resamples < 1:
        raise ValueError("n and n_resamples must be >= 1")
    if mean_block < 1:
        raise ValueError(f"mean_block must be >= 1, got {mean_block}")


def stationary_blocks(
    n: int, n_resamples: int, mean_block: float, seed: int = 0, chunk: int = 100
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(starts, lengths)``, each ``(k, m)`` (``k <= chunk``), ``n_resamples`` rows in all.

    Row ``j`` is one resample: blocks of geometric length (mean ``mean_block``) starting at
    uniform random bars and wrapping around the end, laid end to end until they cover ``n``
    bars (the last one cut short; unused slots have length 0).
    """
    _check(n, n_resamples, mean_block)
    rng = np.random.default_rng(seed)
    p_new = 1.0 / mean_block
    expected = n * p_new
    m = int(expected + 6.0 * math.sqrt(expected) + 16)  # comfortably more blocks than a row needs
    done = 0
    while done < n_resamples:
        k = min(chunk, n_resamples - done)
        lengths = np.minimum(rng.geometric(p_new, size=(k, m)), n)
        ends = np.cumsum(lengths, axis=1)
        short = ends[:, -1] < n
        while short.any():  # astronomically rare with the margin above; top up the rows that need it
            extra = np.minimum(rng.geometric(p_new, size=(k, m)), n)
            lengths = np.concatenate([lengths, extra], axis=1)
            ends = np.cumsum(lengths, axis=1)
            short = ends[:, -1] < n
        before = ends - lengths
        lengths = np.minimum(np.maximum(n - before, 0), lengths)  # cut the block that crosses n; later ones vanish
        starts = rng.integers(0, n, size=lengths.shape)
        yield starts, lengths
        done += k


def stationary_bootstrap(
    n: int, n_resamples: int, mean_block: float, seed: int = 0, chunk: int = 100
) -> Iterator[np.ndarray]:
    """Yield index arrays of shape ``(k, n)`` (``k <= chunk``), ``n_resamples`` rows in all:
    the bars of the blocks of :func:`stationary_blocks` (same seed, same resamples)."""
    for starts, lengths in stationary_blocks(n, n_resamples, mean_block, seed, chunk):
        k = starts.shape[0]
        flat_len = lengths.ravel()
        first = np.repeat(np.cumsum(flat_len) - flat_len, flat_len)  # where each bar's block begins
        offset = np.arange(k * n) - first
        yield ((np.repeat(starts.ravel(), flat_len) + offset) % n).reshape(k, n)


def _wrapped_prefix(values: np.ndarray) -> np.ndarray:
    return np.concatenate(([0.0], np.cumsum(np.concatenate((values, values)))))


def resampled_sums(series: Sequence[np.ndarray], n_resamples: int, mean_block: float, seed: int = 0) -> np.ndarray:
    """Each series' sum over the resamples of :func:`stationary_blocks` (the same resamples for every
    series: paired), as an array of shape ``(len(series), n_resamples)``.

    A resample is summed block by block from a prefix sum over the series twice over (blocks wrap
    around the end): O(blocks) per resample instead of O(bars), and the blocks are drawn once for
    all the series. The sums are the ones summing the series' resampled bars would give, to rounding.
    """
    prefixes = [_wrapped_prefix(np.asarray(values, dtype=np.float64)) for values in series]
    n = (prefixes[0].size - 1) // 2 if prefixes else 0
    if any(prefix.size != 2 * n + 1 for prefix in prefixes):
        raise ValueError("paired series must have the same length")
    out = np.empty((len(prefixes), n_resamples))
    done = 0
    for starts, lengths in stationary_blocks(n, n_resamples, mean_block, seed):
        ends = starts + lengths
        rows = slice(done, done + starts.shape[0])
        for out_row, prefix in zip(out, prefixes, strict=True):
            out_row[rows] = (prefix[ends] - prefix[starts]).sum(axis=1)
        done = rows.stop
    return out


def bootstrap_distribution(
    series: np.ndarray | tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    n_resamples: int = 1000,
    mean_block: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """``statistic`` over ``n_resamples`` stationary-bootstrap resamples.

    ``series`` is one array or a tuple of equally long arrays resampled with the same
    indices (paired); ``statistic`` receives one ``(k, n)`` array per series and returns
    ``k`` values.
    """
    arrays = series if isinstance(series, tuple) else (series,)
    arrays = tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    n = arrays[0].size
    if any(a.size != n for a in arrays):
        raise ValueError("paired series must have the same length")
    block = mean_block if mean_block is not None else default_block_length(n)
    out = []
    for index in stationary_bootstrap(n, n_resamples, block, seed):
        out.append(np.asarray(statistic(*(a[index] for a in arrays)), dtype=np.float64))
    return np.concatenate(out)


def _sharpe_rows(returns: np.ndarray, periods: float) -> np.ndarray:
    sd = returns.std(axis=1, ddof=1)
    mean = returns.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0) * math.sqrt(periods), np.nan)


def _sharpe_from_sums(s1: np.ndarray, s2: np.ndarray, n: int, periods: float) -> np.ndarray:
    """Annualised Sharpe ratios from the sums of the returns and of their squares (``ddof=1``)."""
    mean = s1 / n
    var = np.maximum(s2 - s1 * mean, 0.0) / max(n - 1, 1)
    sd = np.sqrt(var)
    ok = var > 1e-12 * (s2 / n)  # below that it is rounding noise of a flat series: undefined
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, mean / np.where(ok, sd, 1.0) * math.sqrt(periods), np.nan)


# --------------------------------------------------------------------------- PSR / DSR


def _per_bar_sharpe_moments(returns: np.ndarray) -> tuple[float, float, float]:
    r = np.asarray(returns, dtype=np.float64)
    sd = float(np.std(r, ddof=1)) if r.size > 1 else 0.0
    if sd <= 0:
        return math.nan, 0.0, 3.0
    z = (r - r.mean()) / np.std(r)
    return float(r.mean() / sd), float(np.mean(z**3)), float(np.mean(z**4))


def probabilistic_sharpe_ratio(returns: np.ndarray, benchmark_sharpe: float = 0.0) -> float:
    """P(true per-bar Sharpe > ``benchmark_sharpe``) (PSR of Bailey and Lopez de Prado, 2012).

    Both Sharpe ratios are per bar (not annualised); NaN for a flat series.
    """
    r = np.asarray(returns, dtype=np.float64)
    sr, skew, kurt = _per_bar_sharpe_moments(r)
    if not math.isfinite(sr) or r.size < 3:
        return math.nan
    denominator = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
    if denominator <= 0:
        return math.nan
    return _NORMAL.cdf((sr - benchmark_sharpe) * math.sqrt(r.size - 1) / math.sqrt(denominator))


def expected_max_sharpe(n_trials: int, trial_sharpe_variance: float) -> float:
    """The best per-bar Sharpe expected from ``n_trials`` independent unskilled trials."""
    if n_trials < 1:
        raise ValueError("n_trials must be >= 1")
    if n_trials == 1 or trial_sharpe_variance <= 0:
        return 0.0
    a = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    b = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(trial_sharpe_variance) * ((1.0 - _EULER_GAMMA) * a + _EULER_GAMMA * b)


def deflated_sharpe_ratio(returns: np.ndarray, n_trials: int = 1, trial_sharpe_variance: float | None = None) -> float:
    """PSR against the Sharpe expected from the best of ``n_trials`` unskilled trials.

    ``trial_sharpe_variance`` is the variance of the per-bar Sharpe ratios across the
    trials; by default the variance of one Sharpe estimate, ``1 / (T - 1)``.
    """
    r = np.asarray(returns, dtype=np.float64)
    variance = trial_sharpe_variance if trial_sharpe_variance is not None else 1.0 / max(r.size - 1, 1)
    return probabilistic_sharpe_ratio(r, expected_max_sharpe(n_trials, variance))


# --------------------------------------------------------------------------- summary


def _clean(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


@attrs.frozen
class Interval:
    """A point estimate with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in attrs.asdict(self).items()}

    def excludes(self, value: float) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high) and not self.low <= value <= self.high


@attrs.frozen
class Significance:
    """Whether a return series is distinguishable from chance and from a benchmark."""

    sharpe: Interval
    total_return: Interval
    p_value: float  # one-sided, H0: Sharpe <= 0
    psr: float
    dsr: float
    n_trials: int
    n_resamples: int
    mean_block: float
    excess_sharpe: Interval | None = None  # strategy minus benchmark, paired
    p_value_vs_benchmark: float | None = None  # one-sided, H0: Sharpe <= benchmark's

    @property
    def beats_chance(self) -> bool:
        """The Sharpe interval lies above zero. Exposure alone can do that in a rising market: whether
        the strategy shows skill is :mod:`trader.backtest.verdict`'s question, not this one."""
        return math.isfinite(self.sharpe.low) and self.sharpe.low > 0

    @property
    def p_floor(self) -> float:
        return 1.0 / (self.n_resamples + 1)

    @property
    def verdict(self) -> str:
        """One phrase about the Sharpe ratio alone: which side of zero its interval lies on, if any."""
        if self.beats_chance:
            return "positive: the Sharpe interval lies above zero"
        if math.isfinite(self.sharpe.high) and self.sharpe.high < 0:
            return "negative: the Sharpe interval lies below zero (reliably loses money)"
        return "NOT distinguishable from zero"

    def to_dict(self) -> dict[str, Any]:
        return {
            "sharpe": self.sharpe.to_dict(),
            "total_return": self.total_return.to_dict(),
            "p_value": _clean(self.p_value),
            "p_floor": self.p_floor,
            "sided": "one-sided: H0 Sharpe <= 0 (vs benchmark: Sharpe <= the benchmark's)",
            "psr": _clean(self.psr),
            "dsr": _clean(self.dsr),
            "n_trials": self.n_trials,
            "n_resamples": self.n_resamples,
            "mean_block": self.mean_block,
            "excess_sharpe": self.excess_sharpe.to_dict() if self.excess_sharpe else None,
            "p_value_vs_benchmark": _clean(self.p_value_vs_benchmark) if self.p_value_vs_benchmark is not None else None,
            "beats_chance": self.beats_chance,
            "verdict": self.verdict,
        }


def _interval(estimate: float, draws: np.ndarray, confidence: float) -> Interval:
    finite = draws[np.isfinite(draws)]
    if not finite.size or not math.isfinite(estimate):
        return Interval(estimate, math.nan, math.nan, confidence)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return Interval(float(estimate), float(low), float(high), confidence)


def _p_value(estimate: float, draws: np.ndarray) -> float:
    """One-sided p-value of H0 "statistic <= 0": the share of resamples at or below zero (percentile
    convention, consistent with the percentile interval; floor ``1 / (N + 1)``)."""
    finite = draws[np.isfinite(draws)]
    if not finite.size or not math.isfinite(estimate):
        return math.nan
    return float((1 + np.sum(finite <= 0.0)) / (1 + finite.size))


def significance(
    returns: np.ndarray,
    periods: float,
    *,
    benchmark_returns: np.ndarray | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    mean_block: float | None = None,
    n_trials: int = 1,
    trial_sharpe_variance: float | None = None,
    seed: int = 0,
) -> Significance:
    """Bootstrap intervals for Sharpe and total return, PSR/DSR, and (with a benchmark) the
    paired interval of the Sharpe difference. ``periods`` is bars per year."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 3:
        raise ValueError("need at least 3 returns for a bootstrap")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be within (0, 1)")
    block = mean_block if mean_block is not None else default_block_length(r.size)
    log_r = np.log1p(np.maximum(r, -1.0 + 1e-15))
    sharpe_hat = float(_sharpe_rows(r[None, :], periods)[0])
    total_hat = float(np.expm1(log_r.sum()))
    b = None
    if benchmark_returns is not None:
        b = np.asarray(benchmark_returns, dtype=np.float64)
        if b.size != r.size:
            raise ValueError(f"benchmark has {b.size} returns for {r.size}")
    # Every statistic here is a function of sums over the resampled bars (resampled_sums).
    n = r.size
    sums = resampled_sums([r, r * r, log_r] + ([b, b * b] if b is not None else []), n_resamples, block, seed)
    sharpe_draws = _sharpe_from_sums(sums[0], sums[1], n, periods)
    total_draws = np.expm1(sums[2])
    excess, p_bench = None, None
    if b is not None:
        other = _sharpe_from_sums(sums[3], sums[4], n, periods)
        excess_draws = sharpe_draws - np.where(np.isfinite(other), other, 0.0)
        bench_hat = float(_sharpe_rows(b[None, :], periods)[0])
        excess_hat = sharpe_hat - (bench_hat if math.isfinite(bench_hat) else 0.0)
        excess = _interval(excess_hat, excess_draws, confidence)
        p_bench = _p_value(excess_hat, excess_draws)
    return Significance(
        sharpe=_interval(sharpe_hat, sharpe_draws, confidence),
        total_return=_interval(total_hat, total_draws, confidence),
        p_value=_p_value(sharpe_hat, sharpe_draws),
        psr=probabilistic_sharpe_ratio(r),
        dsr=deflated_sharpe_ratio(r, n_trials, trial_sharpe_variance),
        n_trials=n_trials,
        n_resamples=n_resamples,
        mean_block=float(block),
        excess_sharpe=excess,
        p_value_vs_benchmark=p_bench,
    )

"""The verdict's and the bootstrap's fast formulas against the formulas they replaced, on random inputs.

The fast versions (issue 19) take the same random draws in the same order and compute every bar's
value with the same float expression; only the order of the sums differs. They must agree to 1e-9
relative (absolute where a total is near 0) with the bar-by-bar references kept here.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.backtest.bootstrap import resampled_sums, stationary_bootstrap
from trader.backtest.verdict import (
    _retimed_log_total,
    _retimed_log_totals,
    beats_buy_and_hold,
    beats_random_timing,
    judge,
    random_timings,
    robust_to_costs,
    trade_runs,
)


def _old_random_timings(n, starts, lengths, n_resamples, seed=0):
    """random_timings as it was before issue 19 (an O(bars) array built per re-timing)."""
    k = int(starts.size)
    rng = np.random.default_rng(seed)
    flat = n - int(lengths.sum())
    free = flat - max(k - 1, 0)
    bars = np.arange(n)
    for _ in range(n_resamples):
        order = rng.permutation(k)
        cuts = np.sort(rng.choice(free + k, size=k, replace=False))
        gaps = np.diff(np.concatenate(([-1], cuts, [free + k]))) - 1
        gaps[1:k] += 1
        seg_len = np.empty(2 * k + 1, dtype=np.int64)
        seg_len[0::2] = gaps
        seg_len[1::2] = lengths[order]
        seg_src = np.full(2 * k + 1, -1, dtype=np.int64)
        seg_src[1::2] = starts[order]
        seg_begin = np.cumsum(seg_len) - seg_len
        base = np.repeat(seg_src, seg_len)
        offset = bars - np.repeat(seg_begin, seg_len)
        yield np.where(base >= 0, base + offset, -1), seg_begin[1::2], order


@st.composite
def _account(draw):
    """Exposure, market returns and per-bar costs of a random account (trades at either end included)."""
    n = draw(st.integers(3, 400))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    held = rng.random(n) < draw(st.floats(0.05, 0.95))
    held[0] = draw(st.booleans())
    held[-1] = draw(st.booleans())
    exposure = np.where(held, rng.uniform(0.01, draw(st.sampled_from([1.0, 3.0, 60.0])), n), 0.0)
    market = rng.normal(0.0, draw(st.sampled_from([0.001, 0.02, 0.3])), n)
    market[0] = 0.0
    costs = np.abs(np.diff(np.concatenate(([0.0], exposure)))) * draw(st.sampled_from([0.0, 0.001, 0.3]))
    returns = np.concatenate(([0.0], exposure[:-1])) * market - costs
    return returns, exposure, market, seed


@given(_account(), st.integers(1, 12))
@settings(max_examples=300, deadline=None)
def test_the_fast_retimings_are_the_bar_by_bar_totals_of_the_same_draws(account, n_resamples):
    returns, exposure, market, seed = account
    starts, lengths = trade_runs(exposure)
    if starts.size == 0:
        return
    n = returns.size
    for (src, ns, order), (old_src, old_ns, old_order) in zip(
        random_timings(n, starts, lengths, n_resamples, seed), _old_random_timings(n, starts, lengths, n_resamples, seed),
        strict=True,
    ):
        assert np.array_equal(src, old_src) and np.array_equal(ns, old_ns) and np.array_equal(order, old_order)
    costs = np.concatenate(([0.0], exposure[:-1])) * market - returns
    ends = starts + lengths
    exit_costs = np.where(ends < n, costs[np.minimum(ends, n - 1)], 0.0)
    old = np.array([_retimed_log_total(src, ns, order, exposure, market, costs, exit_costs, lengths)
                    for src, ns, order in _old_random_timings(n, starts, lengths, n_resamples, seed)])
    new = _retimed_log_totals(starts, lengths, exposure, market, costs, exit_costs, n_resamples, seed)
    assert new == pytest.approx(old, rel=1e-9, abs=1e-9)  # a wiped-out bar (clamped at -1 + 1e-15) included


def test_beats_random_timing_gives_the_answer_of_the_bar_by_bar_null():
    rng = np.random.default_rng(11)
    n = 3000
    exposure = np.repeat(rng.random(n // 30) < 0.5, 30) * rng.uniform(0.3, 1.0, n)
    market = rng.normal(0.0002, 0.01, n)
    costs = np.abs(np.diff(np.concatenate(([0.0], exposure)))) * 0.001
    returns = np.concatenate(([0.0], exposure[:-1])) * market - costs
    question = beats_random_timing(returns, exposure, market, n_resamples=400, seed=3)
    starts, lengths = trade_runs(exposure)
    ends = starts + lengths
    exit_costs = np.where(ends < n, costs[np.minimum(ends, n - 1)], 0.0)
    null = np.array([_retimed_log_total(src, ns, order, exposure, market, costs, exit_costs, lengths)
                     for src, ns, order in _old_random_timings(n, starts, lengths, 400, 3)])
    observed = float(np.log1p(returns).sum())
    assert question.p_value == (1 + np.sum(null >= observed - 1e-9 * max(1.0, abs(observed)))) / 401
    assert question.detail["median_random_total_return"] == pytest.approx(np.expm1(np.median(null)), rel=1e-9)


@given(st.integers(3, 500), st.floats(1.0, 40.0), st.integers(0, 2**32 - 1), st.integers(1, 250))
@settings(max_examples=60, deadline=None)
def test_resampled_sums_are_the_sums_of_the_resampled_bars_for_every_series(n, block, seed, n_resamples):
    rng = np.random.default_rng(seed)
    series = [rng.normal(0.0, 0.01, n), rng.normal(0.001, 0.5, n) ** 2, rng.standard_cauchy(n)]
    sums = resampled_sums(series, n_resamples, block, seed)
    index = np.concatenate(list(stationary_bootstrap(n, n_resamples, block, seed)))
    for values, row in zip(series, sums, strict=True):
        assert row == pytest.approx(values[index].sum(axis=1), rel=1e-9, abs=1e-9 * np.abs(values).sum())


def test_the_verdicts_shared_blocks_give_each_questions_own_answer():
    rng = np.random.default_rng(2)
    market = rng.normal(0.0003, 0.01, 2500)
    exposure = np.repeat(rng.random(50) < 0.6, 50).astype(float)
    returns = np.concatenate(([0.0], exposure[:-1])) * market - 0.0005 * np.abs(np.diff(exposure, prepend=0.0))
    wide = returns - 0.0005 * np.abs(np.diff(exposure, prepend=0.0))
    verdict = judge(returns, exposure, market, market, wide, n_resamples=300, seed=9)
    alone = (beats_buy_and_hold(returns, market, n_resamples=300, seed=9),
             robust_to_costs(returns, wide, n_resamples=300, seed=9))
    assert verdict.question("beats_buy_and_hold").to_dict() == alone[0].to_dict()
    assert verdict.question("robust_to_costs").to_dict() == alone[1].to_dict()

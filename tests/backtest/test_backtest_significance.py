"""Block bootstrap, PSR/DSR and walk-forward folds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.backtest.bootstrap import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    significance,
    stationary_bootstrap,
)
from trader.backtest.walkforward import WalkForwardFold, walk_forward_folds


@given(st.integers(1, 300), st.floats(1.0, 50.0), st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_stationary_bootstrap_indices_are_wrapped_blocks(n, block, seed):
    rows = np.concatenate(list(stationary_bootstrap(n, 5, block, seed, chunk=2)))
    assert rows.shape == (5, n)
    assert rows.min() >= 0 and rows.max() < n
    # with an endless mean block each resample is one block: consecutive bars, wrapping around
    whole = next(stationary_bootstrap(n, 3, 1e12, seed))
    assert np.all((whole - whole[:, :1]) % n == np.arange(n)[None, :])


def test_fast_block_sums_give_the_same_resamples_as_explicit_indices():
    """``significance`` sums blocks from prefix sums; explicit resampled series must agree exactly."""
    rng = np.random.default_rng(4)
    r, b = rng.normal(0.0005, 0.01, 700), rng.normal(0.0002, 0.012, 700)
    sig = significance(r, 8760, benchmark_returns=b, n_resamples=300, mean_block=9, seed=5)
    sharpes, excess = [], []
    for index in stationary_bootstrap(700, 300, 9, seed=5):
        x, y = r[index], b[index]
        sx = x.mean(axis=1) / x.std(axis=1, ddof=1) * np.sqrt(8760)
        sy = y.mean(axis=1) / y.std(axis=1, ddof=1) * np.sqrt(8760)
        sharpes.append(sx)
        excess.append(sx - sy)
    sharpes, excess = np.concatenate(sharpes), np.concatenate(excess)
    assert sig.sharpe.low == pytest.approx(np.quantile(sharpes, 0.025), rel=1e-9)
    assert sig.sharpe.high == pytest.approx(np.quantile(sharpes, 0.975), rel=1e-9)
    assert sig.excess_sharpe.low == pytest.approx(np.quantile(excess, 0.025), rel=1e-9)
    assert sig.p_value == pytest.approx((1 + np.sum(sharpes <= 0)) / 301)  # percentile convention, as the verdict


def test_block_length_matches_its_mean():
    rows = np.concatenate(list(stationary_bootstrap(5000, 20, 10.0, seed=1)))
    breaks = np.mean(((rows[:, 1:] - rows[:, :-1]) % 5000) != 1)
    assert breaks == pytest.approx(0.1, abs=0.01)


def test_a_strong_edge_is_distinguishable_from_chance_and_noise_is_not():
    rng = np.random.default_rng(7)
    edge = rng.normal(0.002, 0.01, 4000)  # per-bar Sharpe 0.2: unmistakable
    noise = rng.normal(0.0, 0.01, 4000) - 0.0001
    good = significance(edge, 8760, n_resamples=400, seed=1)
    bad = significance(noise, 8760, n_resamples=400, seed=1)
    assert good.beats_chance and good.sharpe.low > 0 and good.p_value < 0.01 and good.psr > 0.99
    assert not bad.beats_chance and bad.sharpe.low < 0 < bad.sharpe.high and bad.p_value > 0.1
    assert good.sharpe.low <= good.sharpe.estimate <= good.sharpe.high
    assert good.to_dict()["beats_chance"] is True
    assert good.verdict.startswith("positive") and bad.verdict.startswith("NOT")
    worse = significance(-edge, 8760, n_resamples=400, seed=1)
    assert not worse.beats_chance and worse.verdict.startswith("negative")


def test_paired_comparison_against_a_benchmark():
    rng = np.random.default_rng(3)
    market = rng.normal(0.0003, 0.01, 3000)
    same = significance(market, 8760, benchmark_returns=market, n_resamples=200)
    assert same.excess_sharpe.estimate == pytest.approx(0.0)
    assert same.excess_sharpe.low == pytest.approx(0.0) and same.excess_sharpe.high == pytest.approx(0.0)
    better = significance(market + 0.001, 8760, benchmark_returns=market, n_resamples=200)
    assert better.excess_sharpe.low > 0 and better.p_value_vs_benchmark < 0.01


def test_probabilistic_and_deflated_sharpe():
    rng = np.random.default_rng(5)
    r = rng.normal(0.001, 0.01, 2000)
    sr = r.mean() / r.std(ddof=1)
    assert probabilistic_sharpe_ratio(r, benchmark_sharpe=sr) == pytest.approx(0.5)
    assert probabilistic_sharpe_ratio(r) > probabilistic_sharpe_ratio(r - 0.0005)
    assert deflated_sharpe_ratio(r, n_trials=1) == pytest.approx(probabilistic_sharpe_ratio(r))
    assert deflated_sharpe_ratio(r, n_trials=50) < deflated_sharpe_ratio(r, n_trials=5) < probabilistic_sharpe_ratio(r)
    # the expected best of N unskilled trials grows with N
    assert 0 < expected_max_sharpe(10, 0.01) < expected_max_sharpe(100, 0.01)
    assert math.isnan(probabilistic_sharpe_ratio(np.zeros(10)))


@given(
    n=st.integers(10, 3000),
    train=st.integers(1, 500),
    test=st.integers(1, 300),
    step=st.one_of(st.none(), st.integers(1, 400)),
    purge=st.integers(0, 30),
    embargo=st.integers(0, 30),
    anchored=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_walk_forward_folds_never_train_on_or_after_the_test_window(n, train, test, step, purge, embargo, anchored):
    try:
        folds = walk_forward_folds(n, train, test, step, purge=purge, embargo=embargo, anchored=anchored)
    except ValueError as exc:
        assert train + purge + embargo >= n and "too few" in str(exc)
        return
    real_step = step or test
    for i, fold in enumerate(folds):
        assert fold.index == i
        assert fold.test_start - fold.train_end == purge + embargo  # the purge and embargo gap
        assert fold.train_end - fold.train_start == (fold.train_end if anchored else train)
        assert 0 <= fold.train_start and fold.test_end <= n
        assert fold.test_end - fold.test_start == min(test, n - fold.test_start)
    starts = [f.test_start for f in folds]
    assert starts[0] == train + purge + embargo
    assert all(b - a == real_step for a, b in zip(starts, starts[1:], strict=False))
    assert starts[-1] + real_step >= n  # no room left for another fold
    if real_step >= test:
        assert all(a.test_end <= b.test_start for a, b in zip(folds, folds[1:], strict=False))


def test_fold_ranges_are_validated_and_errors_name_the_argument():
    with pytest.raises(ValueError, match="train_start < train_end"):
        WalkForwardFold(0, 10, 5, 20, 30)
    with pytest.raises(ValueError, match="test_bars"):
        walk_forward_folds(100, 10, 0)
    with pytest.raises(ValueError, match="first_test"):
        walk_forward_folds(100, 50, 10, first_test=20)
    folds = walk_forward_folds(100, 50, 20, allow_partial_test=False)
    assert [(f.test_start, f.test_end) for f in folds] == [(50, 70), (70, 90)]

"""TimeSeriesDataset and windows(): samples are views of ONE float32 array, never an N x W x F copy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trader.features import TimeSeriesDataset, valid_window_ends, windows  # noqa: E402


def make_data(n=500, f=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, f)).astype(np.float32)
    x[:20] = np.nan  # warm-up rows
    y = (rng.random(n) > 0.5).astype(np.float32)
    y[-3:] = np.nan  # no label for the last rows
    return x, y


def test_samples_are_views_with_the_right_shapes_and_labels():
    x, y = make_data()
    ds = TimeSeriesDataset(x, y, window=16)
    assert ds.features is x  # already float32 and contiguous: not copied
    assert len(ds) == 500 - 20 - 15 - 3
    first_x, first_y = ds[0]
    assert first_x.shape == (16, 7) and first_x.dtype == torch.float32
    end = int(ds.ends[0])
    assert end == 20 + 15
    np.testing.assert_array_equal(first_x.numpy(), x[end - 15: end + 1])
    assert float(first_y) == y[end]
    assert np.shares_memory(first_x.numpy(), x)
    for i in (0, len(ds) // 2, len(ds) - 1):
        xi, _ = ds[i]
        assert np.isfinite(xi.numpy()).all()


def test_windows_crossing_nan_rows_missing_labels_or_segments_are_excluded():
    x, y = make_data()
    x[200, 3] = np.nan
    y[300] = np.nan
    segments = np.zeros(500, dtype=int)
    segments[400:] = 1
    ds = TimeSeriesDataset(x, y, window=10, segments=segments)
    ends = set(ds.ends.tolist())
    assert not ends & set(range(200, 210))  # every window containing row 200
    assert 300 not in ends and 299 in ends and 301 in ends
    assert not ends & set(range(400, 409)) and 409 in ends
    with pytest.raises(ValueError, match="not usable"):
        TimeSeriesDataset(x, y, window=10, ends=[205])


def test_training_order_is_random_and_evaluation_order_sequential():
    x, y = make_data()
    ds = TimeSeriesDataset(x, y, window=8)
    sequential = torch.cat([b for b, _ in ds.loader(batch_size=64, shuffle=False)])
    np.testing.assert_array_equal(sequential[:, -1].numpy(), x[ds.ends])
    shuffled = torch.cat([b for b, _ in ds.loader(batch_size=64, shuffle=True, seed=1)])
    again = torch.cat([b for b, _ in ds.loader(batch_size=64, shuffle=True, seed=1)])
    assert torch.equal(shuffled, again)  # seeded
    assert not torch.equal(shuffled, sequential)
    order = np.sort(shuffled[:, -1, 0].numpy())
    np.testing.assert_array_equal(order, np.sort(x[ds.ends, 0]))  # a permutation of the same samples


def test_fast_batches_equal_the_items():
    x, y = make_data()
    ds = TimeSeriesDataset(x, y, window=12)
    xs, ys = zip(*ds.batches(batch_size=100), strict=True)
    xb, yb = torch.cat(xs), torch.cat(ys)
    assert xb.shape == (len(ds), 12, 7)
    for i in (0, 57, len(ds) - 1):
        xi, yi = ds[i]
        assert torch.equal(xb[i], xi) and yb[i] == yi
    shuffled = torch.cat([b for b, _ in ds.batches(batch_size=100, shuffle=True, seed=3)])
    assert not torch.equal(shuffled, xb)


def test_unlabelled_dataset_yields_windows_only():
    x, _ = make_data()
    ds = TimeSeriesDataset(x, window=5)
    assert len(ds) == 500 - 20 - 4 and ds[0].shape == (5, 7)


def test_windows_view_does_not_copy():
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    view = windows(x, 4)
    assert view.shape == (17, 4, 3)
    assert np.shares_memory(view, x)
    np.testing.assert_array_equal(view[5], x[5:9])
    assert windows(x[:2], 4).shape == (0, 4, 3)
    ends = valid_window_ends(np.isfinite(x).all(axis=1), 4)
    np.testing.assert_array_equal(ends, np.arange(3, 20))


def test_importing_trader_features_does_not_import_torch():
    code = ("import sys, trader.features as f; assert 'torch' not in sys.modules, 'torch'; "
            "assert 'pandas' not in sys.modules, 'pandas'; f.FeatureEngineer(); "
            "f.TimeSeriesDataset; assert 'torch' in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

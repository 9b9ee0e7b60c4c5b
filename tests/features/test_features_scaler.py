"""FeatureScaler: fit on training rows, refuse before fit or on other columns, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trader.errors import ArtifactError, DataError, ModelError
from trader.features import FeatureEngineer, FeatureScaler


@pytest.fixture(scope="module")
def features(candles):
    return FeatureEngineer().transform(candles.iloc[:1500])


def test_zscore_scaled_training_rows_have_mean_0_and_std_1(features):
    scaler = FeatureScaler("zscore").fit(features)
    scaled = scaler.transform(features).dropna()
    varying = features.dropna().std() > 0
    np.testing.assert_allclose(scaled.mean(), 0.0, atol=1e-9)
    np.testing.assert_allclose(scaled.loc[:, varying].std(ddof=0), 1.0, rtol=1e-9)
    assert scaler.n_samples == len(features.dropna())


def test_robust_scaler_centres_on_the_median_and_scales_by_the_iqr(features):
    scaler = FeatureScaler("robust").fit(features)
    scaled = scaler.transform(features).dropna()
    np.testing.assert_allclose(scaled.median(), 0.0, atol=1e-9)
    iqr = scaled.quantile(0.75) - scaled.quantile(0.25)
    np.testing.assert_allclose(iqr[features.dropna().nunique() > 10], 1.0, rtol=1e-9)


def test_transform_before_fit_is_refused_with_a_clear_error(features):
    with pytest.raises(ModelError, match="not fitted: call fit"):
        FeatureScaler().transform(features)
    with pytest.raises(ModelError, match="not fitted"):
        FeatureScaler().to_dict()


def test_a_frame_with_other_columns_or_order_is_refused(features):
    scaler = FeatureScaler().fit(features)
    swapped = features[[features.columns[1], features.columns[0], *features.columns[2:]]]
    with pytest.raises(DataError, match="column 0 is 'ret_1_lag1' where 'ret_1' is expected"):
        scaler.transform(swapped)
    with pytest.raises(DataError, match="missing rsi_5"):
        scaler.transform(features.drop(columns="rsi_5"))
    with pytest.raises(DataError, match="expected 86 features"):
        scaler.transform_array(np.zeros((3, 85)))


def test_constant_feature_and_nan_rows(features):
    df = features.copy()
    df["ret_1"] = 0.25
    scaler = FeatureScaler().fit(df)
    assert scaler.scale[0] == 1.0 and scaler.center[0] == 0.25
    out = scaler.transform(df)
    assert out.iloc[: FeatureEngineer().warmup_bars].drop(columns="ret_1").isna().all().all()  # NaN stays NaN
    assert np.isfinite(out.iloc[60:].to_numpy()).all()
    with pytest.raises(DataError, match="no training row"):
        FeatureScaler().fit(df.iloc[:10])


def test_clip_bounds_scaled_values(features):
    scaler = FeatureScaler("robust", clip=3.0).fit(features)
    scaled = scaler.transform(features).dropna().to_numpy()
    assert scaled.max() <= 3.0 and scaled.min() >= -3.0


def test_file_round_trip_gives_identical_transforms(features, tmp_path):
    scaler = FeatureScaler("robust", clip=8.0).fit(features)
    path = scaler.save(tmp_path / "scaler.json")
    data = json.loads(path.read_text())  # plain JSON, never pickle
    assert data["feature_names"] == list(features.columns)
    assert data["kind"] == "robust"
    loaded = FeatureScaler.load(path)
    assert loaded.feature_names == scaler.feature_names
    pd.testing.assert_frame_equal(loaded.transform(features), scaler.transform(features))
    np.testing.assert_array_equal(FeatureScaler.from_dict(scaler.to_dict()).center, scaler.center)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "unreadable"),
        ('{"format": "something-else"}', "not a feature scaler"),
        ('{"format": "trader-feature-scaler", "version": 1, "kind": "zscore", "feature_names": ["a", "b"], '
         '"center": [0.0], "scale": [1.0, 1.0]}', "center must list one number per feature"),
        ('{"format": "trader-feature-scaler", "version": 1, "kind": "zscore", "feature_names": ["a"], '
         '"center": [0.0], "scale": [0.0]}', "scale must be > 0"),
        ('{"format": "trader-feature-scaler", "version": 1, "kind": "minmax", "feature_names": ["a"], '
         '"center": [0.0], "scale": [1.0]}', "kind must be one of"),
    ],
)
def test_a_damaged_scaler_file_is_refused_naming_the_file(tmp_path, content, message):
    path = tmp_path / "scaler.json"
    path.write_text(content)
    with pytest.raises(ArtifactError, match=message) as info:
        FeatureScaler.load(path)
    assert str(path) in str(info.value)


def test_a_missing_scaler_file_is_named(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        FeatureScaler.load(tmp_path / "nope.json")


def test_invalid_scaler_settings():
    with pytest.raises(ValueError, match="kind"):
        FeatureScaler("minmax")
    with pytest.raises(ValueError, match="clip"):
        FeatureScaler(clip=0)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 6)),
              elements=st.floats(-1e6, 1e6, allow_nan=False)),
       st.sampled_from(["zscore", "robust"]))
@example(np.array([[1.0], [5e-324], [0.0], [0.0], [0.0]]), "robust")  # a subnormal IQR: once scaled 1 to inf
def test_json_round_trip_is_exact_for_any_fitted_scaler(values, kind):
    names = [f"f{i}" for i in range(values.shape[1])]
    scaler = FeatureScaler(kind).fit(values, feature_names=names)
    loaded = FeatureScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_array_equal(loaded.transform_array(values, np.float64), scaler.transform_array(values, np.float64))
    assert np.isfinite(scaler.transform_array(values, np.float64)).all()

"""One scaler fit: the deep-learning pipeline, the preprocessing pipeline (the ensemble's) and
FeatureScaler itself give the same centre and scale, and a near-constant feature is left near 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trader.features import DataPreprocessor, FeatureEngineer, FeatureScaler

pytest.importorskip("torch")


def test_a_float32_array_is_fit_in_chunks_like_a_float64_frame_and_scaled_in_place():
    rng = np.random.default_rng(2)
    values = (rng.normal(3.0, 2.0, (150_000, 5))).astype(np.float32)
    values[:, 4] = 1.5  # a constant feature gets scale 1
    values[:40] = np.nan  # warm-up rows are ignored
    names = [f"f{i}" for i in range(5)]
    chunked = FeatureScaler(clip=4.0).fit(values, names)
    reference = FeatureScaler(clip=4.0).fit(pd.DataFrame(values.astype(np.float64), columns=names))
    np.testing.assert_allclose(chunked.center, reference.center, rtol=1e-9)
    np.testing.assert_allclose(chunked.scale, reference.scale, rtol=1e-9)
    assert chunked.n_samples == reference.n_samples == 150_000 - 40
    expected = reference.transform_array(values)
    scaled = chunked.scale_in_place(values)
    assert scaled is values
    np.testing.assert_allclose(scaled, expected, rtol=1e-5, atol=1e-5)
    assert np.isnan(scaled[:40]).all() and np.abs(scaled[40:]).max() <= 4.0


@pytest.mark.parametrize("kind", ["zscore", "robust"])
def test_a_near_constant_feature_gets_scale_one_on_every_input_form(kind):
    rng = np.random.default_rng(5)
    values = np.column_stack([rng.normal(0.0, 1.0, 2000), 1e-17 * rng.normal(0.0, 1.0, 2000)])
    names = ["moving", "near_constant"]
    fits = [
        FeatureScaler(kind).fit(values, names),
        FeatureScaler(kind).fit(values.astype(np.float32), names),
        FeatureScaler(kind).fit(pd.DataFrame(values, columns=names)),
    ]
    for scaler in fits:
        assert scaler.scale[1] == 1.0  # under 10 machine epsilons: not blown up to +-1
        scaled = scaler.transform_array(values)
        assert np.abs(scaled[:, 1]).max() < 1e-6 and np.abs(scaled[:, 0]).max() > 1.0
    for other in fits[1:]:
        np.testing.assert_allclose(other.center, fits[0].center, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(other.scale, fits[0].scale, rtol=1e-6)


def test_the_deep_learning_and_the_preprocessing_pipelines_fit_the_same_scaler(candles):
    from trader.ml.prepare import prepare_training_data
    from trader.ml.settings import DataSettings

    data_candles = candles.iloc[:3000].reset_index(drop=True)
    settings = DataSettings(sequence_length=16, scaler_clip=None)
    dl = prepare_training_data(data_candles, settings, "1h")
    frame = FeatureEngineer(windows=settings.windows, timeframe="1h").transform(data_candles)
    stop = int(dl.train_ends[-1]) + 1
    direct = FeatureScaler("zscore").fit(frame.iloc[:stop])
    preprocessed = DataPreprocessor(scaler_kind="zscore", clip=None).fit_scaler(frame.iloc[:stop], _whole(stop))
    for scaler in (dl.scaler, preprocessed):
        assert scaler.feature_names == direct.feature_names
        # the deep-learning path reads float32 features: equal to float32 precision, same floors
        np.testing.assert_allclose(scaler.center, direct.center, rtol=1e-5, atol=1e-6 * direct.scale.max())
        np.testing.assert_allclose(scaler.scale, direct.scale, rtol=1e-4)
        assert ((scaler.scale == 1.0) == (direct.scale == 1.0)).all()


def _whole(n_rows: int):
    """A split whose training part is every row."""
    from trader.features import DataSplit

    return DataSplit(n_rows=n_rows, val_start=n_rows, test_start=n_rows, purge=0, embargo=0)

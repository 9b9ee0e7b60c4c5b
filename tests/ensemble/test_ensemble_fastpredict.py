"""One candle's decision walks the trees' arrays in numpy: the same probabilities as scikit-learn's predict_proba.

Several trained ensembles (the default members; four members with weights, lags, three classes and
isotonic calibration; forests without class weights), saved and loaded through skops as ``trader run``
loads them, are held to ``predict_proba`` to 1e-12 on random rows (hypothesis), rows that sit exactly on
split thresholds included.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import numpy as np
import pytest
from ensemble_helpers import candles, train_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.types import SignalRequest
from trader_ensemble.fastpredict import compile_predictor
from trader_ensemble.model import FAST_ROWS, EnsembleModel
from trader_ensemble.params import signal_thresholds
from trader_ensemble.persistence import load_ensemble, save_ensemble
from trader_ensemble.signals import signals_from_probabilities
from trader_ensemble.training import train_ensemble

pytestmark = pytest.mark.slow

SETTINGS = {
    "default members": {},
    "four members, weights, lags, three classes, isotonic": {
        "members": ["hgb", "extra_trees", "random_forest", "logistic"],
        "weights": [2.0, 1.0, 0.5, 1.0],
        "lags": [1, 3],
        "label_kind": "ternary",
        "label_threshold": 0.003,
        "calibration": "isotonic",
    },
    "forests without class weights": {"members": ["random_forest", "extra_trees"], "balanced": False,
                                       "tree_max_depth": 14},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, EnsembleModel]:
    """Each setting's model as trader run sees it: trained, saved with skops and loaded back."""
    data = candles(2500)
    loaded = {}
    for i, (name, params) in enumerate(SETTINGS.items()):
        model = train_ensemble(train_request(data, seed=i, **params)).model
        directory = tmp_path_factory.mktemp(f"model{i}")
        save_ensemble(model, directory)
        loaded[name] = load_ensemble(directory, {"features": {"names": list(model.feature_names)}})
    return loaded


def thresholds_of(estimator: Any) -> np.ndarray:
    """Every split threshold in the ensemble's trees (rows placed on them test the ``<=`` ties)."""
    from trader_ensemble.trees import iter_trees

    found = []
    for _, tree, _ in iter_trees(estimator):
        if hasattr(tree, "threshold"):
            found.append(tree.threshold[tree.children_left != -1])
        else:
            found.append(tree.nodes["num_threshold"][tree.nodes["is_leaf"] == 0])
    values = np.concatenate(found)
    return values[np.isfinite(values)]


@st.composite
def rows(draw, n_inputs: int, thresholds: np.ndarray) -> np.ndarray:
    count = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    on_split = draw(st.floats(0.0, 1.0))
    scale = draw(st.sampled_from([0.01, 1.0, 4.0, 12.0]))
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=scale, size=(count, n_inputs))
    ties = rng.random(x.shape) < on_split
    x[ties] = rng.choice(thresholds, size=int(ties.sum()))
    if draw(st.booleans()):
        return x  # float64 values on float64 thresholds: the forests' float32 cast decides their side
    return x.astype(np.float32).astype(np.float64)  # the design matrix is float32 scaled, as in training


@pytest.mark.parametrize("name", list(SETTINGS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_numpy_walk_gives_scikit_learns_probabilities(models, name, data):
    model = models[name]
    estimator = model.estimator
    fast = model.fast_predictor()
    assert fast is not None, "every shipped setting is walked in numpy"
    x = data.draw(rows(len(model.input_names), thresholds_of(estimator)))
    expected = estimator.predict_proba(x)
    np.testing.assert_allclose(fast(x), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.predict_up_matrix(x), expected[:, model._up_column], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_one_candles_signal_is_scikit_learns(models, name):
    """The hook for each of the last 40 candles (one row each, as trader run asks) against predict_proba."""
    from trader.features import FeatureEngineer
    from trader_ensemble import trader_generate_signals

    model = models[name]
    data = candles(2500)
    features = FeatureEngineer(windows=model.windows, timeframe="1h").transform(data)
    for row in range(len(data) - 40, len(data)):
        got = trader_generate_signals(SignalRequest(strategy="ensemble", symbol="SYN/USDT", timeframe="1h",
                                                    candles=data, at=[row], model=model))
        matrix, valid = model.design_matrix(features, [row])
        assert valid.all()
        up = model.estimator.predict_proba(matrix)[:, model._up_column]
        (want,) = signals_from_probabilities(up, signal_thresholds({}))
        assert [s.action for s in got] == [want.action]
        assert got[0].probability == pytest.approx(want.probability, abs=1e-12)
        assert got[0].confidence == pytest.approx(want.confidence, abs=1e-12)


def test_batches_and_non_finite_rows_use_scikit_learn(models):
    model = models["default members"]
    rng = np.random.default_rng(5)
    big = rng.normal(size=(FAST_ROWS + 10, len(model.input_names)))
    np.testing.assert_array_equal(model.predict_up_matrix(big), model.estimator.predict_proba(big)[:, 1])
    x = rng.normal(size=(2, len(model.input_names)))
    x[1, 3] = np.inf  # scikit-learn's forests refuse it, as before (predict_up never passes such a row)
    with pytest.raises(ValueError, match="infinity"):
        model.estimator.predict_proba(x)
    with pytest.raises(ValueError, match="infinity"):
        model.predict_up_matrix(x)


def test_an_estimator_it_does_not_know_is_predicted_by_scikit_learn(models):
    from sklearn.tree import DecisionTreeClassifier

    template = models["default members"]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, len(template.input_names)))
    tree = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, (x[:, 0] > 0).astype(int))
    model = EnsembleModel(tree, template.feature_names, template.scaler, label={"up_class": 1})
    assert compile_predictor(tree) is None and model.fast_predictor() is None
    np.testing.assert_array_equal(model.predict_up_matrix(x[:3]), tree.predict_proba(x[:3])[:, 1])


def test_a_model_that_has_predicted_still_gives_its_state(models):
    """``__getstate__`` (what copying, and skops' object state, go through) leaves the compiled walk out."""
    model = models["default members"]
    x = np.zeros((1, len(model.input_names)))
    before = model.predict_up_matrix(x)
    copy = deepcopy(model)
    np.testing.assert_array_equal(copy.predict_up_matrix(x), before)


def test_another_feature_frame_is_read_by_its_own_columns(models):
    """The column positions kept between candles follow the frame: reordered columns, or a missing feature."""
    from trader.errors import DataError
    from trader.features import FeatureEngineer

    model = models["default members"]
    features = FeatureEngineer(windows=model.windows, timeframe="1h").transform(candles(600))
    rows = [590, 599]
    before = model.predict_up(features, rows)
    reordered = features[list(reversed(features.columns))]
    np.testing.assert_array_equal(model.predict_up(reordered, rows), before)
    missing = features.drop(columns=[model.feature_names[3]])
    assert not model.reads(missing)
    with pytest.raises(DataError, match=f"lacks 1 feature.*{model.feature_names[3]}"):
        model.predict_up(missing, rows)
    np.testing.assert_array_equal(model.predict_up(features, rows), before)

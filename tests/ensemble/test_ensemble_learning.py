"""The ensemble learns the planted pattern of the synthetic market, and nothing from a random walk."""

from __future__ import annotations

import numpy as np
import pytest
from ensemble_helpers import candles, train_request

from trader.evaluation.classification import permutation_test
from trader.features import FeatureEngineer
from trader_ensemble import trader_train


@pytest.fixture(scope="module")
def planted():
    return trader_train(train_request(candles(planted_signal=0.3)))


@pytest.fixture(scope="module")
def random_walk():
    return trader_train(train_request(candles(planted_signal=0.0)))


def test_it_beats_the_majority_baseline_on_the_planted_pattern(planted):
    test = planted.metrics["test"]
    model, baseline = test["model"], test["baseline"]
    assert test["n_samples"] > 300
    assert model["roc_auc"] > 0.65 > baseline["roc_auc"]
    assert model["log_loss"] < baseline["log_loss"] - 0.03
    assert model["balanced_accuracy"] > baseline["balanced_accuracy"] + 0.1
    # every member learns it on its own too: the ensemble is not carried by one lucky model
    for name in ("hgb", "extra_trees", "logistic"):
        assert planted.metrics["members_test"][name]["roc_auc"] > 0.6, name


def test_it_does_not_beat_the_baseline_on_a_random_walk(random_walk):
    test = random_walk.metrics["test"]
    model, baseline = test["model"], test["baseline"]
    assert abs(model["roc_auc"] - 0.5) < 0.05
    assert model["log_loss"] > baseline["log_loss"] - 0.005
    assert model["balanced_accuracy"] < baseline["balanced_accuracy"] + 0.05


def held_out(result, planted_signal: float) -> tuple[np.ndarray, np.ndarray]:
    """Direction labels and the model's P(up) on the test rows (after the training, validation and purge)."""
    frame = candles(planted_signal=planted_signal)
    features = FeatureEngineer(timeframe="1h").transform(frame)
    up = (np.log(frame["close"].shift(-1) / frame["close"]) > 0).to_numpy().astype(int)
    start = result.extra["split"]["test"]["first_end"]
    rows = np.flatnonzero(frame["timestamp"].to_numpy() >= start)[:-1]  # the last row has no next close
    return up[rows], result.model.predict_up(features, rows)


def test_a_permutation_test_finds_the_planted_signal_and_not_the_random_walk(planted, random_walk):
    """Shuffled labels score as well as the real ones only on the random walk."""
    planted_p = permutation_test(*held_out(planted, 0.3), metric="roc_auc", n_permutations=200, seed=1).p_value
    walk_p = permutation_test(*held_out(random_walk, 0.0), metric="roc_auc", n_permutations=200, seed=1).p_value
    assert planted_p < 0.01
    assert walk_p > 0.05


def test_calibrated_probabilities_match_the_observed_frequency(planted):
    """Balanced class weights are undone by calibration: mean P(up) is close to the share of up rows."""
    up, proba = held_out(planted, 0.3)
    assert abs(proba.mean() - up.mean()) < 0.05
    # the top fifth of predictions is up far more often than the bottom fifth
    low, high = np.quantile(proba, [0.2, 0.8])
    assert up[proba >= high].mean() > up[proba <= low].mean() + 0.3


def test_the_same_seed_gives_the_same_model_and_another_seed_another(planted):
    data = candles(planted_signal=0.3)
    again = trader_train(train_request(data))
    assert again.metrics["test"] == planted.metrics["test"]
    other = trader_train(train_request(data, seed=1))
    assert other.metrics["test"]["model"]["log_loss"] != planted.metrics["test"]["model"]["log_loss"]


def test_the_manifest_fields_describe_the_training(planted):
    assert len(planted.feature_names) == 86 and planted.feature_windows == (5, 10, 20, 50)
    assert planted.scaler["feature_names"] == list(planted.feature_names)
    assert planted.label["kind"] == "binary" and planted.label["threshold"] == 0.0 and planted.label["up_class"] == 1
    assert planted.architecture["members"] == ["hgb", "extra_trees", "logistic"]
    assert planted.architecture["calibration"] == "sigmoid"
    split = planted.extra["split"]
    assert split["train"]["last_end"] < split["validation"]["first_end"] < split["validation"]["last_end"]
    assert split["validation"]["last_end"] < split["test"]["first_end"]

"""Classification metrics agree with scikit-learn and sit beside an honest majority baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from trader.evaluation.classification import (
    classification_metrics,
    evaluate_classifier,
    majority_baseline,
    permutation_test,
)


@pytest.mark.parametrize("k", [2, 3])
def test_metrics_match_scikit_learn(k):
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 400)
    proba = rng.dirichlet(np.ones(k), 400)
    pred = proba.argmax(axis=1)
    ours = classification_metrics(y, proba[:, 1] if k == 2 else proba)
    assert ours["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert ours["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert ours["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    expected_auc = sk.roc_auc_score(y, proba[:, 1]) if k == 2 else sk.roc_auc_score(y, proba, multi_class="ovr")
    assert ours["roc_auc"] == pytest.approx(expected_auc)
    assert ours["log_loss"] == pytest.approx(sk.log_loss(y, proba))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0, 1)), min_size=2, max_size=60))
def test_binary_auc_and_log_loss_match_scikit_learn_on_any_input(pairs):
    y = np.array([p[0] for p in pairs])
    proba = np.array([p[1] for p in pairs])
    ours = classification_metrics(y, proba)
    if len(set(y)) == 2:
        assert ours["roc_auc"] == pytest.approx(sk.roc_auc_score(y, proba))
    else:
        assert math.isnan(ours["roc_auc"])
    assert ours["log_loss"] == pytest.approx(sk.log_loss(y, np.column_stack([1 - proba, proba]), labels=[0, 1]))


def test_baseline_takes_majority_and_prior_from_the_training_labels():
    train = np.array([1] * 70 + [0] * 30)
    test = np.array([0] * 60 + [1] * 40)
    base = majority_baseline(test, train_labels=train)
    assert base["accuracy"] == pytest.approx(0.4)  # predicts 1, the training majority
    assert base["balanced_accuracy"] == pytest.approx(0.5)
    assert base["roc_auc"] == pytest.approx(0.5)
    assert base["log_loss"] == pytest.approx(-(0.6 * math.log(0.3) + 0.4 * math.log(0.7)))


def test_report_shows_lift_over_the_baseline_and_is_json_ready():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    informative = np.clip(0.5 + 0.3 * (2 * y - 1) + rng.normal(0, 0.2, 1000), 0.01, 0.99)
    report = evaluate_classifier(y, informative)
    assert report.beats_baseline("balanced_accuracy", margin=0.2)
    assert report.lift("log_loss") > 0
    data = report.to_dict()
    assert set(data["model"]) == {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss"}
    assert data["n_samples"] == 1000 and sum(data["class_counts"].values()) == 1000
    assert "majority" in report.table()
    one_class = evaluate_classifier(np.ones(10, dtype=int), np.full(10, 0.7)).to_dict()
    assert one_class["model"]["roc_auc"] is None


def test_permutation_test_separates_signal_from_noise():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 600)
    signal = np.clip(0.5 + 0.1 * (2 * y - 1) + rng.normal(0, 0.2, 600), 0, 1)
    noise = rng.uniform(0, 1, 600)
    assert permutation_test(y, signal, n_permutations=200).p_value < 0.01
    assert permutation_test(y, noise, n_permutations=200).p_value > 0.05


def test_bad_inputs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="shape"):
        classification_metrics([0, 1], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="finite"):
        classification_metrics([0, 1], [0.5, float("nan")])
    with pytest.raises(ValueError, match="no probability column"):
        classification_metrics([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="unknown metric"):
        permutation_test([0, 1], [0.2, 0.8], metric="sharpe")

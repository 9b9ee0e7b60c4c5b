"""Small models learn the planted pattern, do not 'learn' a random walk, and train reproducibly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dl_helpers import manager, random_walk, train

from trader.data import synthetic_candles
from trader.errors import ConfigError, DataError
from trader.evaluation.classification import permutation_test
from trader.features import FeatureEngineer
from trader.ml.batches import WindowBatches
from trader.ml.training import TrainConfig, class_weights, evaluate_loss, fit
from trader.types import SignalAction, SignalRequest

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def plugins():
    return manager()


@pytest.fixture(scope="module")
def planted():
    return synthetic_candles("SYN/USDT", "1h", bars=3000, seed=3, planted_signal=0.5)


@pytest.mark.parametrize("name", ["dl_lstm", "dl_transformer"])
def test_learns_the_planted_pattern_and_beats_the_majority_baseline(plugins, planted, name):
    result = train(plugins.strategy(name), planted, epochs=4)
    test = result.metrics["test"]
    assert test["n_samples"] > 300
    assert test["model"]["balanced_accuracy"] > test["baseline"]["balanced_accuracy"] + 0.1
    assert test["model"]["accuracy"] > test["baseline"]["accuracy"] + 0.05
    assert test["model"]["roc_auc"] > 0.65
    assert test["model"]["log_loss"] < test["baseline"]["log_loss"]
    assert result.feature_names == tuple(FeatureEngineer().get_feature_names()) and len(result.feature_names) == 86


def test_does_not_learn_a_random_walk(plugins):
    candles = random_walk(3000, seed=11)
    result = train(plugins.strategy("dl_lstm"), candles, epochs=4)
    test = result.metrics["test"]
    # signals on the held-out rows scored against permuted labels: no better than chance
    model = result.model
    features = FeatureEngineer().transform(candles)
    split = result.extra["split"]["test"]
    ts = candles["timestamp"].to_numpy()
    rows = np.arange(int(np.searchsorted(ts, split["first_end"])), int(np.searchsorted(ts, split["last_end"])) + 1)
    signals = plugins.strategy("dl_lstm").generate_signals(SignalRequest(
        strategy="dl_lstm", symbol="SYN/USDT", timeframe="1h", candles=candles, at=rows, features=features, model=model,
    ))
    p_up = np.array([s.probability for s in signals])
    labels = (np.log(candles["close"].shift(-1) / candles["close"]).to_numpy()[rows] > 0).astype(int)
    keep = np.isfinite(p_up) & (rows < len(candles) - 1)
    check = permutation_test(labels[keep], p_up[keep], metric="roc_auc", n_permutations=300, seed=0)
    assert check.p_value > 0.01, check
    assert abs(test["model"]["roc_auc"] - 0.5) < 0.08
    assert test["model"]["balanced_accuracy"] < test["baseline"]["balanced_accuracy"] + 0.06


def test_same_seed_same_model_other_seed_other_model(plugins, planted):
    strategy = plugins.strategy("dl_transformer")
    candles = planted.iloc[:1500].reset_index(drop=True)
    first = train(strategy, candles, epochs=2, seed=5)
    again = train(strategy, candles, epochs=2, seed=5)
    other = train(strategy, candles, epochs=2, seed=6)
    a, b, c = (r.model.module.state_dict() for r in (first, again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert first.history["val_loss"] == again.history["val_loss"]


def _toy_windows(seed: int, n: int = 1200, informative: bool = True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) if informative else rng.integers(0, 2, n)
    return (WindowBatches(x, np.arange(5, 900), 6, y), WindowBatches(x, np.arange(905, n), 6, y))


def test_early_stopping_restores_the_best_weights():
    from trader_dl_lstm.model import BiLSTMClassifier

    torch.manual_seed(0)
    model = BiLSTMClassifier(input_size=4, hidden_size=16, head_hidden=32, dropout=0.0)
    train_w, val_w = _toy_windows(0, informative=False)  # noise: validation loss soon rises
    result = fit(model, train_w, val_w, TrainConfig(epochs=30, batch_size=32, learning_rate=2e-2, patience=2, seed=0),
                 n_classes=2)
    assert result.stopped_early and result.epochs_run < 30
    best = int(np.argmin(result.history["val_loss"]))
    assert result.best_epoch == best + 1 and result.epochs_run >= result.best_epoch + 2
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(result.class_weights))
    loss_now, _, _ = evaluate_loss(model, val_w, loss_fn, 256)
    assert loss_now == pytest.approx(result.history["val_loss"][best], rel=1e-5)
    assert loss_now < result.history["val_loss"][-1]


def test_training_loop_schedules_the_learning_rate_and_reports_history():
    from trader_dl_lstm.model import BiLSTMClassifier

    torch.manual_seed(0)
    model = BiLSTMClassifier(input_size=4, hidden_size=8, head_hidden=0)
    train_w, val_w = _toy_windows(1)
    result = fit(model, train_w, val_w, TrainConfig(epochs=3, batch_size=64, learning_rate=1e-2, seed=0, patience=5),
                 n_classes=2)
    lr = result.history["learning_rate"]
    assert lr[0] > lr[1] > lr[2]  # cosine decay per step
    assert result.history["val_accuracy"][-1] > 0.8
    assert result.samples_per_second > 0 and result.train_samples == 3 * len(train_w)


def test_class_weights_balance_imbalanced_labels():
    weights = class_weights(torch.tensor([0] * 75 + [1] * 25), 2)
    assert weights.tolist() == pytest.approx([100 / 150, 100 / 50])
    assert (weights * torch.tensor([75.0, 25.0])).tolist() == pytest.approx([50.0, 50.0])


def test_probabilities_are_calibrated_back_from_the_class_weights(plugins, planted):
    result = train(plugins.strategy("dl_lstm"), planted.iloc[:1500].reset_index(drop=True), epochs=1,
                   label_threshold=0.004)  # few "gain" labels: imbalanced classes
    counts = result.label["train_class_counts"]
    assert counts[0] > 2 * counts[1]
    weights = result.label["class_weights"]
    assert weights[1] > weights[0]
    balanced = np.array([[0.5, 0.5]])
    calibrated = result.model.calibrate(balanced)
    assert calibrated[0, 1] == pytest.approx(counts[1] / sum(counts))


def test_signals_follow_documented_thresholds(plugins, planted):
    strategy = plugins.strategy("dl_transformer")
    result = train(strategy, planted.iloc[:1500].reset_index(drop=True), epochs=1)
    features = FeatureEngineer().transform(planted)
    rows = np.arange(1500, 1800)

    def ask(**params):
        return strategy.generate_signals(SignalRequest(
            strategy="dl_transformer", symbol="SYN/USDT", timeframe="1h", candles=planted, at=rows, features=features,
            model=result.model, params=params,
        ))

    default = ask()
    for s in default:
        p = s.probability
        expected = SignalAction.BUY if p >= 0.55 else SignalAction.SELL if p <= 0.45 else SignalAction.HOLD
        assert s.action == expected and s.confidence == pytest.approx(abs(2 * p - 1))
    always = ask(buy_threshold=0.0, sell_threshold=0.0, position_size=0.5)
    assert {s.action for s in always} == {SignalAction.BUY} and {s.size for s in always} == {0.5}
    with pytest.raises(ConfigError, match="sell_threshold <= buy_threshold"):
        ask(buy_threshold=0.4, sell_threshold=0.6)


def test_warm_up_rows_hold_and_missing_model_names_the_train_command(plugins, planted):
    strategy = plugins.strategy("dl_lstm")
    result = train(strategy, planted.iloc[:1500].reset_index(drop=True), epochs=1)
    candles = planted.iloc[:200].reset_index(drop=True)
    signals = strategy.generate_signals(SignalRequest(
        strategy="dl_lstm", symbol="SYN/USDT", timeframe="1h", candles=candles, at=[0, 30, 60, 61, 199],
        model=result.model,
    ))
    # features are complete from row 50; a 12-row window first fits at row 61
    assert [s.action for s in signals[:3]] == [SignalAction.HOLD] * 3 and "warm-up" in signals[2].reason
    assert signals[3].probability is not None and signals[4].probability is not None
    with pytest.raises(Exception, match="trader train --plugin dl_lstm --symbol SYN/USDT --timeframe 1h"):
        strategy.generate_signals(SignalRequest(strategy="dl_lstm", symbol="SYN/USDT", timeframe="1h",
                                                candles=candles, at=[199], model=None))


def test_bad_training_parameters_and_too_little_data_are_one_clear_error(plugins, planted):
    strategy = plugins.strategy("dl_lstm")
    with pytest.raises(ConfigError, match="unknown training parameter.*hiden_size"):
        train(strategy, planted, hiden_size=3)
    with pytest.raises(ConfigError, match="val_fraction"):
        train(strategy, planted, val_fraction=0.9)
    with pytest.raises(DataError, match="too few usable windows"):
        train(strategy, planted.iloc[:120].reset_index(drop=True))


def test_label_is_the_next_bar_direction_by_default_or_fee_aware_on_request(plugins, planted):
    from trader.features import DEFAULT_THRESHOLD

    candles = planted.iloc[:1200].reset_index(drop=True)
    params = {"epochs": 1, "sequence_length": 12, "threads": 1, "hidden_size": 8, "head_hidden": 0}
    from trader.types import TrainRequest

    strategy = plugins.strategy("dl_lstm")
    default = strategy.train(TrainRequest(strategy="dl_lstm", symbol="SYN/USDT", timeframe="1h", candles=candles,
                                          params=params))
    assert default.label["threshold"] == 0.0 and default.label["horizon"] == 1 and default.label["kind"] == "binary"
    fee = strategy.train(TrainRequest(strategy="dl_lstm", symbol="SYN/USDT", timeframe="1h", candles=candles,
                                      params={**params, "label_threshold": "fee", "fee_rate": 0.001}))
    assert fee.label["threshold"] == pytest.approx(DEFAULT_THRESHOLD)
    assert fee.label["train_class_counts"][1] < default.label["train_class_counts"][1]


def test_fit_trains_on_the_feature_packages_time_series_datasets(planted):
    from trader.features import DataPreprocessor
    from trader_dl_transformer.model import TransformerClassifier

    engineer = FeatureEngineer(include_target=True, threshold=0.0)
    frame = engineer.transform(planted.iloc[:1500].reset_index(drop=True))
    prepared = DataPreprocessor(window=12).prepare(frame)
    train_set, val_set = prepared.dataset("train"), prepared.dataset("val")
    torch.manual_seed(0)
    model = TransformerClassifier(input_size=86, d_model=16, nhead=2, num_layers=1, dim_feedforward=32)
    result = fit(model, train_set, val_set, TrainConfig(epochs=2, batch_size=64, learning_rate=3e-3, threads=1), n_classes=2)
    assert result.train_samples == 2 * len(train_set)
    assert result.history["val_balanced_accuracy"][-1] > 0.55
    assert WindowBatches.from_dataset(train_set).features.data_ptr() == torch.from_numpy(train_set.features).data_ptr()

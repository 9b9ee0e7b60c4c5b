"""Real deep-learning artifacts: identical predictions after a round trip, and every refusal."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from dl_helpers import manager, train

from trader.data import synthetic_candles
from trader.errors import ArtifactError
from trader.features import FeatureEngineer
from trader.models import ModelPersistence, candles_hash, candles_range, sha256_file
from trader.types import SignalRequest

torch.set_num_threads(1)
SYMBOL, TF = "SYN/USDT", "1h"


@pytest.fixture(scope="module")
def plugins():
    return manager()


@pytest.fixture(scope="module")
def candles():
    return synthetic_candles(SYMBOL, TF, bars=1500, seed=4, planted_signal=0.4)


@pytest.fixture(scope="module")
def trained(plugins, candles):
    return {name: train(plugins.strategy(name), candles, epochs=1) for name in ("dl_lstm", "dl_transformer")}


def _save(store, plugins, name, result, candles):
    return store.save(plugins.strategy(name), result, symbol=SYMBOL, timeframe=TF, data_range=candles_range(candles),
                      data_hash=candles_hash(candles), seed=0)


def _signals(strategy, candles, model, rows):
    features = FeatureEngineer().transform(candles)
    return strategy.generate_signals(SignalRequest(strategy=strategy.name, symbol=SYMBOL, timeframe=TF,
                                                   candles=candles, at=rows, features=features, model=model))


@pytest.mark.parametrize("name", ["dl_lstm", "dl_transformer"])
def test_save_and_load_give_identical_predictions(tmp_path, plugins, trained, candles, name):
    store = ModelPersistence(tmp_path)
    version = _save(store, plugins, name, trained[name], candles)
    manifest = json.loads((version.directory / "manifest.json").read_text())
    assert [f["name"] for f in manifest["files"]] == ["weights.safetensors"]
    assert manifest["features"]["count"] == 86 and manifest["architecture"]["input_size"] == 86
    assert manifest["scaler"]["feature_names"] == manifest["features"]["names"]
    assert manifest["label"]["kind"] == "binary" and manifest["extra"]["split"]["test"]["windows"] > 0
    from importlib.metadata import version as installed

    assert manifest["torch_version"] == installed("torch") and manifest["seed"] == 0
    loaded = store.load(plugins.strategy(name), SYMBOL, TF)
    strategy = plugins.strategy(name)
    rows = np.arange(1200, 1500)
    before = _signals(strategy, candles, trained[name].model, rows)
    after = _signals(strategy, candles, loaded.model, rows)
    assert before == after  # same actions, sizes and probabilities, bit for bit
    one = _signals(strategy, candles, loaded.model, [1400])[0]  # the live path: one window
    assert one.probability == pytest.approx(after[200].probability, abs=1e-6)
    assert one.action == after[200].action


@pytest.fixture
def stored(tmp_path, plugins, trained, candles):
    store = ModelPersistence(tmp_path / "models")
    version = _save(store, plugins, "dl_lstm", trained["dl_lstm"], candles)
    return store, version.directory


def _rehash(directory: Path) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    for entry in manifest["files"]:
        entry["sha256"] = sha256_file(directory / entry["name"])
    path.write_text(json.dumps(manifest))


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "payload ran"))


def test_pickle_in_place_of_weights_is_refused_and_never_runs(stored, plugins, tmp_path):
    store, directory = stored
    marker = tmp_path / "pwned"
    (directory / "weights.safetensors").write_bytes(pickle.dumps({"lstm.weight_ih_l0": Payload(marker)}))
    _rehash(directory)  # whoever can replace the weights can edit the manifest too
    with pytest.raises(ArtifactError, match="is a pickle, which would run code when loaded"):
        store.load(plugins.strategy("dl_lstm"), SYMBOL, TF)
    # the plugin's own loader refuses it too (defence in depth: it only reads safetensors)
    manifest = json.loads((directory / "manifest.json").read_text())
    with pytest.raises(ArtifactError, match="not a readable safetensors weights file"):
        plugins.strategy("dl_lstm").load_model(directory, manifest)
    assert not marker.exists()


def test_torch_save_file_in_place_of_weights_is_refused_and_never_runs(stored, plugins, tmp_path):
    store, directory = stored
    marker = tmp_path / "pwned"
    weights = directory / "weights.safetensors"
    # saving pickles the payload object; it runs only if something unpickles the file
    torch.save({"lstm.weight_ih_l0": torch.zeros(48, 86), "x": Payload(marker)}, weights)
    assert not marker.exists()
    _rehash(directory)
    with pytest.raises(ArtifactError, match="torch.save archive"):
        store.load(plugins.strategy("dl_lstm"), SYMBOL, TF)
    manifest = json.loads((directory / "manifest.json").read_text())
    with pytest.raises(ArtifactError, match="not a readable safetensors weights file"):
        plugins.strategy("dl_lstm").load_model(directory, manifest)
    assert not marker.exists()


def test_tampered_weights_are_refused(stored, plugins):
    store, directory = stored
    weights = directory / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"weights.safetensors: sha256 .* does not match the manifest"):
        store.load(plugins.strategy("dl_lstm"), SYMBOL, TF)


def test_weights_with_another_feature_count_are_refused_with_a_clear_error(stored, plugins, candles, tmp_path):
    store, directory = stored
    other = train(plugins.strategy("dl_lstm"), candles, epochs=1, windows=[5, 10, 20])  # 68 features
    other_store = ModelPersistence(tmp_path / "other")
    other_dir = _save(other_store, plugins, "dl_lstm", other, candles).directory
    (directory / "weights.safetensors").write_bytes((other_dir / "weights.safetensors").read_bytes())
    _rehash(directory)
    with pytest.raises(ArtifactError, match="weights were trained on 68 features but the manifest's architecture expects 86"):
        store.load(plugins.strategy("dl_lstm"), SYMBOL, TF)


def test_a_manifest_whose_features_do_not_fit_is_refused(stored, plugins):
    store, directory = stored
    path = directory / "manifest.json"
    original = json.loads(path.read_text())

    manifest = json.loads(json.dumps(original))
    manifest["architecture"]["input_size"] = 80
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="lists 86 features but the architecture takes 80 inputs"):
        store.load(plugins.strategy("dl_lstm"), SYMBOL, TF)

    manifest = json.loads(json.dumps(original))
    manifest["features"]["names"] = manifest["features"]["names"][:-1] + ["mystery_feature"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="feature 85 is 'mystery_feature' where windows .* give 'downside_50'"):
        store.load(plugins.strategy("dl_lstm"), SYMBOL, TF)

    manifest = json.loads(json.dumps(original))
    manifest["architecture"]["class"] = "TransformerClassifier"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="is not dl_lstm's BiLSTMClassifier"):
        store.load(plugins.strategy("dl_lstm"), SYMBOL, TF)

    manifest = json.loads(json.dumps(original))
    manifest["architecture"]["hidden_size"] = 13
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="tensor 'lstm.weight_ih_l0' has shape"):
        store.load(plugins.strategy("dl_lstm"), SYMBOL, TF)

    path.write_text(json.dumps(original))
    assert store.load(plugins.strategy("dl_lstm"), SYMBOL, TF).version == "v1"


def test_another_plugins_weights_are_refused(tmp_path, plugins, trained, candles):
    store = ModelPersistence(tmp_path)
    lstm_dir = _save(store, plugins, "dl_lstm", trained["dl_lstm"], candles).directory
    tf_dir = _save(store, plugins, "dl_transformer", trained["dl_transformer"], candles).directory
    (lstm_dir / "weights.safetensors").write_bytes((tf_dir / "weights.safetensors").read_bytes())
    _rehash(lstm_dir)
    with pytest.raises(ArtifactError, match="weights do not fit the architecture in the manifest"):
        store.load(plugins.strategy("dl_lstm"), SYMBOL, TF)

"""The ensemble's model files: a faithful round trip, and refusals that never run a payload.

Whoever can replace a model file can also edit ``manifest.json``, so every tampered
file here gets its sha256 updated in the manifest: the refusal must come from the
file's content, not from the hash check.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from ensemble_helpers import MarkerOnLoad, MarkerOnUnpickle, candles, ensemble_strategy, train_request

from trader.errors import ArtifactError
from trader.features import FeatureEngineer
from trader.models import ModelPersistence, candles_hash, candles_range, sha256_file
from trader.types import SignalRequest
from trader_ensemble.persistence import META_FILE, MODEL_FILE, TRUSTED_TYPES, trusted_types_of

SYMBOL, TIMEFRAME = "SYN/USDT", "1h"


@pytest.fixture(scope="module")
def data():
    return candles(bars=1500, seed=5)


@pytest.fixture(scope="module")
def strategy():
    return ensemble_strategy()


@pytest.fixture(scope="module")
def trained(strategy, data):
    return strategy.train(train_request(data))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, strategy, trained, data):
    """One saved version; each test gets its own copy to tamper with."""
    models = tmp_path_factory.mktemp("pristine") / "models"
    ModelPersistence(models).save(
        strategy, trained, symbol=SYMBOL, timeframe=TIMEFRAME, data_range=candles_range(data),
        data_hash=candles_hash(data), seed=0,
    )
    return models


@pytest.fixture
def store(tmp_path, pristine):
    shutil.copytree(pristine, tmp_path / "models")
    return ModelPersistence(tmp_path / "models")


@pytest.fixture
def saved(store, strategy):
    return store.latest(strategy, SYMBOL, TIMEFRAME)


def replace_file(directory: Path, name: str, payload: bytes) -> None:
    """Swap a model file and update its sha256 and size in the manifest, as an attacker would."""
    (directory / name).write_bytes(payload)
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["files"]:
        if entry["name"] == name:
            entry["sha256"] = sha256_file(directory / name)
            entry["bytes"] = len(payload)
    manifest_path.write_text(json.dumps(manifest))


def test_save_then_load_gives_identical_probabilities_and_signals(store, strategy, trained, saved, data):
    assert sorted(p.name for p in saved.directory.iterdir()) == [META_FILE, MODEL_FILE, "manifest.json"]
    loaded = store.load(strategy, SYMBOL, TIMEFRAME)
    assert loaded.version == "v1"
    features = FeatureEngineer(timeframe=TIMEFRAME).transform(data)
    rows = np.arange(len(data))
    before, after = trained.model.predict_up(features, rows), loaded.model.predict_up(features, rows)
    assert np.isnan(before[:50]).all() and np.isfinite(before[50:]).all()
    assert np.array_equal(before, after, equal_nan=True)

    def signals(model):
        return strategy.generate_signals(SignalRequest(
            strategy="ensemble", symbol=SYMBOL, timeframe=TIMEFRAME, candles=data, at=rows, features=features, model=model,
        ))

    assert signals(trained.model) == signals(loaded.model)


def test_the_manifest_records_features_scaler_label_metrics_and_hashes(saved):
    manifest = json.loads((saved.directory / "manifest.json").read_text())
    assert manifest["plugin"]["name"] == "ensemble"
    assert manifest["features"]["count"] == 86 and manifest["features"]["windows"] == [5, 10, 20, 50]
    assert manifest["scaler"]["feature_names"] == manifest["features"]["names"]
    assert manifest["label"]["up_class"] == 1
    assert manifest["architecture"]["members"] == ["hgb", "extra_trees", "logistic"]
    assert set(manifest["metrics"]["test"]) >= {"model", "baseline", "n_samples"}
    assert {"scikit-learn", "skops"} <= set(manifest["libraries"])
    files = {entry["name"]: entry["sha256"] for entry in manifest["files"]}
    assert files == {MODEL_FILE: sha256_file(saved.directory / MODEL_FILE), META_FILE: sha256_file(saved.directory / META_FILE)}


def test_the_model_file_is_a_skops_archive_needing_only_allow_listed_types(saved):
    head = (saved.directory / MODEL_FILE).read_bytes()[:4]
    assert head == b"PK\x03\x04"  # a zip of JSON and .npy arrays, never a pickle
    assert set(trusted_types_of(saved.directory / MODEL_FILE)) <= TRUSTED_TYPES


@pytest.mark.parametrize(
    ("payload", "type_name"),
    [("marker_on_load", "ensemble_helpers.MarkerOnLoad"), ("os_system", "posix.system" if os.name == "posix" else "nt.system")],
)
def test_a_skops_file_asking_for_an_untrusted_type_is_refused_and_its_payload_never_runs(
    store, strategy, saved, tmp_path, payload, type_name
):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    marker = tmp_path / "payload-ran.txt"
    evil = [MarkerOnLoad(marker)] if payload == "marker_on_load" else [FunctionTransformer(func=os.system)]
    forged = tmp_path / "forged.skops"
    sio.dump(evil, forged)
    replace_file(saved.directory, MODEL_FILE, forged.read_bytes())

    with pytest.raises(ArtifactError) as refused:
        store.load(strategy, SYMBOL, TIMEFRAME)
    message = str(refused.value)
    assert f"untrusted type '{type_name}'" in message and MODEL_FILE in message
    assert "\n" not in message
    assert not marker.exists()

    if payload == "marker_on_load":  # the control: loading it with that type trusted does run the payload
        sio.load(saved.directory / MODEL_FILE, trusted=[type_name])
        assert marker.read_text() == "payload ran\n"


def test_a_pickle_in_place_of_the_model_is_refused_and_its_payload_never_runs(store, strategy, saved, tmp_path):
    marker = tmp_path / "payload-ran.txt"
    bomb = pickle.dumps(MarkerOnUnpickle(marker))
    replace_file(saved.directory, MODEL_FILE, bomb)

    with pytest.raises(ArtifactError, match=rf"{MODEL_FILE}: file is a pickle, which would run code when loaded"):
        store.load(strategy, SYMBOL, TIMEFRAME)
    # the plugin's own loader refuses it too, should the core's check ever be bypassed
    with pytest.raises(ArtifactError, match="is a pickle stream, not a skops archive"):
        strategy.load_model(saved.directory, json.loads((saved.directory / "manifest.json").read_text()))
    assert not marker.exists()

    pickle.loads(bomb)  # the control: unpickling it does run the payload
    assert marker.read_text() == "payload ran\n"


def test_a_zip_that_is_not_a_skops_archive_is_refused_clearly(store, strategy, saved, tmp_path):
    import zipfile

    fake = tmp_path / "fake.zip"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("notes.txt", "hello")
    replace_file(saved.directory, MODEL_FILE, fake.read_bytes())
    with pytest.raises(ArtifactError, match=rf"{MODEL_FILE}: unreadable skops archive"):
        store.load(strategy, SYMBOL, TIMEFRAME)


def test_a_manifest_listing_another_feature_count_is_refused(store, strategy, saved):
    path = saved.directory / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["features"]["names"] = manifest["features"]["names"][:-1]
    manifest["features"]["count"] = 85
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="wrong feature count: the manifest lists 85 features, the ensemble was trained on 86"):
        store.load(strategy, SYMBOL, TIMEFRAME)


def test_a_classifier_trained_on_another_feature_count_is_refused(store, strategy, saved, tmp_path):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    other = LogisticRegression().fit(rng.normal(size=(50, 10)), rng.integers(0, 2, 50))
    forged = tmp_path / "other.skops"
    sio.dump(other, forged)
    replace_file(saved.directory, MODEL_FILE, forged.read_bytes())
    with pytest.raises(ArtifactError, match="wrong feature count: the classifier takes 10 inputs, but 86 features"):
        store.load(strategy, SYMBOL, TIMEFRAME)


def test_feature_names_in_another_order_are_refused(store, strategy, saved):
    path = saved.directory / "manifest.json"
    manifest = json.loads(path.read_text())
    names = manifest["features"]["names"]
    names[0], names[1] = names[1], names[0]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="feature names differ from the manifest at position 0"):
        store.load(strategy, SYMBOL, TIMEFRAME)


def test_a_changed_sidecar_without_a_new_hash_is_refused(store, strategy, saved):
    path = saved.directory / META_FILE
    path.write_text(path.read_text().replace('"lags": []', '"lags": [1]'))
    with pytest.raises(ArtifactError, match=rf"{META_FILE}: sha256 .* does not match the manifest"):
        store.load(strategy, SYMBOL, TIMEFRAME)


def test_every_member_and_calibration_needs_only_allow_listed_types(tmp_path):
    """The allow-list covers every configuration the plugin can train (kept honest across scikit-learn upgrades)."""
    import skops.io as sio
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from trader_ensemble.model import build_ensemble
    from trader_ensemble.params import MEMBERS, EnsembleParams
    from trader_ensemble.threads import limited_threads

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = (x[:, 0] + rng.normal(size=400) > 0).astype(int)
    for calibration in ("sigmoid", "isotonic"):
        params = EnsembleParams(members=MEMBERS, calibration=calibration, trees=3, hgb_max_iter=3, threads=1,
                                tree_min_samples_leaf=5, hgb_min_samples_leaf=5)
        with limited_threads(1):
            voter = build_ensemble(params, seed=0).fit(x[:300], y[:300])
            model = CalibratedClassifierCV(FrozenEstimator(voter), method=calibration).fit(x[300:], y[300:])
        path = tmp_path / f"{calibration}.skops"
        sio.dump(model, path)
        assert set(sio.get_untrusted_types(file=path)) <= TRUSTED_TYPES, calibration
        assert trusted_types_of(path)  # and the loader accepts it

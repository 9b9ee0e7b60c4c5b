"""Saving and loading the ensemble as data: a skops archive and a JSON sidecar, never pickle.

``ensemble.skops`` holds the fitted, calibrated classifier (``skops.io.dump``);
``ensemble.json`` holds the ordered feature names, lags, scaler and label. Loading
reads only bytes until every check has passed:

1. the file is a zip archive (a pickle stream, or anything else, is refused: it is
   never handed to a loader) whose members' declared and inflated sizes stay within
   :func:`trader.models.bounded.check_zip_members` (1 GiB in all by default);
2. ``skops.io.get_untrusted_types`` lists the types the archive asks for beyond
   skops' defaults; any type outside :data:`TRUSTED_TYPES` (the scikit-learn
   internals a trained ensemble holds) is refused, naming it;
3. ``skops.io.load`` runs with ``trusted=`` exactly those listed types;
4. every decision tree in the restored classifier is checked node by node
   (:func:`trader_ensemble.trees.check_trees`) before anything predicts with it;
5. the classifier's input count, the sidecar's feature names and the manifest's
   feature names must agree.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trader.errors import ArtifactError, ModelError
from trader.feature_windows import DEFAULT_WINDOWS

__all__ = [
    "MODEL_FILE",
    "META_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "TRUSTED_TYPES",
    "save_ensemble",
    "load_ensemble",
    "trusted_types_of",
]

log = logging.getLogger("trader_ensemble")

MODEL_FILE = "ensemble.skops"
META_FILE = "ensemble.json"
FORMAT = "trader-ensemble"
#: Bumped when the sidecar's fields change meaning; loading refuses other versions.
FORMAT_VERSION = 1
#: The sidecar is a few kilobytes; a larger one is not ours.
MAX_META_BYTES = 4 * 1024 * 1024

#: Types a trained ensemble holds that skops does not trust by default. Each is a
#: scikit-learn internal whose state is arrays and numbers; nothing here can call
#: arbitrary code. Anything else an archive asks for is refused. The two tree types'
#: node arrays index memory unchecked in compiled code, so every tree is validated
#: (:mod:`trader_ensemble.trees`) before the classifier is used.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
        "sklearn.utils._bunch.Bunch",
    }
)


def save_ensemble(model: Any, directory: Path) -> list[str]:
    """Write ``ensemble.skops`` and ``ensemble.json`` into ``directory``; return their names."""
    import sklearn
    import skops.io as sio

    from trader_ensemble.model import EnsembleModel

    if not isinstance(model, EnsembleModel):
        raise ArtifactError(f"the ensemble plugin can only save an EnsembleModel, got {type(model).__name__}")
    directory = Path(directory)
    sio.dump(model.estimator, directory / MODEL_FILE, compression=zipfile.ZIP_DEFLATED)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_names": list(model.feature_names),
        "lags": list(model.lags),
        "input_names": model.input_names,
        "n_inputs": len(model.input_names),
        "up_class": model.up_class,
        "windows": list(model.windows),
        "max_fill_bars": model.max_fill_bars,
        "members": list(model.members),
        "label": model.label,
        "scaler": model.scaler.to_dict(),
        "sklearn_version": sklearn.__version__,
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return [MODEL_FILE, META_FILE]


def trusted_types_of(path: Path) -> list[str]:
    """The non-default types the skops archive ``path`` needs, all within :data:`TRUSTED_TYPES`.

    Reads the archive's schema only; nothing in it is constructed. Raises
    :class:`ArtifactError` naming the file and the first type outside the allow-list,
    or saying what the file is when it is not a skops archive at all.
    """
    import skops.io as sio

    from trader.models.bounded import check_zip_members

    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:1] == b"\x80":
        raise ArtifactError(f"{path}: is a pickle stream, not a skops archive; pickles can run code and are never loaded")
    if head != b"PK\x03\x04" or not zipfile.is_zipfile(path):
        raise ArtifactError(f"{path}: is not a skops archive (no zip header); refusing to load it")
    check_zip_members(path, "skops archive")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a damaged or foreign archive: schema missing, bad JSON, bad zip entries
        raise ArtifactError(f"{path}: unreadable skops archive ({type(exc).__name__}: {exc})") from None
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        more = f" (and {len(refused) - 1} more: {', '.join(refused[1:4])})" if len(refused) > 1 else ""
        raise ArtifactError(
            f"{path}: refusing to load: the archive asks for the untrusted type {refused[0]!r}{more}, "
            "which a trader ensemble never contains"
        )
    return sorted(untrusted)


def _read_meta(path: Path) -> dict[str, Any]:
    from trader.models import read_json_artifact

    meta = read_json_artifact(path, MAX_META_BYTES, "ensemble sidecar", "this ensemble model is incomplete")
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a {FORMAT} sidecar")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: format version {meta.get('format_version')!r} is not supported (this plugin reads "
            f"{FORMAT_VERSION}); retrain the model"
        )
    names = meta.get("feature_names")
    lags = meta.get("lags")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ArtifactError(f"{path}: 'feature_names' must be a non-empty list of names")
    if not isinstance(lags, list) or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in lags):
        raise ArtifactError(f"{path}: 'lags' must be a list of positive integers")
    if not isinstance(meta.get("scaler"), dict):
        raise ArtifactError(f"{path}: 'scaler' must be an object")
    return meta


def _check_manifest_features(directory: Path, manifest: Mapping[str, Any], names: list[str]) -> None:
    features = manifest.get("features")
    listed = features.get("names") if isinstance(features, Mapping) else None
    if listed is None:
        raise ArtifactError(f"{directory}: the manifest lists no feature names")
    listed = list(listed)
    if len(listed) != len(names):
        raise ArtifactError(
            f"{directory}: wrong feature count: the manifest lists {len(listed)} features, "
            f"the ensemble was trained on {len(names)}"
        )
    if listed != names:
        first = next(i for i, (a, b) in enumerate(zip(listed, names, strict=True)) if a != b)
        raise ArtifactError(
            f"{directory}: feature names differ from the manifest at position {first} "
            f"({listed[first]!r} in the manifest, {names[first]!r} in the model)"
        )


def load_ensemble(directory: Path, manifest: Mapping[str, Any]) -> Any:
    """Rebuild the :class:`~trader_ensemble.model.EnsembleModel` saved in ``directory`` (checks above)."""
    import sklearn
    import skops.io as sio

    from trader.features import FeatureScaler
    from trader_ensemble.model import EnsembleModel, lagged_names
    from trader_ensemble.trees import check_trees

    directory = Path(directory)
    meta = _read_meta(directory / META_FILE)
    names: list[str] = meta["feature_names"]
    lags: list[int] = meta["lags"]
    _check_manifest_features(directory, manifest, names)
    inputs = lagged_names(names, lags)

    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        raise ArtifactError(f"{model_path}: missing; this ensemble model is incomplete")
    trusted = trusted_types_of(model_path)
    try:
        estimator = sio.load(model_path, trusted=trusted)
    except Exception as exc:
        raise ArtifactError(f"{model_path}: skops could not load it ({type(exc).__name__}: {exc})") from None
    check_trees(estimator, model_path)
    if not hasattr(estimator, "predict_proba"):
        raise ArtifactError(f"{model_path}: holds a {type(estimator).__name__}, not a probabilistic classifier")
    n_inputs = getattr(estimator, "n_features_in_", None)
    if n_inputs != len(inputs):
        raise ArtifactError(
            f"{model_path}: wrong feature count: the classifier takes {n_inputs} inputs, "
            f"but {len(names)} features with lags {lags} make {len(inputs)}"
        )
    try:
        scaler = FeatureScaler.from_dict(meta["scaler"])
    except Exception as exc:
        raise ArtifactError(f"{directory / META_FILE}: unusable scaler ({type(exc).__name__}: {exc})") from None
    scaler_names = list(getattr(scaler, "feature_names", names))
    if scaler_names != names:
        raise ArtifactError(f"{directory / META_FILE}: the scaler's features differ from the model's")
    if meta.get("sklearn_version") != sklearn.__version__:
        log.warning(
            "%s was saved with scikit-learn %s; %s is installed: predictions may differ slightly",
            model_path, meta.get("sklearn_version"), sklearn.__version__,
        )
    label = dict(meta.get("label") or {})
    label.setdefault("up_class", meta.get("up_class", 1))
    try:
        return EnsembleModel(
            estimator,
            names,
            scaler,
            lags=lags,
            windows=meta.get("windows") or DEFAULT_WINDOWS,
            max_fill_bars=meta.get("max_fill_bars", 5),
            label=label,
            members=meta.get("members") or (),
        )
    except (ModelError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{directory / META_FILE}: {exc}") from None

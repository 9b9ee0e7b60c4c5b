"""Saving and loading a sequence model: safetensors weights, everything else from the manifest, checked first."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trader.errors import ArtifactError
from trader.ml.model import SequenceModel
from trader.ml.spec import MAX_WINDOWS, SequenceClassifierSpec, check_architecture, skeleton_shapes
from trader.ml.weights import check_header, load_weights, save_weights

__all__ = ["WEIGHTS_FILE", "save_sequence_model", "load_sequence_model"]

WEIGHTS_FILE = "weights.safetensors"


def save_sequence_model(spec: SequenceClassifierSpec, model: SequenceModel, directory: Path) -> list[str]:
    """The ``trader_save_model`` hook: the module's weights as safetensors."""
    if not isinstance(model, SequenceModel):
        raise ArtifactError(f"{spec.plugin}: cannot save a {type(model).__name__}, expected a trained SequenceModel")
    save_weights(model.module, Path(directory) / WEIGHTS_FILE, metadata={"plugin": spec.plugin, "class": spec.class_name})
    return [WEIGHTS_FILE]


def load_sequence_model(spec: SequenceClassifierSpec, directory: Path, manifest: Mapping[str, Any]) -> SequenceModel:
    """The ``trader_load_model`` hook: rebuild the network and check it fits the manifest and the features."""
    from trader.features import FeatureScaler, feature_names

    directory = Path(directory)
    arch = dict(manifest.get("architecture") or {})
    if arch.get("class") != spec.class_name:
        raise ArtifactError(f"{directory}: architecture {str(arch.get('class'))[:40]!r} is not {spec.plugin}'s {spec.class_name}")
    try:
        check_architecture(spec, arch)
    except ValueError as exc:
        raise ArtifactError(f"{directory}: architecture in the manifest is refused: {exc}") from None
    names = list(manifest["features"]["names"])
    windows = manifest["features"].get("windows") or ()
    if not isinstance(windows, list) or len(windows) > MAX_WINDOWS:
        raise ArtifactError(f"{directory}: feature windows must be a list of at most {MAX_WINDOWS} windows")
    windows = tuple(windows)
    if arch.get("input_size") != len(names):
        raise ArtifactError(
            f"{directory}: the manifest lists {len(names)} features but the architecture takes {arch.get('input_size')} inputs"
        )
    try:
        expected_names = feature_names(windows)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{directory}: feature windows {list(windows)} are invalid: {exc}") from None
    if len(names) == len(expected_names) and names != expected_names:
        i = next(i for i, (a, b) in enumerate(zip(names, expected_names, strict=True)) if a != b)
        raise ArtifactError(
            f"{directory}: the model's feature {i} is {names[i]!r} where windows {list(windows)} give "
            f"{expected_names[i]!r} in this trader; retrain it (trader train --plugin {spec.plugin})"
        )
    if names != expected_names:
        raise ArtifactError(
            f"{directory}: the model was trained on {len(names)} features, but windows {list(windows)} give "
            f"{len(expected_names)} features in this trader; retrain it (trader train --plugin {spec.plugin})"
        )
    try:
        scaler = FeatureScaler.from_dict(manifest.get("scaler"))
    except ValueError as exc:
        raise ArtifactError(f"{directory}: scaler in the manifest: {exc}") from None
    if list(scaler.feature_names or ()) != names:
        raise ArtifactError(f"{directory}: the scaler was fit on other features than the model's ({scaler.n_features} vs {len(names)})")
    length = arch.get("sequence_length")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ArtifactError(f"{directory}: architecture has no valid sequence_length")
    label = dict(manifest.get("label") or {})
    weights = label.get("class_weights") or [1.0] * int(arch.get("num_classes", 2))
    if len(weights) != arch.get("num_classes") or not all(isinstance(w, (int, float)) and w > 0 for w in weights):
        raise ArtifactError(f"{directory}: label.class_weights must give one positive weight per class")
    from trader.models.bounded import max_artifact_bytes

    try:
        shapes, size = skeleton_shapes(spec, arch)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{directory}: architecture in the manifest cannot be built: {exc}") from None
    if size > max_artifact_bytes():
        raise ArtifactError(f"{directory}: architecture in the manifest needs {size} bytes of tensors, more than the "
                            f"{max_artifact_bytes()}-byte limit (TRADER_MAX_ARTIFACT_BYTES)")
    check_header(directory / WEIGHTS_FILE, shapes, feature_count_key=spec.input_weight)
    try:
        module = spec.build(arch)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{directory}: architecture in the manifest cannot be built: {exc}") from None
    load_weights(module, directory / WEIGHTS_FILE, feature_count_key=spec.input_weight)
    data_settings = manifest.get("extra", {}).get("data_settings", {})
    return SequenceModel(
        module, feature_names=names, windows=windows, sequence_length=length, scaler=scaler, label=label,
        class_weights=weights, architecture=arch, max_fill_bars=int(data_settings.get("max_fill_bars", 5)),
    )

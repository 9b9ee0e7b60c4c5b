"""Secure, versioned model artifacts: weights as data beside a verified JSON manifest.

``from trader.models import ModelPersistence`` imports no heavy library (no torch,
pandas or scikit-learn).
"""

from __future__ import annotations

from trader.models.datahash import candles_hash, candles_range
from trader.models.formats import code_format
from trader.models.manifest import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA_VERSION,
    library_versions,
    read_json_artifact,
    read_manifest,
    sha256_file,
    validate_manifest,
)
from trader.models.persistence import (
    BASKET_SEPARATOR,
    LoadedModel,
    ModelPersistence,
    ModelVersion,
    basket_symbol,
    model_key,
    parse_version,
)

__all__ = [
    "BASKET_SEPARATOR",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA_VERSION",
    "LoadedModel",
    "ModelPersistence",
    "ModelVersion",
    "basket_symbol",
    "candles_hash",
    "candles_range",
    "code_format",
    "library_versions",
    "model_key",
    "parse_version",
    "read_json_artifact",
    "read_manifest",
    "sha256_file",
    "validate_manifest",
]

"""Weights as data: a module's state dict in safetensors, read back with strict checks.

:func:`read_header` reads only a safetensors file's JSON header (bounded: 16 MiB, the
bounds of :func:`trader.models.bounded.loads_bounded`) and checks that every tensor's
declared shape, dtype and byte range fit the file; :func:`check_header` compares those
shapes with what an architecture needs, so a manifest that does not fit its weights is
refused before any real module is built.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from trader.errors import ArtifactError

__all__ = ["save_weights", "load_weights", "read_tensors", "read_header", "check_header", "MAX_HEADER_BYTES"]

#: A header lists names, dtypes and shapes: a few kilobytes for a trader network.
MAX_HEADER_BYTES = 16 * 1024 * 1024
#: safetensors dtype names -> (torch dtype, bytes per element).
_DTYPES: dict[str, tuple[torch.dtype, int]] = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8), "I32": (torch.int32, 4), "I16": (torch.int16, 2), "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}


def save_weights(module: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write ``module.state_dict()`` as safetensors (contiguous CPU copies; never pickle)."""
    from safetensors.torch import save_file

    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in module.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "pt", **(metadata or {})})


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file; :class:`ArtifactError` when it is not one."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            return {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path}: not a readable safetensors weights file ({exc})") from None


def read_header(path: Path) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """Name -> (dtype, shape) of every tensor in the safetensors file ``path``, from its header only.

    Refuses a file over :func:`trader.models.bounded.max_artifact_bytes`, a header over
    :data:`MAX_HEADER_BYTES`, unknown dtypes, and byte ranges that do not match the shape or
    lie outside the file. :class:`ArtifactError` naming the file and the tensor.
    """
    from trader.models.bounded import loads_bounded, max_artifact_bytes

    try:
        size = os.stat(path).st_size
        if size > max_artifact_bytes():
            raise ArtifactError(f"{path}: weights file is {size} bytes, more than the {max_artifact_bytes()}-byte limit "
                                "(TRADER_MAX_ARTIFACT_BYTES)")
        with open(path, "rb") as fh:
            prefix = fh.read(8)
            length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 0 < length <= min(MAX_HEADER_BYTES, size - 8):
                raise ArtifactError(f"{path}: not a readable safetensors weights file (header length {length})")
            raw = fh.read(length)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read the weights ({exc.strerror or exc})") from None
    try:
        header = loads_bounded(raw, path, "header")
    except ArtifactError as exc:
        raise ArtifactError(f"{path}: not a readable safetensors weights file ({str(exc).removeprefix(f'{path}: ')})") from None
    if not isinstance(header, dict):
        raise ArtifactError(f"{path}: not a readable safetensors weights file (the header is not a JSON object)")
    data_bytes = size - 8 - length
    found: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, itemsize = _DTYPES[entry["dtype"]]
            shape = tuple(entry["shape"])
            begin, end = entry["data_offsets"]
            ok = all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in (*shape, begin, end))
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok or end - begin != math.prod(shape) * itemsize or not 0 <= begin <= end <= data_bytes:
            raise ArtifactError(f"{path}: tensor {name!r:.80} has an invalid header entry (dtype, shape or byte range)")
        found[name] = (dtype, shape)
    return found


def check_header(path: Path, expected: Mapping[str, tuple[torch.dtype, tuple[int, ...]]], *,
                 feature_count_key: str | None = None) -> None:
    """Refuse weights whose header does not hold exactly the ``expected`` tensors (names, shapes, dtypes)."""
    found = read_header(path)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(map(repr, unexpected[:5]))}{' ...' if len(unexpected) > 5 else ''}")
        raise ArtifactError(f"{path}: weights do not fit the architecture in the manifest ({'; '.join(parts)})")
    for name, (dtype, shape) in expected.items():
        got_dtype, got_shape = found[name]
        if got_shape != shape:
            if name == feature_count_key and len(got_shape) == 2 and len(shape) == 2 and got_shape[1] != shape[1]:
                raise ArtifactError(
                    f"{path}: weights were trained on {got_shape[1]} features but the manifest's architecture "
                    f"expects {shape[1]}; refusing to load them"
                )
            raise ArtifactError(f"{path}: tensor {name!r} has shape {got_shape}, the architecture expects {shape}")
        if got_dtype != dtype:
            raise ArtifactError(f"{path}: tensor {name!r} has dtype {got_dtype}, expected {dtype}")


def load_weights(module: nn.Module, path: Path, *, feature_count_key: str | None = None) -> nn.Module:
    """Load safetensors weights into ``module`` after checking every name, shape and dtype.

    A missing or unexpected tensor, or a shape that differs from the architecture
    in the manifest, raises :class:`ArtifactError` naming the tensor (and, when
    ``feature_count_key`` names the input-layer tensor, the two feature counts).
    """
    tensors = read_tensors(path)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
        raise ArtifactError(f"{path}: weights do not fit the architecture in the manifest ({'; '.join(parts)})")
    for name, reference in expected.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != tuple(reference.shape):
            if name == feature_count_key and tensor.ndim == 2 and reference.ndim == 2 and tensor.shape[1] != reference.shape[1]:
                raise ArtifactError(
                    f"{path}: weights were trained on {tensor.shape[1]} features but the manifest's architecture "
                    f"expects {reference.shape[1]}; refusing to load them"
                )
            raise ArtifactError(
                f"{path}: tensor {name!r} has shape {tuple(tensor.shape)}, the architecture expects {tuple(reference.shape)}"
            )
        if tensor.dtype != reference.dtype:
            raise ArtifactError(f"{path}: tensor {name!r} has dtype {tensor.dtype}, expected {reference.dtype}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ArtifactError(f"{path}: tensor {name!r} holds NaN or infinite values")
    module.load_state_dict(tensors, strict=True)
    return module

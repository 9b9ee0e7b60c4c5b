"""Weights as data: a module's state dict in safetensors, read back with strict checks."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from trader.errors import ArtifactError

__all__ = ["save_weights", "load_weights", "read_tensors"]


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

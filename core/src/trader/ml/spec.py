"""What a sequence-classifier plugin tells the shared pipeline about its network, and the bounds it is held to.

See ``docs/api.md`` ("SequenceClassifierSpec") for the fields and the ``forward`` contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import torch
from torch import nn

if TYPE_CHECKING:
    from trader.types import ParamSpec

__all__ = ["SequenceClassifierSpec", "param_bounds", "check_architecture", "skeleton_shapes", "MAX_SEQUENCE_LENGTH", "MAX_WINDOWS"]

#: Longest window (candles) a sequence model may read.
MAX_SEQUENCE_LENGTH = 10_000
#: Most feature windows a model may be trained on (each adds 18 features).
MAX_WINDOWS = 64


def _optional_windows(value: Iterable[int] | None) -> tuple[int, ...] | None:
    return None if value is None else tuple(value)


def param_bounds(spec: ParamSpec) -> tuple[int, int]:
    """``(low, high)`` of a declared integer parameter, as :attr:`SequenceClassifierSpec.architecture_bounds` takes them."""
    if spec.low is None or spec.high is None:
        raise ValueError(f"parameter {spec.name!r} declares no (low, high) range")
    return int(spec.low), int(spec.high)


@attrs.frozen
class SequenceClassifierSpec:
    """What a plugin tells the pipeline about its network.

    ``model_class(**architecture)`` builds the module (``input_size`` and
    ``num_classes`` are filled in from the data); its ``forward`` takes a float32
    ``(batch, sequence_length, input_size)`` tensor and returns ``(batch, num_classes)``
    logits. ``input_weight`` names the tensor whose second dimension is the feature
    count; ``length_argument`` names the constructor argument that must hold at least
    the window length (or ``None``); ``architecture_bounds`` gives the inclusive
    ``(low, high)`` range of each integer constructor argument, checked before anything
    is built. ``feature_windows`` and ``sequence_length`` are the plugin's: leave them
    ``None`` and :class:`~trader.ml.plugin.SequenceStrategyPlugin` fills them in; a
    value that disagrees with the plugin's is refused when the spec is loaded.
    """

    plugin: str
    model_class: type[nn.Module]
    input_weight: str
    architecture_defaults: Mapping[str, Any]
    feature_windows: tuple[int, ...] | None = attrs.field(default=None, converter=_optional_windows)
    sequence_length: int | None = None
    length_argument: str | None = None
    architecture_bounds: Mapping[str, tuple[int, int]] = attrs.field(factory=dict)

    def for_plugin(self, name: str, feature_windows: tuple[int, ...], sequence_length: int) -> SequenceClassifierSpec:
        """This spec with the plugin's windows and window length filled in; ``ValueError`` naming
        both values where the spec says something else (one source of truth for training and warm-up)."""
        if self.plugin != name:
            raise ValueError(f"the spec is for plugin {self.plugin!r}, not {name!r}")
        for field, ours, theirs in (("feature_windows", self.feature_windows, tuple(feature_windows)),
                                    ("sequence_length", self.sequence_length, sequence_length)):
            if ours is not None and ours != theirs:
                raise ValueError(f"the spec's {field} {_shown(ours)} differs from the plugin's {_shown(theirs)}; "
                                 f"leave it out of the spec (the plugin's is used)")
        return attrs.evolve(self, feature_windows=tuple(feature_windows), sequence_length=sequence_length)

    @property
    def class_name(self) -> str:
        return self.model_class.__name__

    def build(self, architecture: Mapping[str, Any]) -> nn.Module:
        arguments = {k: v for k, v in architecture.items() if k not in ("class", "sequence_length")}
        return self.model_class(**arguments)


def _shown(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple) else str(value)


def check_architecture(spec: SequenceClassifierSpec, architecture: Mapping[str, Any]) -> None:
    """``ValueError`` unless every bounded argument is an integer within ``spec.architecture_bounds``
    and ``sequence_length`` lies in ``1 .. MAX_SEQUENCE_LENGTH`` (no module is built)."""
    bounds = {**spec.architecture_bounds, "sequence_length": (1, MAX_SEQUENCE_LENGTH)}
    for key, (low, high) in bounds.items():
        value = architecture.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{key} must be an integer from {low} to {high}, got {str(value)[:40]}")
    dropout = architecture.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1), got {str(dropout)[:40]}")


def skeleton_shapes(spec: SequenceClassifierSpec, architecture: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """Name -> (dtype, shape) of the state dict ``architecture`` builds, and the bytes of all its tensors,
    from a skeleton on the meta device (no storage is allocated)."""
    with torch.device("meta"):
        skeleton = spec.build(architecture)
    shapes = {name: (t.dtype, tuple(t.shape)) for name, t in skeleton.state_dict().items()}
    tensors = [*skeleton.parameters(), *skeleton.buffers()]
    return shapes, sum(t.numel() * t.element_size() for t in tensors)


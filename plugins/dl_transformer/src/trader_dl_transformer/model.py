"""``TransformerClassifier``: input projection, sinusoidal positions, causal pre-norm encoder layers.

Causality: the attention mask lets step ``t`` attend only to steps ``<= t``, so the
output at ``t`` never depends on later inputs (a test changes the inputs after
``t`` and checks that the output at ``t`` stays the same).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["TransformerClassifier", "SinusoidalPositionalEncoding", "INPUT_WEIGHT"]

#: The tensor whose second dimension is the number of input features.
INPUT_WEIGHT = "input_projection.weight"


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sine/cosine position signal of "Attention is all you need" (not a learnt weight)."""

    pe: torch.Tensor  # a buffer (register_buffer), not a parameter

    def __init__(self, d_model: int, max_len: int = 1024) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
        self.register_buffer("pe", pe, persistent=False)
        self.max_len = max_len

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.max_len:
            raise ValueError(f"window of {length} steps is longer than max_len {self.max_len}")
        return x + self.pe[:length]


class TransformerClassifier(nn.Module):
    """Causal Transformer classifier: ``(batch, window, input_size)`` -> ``(batch, num_classes)`` logits.

    Inputs are projected to ``d_model``, given sinusoidal positions, and passed
    through ``num_layers`` pre-norm encoder layers (``nhead`` heads, feed-forward
    width ``dim_feedforward``) under a causal mask; the last step's normalised
    state feeds a linear head. :meth:`forward_sequence` returns the logits of every step.
    """

    def __init__(
        self,
        input_size: int = 86,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
        num_classes: int = 2,
        max_len: int = 1024,
    ) -> None:
        super().__init__()
        for name, value in (
            ("input_size", input_size), ("d_model", d_model), ("nhead", nhead), ("num_layers", num_layers),
            ("dim_feedforward", dim_feedforward), ("num_classes", num_classes), ("max_len", max_len),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if d_model % nhead:
            raise ValueError(f"d_model ({d_model}) must be divisible by nhead ({nhead})")
        if d_model % 2:
            raise ValueError(f"d_model must be even for the sinusoidal encoding, got {d_model}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be within [0, 1), got {dropout!r}")
        self.config = {
            "input_size": input_size,
            "d_model": d_model,
            "nhead": nhead,
            "num_layers": num_layers,
            "dim_feedforward": dim_feedforward,
            "dropout": float(dropout),
            "num_classes": num_classes,
            "max_len": max_len,
        }
        self.input_projection = nn.Linear(input_size, d_model)
        self.positional_encoding = SinusoidalPositionalEncoding(d_model, max_len)
        self.dropout = nn.Dropout(float(dropout))
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward, float(dropout), activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)
        self._masks: dict[int, torch.Tensor] = {}

    def architecture(self) -> dict[str, Any]:
        """The constructor arguments, as recorded in the manifest."""
        return {"class": "TransformerClassifier", **self.config}

    def causal_mask(self, length: int) -> torch.Tensor:
        """``(length, length)`` additive mask: 0 where step i may attend to step j <= i, -inf above."""
        mask = self._masks.get(length)
        if mask is None:
            mask = torch.triu(torch.full((length, length), float("-inf")), diagonal=1)
            self._masks[length] = mask
        return mask

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input_projection(x) * math.sqrt(self.config["d_model"])
        h = self.dropout(self.positional_encoding(h))
        return self.encoder(h, mask=self.causal_mask(x.shape[1]), is_causal=True)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, window, num_classes)``: step t's logits use inputs up to t only."""
        return self.head(self.norm(self.encode(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.encode(x)[:, -1]))

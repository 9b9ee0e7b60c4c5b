"""``BiLSTMClassifier``: a bidirectional LSTM over a window of feature rows, then a small head.

The window ends at the candle being decided, so reading it in both directions
sees nothing from the future.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BiLSTMClassifier", "INPUT_WEIGHT"]

#: The tensor whose second dimension is the number of input features.
INPUT_WEIGHT = "lstm.weight_ih_l0"


class BiLSTMClassifier(nn.Module):
    """Bidirectional LSTM classifier: ``(batch, window, input_size)`` -> ``(batch, num_classes)`` logits.

    The final hidden states of both directions of the top layer are concatenated,
    normalised and passed through a head (one hidden layer of ``head_hidden``
    units with GELU and dropout, or a single linear layer when ``head_hidden`` is 0).
    """

    def __init__(
        self,
        input_size: int = 86,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.2,
        num_classes: int = 2,
        head_hidden: int = 64,
        bidirectional: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers), ("num_classes", num_classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be within [0, 1), got {dropout!r}")
        if isinstance(head_hidden, bool) or not isinstance(head_hidden, int) or head_hidden < 0:
            raise ValueError(f"head_hidden must be an integer >= 0, got {head_hidden!r}")
        self.config = {
            "input_size": input_size,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "dropout": float(dropout),
            "num_classes": num_classes,
            "head_hidden": head_hidden,
            "bidirectional": bool(bidirectional),
        }
        self.lstm = nn.LSTM(
            input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=float(dropout) if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        width = hidden_size * (2 if bidirectional else 1)
        self.norm = nn.LayerNorm(width)
        if head_hidden:
            self.head = nn.Sequential(
                nn.Linear(width, head_hidden), nn.GELU(), nn.Dropout(float(dropout)), nn.Linear(head_hidden, num_classes)
            )
        else:
            self.head = nn.Sequential(nn.Linear(width, num_classes))

    def architecture(self) -> dict[str, Any]:
        """The constructor arguments, as recorded in the manifest."""
        return {"class": "BiLSTMClassifier", **self.config}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self._final_hidden(x)
        if self.config["bidirectional"]:
            last = torch.cat([hidden[-2], hidden[-1]], dim=1)
        else:
            last = hidden[-1]
        if self.training or torch.is_grad_enabled():
            return self.head(self.norm(last))
        return self._head_inference(last)

    def _head_inference(self, last: torch.Tensor) -> torch.Tensor:
        """``self.head(self.norm(last))`` in eval mode, as the functions those modules' forwards call
        (dropout is the identity in eval): the same tensor without a module call per layer."""
        norm = self.norm
        y = F.layer_norm(last, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        for layer in self.head:
            kind = type(layer)
            if kind is nn.Linear:
                linear = cast(nn.Linear, layer)  # the exact type, checked above
                y = F.linear(y, linear.weight, linear.bias)
            elif kind is nn.GELU:
                y = F.gelu(y, approximate=cast(nn.GELU, layer).approximate)
            elif kind is not nn.Dropout:
                y = layer(y)
        return y

    def _final_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The LSTM's final hidden states, ``(num_layers * directions, batch, hidden_size)``.

        Without autograd (inference), a batched input goes straight to the kernel that
        ``nn.LSTM.forward`` calls, with the same arguments and zero initial states: the same
        result without that method's per-call checks (about a tenth of a live decision).
        """
        lstm = self.lstm
        flat_weights = getattr(lstm, "_flat_weights", None)
        names = getattr(lstm, "_flat_weights_names", None)
        if (torch.is_grad_enabled() or x.dim() != 3 or x.size(-1) != lstm.input_size or lstm.proj_size
                or flat_weights is None or names is None or not self._flat_weights_current(lstm, names, flat_weights)):
            return lstm(x)[1][0]
        zeros = torch.zeros(lstm.num_layers * (2 if lstm.bidirectional else 1), x.size(0), lstm.hidden_size,
                            dtype=x.dtype, device=x.device)
        _, hidden, _ = torch.lstm(x, (zeros, zeros), flat_weights, lstm.bias, lstm.num_layers, lstm.dropout,
                                  lstm.training, lstm.bidirectional, lstm.batch_first)
        return hidden

    @staticmethod
    def _flat_weights_current(lstm: nn.LSTM, names: list[str], flat_weights: list[Any]) -> bool:
        """Whether the LSTM's flat weight list holds its current parameters (``nn.LSTM.forward``
        rebuilds it first otherwise, e.g. after parameters were swapped by ``functional_call``)."""
        parameters = lstm._parameters
        return len(names) == len(flat_weights) and all(
            parameters.get(name) is weight for name, weight in zip(names, flat_weights, strict=True)
        )

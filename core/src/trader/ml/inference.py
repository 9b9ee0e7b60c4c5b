"""Inference: batched over many windows (backtests, evaluation) or one window (live trading)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trader.ml.batches import WindowBatches

__all__ = ["predict_proba", "predict_window"]


def predict_proba(model: nn.Module, windows: WindowBatches, *, batch_size: int = 1024, threads: int | None = None) -> np.ndarray:
    """Class probabilities ``(len(windows), k)`` for every window, in order (``threads``: default_threads())."""
    from trader.ml.seeding import default_threads, torch_threads

    model.eval()
    out: list[np.ndarray] = []
    with torch_threads(threads or default_threads()), torch.inference_mode():
        for x, _ in windows.iter_batches(batch_size):
            out.append(torch.softmax(model(x), dim=-1).numpy())
    if not out:
        return np.empty((0, 0), dtype=np.float32)
    return np.concatenate(out)


def predict_window(model: nn.Module, window: np.ndarray, *, threads: int | None = None) -> np.ndarray:
    """Class probabilities ``(k,)`` for one ``(length, F)`` float32 window (the live path)."""
    from trader.ml.seeding import torch_threads

    x = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32)).unsqueeze(0)
    with torch_threads(threads), torch.inference_mode():
        return torch.softmax(model(x), dim=-1)[0].numpy()

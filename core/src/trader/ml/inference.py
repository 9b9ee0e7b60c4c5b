"""Inference: batched over many windows (backtests, evaluation) or one window (live trading)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from trader.ml.batches import WindowBatches

__all__ = ["predict_proba", "predict_window", "INFERENCE_BATCH_SIZE"]

#: Windows per batch of the batched forward pass. Past a few hundred windows a batch's tensors
#: (the Transformer's attention weights: 1,024 windows x 4 heads x 60 x 60 floats = 59 MB) are
#: fresh memory mapped for each batch, and the page faults cost more than the larger matrix
#: products save: 256 took 16-40% less CPU time than 1,024 for both shipped networks
#: (bench/RESULTS.md, issue 19).
INFERENCE_BATCH_SIZE = 256


def predict_proba(model: nn.Module, windows: WindowBatches, *, batch_size: int = INFERENCE_BATCH_SIZE,
                  threads: int | None = None) -> np.ndarray:
    """Class probabilities ``(len(windows), k)`` for every window, in order.

    The windows are cut into batches of ``batch_size``; ``threads`` batches (default:
    :func:`~trader.ml.seeding.default_batch_threads`, every usable core) run side by side,
    each on one torch thread. Every batch is the same computation whatever ``threads`` is
    (same windows, same shape, one-thread kernels), so the probabilities are bit for bit
    those of ``threads=1``. ``model``'s forward must keep no state between calls (torch's
    modules in eval mode keep none).
    """
    from trader.ml.seeding import default_batch_threads, torch_threads

    if isinstance(threads, bool) or not isinstance(threads, (int, type(None))) or (threads is not None and threads < 1):
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    model.eval()
    n = len(windows)
    starts = range(0, n, batch_size)

    def forward(start: int) -> np.ndarray:
        with torch.inference_mode():  # thread-local: entered in the thread that runs the batch
            x = windows.gather(torch.arange(start, min(start + batch_size, n)))
            return torch.softmax(model(x), dim=-1).numpy()

    workers = min(threads or default_batch_threads(), len(starts))
    with torch_threads(1):  # threads started below take this count (torch reads it when a thread first runs an op)
        if workers <= 1:
            out = [forward(start) for start in starts]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="trader-forward") as pool:
                out = list(pool.map(forward, starts))
    if not out:
        return np.empty((0, 0), dtype=np.float32)
    return np.concatenate(out)


def predict_window(model: nn.Module, window: np.ndarray, *, threads: int | None = None) -> np.ndarray:
    """Class probabilities ``(k,)`` for one ``(length, F)`` float32 window (the live path)."""
    from trader.ml.seeding import torch_threads

    x = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32)).unsqueeze(0)
    with torch_threads(threads), torch.inference_mode():
        return torch.softmax(model(x), dim=-1)[0].numpy()

"""The training report: loss curves and validation metrics as a PNG (matplotlib, Agg backend)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["training_report_png"]


def training_report_png(history: Mapping[str, Sequence[float]], title: str, metrics: Mapping[str, Any] | None = None) -> bytes:
    """PNG bytes: training and validation loss per epoch (best epoch marked) and validation accuracy."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    epochs = list(history.get("epoch", []))
    fig = Figure(figsize=(10, 4), dpi=100)
    ax_loss, ax_acc = fig.subplots(1, 2)
    if epochs:
        ax_loss.plot(epochs, history["train_loss"], marker="o", label="training loss")
        ax_loss.plot(epochs, history["val_loss"], marker="o", label="validation loss")
        best = (metrics or {}).get("best_epoch")
        if best:
            ax_loss.axvline(best, color="grey", linestyle="--", label=f"best epoch {best}")
        ax_acc.plot(epochs, history["val_accuracy"], marker="o", label="validation accuracy")
        ax_acc.plot(epochs, history["val_balanced_accuracy"], marker="o", label="validation balanced accuracy")
    baseline = (metrics or {}).get("test", {}).get("baseline", {}).get("balanced_accuracy")
    if baseline is not None:
        ax_acc.axhline(baseline, color="red", linestyle=":", label="majority baseline (test)")
    from matplotlib.ticker import MaxNLocator

    for axis in (ax_loss, ax_acc):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_title("loss")
    ax_loss.legend()
    ax_acc.set_xlabel("epoch")
    ax_acc.set_title("validation metrics")
    ax_acc.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()

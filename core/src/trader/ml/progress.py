"""A rich progress bar for training: epoch, batches, training loss and validation metrics."""

from __future__ import annotations

from types import TracebackType
from typing import Any

__all__ = ["TrainingProgress"]


class TrainingProgress:
    """Shows ``epoch i/n``, a batch bar, the running loss and the last validation metrics.

    Disabled (a no-op) unless ``enabled``; writes to stderr so stdout stays clean
    for ``--json`` output.
    """

    def __init__(self, epochs: int, *, enabled: bool = True, description: str = "training") -> None:
        self.enabled = enabled
        self.epochs = epochs
        self.description = description
        self._progress: Any = None
        self._epoch_task: Any = None
        self._batch_task: Any = None
        self._last: str = ""

    def __enter__(self) -> TrainingProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._epoch_task = self._progress.add_task(self.description, total=self.epochs, status="")
            self._batch_task = self._progress.add_task("  batches", total=1, status="")
        return self

    def start_epoch(self, epoch: int, batches: int) -> None:
        if self._progress is not None:
            self._progress.update(self._epoch_task, description=f"{self.description} epoch {epoch}/{self.epochs}")
            self._progress.reset(self._batch_task, total=max(batches, 1), status="")

    def batch_done(self, loss: float) -> None:
        if self._progress is not None:
            self._progress.update(self._batch_task, advance=1, status=f"loss {loss:.4f}")

    def epoch_done(self, metrics: dict[str, float]) -> None:
        self._last = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        if self._progress is not None:
            self._progress.update(self._epoch_task, advance=1, status=self._last)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

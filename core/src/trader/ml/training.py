"""The training loop shared by the torch strategies.

AdamW with weight decay, a warm-up + cosine learning-rate schedule (or a constant
rate), gradient-norm clipping, class weights for imbalanced labels, early stopping
on validation loss with the best weights restored, reproducible seeding and a
rich progress bar.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import attrs
import numpy as np
import torch
from attrs import field, frozen
from torch import nn

from trader.evaluation.classification import accuracy, balanced_accuracy
from trader.ml.batches import WindowBatches
from trader.ml.progress import TrainingProgress
from trader.ml.seeding import default_threads, seed_everything, torch_threads
from trader.validators import integer, number, optional

__all__ = ["TrainConfig", "FitResult", "fit", "class_weights", "SCHEDULES"]

SCHEDULES = ("cosine", "constant")


@frozen
class TrainConfig:
    """Optimisation settings. Every field can be set from ``[plugins.NAME.train]``."""

    epochs: int = field(default=20, validator=integer(1))
    batch_size: int = field(default=256, validator=integer(1))
    learning_rate: float = field(default=1e-3, validator=number(0, low_open=True))
    weight_decay: float = field(default=1e-2, validator=number(0))
    schedule: str = field(default="cosine", validator=attrs.validators.in_(SCHEDULES))
    warmup_fraction: float = field(default=0.05, validator=number(0, 1, high_open=True))
    grad_clip: float = field(default=1.0, validator=number(0))  # 0 turns clipping off
    patience: int = field(default=5, validator=integer(1))
    min_delta: float = field(default=1e-4, validator=number(0))
    class_weighting: bool = True
    seed: int = field(default=0, validator=attrs.validators.and_(attrs.validators.instance_of(int), attrs.validators.ge(0)))
    threads: int | None = field(default=None, validator=optional(integer(1)))  # None: default_threads()
    eval_batch_size: int = field(default=1024, validator=integer(1))
    max_batches_per_epoch: int | None = field(default=None, validator=optional(integer(1)))

    @classmethod
    def from_params(cls, params: dict[str, Any], **defaults: Any) -> TrainConfig:
        """Build from a parameter mapping, ignoring keys that are not optimisation settings."""
        names = {a.name for a in attrs.fields(cls)}
        values = {**defaults, **{k: v for k, v in params.items() if k in names}}
        return cls(**values)


@frozen
class FitResult:
    """What :func:`fit` did: per-epoch history, the epoch whose weights were kept, throughput."""

    history: dict[str, list[float]]
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    train_samples: int
    train_seconds: float
    class_weights: tuple[float, ...]

    @property
    def samples_per_second(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds > 0 else math.nan


def class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``n / (k * count_c)`` per class (1 for absent classes): balanced classes get weight 1."""
    counts = torch.bincount(labels, minlength=n_classes).to(torch.float32)
    weights = torch.where(counts > 0, labels.numel() / (n_classes * counts.clamp(min=1)), torch.ones_like(counts))
    return weights


def _schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    warmup = int(total_steps * config.warmup_fraction) if config.schedule == "cosine" else 0

    def factor(step: int) -> float:
        if config.schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def evaluate_loss(
    model: nn.Module, data: WindowBatches, loss_fn: nn.Module, batch_size: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean (class-weighted) loss, probabilities and labels over ``data``, in order."""
    model.eval()
    total, weight_sum, probs, labels = 0.0, 0.0, [], []
    with torch.inference_mode():
        for x, y in data.iter_batches(batch_size):
            logits = model(x)
            loss = loss_fn(logits, y)
            assert y is not None  # evaluation batches carry their labels
            weight = getattr(loss_fn, "weight", None)
            w = float(weight[y].sum()) if isinstance(weight, torch.Tensor) else float(y.numel())
            total += float(loss) * w
            weight_sum += w
            probs.append(torch.softmax(logits, dim=-1).numpy())
            labels.append(y.numpy())
    if weight_sum == 0:
        return math.nan, np.empty((0, 0)), np.empty(0, dtype=np.int64)
    return total / weight_sum, np.concatenate(probs), np.concatenate(labels)


def fit(
    model: nn.Module,
    train: WindowBatches | Any,
    validation: WindowBatches | Any,
    config: TrainConfig,
    *,
    n_classes: int,
    show_progress: bool = False,
    description: str = "training",
) -> FitResult:
    """Train ``model`` on ``train``, stopping early on ``validation`` loss; keep the best weights.

    The model must map ``(B, L, F)`` float32 windows to ``(B, n_classes)`` logits.
    ``train`` and ``validation`` are :class:`WindowBatches` or
    :class:`trader.features.TimeSeriesDataset` objects (e.g. ``DataPreprocessor().prepare(...).dataset("train")``).
    """
    train = WindowBatches.from_dataset(train)
    validation = WindowBatches.from_dataset(validation)
    if len(train) == 0 or len(validation) == 0:
        raise ValueError(f"need training and validation windows (got {len(train)} and {len(validation)})")
    with torch_threads(config.threads or default_threads()):
        generator = seed_everything(config.seed)
        train_labels = train.end_labels()
        weights = class_weights(train_labels, n_classes) if config.class_weighting else None
        loss_fn = nn.CrossEntropyLoss(weight=weights)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        batches = math.ceil(len(train) / config.batch_size)
        if config.max_batches_per_epoch is not None:
            batches = min(batches, config.max_batches_per_epoch)
        limit = batches * config.batch_size if config.max_batches_per_epoch is not None else None
        scheduler = _schedule(optimizer, config, batches * config.epochs)
        history: dict[str, list[float]] = {
            key: [] for key in ("epoch", "train_loss", "val_loss", "val_accuracy", "val_balanced_accuracy", "learning_rate", "seconds")
        }
        best_loss, best_epoch, best_state, bad_epochs = math.inf, 0, None, 0
        stopped_early, samples, train_seconds = False, 0, 0.0
        with TrainingProgress(config.epochs, enabled=show_progress, description=description) as progress:
            for epoch in range(1, config.epochs + 1):
                started = time.perf_counter()
                progress.start_epoch(epoch, batches)
                model.train()
                running, seen = 0.0, 0
                for x, y in train.iter_batches(config.batch_size, shuffle=True, generator=generator, limit=limit):
                    assert y is not None  # training batches carry their labels
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(model(x), y)
                    loss.backward()
                    if config.grad_clip > 0:
                        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    value = loss.item()
                    running += value * y.numel()
                    seen += y.numel()
                    progress.batch_done(value)
                train_time = time.perf_counter() - started
                train_seconds += train_time
                samples += seen
                val_loss, val_probs, val_labels = evaluate_loss(model, validation, loss_fn, config.eval_batch_size)
                predictions = val_probs.argmax(axis=1)
                metrics = {
                    "train_loss": running / max(seen, 1),
                    "val_loss": val_loss,
                    "val_accuracy": accuracy(val_labels, predictions),
                    "val_balanced_accuracy": balanced_accuracy(val_labels, predictions),
                }
                for key, value in metrics.items():
                    history[key].append(float(value))
                history["epoch"].append(epoch)
                history["learning_rate"].append(float(optimizer.param_groups[0]["lr"]))
                history["seconds"].append(time.perf_counter() - started)
                progress.epoch_done(metrics)
                if val_loss < best_loss - config.min_delta:
                    best_loss, best_epoch, bad_epochs = val_loss, epoch, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad_epochs += 1
                    if bad_epochs >= config.patience:
                        stopped_early = epoch < config.epochs
                        break
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
    return FitResult(
        history=history,
        best_epoch=best_epoch,
        best_val_loss=float(best_loss),
        epochs_run=len(history["epoch"]),
        stopped_early=stopped_early,
        train_samples=samples,
        train_seconds=train_seconds,
        class_weights=tuple(float(w) for w in weights) if weights is not None else (),
    )

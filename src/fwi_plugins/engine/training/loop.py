"""The training loop's state and its epochs: what :func:`~fwi_plugins.engine.training.train.train` repeats.

:class:`TrainingLoop` holds what one call of ``train`` works with and how far it has
come; :func:`run_epoch` trains one epoch of it: re-seed and draw the epoch's order,
take the optimisation steps (checkpointing within the epoch when a time budget asks
for it, reporting every ``log_every_steps`` steps when someone listens), then validate,
select, checkpoint and report.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ...data.rows import take_rows
from .checkpoint import save_training_checkpoint, seed_epoch, selectable_state
from ..options import TrainOptions
from .distributed import DistInfo, agree, all_reduce_sums, barrier
from .losses import BatchLoss, batch_loss
from ..notify import Notify
from .data import DeviceRows, EpochSampler, TrainData
from ..device import autocast
from .validation import validate

if TYPE_CHECKING:
    from ...data import Normalization
    from ...physics import Physics
    from .result import TrainResult

__all__ = ["Schedule", "Selection", "StepWindow", "TrainingLoop", "lr_factor", "run_epoch"]


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then cosine decay."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Schedule:
    """How many optimisation steps a training takes: per epoch, in all (``max_steps`` caps it), warming up."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int

    @classmethod
    def plan(cls, samples_per_rank: int, options: TrainOptions) -> Schedule:
        """The schedule of ``options`` for a process drawing ``samples_per_rank`` samples per epoch."""
        steps_per_epoch = math.ceil(samples_per_rank / options.batch_size)
        total_steps = steps_per_epoch * options.epochs
        if options.max_steps:
            total_steps = min(total_steps, options.max_steps)
        return cls(steps_per_epoch, total_steps, round(options.warmup_epochs * steps_per_epoch))

    def lr(self, step: int, options: TrainOptions) -> float:
        """The learning rate at ``step`` (0-based)."""
        return options.lr * lr_factor(step, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                                      min_ratio=options.min_lr_ratio)


@dataclass
class Selection:
    """Model selection on validation (``select_best``): the best epoch so far and its weights."""

    enabled: bool
    score_key: str
    epoch: int | None = None
    score: float | None = None
    state: dict[str, torch.Tensor] | None = None

    def keep(self, epoch: int, score: float, model: nn.Module) -> None:
        """Remember ``model``'s weights as those of ``epoch``, scoring ``score``."""
        self.epoch, self.score, self.state = epoch, score, selectable_state(model)

    def consider(self, epoch: int, metrics: Mapping[str, Any], model: nn.Module) -> None:
        """Keep this epoch's weights if they score better than the best so far."""
        if self.enabled and self.score_key in metrics and (self.score is None or metrics[self.score_key] < self.score):
            self.keep(epoch, metrics[self.score_key], model)


@dataclass
class StepWindow:
    """The steps since the last ``fwi_train_step`` report: sample-weighted loss sums and when they began."""

    started: float
    sums: dict[str, float]

    @classmethod
    def open(cls) -> StepWindow:
        return cls(started=time.perf_counter(), sums={"loss": 0.0, "label": 0.0, "physics": 0.0, "n": 0.0})


@dataclass
class TrainingLoop:
    """One call of :func:`~fwi_plugins.engine.training.train.train`: what it works with, and how far it has come."""

    model: nn.Module
    net: nn.Module  # ``model``, or ``model`` in DistributedDataParallel
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    data: TrainData
    val_data: TrainData | None
    options: TrainOptions
    normalization: Normalization
    physics: Physics | None  # None when lambda_physics is 0
    val_physics: Physics | None  # scores validation by the data misfit: with lambda_physics, or unlabelled val data
    device: str
    info: DistInfo
    sampler: EpochSampler
    schedule: Schedule
    fingerprint: dict[str, Any]
    selection: Selection
    stage: str
    checkpoint_dir: str | Path | None
    run_dir: str | Path | None
    notify: Notify
    result: TrainResult
    step: int = 0
    partial: dict[str, Any] | None = None  # where a checkpoint taken within an epoch stopped
    budget_start: float = 0.0
    last_checkpoint: float = 0.0
    step_every: int = 0  # fwi_train_step every this many steps; 0: off, or no plugin implements it
    window: StepWindow | None = None  # the steps since the last fwi_train_step

    @property
    def use_labels(self) -> bool:
        return self.options.labels == "full"


def run_epoch(loop: TrainingLoop, epoch: int) -> bool:
    """One epoch: its batches, then validation, selection, checkpoint and report; ``False`` ends training."""
    options = loop.options
    if options.max_steps and loop.step >= options.max_steps:
        return False
    started = time.perf_counter()
    order, first_batch, sums = _start_epoch(loop, epoch)
    out_of_time, interrupted = _train_batches(loop, epoch, order, first_batch, sums, started)
    if interrupted:
        _stop_for_budget(loop)
        return False
    metrics = _end_epoch(loop, epoch, sums, started)
    _report_epoch(loop, epoch, metrics)
    barrier(loop.info)
    if (options.max_steps and loop.step >= options.max_steps) or out_of_time:
        loop.result.complete = not out_of_time or epoch == options.epochs or loop.step >= loop.schedule.total_steps
        return False
    return True


def _start_epoch(loop: TrainingLoop, epoch: int) -> tuple[list[int], int, dict[str, float]]:
    """Seed the epoch and draw its order; returns the order, the first batch to train and the running sums
    (both taken from a checkpoint within this epoch, if training resumes from one)."""
    seed_epoch(loop.options.seed, epoch, loop.info.rank)
    loop.sampler.set_epoch(epoch)
    order = list(iter(loop.sampler))
    loop.net.train()
    sums = {"loss": 0.0, "label": 0.0, "physics": 0.0, "n": 0.0}
    first_batch = 0
    if loop.partial is not None and loop.partial["epoch"] == epoch:
        # Continue a checkpoint taken within this epoch: same order, same random state.
        first_batch, sums = int(loop.partial["batch"]), dict(loop.partial["sums"])
        torch.set_rng_state(loop.partial["rng"])
        loop.partial = None
    return order, first_batch, sums


def _train_batches(loop: TrainingLoop, epoch: int, order: list[int], first_batch: int, sums: dict[str, float],
                   started: float) -> tuple[bool, bool]:
    """The epoch's optimisation steps from ``first_batch`` on, adding to ``sums``.

    Returns:
        ``(out_of_time, interrupted)``: the ``max_minutes`` budget is spent, and it stopped
        the epoch before its last batch (after a checkpoint within it).
    """
    from tqdm.auto import tqdm

    options, steps = loop.options, loop.schedule.steps_per_epoch
    bar = tqdm(total=steps, initial=first_batch, desc=f"{loop.stage} {epoch}/{options.epochs}",
               unit="step", disable=not (options.progress and loop.info.is_main), leave=False, file=sys.stderr)
    out_of_time = False
    b = first_batch
    loop.window = StepWindow.open() if loop.step_every else None
    for b in range(first_batch, steps):
        idx = np.sort(np.asarray(order[b * options.batch_size:(b + 1) * options.batch_size]))
        if len(idx) == 0:
            continue
        loss = _train_step(loop, idx)
        _add_to_sums(sums, loss, float(len(idx)))
        if loop.window is not None:
            _report_step(loop, epoch, loss, float(len(idx)))
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss.total.detach()):.4f}")
        if options.max_steps and loop.step >= options.max_steps:
            break  # this epoch ends here, validated and checkpointed as any other
        now = time.perf_counter()
        out_of_time = agree(options.max_minutes > 0 and now - loop.budget_start >= 60 * options.max_minutes,
                            loop.info, loop.device)
        due = agree(options.checkpoint_minutes > 0 and now - loop.last_checkpoint >= 60 * options.checkpoint_minutes,
                    loop.info, loop.device)
        if (out_of_time or due) and b + 1 < steps:
            _checkpoint_within(loop, epoch, b + 1, sums, started, now)
            if out_of_time:
                break
    bar.close()
    return out_of_time, out_of_time and b + 1 < steps


def _train_step(loop: TrainingLoop, idx: np.ndarray) -> BatchLoss:
    """One optimisation step on the samples ``idx``: learning rate, forward, loss, backward, update."""
    options, device = loop.options, loop.device
    for group in loop.optimizer.param_groups:
        group["lr"] = loop.schedule.lr(loop.step, options)
    x_raw, velocity = _batch(loop, idx)
    x_in = x_raw
    if options.augment:
        from .augment import augment_gathers, augment_generator

        # The network sees augmented gathers; the physics term below still compares with the clean ones.
        x_in = augment_gathers(x_raw, options.augment, prob=options.augment_prob,
                               generator=augment_generator(options.seed, loop.step, loop.info.rank, x_raw.device))
    with autocast(device, options.amp):
        pred = loop.net(loop.normalization.gathers_to_unit(x_in))
    pred = pred.float()
    y = None if velocity is None else loop.normalization.velocity_to_unit(velocity)
    loss = batch_loss(pred, x_raw, y, lambda_ssim=options.lambda_ssim, lambda_physics=options.lambda_physics,
                      physics_samples=options.physics_samples, normalization=loop.normalization,
                      physics=loop.physics)
    loop.optimizer.zero_grad(set_to_none=True)
    loss.total.backward()
    if options.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(loop.params, options.grad_clip)
    loop.optimizer.step()
    loop.step += 1
    return loss


def _report_step(loop: TrainingLoop, epoch: int, loss: BatchLoss, n: float) -> None:
    """Add the step to the window; every ``step_every`` steps call ``fwi_train_step`` with its means (rank 0)."""
    assert loop.window is not None
    window = loop.window
    _add_to_sums(window.sums, loss, n)
    if loop.step % loop.step_every:
        return
    sums, seconds = window.sums, time.perf_counter() - window.started
    n_seen = max(sums["n"], 1.0)
    metrics = {"loss": sums["loss"] / n_seen}
    if loop.use_labels:
        metrics["label_loss"] = sums["label"] / n_seen
    if loop.physics is not None:
        metrics["physics_loss"] = sums["physics"] / n_seen
    metrics["lr"] = float(loop.optimizer.param_groups[0]["lr"])
    # Every process trains batches of the same size in step, so rank 0's rate times the world is the total.
    metrics["samples_per_s"] = sums["n"] * loop.info.world_size / max(seconds, 1e-9)
    metrics["epoch"] = epoch
    loop.notify("fwi_train_step", run_dir=Path(loop.run_dir) if loop.run_dir else None, stage=loop.stage,
                step=loop.step, metrics=metrics)
    loop.window = StepWindow.open()


def _batch(loop: TrainingLoop, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The raw gathers and (with labels) velocity in m/s of the samples ``idx``, on the training device.

    Device-resident rows (:class:`~.train_data.DeviceRows`) are indexed where they are: nothing
    goes through the host. Host arrays (possibly memory-mapped, read-only) have the batch
    copied out and sent.
    """
    data, device = loop.data, loop.device
    velocity = data.velocity if loop.use_labels else None
    if isinstance(data.gathers, DeviceRows):
        rows = torch.as_tensor(idx, device=data.gathers.device)
        y = velocity.take(rows).to(device) if isinstance(velocity, DeviceRows) else None
        return data.gathers.take(rows).to(device), y
    x = torch.from_numpy(take_rows(data.gathers, idx)).to(device)
    if velocity is None or isinstance(velocity, DeviceRows):  # TrainData holds both on the device or neither
        return x, None
    return x, torch.from_numpy(take_rows(velocity, idx)).to(device)


def _add_to_sums(sums: dict[str, float], loss: BatchLoss, n: float) -> None:
    """Add a batch of ``n`` samples to the epoch's sample-weighted loss sums."""
    sums["n"] += n
    sums["loss"] += float(loss.total.detach()) * n
    if loss.label is not None:
        sums["label"] += float(loss.label.detach()) * n
    if loss.physics is not None:
        sums["physics"] += float(loss.physics.detach()) * n


def _checkpoint_within(loop: TrainingLoop, epoch: int, next_batch: int, sums: dict[str, float], started: float,
                       now: float) -> None:
    """A checkpoint within ``epoch`` (rank 0), from which training continues at ``next_batch``."""
    if loop.info.is_main and loop.checkpoint_dir is not None:
        loop.result.wall_time += now - started
        _checkpoint(loop, epoch - 1, within={"epoch": epoch, "batch": next_batch, "sums": sums})
        loop.result.wall_time -= now - started
    loop.last_checkpoint = now
    barrier(loop.info)


def _stop_for_budget(loop: TrainingLoop) -> None:
    """The ``max_minutes`` budget stopped training within an epoch: the result is incomplete."""
    loop.result.complete = False
    loop.result.steps = loop.step
    if loop.info.is_main and loop.options.progress:
        print(f"{loop.stage}: the {loop.options.max_minutes:g}-minute budget is spent at step {loop.step}; "
              f"run the same command again to resume", file=sys.stderr)


def _end_epoch(loop: TrainingLoop, epoch: int, sums: dict[str, float], started: float) -> dict[str, Any]:
    """The epoch's metrics (training losses reduced over ranks, validation), recorded in the result."""
    sums = all_reduce_sums(sums, loop.info, loop.device)
    metrics: dict[str, Any] = {"epoch": epoch, "step": loop.step, "lr": loop.optimizer.param_groups[0]["lr"],
                               "train_loss": sums["loss"] / max(sums["n"], 1.0)}
    if loop.use_labels:
        metrics["train_label_loss"] = sums["label"] / max(sums["n"], 1.0)
    if loop.physics is not None:
        metrics["train_physics_loss"] = sums["physics"] / max(sums["n"], 1.0)
    if loop.val_data is not None and len(loop.val_data):
        metrics.update(validate(loop.model, loop.val_data, options=loop.options, normalization=loop.normalization,
                                physics=loop.val_physics, device=loop.device, info=loop.info))
    metrics["epoch_time"] = time.perf_counter() - started
    loop.selection.consider(epoch, metrics, loop.model)
    loop.result.history.append(metrics)
    loop.result.epochs, loop.result.steps = epoch, loop.step
    loop.result.wall_time += metrics["epoch_time"]
    return metrics


def _report_epoch(loop: TrainingLoop, epoch: int, metrics: dict[str, Any]) -> None:
    """Rank 0 checkpoints the finished epoch, prints its line and calls ``fwi_epoch_end``."""
    if not loop.info.is_main:
        return
    if loop.checkpoint_dir is not None:
        _checkpoint(loop, epoch)
        loop.last_checkpoint = time.perf_counter()
    if loop.options.progress:
        print(_epoch_line(loop.stage, metrics, loop.options.epochs), file=sys.stderr)
    loop.notify("fwi_epoch_end", run_dir=Path(loop.run_dir) if loop.run_dir else None, stage=loop.stage,
                epoch=epoch, metrics=dict(metrics))


def _checkpoint(loop: TrainingLoop, epoch_done: int, *, within: dict[str, Any] | None = None) -> None:
    """Write the loop's checkpoint after ``epoch_done`` finished epochs (rank 0, with a checkpoint folder).

    ``within``: where a checkpoint within an epoch stopped (see :func:`save_training_checkpoint`).
    """
    assert loop.checkpoint_dir is not None
    selection, result = loop.selection, loop.result
    state = {"step": loop.step, "history": result.history, "wall_time": result.wall_time,
             "fingerprint": loop.fingerprint, "stage": loop.stage, "best_epoch": selection.epoch,
             "best_score": selection.score}
    save_training_checkpoint(loop.checkpoint_dir, epoch=epoch_done, model=loop.model, optimizer=loop.optimizer,
                             state=state, best_state=selection.state, within=within)


def _epoch_line(stage: str, metrics: Mapping[str, Any], epochs: int) -> str:
    """The line printed at the end of an epoch."""
    parts = [f"{stage} epoch {metrics['epoch']}/{epochs}"]
    for key in ("train_loss", "val_mae", "val_misfit"):
        if key in metrics:
            parts.append(f"{key} {metrics[key]:.4g}")
    parts.append(f"{metrics['epoch_time']:.1f}s")
    return "  ".join(parts)

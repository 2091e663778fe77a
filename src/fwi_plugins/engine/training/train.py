"""One training loop for pretraining and adaptation.

The loss is the L1 distance of the predicted normalised velocity to the label plus
``lambda_physics`` times the physics misfit between gathers simulated from the
prediction (in m/s) and the observed raw gathers; with ``labels="none"`` only the physics
term remains (label-free adaptation); see :mod:`.losses`. AdamW with linear warm-up then
cosine decay; bfloat16 autocast for the network on CUDA (physics always runs in float32).

Every epoch ends with validation and a checkpoint (safetensors tensors plus a JSON
state, written atomically), so a killed job resumes from the last finished epoch with
the same result as an uninterrupted one: randomness is re-seeded from ``(seed, epoch)``
at the start of each epoch instead of being saved (see :mod:`.checkpoint`).

Launched by ``torchrun`` (``WORLD_SIZE`` > 1) the loop trains with DistributedDataParallel
(gloo on CPU, nccl on GPU); each process sees its shard of every epoch and only rank 0
writes files and reports (see :mod:`.distributed`). One epoch of the loop is
:func:`.loop.run_epoch`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ...errors import ConfigError, DataError
from .checkpoint import resume_training, training_fingerprint
from ..config import run_device
from ..options import TrainOptions
from .distributed import DistInfo, current_dist, wrap_ddp
from .loop import Schedule, Selection, TrainingLoop, run_epoch
from ..notify import Notify, listens, no_notify
from .data import TrainData, epoch_sampler
from .result import TrainResult
from .validation import validate

if TYPE_CHECKING:
    from ...data import Normalization
    from ...physics import Physics

__all__ = ["train"]


# -- the loop ------------------------------------------------------------------------------
def train(model: nn.Module, train_data: TrainData, val_data: TrainData | None, *,
          options: TrainOptions, normalization: Normalization, physics: Physics | None = None,
          checkpoint_dir: str | Path | None = None, samples_per_epoch: int | None = None,
          stage: str = "adapt", run_dir: str | Path | None = None, notify: Notify | None = None,
          device: str | None = None, start_from: str = "") -> TrainResult:
    """Train ``model``'s trainable parameters; resume from ``checkpoint_dir`` when it holds one.

    Args:
        model: the network (already adapted by a PEFT method, or whole for pretraining);
            only parameters with ``requires_grad`` are optimised. Trained in place.
        train_data: training arrays (raw gathers, velocity in m/s, optional weights).
        val_data: validation arrays, or ``None`` to skip validation.
        options: the loop's options (:class:`~fwi_plugins.engine.config.TrainOptions`).
        normalization: the dataset's ``Normalization`` (gathers and velocity scaling).
        physics: a ``Physics`` object; needed when ``lambda_physics`` > 0.
        checkpoint_dir: where checkpoints go each epoch (``None``: no checkpoints).
        samples_per_epoch: samples drawn per epoch with weighted sampling (mixtures);
            defaults to the number of training samples.
        stage: ``"adapt"`` or ``"pretrain"``, passed to the ``fwi_epoch_end`` hook.
        run_dir: passed to lifecycle hooks.
        notify: ``notify(hook_name, **kwargs)`` for lifecycle hooks (the plugin
            manager's ``notify``); the engine itself never imports pluggy.
        device: ``"cpu"``, ``"cuda:0"``, ...; defaults to ``options.device`` resolved.
        start_from: a digest of the weights the training started from (recorded in the
            checkpoints; a checkpoint recorded with another is not resumed); empty: unchecked.

    Returns:
        A :class:`TrainResult`; ``model`` holds the final weights.

    Raises:
        ConfigError: labels are asked for but missing, physics is missing, or an existing
            checkpoint was written with different settings.
    """
    device = device or run_device(options.device)
    info = current_dist(device)
    loop = _training_loop(model, train_data, val_data, options=options, normalization=normalization,
                          physics=physics, samples_per_epoch=samples_per_epoch, device=device, info=info,
                          start_from=start_from, stage=stage, checkpoint_dir=checkpoint_dir, run_dir=run_dir,
                          notify=notify or no_notify)
    if info.is_main and listens(loop.notify, "fwi_train_step"):
        loop.step_every = options.log_every_steps
    start_epoch = _resume(loop)
    model.to(device)
    loop.step = loop.result.steps
    loop.budget_start = loop.last_checkpoint = time.perf_counter()
    _validate_start(loop, start_epoch)
    for epoch in range(start_epoch, options.epochs + 1):
        if not run_epoch(loop, epoch):
            break
    _restore_best(loop)
    model.eval()
    return loop.result


def _training_loop(model: nn.Module, train_data: TrainData, val_data: TrainData | None, *, options: TrainOptions,
                   normalization: Normalization, physics: Physics | None, samples_per_epoch: int | None,
                   device: str, info: DistInfo, start_from: str, stage: str, checkpoint_dir: str | Path | None,
                   run_dir: str | Path | None, notify: Notify) -> TrainingLoop:
    """The loop's state before its first epoch: trainable parameters, optimiser, sampler, schedule, fingerprint."""
    params = _trainable_parameters(model, train_data, options, physics)
    model.to(device)
    net = wrap_ddp(model, info, device)
    sampler = epoch_sampler(train_data, samples_per_epoch, info=info, seed=options.seed)
    schedule = Schedule.plan(len(sampler), options)
    return TrainingLoop(model=model, net=net, params=params,
                        optimizer=torch.optim.AdamW(params, lr=options.lr, weight_decay=options.weight_decay),
                        data=train_data, val_data=val_data, options=options, normalization=normalization,
                        physics=physics if options.lambda_physics > 0 else None,
                        val_physics=_validation_physics(physics, options, val_data), device=device, info=info,
                        sampler=sampler, schedule=schedule,
                        fingerprint=training_fingerprint(options, len(train_data), schedule.steps_per_epoch,
                                                         info.world_size, start_from),
                        selection=_selection(options, val_data), stage=stage, checkpoint_dir=checkpoint_dir,
                        run_dir=run_dir, notify=notify, result=TrainResult())


def _trainable_parameters(model: nn.Module, data: TrainData, options: TrainOptions,
                          physics: Physics | None) -> list[nn.Parameter]:
    """The parameters to optimise, once the options are known to fit the data, model and physics."""
    if options.labels == "full" and data.velocity is None:
        raise ConfigError("option 'labels' is 'full' but the training data has no velocity labels; "
                          "use labels=none (label-free adaptation) with lambda_physics > 0")
    if options.lambda_physics > 0 and physics is None:
        raise ConfigError("option 'lambda_physics' > 0 needs a physics component")
    if len(data) == 0:
        raise DataError("the training split is empty")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters (check the PEFT method and its options)")
    return params


def _validation_physics(physics: Physics | None, options: TrainOptions, val_data: TrainData | None) -> Physics | None:
    """The physics that scores validation by the data misfit: with a physics loss term, or when the
    validation data carry no labels (then the misfit is the only score selection can use)."""
    if options.lambda_physics > 0 or (val_data is not None and val_data.velocity is None):
        return physics
    return None


def _selection(options: TrainOptions, val_data: TrainData | None) -> Selection:
    """Selection by validation MAE with labels, by the physics misfit without; off without validation data."""
    enabled = options.select_best and val_data is not None and len(val_data) > 0
    score_key = "val_mae" if val_data is not None and val_data.velocity is not None else "val_misfit"
    return Selection(enabled=bool(enabled), score_key=score_key)


def _resume(loop: TrainingLoop) -> int:
    """Continue from the loop's latest checkpoint, if it has one; returns the first epoch to train."""
    if loop.checkpoint_dir is None:
        return 1
    resumed = resume_training(loop.checkpoint_dir, model=loop.model, optimizer=loop.optimizer,
                              fingerprint=loop.fingerprint)
    if resumed is None:
        return 1
    state = resumed.state
    loop.result = TrainResult(history=list(state["history"]), epochs=int(state["epoch"]),
                              steps=int(state["step"]), wall_time=float(state["wall_time"]),
                              resumed_from=int(state["epoch"]))
    loop.selection.epoch, loop.selection.score = state.get("best_epoch"), state.get("best_score")
    loop.selection.state = resumed.best_state
    loop.partial = resumed.partial
    start_epoch = loop.result.epochs + 1
    if loop.info.is_main and start_epoch <= loop.options.epochs:
        print(f"resuming {loop.stage} from {resumed.path} (epoch {loop.result.epochs} of {loop.options.epochs})",
              file=sys.stderr)
    return start_epoch


def _validate_start(loop: TrainingLoop, start_epoch: int) -> None:
    """Epoch 0: validate the network before any update, so that selection can keep it."""
    if not (loop.selection.enabled and start_epoch == 1 and loop.partial is None):
        return
    assert loop.val_data is not None  # selection is enabled only with validation data
    metrics0 = validate(loop.model, loop.val_data, options=loop.options, normalization=loop.normalization,
                        physics=loop.val_physics, device=loop.device, info=loop.info)
    key = loop.selection.score_key
    if key in metrics0:
        loop.selection.keep(0, metrics0[key], loop.model)
        loop.result.history.append({"epoch": 0, "step": 0, **metrics0})


def _restore_best(loop: TrainingLoop) -> None:
    """With selection, leave the model with the best epoch's weights and record which epoch that is."""
    selection, result = loop.selection, loop.result
    if selection.enabled and selection.state is not None and selection.epoch != result.epochs:
        loop.model.load_state_dict({k: v.to(loop.device) for k, v in selection.state.items()}, strict=False)
        if loop.info.is_main and loop.options.progress:
            print(f"{loop.stage}: keeping epoch {selection.epoch} ({selection.score_key} {selection.score:.4g}), "
                  f"the best on validation", file=sys.stderr)
    result.best_epoch = selection.epoch if selection.enabled else None



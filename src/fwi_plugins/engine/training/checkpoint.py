"""Checkpoints: a training's state on disk, written whole or not at all, and resuming from it.

A checkpoint is a folder of safetensors tensors (model, optimizer, the best epoch's
weights) and a JSON state, never a pickle; ``latest.json`` points at the newest one.
Randomness is re-seeded from ``(seed, epoch)`` at the start of each epoch instead of
being saved, so a job resumed from the last finished epoch draws exactly what an
uninterrupted one would; a checkpoint taken within an epoch keeps the random state of
that moment as well.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError, DataError
from ...atomic import atomic_path, atomic_write_text
from ..options import TrainOptions
from ..options import augment_names

__all__ = [
    "CHECKPOINT_FORMAT",
    "Resumed",
    "latest_checkpoint",
    "load_checkpoint",
    "resume_training",
    "save_checkpoint",
    "save_training_checkpoint",
    "seed_epoch",
    "seed_everything",
    "selectable_state",
    "training_fingerprint",
]

CHECKPOINT_FORMAT = "fwi-checkpoint-1"


def seed_everything(seed: int) -> None:
    """Seed torch and numpy's global generators (model initialisation, dropout)."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed torch for ``epoch`` of the training seeded ``seed``, on process ``rank``.

    Re-seeding from (seed, epoch) instead of saving generator states makes a resumed run
    draw exactly what an uninterrupted one would.
    """
    torch.manual_seed(seed * 100_003 + epoch * 1_009 + rank)


def _state_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    # Cloning breaks shared storage (tied weights), which safetensors refuses to write.
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in module.state_dict().items()}


def selectable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What training changes: trainable parameters and buffers (frozen weights never move)."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name for name, _ in model.named_buffers()}
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items() if k in trainable | buffers}


def _optimizer_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer state dict as tensors (for safetensors) plus JSON-able scalars."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().to("cpu").clone().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _optimizer_unflat(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`_optimizer_flat`: a state dict for ``Optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, _, name = key.partition(".")
        state.setdefault(int(pid), {})[name] = value
    for key, value in meta.get("scalars", {}).items():
        pid, _, name = key.partition(".")
        state.setdefault(int(pid), {})[name] = value
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_checkpoint(directory: str | Path, *, epoch: int, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None, state: Mapping[str, Any], keep: int = 1,
                    extra: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
                    step: int | None = None) -> Path:
    """Write ``directory/epoch-NNNN/`` whole or not at all, then point ``latest.json`` at it.

    Args:
        directory: the checkpoint folder of a run.
        epoch: the finished epoch (from 1).
        model: the network (unwrapped; its full state dict is saved).
        optimizer: saved as tensors + JSON (never pickled), or ``None``.
        state: JSON-able scalars (step, epoch, history, ...).
        extra: more tensor files to keep with the checkpoint, ``{stem: tensors}`` written
            as ``stem.safetensors`` (the best epoch's weights, for example).
        keep: how many epoch folders to keep; older ones are removed once the new one is live.
        step: for a checkpoint within an epoch, the step it was taken at; the folder is then
            ``epoch-NNNN-step-SSSSSSSS`` (``epoch`` still counts finished epochs).

    Returns:
        The epoch folder.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    final = directory / (f"epoch-{epoch:04d}" if step is None else f"epoch-{epoch:04d}-step-{step:08d}")
    if final.exists():  # left by a run killed between this rename and the pointer update
        shutil.rmtree(final)
    with atomic_path(final) as tmp:
        tmp.unlink()
        tmp.mkdir()
        save_file(_state_tensors(model), str(tmp / "model.safetensors"))
        meta: dict[str, Any] = {}
        if optimizer is not None:
            tensors, meta = _optimizer_flat(optimizer)
            save_file(tensors, str(tmp / "optimizer.safetensors"))
        for stem, more in (extra or {}).items():
            save_file({k: v.detach().to("cpu").clone().contiguous() for k, v in more.items()},
                      str(tmp / f"{stem}.safetensors"))
        payload = {"format": CHECKPOINT_FORMAT, "epoch": epoch, **state, "optimizer": meta}
        (tmp / "state.json").write_text(json.dumps(payload, indent=1))
    atomic_write_text(directory / "latest.json", json.dumps({"epoch": epoch, "path": final.name}) + "\n")
    epochs = sorted(p for p in directory.glob("epoch-*") if p.is_dir() and p != final)
    for old in epochs[: max(0, len(epochs) - (keep - 1))] if keep > 0 else epochs:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The last complete checkpoint folder under ``directory``, or ``None``."""
    directory = Path(directory)
    pointer = directory / "latest.json"
    candidates: list[Path] = []
    if pointer.is_file():
        try:
            candidates.append(directory / json.loads(pointer.read_text())["path"])
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
    candidates += sorted((p for p in directory.glob("epoch-*") if p.is_dir()), reverse=True)
    for path in candidates:
        if (path / "state.json").is_file() and (path / "model.safetensors").is_file():
            return path
    return None


def load_checkpoint(path: str | Path, *, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Load a checkpoint folder into ``model`` (and ``optimizer``); returns its JSON state."""
    from safetensors.torch import load_file

    path = Path(path)
    state = json.loads((path / "state.json").read_text())
    if state.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: not a checkpoint of this format ({state.get('format')!r})")
    model.load_state_dict(load_file(str(path / "model.safetensors"), device="cpu"))
    if optimizer is not None and (path / "optimizer.safetensors").is_file():
        tensors = load_file(str(path / "optimizer.safetensors"), device="cpu")
        optimizer.load_state_dict(_optimizer_unflat(tensors, state["optimizer"]))
    return state


def training_fingerprint(options: TrainOptions, n_train: int, steps_per_epoch: int,
                         world_size: int, start_from: str = "") -> dict[str, Any]:
    """The settings a checkpoint must share with the training that resumes it (it records them).

    ``start_from``: a digest of the weights the training started from (foundation or ``init``
    weights, see :func:`fwi_plugins.weights.state_digest`); empty: not checked.
    """
    init = getattr(options, "init", "")  # pretraining's option only
    extra: dict[str, Any] = {"init": init} if init else {}
    if start_from:
        extra["start_from"] = start_from
    if options.max_steps:
        extra["max_steps"] = options.max_steps
    # None without augmentation: what a checkpoint written before the option reads as, so those still
    # resume, while a change either way (on, off, other names or probability) is refused.
    augment = augment_names(options.augment)
    extra["augment"] = ",".join(augment) if augment else None
    extra["augment_prob"] = options.augment_prob if augment else None
    return {**extra, "epochs": options.epochs, "batch_size": options.batch_size, "lr": options.lr,
            "select_best": options.select_best,
            "weight_decay": options.weight_decay, "warmup_epochs": options.warmup_epochs,
            "lambda_physics": options.lambda_physics, "labels": options.labels, "seed": options.seed,
            "n_train": n_train, "steps_per_epoch": steps_per_epoch, "world_size": world_size}


def save_training_checkpoint(directory: str | Path, *, epoch: int, model: nn.Module,
                             optimizer: torch.optim.Optimizer, state: Mapping[str, Any],
                             best_state: Mapping[str, torch.Tensor] | None,
                             within: Mapping[str, Any] | None = None) -> Path:
    """A training loop's checkpoint: its ``state``, the best epoch's weights and, for one taken
    within an epoch, where it stopped (``within``: epoch, batch, running sums) and torch's
    random state there.

    Args:
        directory: the checkpoint folder.
        epoch: epochs finished.
        model: the network (unwrapped).
        optimizer: the loop's optimizer.
        state: JSON-able scalars; ``state["step"]`` names a checkpoint within an epoch.
        best_state: the selected epoch's weights (see :func:`selectable_state`), or ``None``.
        within: ``None`` at the end of an epoch.
    """
    state = dict(state)
    extra: dict[str, Mapping[str, torch.Tensor]] = {"best": best_state} if best_state is not None else {}
    if within is not None:
        state["partial"] = within
        extra["rng"] = {"cpu": torch.get_rng_state()}
    return save_checkpoint(directory, epoch=epoch, model=model, optimizer=optimizer, state=state,
                           extra=extra or None, step=state["step"] if within is not None else None)


@dataclass
class Resumed:
    """What :func:`resume_training` found.

    Attributes:
        path: the checkpoint folder.
        state: its JSON state (``epoch``, ``step``, ``history``, ``wall_time``,
            ``best_epoch``, ``best_score``, ...).
        best_state: the selected epoch's weights, or ``None``.
        partial: for a checkpoint taken within an epoch, where it stopped (``epoch``,
            ``batch``, ``sums``) and torch's random state there (``rng``); else ``None``.
    """

    path: Path
    state: dict[str, Any]
    best_state: dict[str, torch.Tensor] | None
    partial: dict[str, Any] | None


def resume_training(directory: str | Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    fingerprint: Mapping[str, Any]) -> Resumed | None:
    """Load the latest checkpoint under ``directory`` into ``model`` and ``optimizer``, or ``None`` if there is none.

    Raises:
        ConfigError: the checkpoint was written with other settings (``fingerprint``).
    """
    found = latest_checkpoint(directory)
    if found is None:
        return None
    state = load_checkpoint(found, model=model, optimizer=optimizer)
    old = state.get("fingerprint", {})
    changed = sorted(k for k in fingerprint if old.get(k) != fingerprint[k])
    if "start_from" in changed:
        theirs = (f"digest {old['start_from'][:12]}" if old.get("start_from")
                  else "no digest: written before checkpoints recorded their starting weights")
        raise ConfigError(
            f"{found} was written by a training that started from other weights ({theirs}; this run's "
            f"{fingerprint['start_from'][:12]}: the foundation or init weights changed since); resuming would "
            f"mix two trainings. Use another output directory.")
    if changed:
        key = changed[0]
        raise ConfigError(
            f"{found} was written with {key}={old.get(key)!r}, this run has {key}={fingerprint[key]!r}; "
            f"resuming would mix two trainings. Use another output directory.")
    from safetensors.torch import load_file

    best_state = None
    if (found / "best.safetensors").is_file():
        best_state = load_file(str(found / "best.safetensors"), device="cpu")
    partial = None
    if state.get("partial"):
        partial = dict(state["partial"])
        partial["rng"] = load_file(str(found / "rng.safetensors"))["cpu"]
    return Resumed(path=found, state=state, best_state=best_state, partial=partial)

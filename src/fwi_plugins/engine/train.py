"""One training loop for pretraining and adaptation.

The loss is the L1 distance of the predicted normalised velocity to the label plus
``lambda_physics`` times the physics misfit between gathers simulated from the
prediction (in m/s) and the observed raw gathers; with ``labels="none"`` only the physics
term remains (label-free adaptation). AdamW with linear warm-up then cosine decay;
bfloat16 autocast for the network on CUDA (physics always runs in float32).

Every epoch ends with validation and a checkpoint (safetensors tensors plus a JSON
state, written atomically), so a killed job resumes from the last finished epoch with
the same result as an uninterrupted one: randomness is re-seeded from ``(seed, epoch)``
at the start of each epoch instead of being saved.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1) the loop trains with DistributedDataParallel
(gloo on CPU, nccl on GPU); each process sees its shard of every epoch and only rank 0
writes files and reports.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..io_utils import atomic_path, atomic_write_text
from .config import TrainOptions, resolve_device

__all__ = [
    "CHECKPOINT_FORMAT",
    "DistInfo",
    "Notify",
    "RowStack",
    "TrainData",
    "TrainResult",
    "latest_checkpoint",
    "load_checkpoint",
    "lr_factor",
    "predict_unit",
    "save_checkpoint",
    "seed_everything",
    "setup_distributed",
    "train",
]

CHECKPOINT_FORMAT = "fwi-checkpoint-1"

Notify = Callable[..., None]


def _no_notify(hook: str, **kwargs: Any) -> None:
    return None


# -- data -----------------------------------------------------------------------------
class RowStack:
    """Several arrays of samples read as one along the first axis, without copying them together.

    A dataset mixture can hold gigabytes of gathers; concatenating would hold them twice.
    Indexing with a slice or an integer array returns a new numpy array of those rows.
    """

    def __init__(self, parts: list[np.ndarray]) -> None:
        parts = [p for p in parts if p is not None]
        if not parts:
            raise DataError("RowStack needs at least one array")
        tail = parts[0].shape[1:]
        for p in parts[1:]:
            if p.shape[1:] != tail:
                raise DataError(f"arrays to stack differ in shape past the first axis: {tail} and {p.shape[1:]}")
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])
        self.shape = (int(self.offsets[-1]), *tail)
        self.dtype = parts[0].dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, slice):
            index = np.arange(*index.indices(len(self)))
        index = np.asarray(index, dtype=np.int64)
        if index.ndim != 1:
            raise TypeError("RowStack takes a slice or a 1-D array of row numbers")
        out = np.empty((len(index), *self.shape[1:]), dtype=self.dtype)
        which = np.searchsorted(self.offsets, index, side="right") - 1
        for part in np.unique(which):
            rows = which == part
            out[rows] = self.parts[part][index[rows] - self.offsets[part]]
        return out


@dataclass
class TrainData:
    """Arrays the loop trains or validates on, held in memory.

    Attributes:
        gathers: raw gathers ``(N, S, T, R)`` float32 (normalised per batch on the device), a
            numpy array or a :class:`RowStack` of several.
        velocity: velocity ``(N, 1, Z, X)`` in m/s (array or :class:`RowStack`), or ``None``
            without labels.
        weights: per-sample sampling weights (a dataset mixture), or ``None`` for uniform
            shuffling without replacement.
    """

    gathers: np.ndarray | RowStack
    velocity: np.ndarray | RowStack | None = None
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.gathers.ndim != 4:
            raise DataError(f"training gathers must be (N, S, T, R), got shape {self.gathers.shape}")
        n = len(self.gathers)
        if self.velocity is not None and (self.velocity.ndim != 4 or len(self.velocity) != n):
            raise DataError(f"training velocity must be (N, 1, Z, X) with N={n}, got shape {self.velocity.shape}")
        if self.weights is not None and len(self.weights) != n:
            raise DataError(f"sampling weights must give one value per sample ({n}), got {len(self.weights)}")

    def __len__(self) -> int:
        return len(self.gathers)


class _WeightedShardSampler(torch.utils.data.Sampler[int]):
    """Weighted sampling with replacement, reproducible per epoch and sharded by rank.

    ``DistributedSampler`` covers uniform shuffling; a dataset mixture needs weights, so
    every rank draws the same global sequence from ``(seed, epoch)`` and keeps its stride.
    """

    def __init__(self, weights: np.ndarray, num_samples: int, *, rank: int, world_size: int, seed: int) -> None:
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.per_rank = math.ceil(num_samples / world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self):  # noqa: ANN204 - Sampler protocol
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        total = self.per_rank * self.world_size
        order = torch.multinomial(self.weights, total, replacement=True, generator=g)
        return iter(order[self.rank::self.world_size].tolist())


# -- distributed ------------------------------------------------------------------------
@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto") -> DistInfo:
    """Resolve the device and join the process group when launched by ``torchrun``.

    ``WORLD_SIZE`` > 1 in the environment starts torch.distributed (nccl on GPU, gloo on
    CPU) unless a process group already exists; each process then uses ``cuda:LOCAL_RANK``.
    """
    resolved = resolve_device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if world_size > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if resolved == "cuda" else "gloo")
        rank, world_size = dist.get_rank(), dist.get_world_size()
    if resolved == "cuda":
        torch.cuda.set_device(local_rank)
        resolved = f"cuda:{local_rank}"
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=resolved)


def _current_dist(device: str) -> DistInfo:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                        local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())), device=device)
    return DistInfo(device=device)


def _barrier(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


def _all_reduce_sums(values: dict[str, float], info: DistInfo, device: str) -> dict[str, float]:
    if not info.distributed or not values:
        return values
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist(), strict=True))


def seed_everything(seed: int) -> None:
    """Seed torch and numpy's global generators (model initialisation, dropout)."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


# -- schedule ---------------------------------------------------------------------------
def lr_factor(step: int, *, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then cosine decay."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def ssim_torch(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Differentiable mean SSIM of ``(N, 1, Z, X)`` maps on the ``[0, 1]`` scale.

    The same definition as :func:`fwi_plugins.engine.metrics.ssim` (Gaussian window of
    11 pixels, sigma 1.5, zero padding), written with ``conv2d`` so it can be a loss.
    """
    from .metrics import SSIM_C1, SSIM_C2, gaussian_window

    g = torch.as_tensor(gaussian_window(), dtype=predicted.dtype, device=predicted.device)
    kernel = (g[:, None] * g[None, :])[None, None]
    pad = kernel.shape[-1] // 2

    def blur(images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(images, kernel, padding=pad)

    p, t = predicted.reshape(-1, 1, *predicted.shape[-2:]), truth.reshape(-1, 1, *truth.shape[-2:])
    mu_p, mu_t = blur(p), blur(t)
    var_p = blur(p * p) - mu_p**2
    var_t = blur(t * t) - mu_t**2
    cov = blur(p * t) - mu_p * mu_t
    numerator = (2.0 * mu_p * mu_t + SSIM_C1) * (2.0 * cov + SSIM_C2)
    denominator = (mu_p**2 + mu_t**2 + SSIM_C1) * (var_p + var_t + SSIM_C2)
    return (numerator / denominator).mean()


# -- checkpoints -------------------------------------------------------------------------
def _state_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    # Cloning breaks shared storage (tied weights), which safetensors refuses to write.
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in module.state_dict().items()}


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
        for stem, tensors in (extra or {}).items():
            save_file({k: v.detach().to("cpu").clone().contiguous() for k, v in tensors.items()},
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


# -- the loop ------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        history: one dict per epoch (``epoch``, ``train_loss``, ``val_mae``, ``lr``, ...).
        epochs: epochs finished in total (including resumed ones).
        steps: optimisation steps in total.
        wall_time: seconds spent training, summed over interrupted sessions.
        resumed_from: the epoch a checkpoint was loaded from (0 for a fresh start).
        best_epoch: with ``select_best``, the epoch whose weights the model ends with
            (0: the starting network); ``None`` without selection.
        complete: ``False`` when the ``max_minutes`` budget stopped the loop before the end;
            the checkpoint it wrote lets the same call resume.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    epochs: int = 0
    steps: int = 0
    wall_time: float = 0.0
    resumed_from: int = 0
    best_epoch: int | None = None
    complete: bool = True

    @property
    def final(self) -> dict[str, Any]:
        """The last epoch's record, or the selected epoch's with ``select_best``."""
        if self.best_epoch is not None:
            for record in self.history:
                if record.get("epoch") == self.best_epoch:
                    return record
        return self.history[-1] if self.history else {}


def _autocast(device: str, enabled: bool) -> Any:
    if enabled and device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    import contextlib

    return contextlib.nullcontext()


def predict_unit(model: nn.Module, gathers: np.ndarray, *, normalization: Any, device: str = "cpu",
                 batch_size: int = 16, amp: bool = True) -> np.ndarray:
    """The network's normalised velocity ``(N, 1, Z, X)`` float32 for raw gathers, in batches."""
    was_training = model.training
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(gathers), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(gathers[start:start + batch_size])).to(device)
            with _autocast(device, amp):
                y = model(normalization.gathers_to_unit(x))
            outs.append(y.float().cpu().numpy())
    model.train(was_training)
    if not outs:
        return np.zeros((0, 1, 1, 1), np.float32)
    return np.concatenate(outs).astype(np.float32, copy=False)


def _physics_velocity(unit: torch.Tensor, normalization: Any, physics: Any) -> torch.Tensor:
    velocity = normalization.velocity_from_unit(unit.float())
    survey = getattr(physics, "survey", None)
    if survey is not None:
        # A prediction outside the survey's range can break the solver's stability
        # condition; clamping keeps the simulation valid (gradients vanish only there).
        velocity = velocity.clamp(float(survey.vmin), float(survey.vmax))
    return velocity


def _fingerprint(options: TrainOptions, n_train: int, steps_per_epoch: int, world_size: int) -> dict[str, Any]:
    extra: dict[str, Any] = {"init": options.init} if getattr(options, "init", "") else {}
    if options.max_steps:
        extra["max_steps"] = options.max_steps
    return {**extra, "epochs": options.epochs, "batch_size": options.batch_size, "lr": options.lr,
            "select_best": options.select_best,
            "weight_decay": options.weight_decay, "warmup_epochs": options.warmup_epochs,
            "lambda_physics": options.lambda_physics, "labels": options.labels, "seed": options.seed,
            "n_train": n_train, "steps_per_epoch": steps_per_epoch, "world_size": world_size}


def train(model: nn.Module, train_data: TrainData, val_data: TrainData | None, *,
          options: TrainOptions, normalization: Any, physics: Any = None,
          checkpoint_dir: str | Path | None = None, samples_per_epoch: int | None = None,
          stage: str = "adapt", run_dir: str | Path | None = None, notify: Notify | None = None,
          device: str | None = None) -> TrainResult:
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

    Returns:
        A :class:`TrainResult`; ``model`` holds the final weights.

    Raises:
        ConfigError: labels are asked for but missing, physics is missing, or an existing
            checkpoint was written with different settings.
    """
    notify = notify or _no_notify
    device = device or resolve_device(options.device)
    info = _current_dist(device)
    use_labels = options.labels == "full"
    use_physics = options.lambda_physics > 0
    if use_labels and train_data.velocity is None:
        raise ConfigError("option 'labels' is 'full' but the training data has no velocity labels; "
                          "use labels=none (label-free adaptation) with lambda_physics > 0")
    if use_physics and physics is None:
        raise ConfigError("option 'lambda_physics' > 0 needs a physics component")
    if len(train_data) == 0:
        raise DataError("the training split is empty")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters (check the PEFT method and its options)")

    model.to(device)
    net: nn.Module = model
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[info.local_rank] if device.startswith("cuda") else None)

    if train_data.weights is not None:
        sampler: Any = _WeightedShardSampler(train_data.weights, samples_per_epoch or len(train_data),
                                             rank=info.rank, world_size=info.world_size, seed=options.seed)
    else:
        sampler = torch.utils.data.DistributedSampler(
            range(len(train_data)), num_replicas=info.world_size, rank=info.rank, shuffle=True,
            seed=options.seed, drop_last=False)
    steps_per_epoch = math.ceil(len(sampler) / options.batch_size)
    total_steps = steps_per_epoch * options.epochs
    if options.max_steps:
        total_steps = min(total_steps, options.max_steps)
    warmup_steps = round(options.warmup_epochs * steps_per_epoch)

    optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=options.weight_decay)
    fingerprint = _fingerprint(options, len(train_data), steps_per_epoch, info.world_size)
    result = TrainResult()
    start_epoch = 1
    partial: dict[str, Any] | None = None  # where a checkpoint taken within an epoch stopped
    selecting = options.select_best and val_data is not None and len(val_data) > 0
    best_epoch: int | None = None
    best_score: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    if checkpoint_dir is not None:
        found = latest_checkpoint(checkpoint_dir)
        if found is not None:
            state = load_checkpoint(found, model=model, optimizer=optimizer)
            old = state.get("fingerprint", {})
            changed = sorted(k for k in fingerprint if old.get(k) != fingerprint[k])
            if changed:
                key = changed[0]
                raise ConfigError(
                    f"{found} was written with {key}={old.get(key)!r}, this run has {key}={fingerprint[key]!r}; "
                    f"resuming would mix two trainings. Use another output directory.")
            result = TrainResult(history=list(state["history"]), epochs=int(state["epoch"]),
                                 steps=int(state["step"]), wall_time=float(state["wall_time"]),
                                 resumed_from=int(state["epoch"]))
            start_epoch = result.epochs + 1
            best_epoch, best_score = state.get("best_epoch"), state.get("best_score")
            from safetensors.torch import load_file

            if (found / "best.safetensors").is_file():
                best_state = load_file(str(found / "best.safetensors"), device="cpu")
            if state.get("partial"):
                partial = dict(state["partial"])
                partial["rng"] = load_file(str(found / "rng.safetensors"))["cpu"]
            if info.is_main and start_epoch <= options.epochs:
                print(f"resuming {stage} from {found} (epoch {result.epochs} of {options.epochs})",
                      file=sys.stderr)
    model.to(device)

    from tqdm.auto import tqdm

    x_all, y_all = train_data.gathers, train_data.velocity
    step = result.steps
    score_key = "val_mae" if val_data is not None and val_data.velocity is not None else "val_misfit"
    budget_start = last_checkpoint = time.perf_counter()

    def checkpoint(epoch_done: int, *, within: dict[str, Any] | None = None) -> None:
        state = {"step": step, "history": result.history, "wall_time": result.wall_time, "fingerprint": fingerprint,
                 "stage": stage, "best_epoch": best_epoch, "best_score": best_score}
        extra: dict[str, dict[str, torch.Tensor]] = {"best": best_state} if best_state is not None else {}
        if within is not None:
            state["partial"] = within
            extra["rng"] = {"cpu": torch.get_rng_state()}
        save_checkpoint(checkpoint_dir, epoch=epoch_done, model=model, optimizer=optimizer, state=state,
                        extra=extra or None, step=step if within is not None else None)

    if selecting and start_epoch == 1 and partial is None:
        # Epoch 0: the network before any update, so that selection can keep it.
        metrics0 = _validate(model, val_data, options=options, normalization=normalization,
                             physics=physics if use_physics else None, device=device, info=info)
        if score_key in metrics0:
            best_epoch, best_score, best_state = 0, metrics0[score_key], _selectable_state(model)
            result.history.append({"epoch": 0, "step": 0, **metrics0})
    for epoch in range(start_epoch, options.epochs + 1):
        if options.max_steps and step >= options.max_steps:
            break
        started = time.perf_counter()
        # Re-seeding from (seed, epoch) instead of saving generator states makes a resumed
        # run draw exactly what an uninterrupted one would.
        torch.manual_seed(options.seed * 100_003 + epoch * 1_009 + info.rank)
        sampler.set_epoch(epoch)
        order = list(iter(sampler))
        net.train()
        sums = {"loss": 0.0, "label": 0.0, "physics": 0.0, "n": 0.0}
        first_batch = 0
        if partial is not None and partial["epoch"] == epoch:
            # Continue a checkpoint taken within this epoch: same order, same random state.
            first_batch, sums = int(partial["batch"]), dict(partial["sums"])
            torch.set_rng_state(partial["rng"])
            partial = None
        bar = tqdm(total=steps_per_epoch, initial=first_batch, desc=f"{stage} {epoch}/{options.epochs}",
                   unit="step", disable=not (options.progress and info.is_main), leave=False, file=sys.stderr)
        out_of_time = False
        for b in range(first_batch, steps_per_epoch):
            idx = np.sort(np.asarray(order[b * options.batch_size:(b + 1) * options.batch_size]))
            if len(idx) == 0:
                continue
            for group in optimizer.param_groups:
                group["lr"] = options.lr * lr_factor(step, total_steps=total_steps, warmup_steps=warmup_steps,
                                                     min_ratio=options.min_lr_ratio)
            x_raw = torch.from_numpy(np.ascontiguousarray(x_all[idx])).to(device)
            with _autocast(device, options.amp):
                pred = net(normalization.gathers_to_unit(x_raw))
            pred = pred.float()
            loss = pred.new_zeros(())
            label_loss = physics_loss = None
            if use_labels:
                y = normalization.velocity_to_unit(
                    torch.from_numpy(np.ascontiguousarray(y_all[idx])).to(device))  # type: ignore[index]
                label_loss = (pred - y).abs().mean()
                if options.lambda_ssim > 0:
                    label_loss = label_loss + options.lambda_ssim * (1.0 - ssim_torch(pred / 2 + 0.5, y / 2 + 0.5))
                loss = loss + label_loss
            if use_physics:
                k = len(idx) if options.physics_samples == 0 else min(len(idx), options.physics_samples)
                simulated = physics.simulate(_physics_velocity(pred[:k], normalization, physics))
                physics_loss = physics.misfit(simulated, x_raw[:k].float())
                loss = loss + options.lambda_physics * physics_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if options.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, options.grad_clip)
            optimizer.step()
            step += 1
            n = float(len(idx))
            sums["n"] += n
            sums["loss"] += float(loss.detach()) * n
            if label_loss is not None:
                sums["label"] += float(label_loss.detach()) * n
            if physics_loss is not None:
                sums["physics"] += float(physics_loss.detach()) * n
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            if options.max_steps and step >= options.max_steps:
                break  # this epoch ends here, validated and checkpointed as any other
            now = time.perf_counter()
            out_of_time = _agree(options.max_minutes > 0 and now - budget_start >= 60 * options.max_minutes,
                                 info, device)
            due = _agree(options.checkpoint_minutes > 0 and now - last_checkpoint >= 60 * options.checkpoint_minutes,
                         info, device)
            if (out_of_time or due) and b + 1 < steps_per_epoch:
                if info.is_main and checkpoint_dir is not None:
                    result.wall_time += now - started
                    checkpoint(epoch - 1, within={"epoch": epoch, "batch": b + 1, "sums": sums})
                    result.wall_time -= now - started
                last_checkpoint = now
                _barrier(info)
                if out_of_time:
                    break
        bar.close()
        if out_of_time and b + 1 < steps_per_epoch:
            result.complete = False
            result.steps = step
            if info.is_main and options.progress:
                print(f"{stage}: the {options.max_minutes:g}-minute budget is spent at step {step}; "
                      f"run the same command again to resume", file=sys.stderr)
            break
        sums = _all_reduce_sums(sums, info, device if device.startswith("cuda") else "cpu")
        metrics: dict[str, Any] = {"epoch": epoch, "step": step, "lr": optimizer.param_groups[0]["lr"],
                                   "train_loss": sums["loss"] / max(sums["n"], 1.0)}
        if use_labels:
            metrics["train_label_loss"] = sums["label"] / max(sums["n"], 1.0)
        if use_physics:
            metrics["train_physics_loss"] = sums["physics"] / max(sums["n"], 1.0)
        if val_data is not None and len(val_data):
            metrics.update(_validate(model, val_data, options=options, normalization=normalization,
                                     physics=physics if use_physics else None, device=device, info=info))
        metrics["epoch_time"] = time.perf_counter() - started
        if selecting and score_key in metrics and (best_score is None or metrics[score_key] < best_score):
            best_epoch, best_score, best_state = epoch, metrics[score_key], _selectable_state(model)
        result.history.append(metrics)
        result.epochs, result.steps = epoch, step
        result.wall_time += metrics["epoch_time"]
        if info.is_main:
            if checkpoint_dir is not None:
                checkpoint(epoch)
                last_checkpoint = time.perf_counter()
            if options.progress:
                print(_epoch_line(stage, metrics, options.epochs), file=sys.stderr)
            notify("fwi_epoch_end", run_dir=Path(run_dir) if run_dir else None, stage=stage, epoch=epoch,
                   metrics=dict(metrics))
        _barrier(info)
        if (options.max_steps and step >= options.max_steps) or out_of_time:
            result.complete = not out_of_time or epoch == options.epochs or step >= total_steps
            break
    if selecting and best_state is not None and best_epoch != result.epochs:
        model.load_state_dict({k: v.to(device) for k, v in best_state.items()}, strict=False)
        if info.is_main and options.progress:
            print(f"{stage}: keeping epoch {best_epoch} ({score_key} {best_score:.4g}), the best on validation",
                  file=sys.stderr)
    result.best_epoch = best_epoch if selecting else None
    model.eval()
    return result


def _agree(flag: bool, info: DistInfo, device: str) -> bool:
    """``flag`` on any process, agreed by all (a stop decided by one rank alone would hang the others)."""
    if not info.distributed:
        return flag
    reduced = _all_reduce_sums({"flag": float(flag)}, info, device if device.startswith("cuda") else "cpu")
    return reduced["flag"] > 0


def _selectable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What training changes: trainable parameters and buffers (frozen weights never move)."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name for name, _ in model.named_buffers()}
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items() if k in trainable | buffers}


def _epoch_line(stage: str, metrics: Mapping[str, Any], epochs: int) -> str:
    parts = [f"{stage} epoch {metrics['epoch']}/{epochs}"]
    for key in ("train_loss", "val_mae", "val_misfit"):
        if key in metrics:
            parts.append(f"{key} {metrics[key]:.4g}")
    parts.append(f"{metrics['epoch_time']:.1f}s")
    return "  ".join(parts)


def _validate(model: nn.Module, data: TrainData, *, options: TrainOptions, normalization: Any, physics: Any,
              device: str, info: DistInfo) -> dict[str, float]:
    """Mean normalised-velocity MAE (OpenFWI's MAE) and physics misfit on this rank's shard, reduced."""
    idx = np.arange(info.rank, len(data), info.world_size)
    sums = {"n": float(len(idx)), "mae": 0.0, "misfit": 0.0}
    if len(idx):
        unit = predict_unit(model, data.gathers[idx], normalization=normalization, device=device,
                            batch_size=options.eval_batch_size, amp=options.amp)
        if data.velocity is not None:
            truth = normalization.velocity_to_unit(data.velocity[idx])
            sums["mae"] = float(np.abs(unit - truth).mean(axis=(1, 2, 3)).sum())
        if physics is not None:
            with torch.no_grad():
                for start in range(0, len(idx), options.eval_batch_size):
                    sl = slice(start, start + options.eval_batch_size)
                    u = torch.from_numpy(unit[sl]).to(device)
                    simulated = physics.simulate(_physics_velocity(u, normalization, physics))
                    observed = torch.from_numpy(data.gathers[idx[sl]]).to(device)
                    sums["misfit"] += float(physics.misfit(simulated, observed)) * len(u)
    sums = _all_reduce_sums(sums, info, device if device.startswith("cuda") else "cpu")
    out: dict[str, float] = {}
    n = max(sums["n"], 1.0)
    if data.velocity is not None:
        out["val_mae"] = sums["mae"] / n
        out["val_mae_ms"] = out["val_mae"] * 0.5 * (normalization.vmax - normalization.vmin)
    if physics is not None:
        out["val_misfit"] = sums["misfit"] / n
    return out

"""Pretraining a task-agnostic foundation model on a mixture of dataset families.

:func:`pretrain` trains one backbone on the training splits of several datasets, drawn
with per-family sampling weights, validates on their validation splits (never on a test
split), and writes::

    weights.safetensors     the network (metadata: backbone, options, normalisation, shape)
    model_card.md           command, data, seed, steps, wall time, hardware, validation metrics
    model_card.json         the same, for programs
    config.toml / .json     the resolved configuration (fwi pretrain --config re-runs it)
    metrics.json            the training history and final validation metrics
    checkpoints/            the last finished epoch, for resuming

``fwi run --pretrained OUT/weights.safetensors`` adapts the result to a target dataset.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from ...data.rows import RowStack
from ...errors import ConfigError
from ..config import ResolvedConfig, RunConfig
from ..options import PretrainOptions
from ..training.data import mixture_weights
from .pretrain_outputs import WEIGHTS_FILE, dataset_labels, print_summary, write_foundation
from .start import GetSpec, io_shape, load_arrays, release_run_dir, start_job
from ..notify import Notify, no_notify

if TYPE_CHECKING:
    from torch import nn

    from ...data import Normalization, SeismicDataset
    from ...physics import Physics
    from ...pretrained import PretrainedConfig
    from ...specs import BackboneSpec
    from ..training.distributed import DistInfo
    from ..training.result import TrainResult
    from ..training.data import TrainData

__all__ = ["pretrain"]

# Each dataset's (gathers, velocity) of one split; (None, None) for a dataset without that split.
# Simulated gathers are memory-mapped cache parts (a RowStack), read a batch at a time.
Parts = list[tuple[np.ndarray | RowStack | None, np.ndarray | None]]


def _common_normalization(normalizations: list[Normalization], gathers: list[np.ndarray | RowStack]) -> Normalization:
    """One input scale for the whole mixture: the first family's velocity range, every family's amplitudes.

    A foundation network must see every family through the same scaling, or the same
    amplitude would mean different things depending on where a sample came from.
    """
    first = normalizations[0]
    for other in normalizations[1:]:
        if (other.vmin, other.vmax) != (first.vmin, first.vmax):
            raise ConfigError(f"the datasets use different velocity ranges ({first.vmin:g}-{first.vmax:g} and "
                              f"{other.vmin:g}-{other.vmax:g} m/s); give them the same vmin and vmax")
    # Reduced part by part where they lie: no copy of (memory-mapped) gathers is made for this.
    lo = min(float(g.min()) for g in gathers if len(g))
    hi = max(float(g.max()) for g in gathers if len(g))
    base = dataclasses.replace(first, data_min=None, data_max=None)
    return base.fit_gathers(np.array([lo, hi], np.float32))


def _load_init(model: nn.Module, spec: BackboneSpec, init: str) -> PretrainedConfig | None:
    """Load the ``init`` weights into ``model``; their configuration (``None`` without ``init``)."""
    if not init.strip():
        return None
    from ...pretrained import load_weights

    return load_weights(model, spec, init.strip(), label="option 'init'", wrap=True)


def _init_normalization(init: PretrainedConfig | None, datasets: list[SeismicDataset]) -> Normalization | None:
    """The normalisation stored with the ``init`` weights, checked against the datasets' velocity range."""
    stored = init.normalization if init is not None else None
    if stored is None:
        return None
    for d in datasets:
        if (d.normalization.vmin, d.normalization.vmax) != (stored.vmin, stored.vmax):
            raise ConfigError(f"option 'init': the weights were trained for velocities {stored.vmin:g}-"
                              f"{stored.vmax:g} m/s, dataset {d.name!r} spans {d.normalization.vmin:g}-"
                              f"{d.normalization.vmax:g} m/s; give the dataset the same vmin and vmax")
    return stored


def pretrain(config: RunConfig | ResolvedConfig, *, get_spec: GetSpec | None = None,
             notify: Notify | None = None, summary: bool = True) -> dict[str, Any]:
    """Pretrain a backbone on a dataset mixture (``fwi pretrain``) and return its metrics.

    Args:
        config: a ``pretrain`` configuration (one backbone, one or more datasets, an
            optional physics used to simulate missing gathers and for the physics term).
        get_spec: ``get_spec(kind, name) -> spec``; defaults to the plugin registry.
        notify: ``notify(hook, **kwargs)`` for lifecycle hooks.
        summary: print a short summary at the end.

    Returns:
        The content of ``metrics.json`` (also in ``model_card.json``).
    """
    from ..training.train import train

    started = time.perf_counter()
    notify = notify or no_notify
    resolved, info, out = start_job(config, "pretrain", get_spec)
    try:
        opts: PretrainOptions = resolved.options
        if info.is_main:
            notify("fwi_run_started", run_dir=out, config=resolved.config.to_dict())
        datasets, physics_by = _open_datasets(resolved)
        t0 = time.perf_counter()
        train_parts, val_parts = _read_splits(datasets, physics_by, opts, info)
        data_time = time.perf_counter() - t0
        backbone_spec = resolved.spec("backbone")
        model, normalization, init = _network(resolved, datasets, train_parts)
        train_data, val_data, sizes = _mixture(train_parts, val_parts, opts, warn=info.is_main)
        samples = opts.samples_per_epoch or len(train_data)
        t0 = time.perf_counter()
        # With several families, the physics term uses the first family's survey: all share one shape.
        result = train(model, train_data, val_data, options=opts, normalization=normalization, physics=physics_by[0],
                       checkpoint_dir=out / "checkpoints", samples_per_epoch=samples, stage="pretrain", run_dir=out,
                       notify=notify if info.is_main else None, device=info.device,
                       start_from=init.digest if init is not None else "")
        train_time = time.perf_counter() - t0
        per_family = _validate_by_family(model, datasets, val_parts, normalization=normalization, opts=opts,
                                         device=info.device)
        metrics = _metrics(result, per_family, model, samples=samples,
                           timing={"data": data_time, "train": train_time, "total": time.perf_counter() - started})
        if info.is_main:
            write_foundation(resolved, out=out, model=model, datasets=datasets, sizes=sizes,
                              normalization=normalization, metrics=metrics, result=result, info=info)
            notify("fwi_run_finished", run_dir=out, metrics=metrics)
            if summary:
                print_summary(backbone_spec.name, metrics, result, per_family, out / WEIGHTS_FILE)
        return metrics
    finally:
        if info.is_main:
            release_run_dir(out)  # the folder is free for the next job, finished or failed


def _read_splits(datasets: list[SeismicDataset], physics_by: list[Physics | None], opts: PretrainOptions,
                 info: DistInfo) -> tuple[Parts, Parts]:
    """The training and validation parts of every dataset, simulated where missing."""
    from ..training.distributed import barrier

    if info.distributed:
        # Every process simulates its share of the missing gathers on its own device, then all read them all.
        _fill_splits(datasets, physics_by, opts, info)
        barrier(info)
    return _load_splits(datasets, physics_by, opts, progress=opts.progress and info.is_main)


def _network(resolved: ResolvedConfig, datasets: list[SeismicDataset],
             train_parts: Parts) -> tuple[nn.Module, Normalization, PretrainedConfig | None]:
    """The backbone, seeded and built for the mixture's shape (from ``init``'s weights when given), the
    normalisation it learns (the one ``init`` was trained with, else one common to the datasets) and
    ``init``'s configuration (``None`` without ``init``)."""
    from ..training.checkpoint import seed_everything

    opts: PretrainOptions = resolved.options
    seed_everything(opts.seed)
    backbone_spec = resolved.spec("backbone")
    model = backbone_spec.load()(resolved.component_option("backbone"), shape=io_shape(datasets[0].survey))
    init = _load_init(model, backbone_spec, opts.init)
    normalization = _init_normalization(init, datasets) or _common_normalization(
        [d.normalization for d in datasets], [g for g, _ in train_parts if g is not None])
    return model, normalization, init


def _open_datasets(resolved: ResolvedConfig) -> tuple[list[SeismicDataset], list[Physics | None]]:
    """The mixture's datasets, checked to fit one backbone, and a physics for each (``None`` without one)."""
    opts: PretrainOptions = resolved.options
    physics_spec = resolved.spec("physics")
    dataset_specs = resolved.specs["dataset"]
    datasets = [spec.load()(o) for spec, o in zip(dataset_specs, resolved.component_options["dataset"], strict=True)]
    shapes = {(d.name, io_shape(d.survey)) for d in datasets}
    if len({s for _, s in shapes}) > 1:
        listing = ", ".join(f"{n}: {s}" for n, s in sorted(shapes, key=lambda x: x[0]))
        raise ConfigError(f"the datasets have different shapes ({listing}); one backbone needs one shape")
    use_labels = opts.labels == "full"
    for d in datasets:
        if use_labels and not d.has_labels:
            raise ConfigError(f"dataset {d.name!r} has no velocity labels; pretraining with labels needs them")
        if not d.has_recorded_gathers and physics_spec is None:
            raise ConfigError(f"key 'physics' is missing: dataset {d.name!r} records no gathers, so they are "
                              f"simulated; add --physics NAME")
        if d.split_sizes.get("train", 0) == 0:
            raise ConfigError(f"dataset {d.name!r} has no training samples")
    physics_by = [physics_spec.load()(resolved.component_option("physics"), survey=d.survey) if physics_spec else None
                  for d in datasets]
    return datasets, physics_by


def _fill_splits(datasets: list[SeismicDataset], physics_by: list[Physics | None], opts: PretrainOptions,
                 info: DistInfo) -> None:
    """This process's share of every split's missing gathers, simulated into the cache on its device."""
    for d, physics in zip(datasets, physics_by, strict=True):
        if physics is not None and info.device != "cpu" and hasattr(physics, "to"):
            physics = physics.to(info.device) or physics
        for split in ("train", "val"):
            d.fill_gathers(split, physics, rank=info.rank, world=info.world_size, cache_dir=opts.cache_dir or None,
                           progress=opts.progress and info.is_main)


def _load_splits(datasets: list[SeismicDataset], physics_by: list[Physics | None], opts: PretrainOptions, *,
                 progress: bool) -> tuple[Parts, Parts]:
    """Each dataset's ``(gathers, velocity)`` of the train and of the val split (``(None, None)`` where empty).

    Simulated gathers stay in the cache's files, memory-mapped: a corpus of thousands of maps
    would otherwise be held whole in memory (and once per process of a distributed job).
    """
    def load_all(split: str) -> Parts:
        return [load_arrays(d, p, split, cache_dir=opts.cache_dir, progress=progress, labels=opts.labels == "full",
                            mmap=True)
                if d.split_sizes.get(split, 0) else (None, None) for d, p in zip(datasets, physics_by, strict=True)]

    return load_all("train"), load_all("val")


def _mixture(train_parts: Parts, val_parts: Parts, opts: PretrainOptions, *,
             warn: bool) -> tuple[TrainData, TrainData | None, list[int]]:
    """The training and validation data of the whole mixture, and each family's training size."""
    from ..training.data import TrainData

    use_labels = opts.labels == "full"
    sizes = [len(g) for g, _ in train_parts if g is not None]  # every dataset has training samples
    weights = mixture_weights(sizes, opts.weights)
    # Row stacks instead of concatenation: the datasets keep their arrays (memory-mapped cache
    # parts, for simulated gathers), so a copy would hold every gather in memory, twice.
    train_data = TrainData(gathers=RowStack([g for g, _ in train_parts]),
                           velocity=RowStack([v for _, v in train_parts]) if use_labels else None,
                           weights=weights)
    vals = [(g, v) for g, v in val_parts if g is not None and len(g)]
    val_data = (TrainData(gathers=RowStack([g for g, _ in vals]),
                          velocity=RowStack([v for _, v in vals]) if use_labels else None) if vals else None)
    if val_data is None and warn:
        # stacklevel 3: the warning names the caller of pretrain().
        warnings.warn("no dataset has a validation split: pretraining runs without validation "
                      "(the test splits are never used for it)", UserWarning, stacklevel=3)
    return train_data, val_data, sizes


def _validate_by_family(model: nn.Module, datasets: list[SeismicDataset], val_parts: Parts, *,
                        normalization: Normalization, opts: PretrainOptions,
                        device: str) -> dict[str, dict[str, float]]:
    """Validation metrics of each family with labels: a mixture's mean can hide a family the model does not learn."""
    from ..evaluate import evaluate
    from ..training.validation import predict_unit

    per_family: dict[str, dict[str, float]] = {}
    for label, (g, v) in zip(dataset_labels(datasets), val_parts, strict=True):
        if g is None or not len(g) or v is None:
            continue
        unit = predict_unit(model, g, normalization=normalization, device=device, batch_size=opts.eval_batch_size,
                            amp=opts.amp)
        per_family[label] = evaluate(normalization.velocity_from_unit(unit), v, normalization=normalization)
    return per_family


def _metrics(result: TrainResult, per_family: dict[str, dict[str, float]], model: nn.Module, *, samples: int,
             timing: dict[str, float]) -> dict[str, Any]:
    """The content of ``metrics.json``."""
    return {
        "validation": {k: v for k, v in result.final.items() if k.startswith("val_")},
        "validation_by_dataset": per_family,
        "training": {"history": result.history, "epochs": result.epochs, "steps": result.steps,
                     "samples_per_epoch": samples, "wall_time": result.wall_time,
                     "resumed_from": result.resumed_from, "best_epoch": result.best_epoch,
                     "complete": result.complete},
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "timing": timing,
    }



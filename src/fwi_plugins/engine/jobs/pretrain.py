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
import datetime as _dt
import json
import shlex
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...data.rows import RowStack
from ...errors import ConfigError, FWIError
from ..config import ResolvedConfig, RunConfig
from ..options import PretrainOptions
from .start import GetSpec, hardware, io_shape, load_arrays, release_run_dir, start_job
from ..notify import Notify, no_notify

if TYPE_CHECKING:
    from torch import nn

    from ...data import Normalization, SeismicDataset
    from ...physics import Physics
    from ...specs import BackboneSpec
    from ..training.distributed import DistInfo
    from ..training.result import TrainResult
    from ..training.data import TrainData

__all__ = ["mixture_weights", "model_card_markdown", "pretrain"]

WEIGHTS_FILE = "weights.safetensors"

# Each dataset's (gathers, velocity) of one split; (None, None) for a dataset without that split.
# Simulated gathers are memory-mapped cache parts (a RowStack), read a batch at a time.
Parts = list[tuple[np.ndarray | RowStack | None, np.ndarray | None]]


def mixture_weights(sizes: list[int], weights: tuple[float, ...] = ()) -> np.ndarray:
    """Per-sample sampling weights so that family ``i`` is drawn with probability ``weights[i] / sum``.

    Without weights every sample is equally likely (families in proportion to their size).
    """
    if not weights:
        weights = tuple(float(n) for n in sizes)
    per_sample = [np.full(n, w / n if n else 0.0) for n, w in zip(sizes, weights, strict=True)]
    out = np.concatenate(per_sample) if per_sample else np.zeros(0)
    if out.sum() <= 0:
        raise ConfigError("option 'weights' gives every dataset with training samples a zero weight")
    return out / out.sum()


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


def _load_init(model: nn.Module, spec: BackboneSpec, init: str) -> dict[str, str]:
    """Load the ``init`` weights into ``model``; their header metadata (empty without ``init``)."""
    if not init.strip():
        return {}
    from ...weights import load_pretrained

    try:
        return load_pretrained(model, spec, init.strip())
    except FWIError as exc:
        raise ConfigError(f"option 'init': {exc}") from exc


def _init_normalization(metadata: Mapping[str, str], datasets: list[SeismicDataset]) -> Normalization | None:
    """The normalisation stored with the ``init`` weights, checked against the datasets' velocity range."""
    from ...pretrained import read_normalization

    stored = read_normalization(metadata, "option 'init'")
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
    from ...weights import state_digest
    from ..training.checkpoint import seed_everything
    from ..training.distributed import barrier
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
        if info.distributed:
            # Every process simulates its share of the missing gathers on its own device, then all read them all.
            _fill_splits(datasets, physics_by, opts, info)
            barrier(info)
        train_parts, val_parts = _load_splits(datasets, physics_by, opts, progress=opts.progress and info.is_main)
        data_time = time.perf_counter() - t0
        seed_everything(opts.seed)
        backbone_spec = resolved.spec("backbone")
        model = backbone_spec.load()(resolved.component_option("backbone"), shape=io_shape(datasets[0].survey))
        init_metadata = _load_init(model, backbone_spec, opts.init)
        normalization = _init_normalization(init_metadata, datasets) or _common_normalization(
            [d.normalization for d in datasets], [g for g, _ in train_parts if g is not None])
        train_data, val_data, sizes = _mixture(train_parts, val_parts, opts, warn=info.is_main)
        samples = opts.samples_per_epoch or len(train_data)
        t0 = time.perf_counter()
        # With several families, the physics term uses the first family's survey: all share one shape.
        result = train(model, train_data, val_data, options=opts, normalization=normalization, physics=physics_by[0],
                       checkpoint_dir=out / "checkpoints", samples_per_epoch=samples, stage="pretrain", run_dir=out,
                       notify=notify if info.is_main else None, device=info.device,
                       start_from=state_digest(model) if opts.init.strip() else "")
        train_time = time.perf_counter() - t0
        per_family = _validate_by_family(model, datasets, val_parts, normalization=normalization, opts=opts,
                                         device=info.device)
        metrics = _metrics(result, per_family, model, samples=samples,
                           timing={"data": data_time, "train": train_time, "total": time.perf_counter() - started})
        if info.is_main:
            _write_foundation(resolved, out=out, model=model, datasets=datasets, sizes=sizes,
                              normalization=normalization, metrics=metrics, result=result, info=info)
            notify("fwi_run_finished", run_dir=out, metrics=metrics)
            if summary:
                _print_summary(backbone_spec.name, metrics, result, per_family, out / WEIGHTS_FILE)
        return metrics
    finally:
        if info.is_main:
            release_run_dir(out)  # the folder is free for the next job, finished or failed


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


def dataset_labels(datasets: Sequence[SeismicDataset]) -> list[str]:
    """A distinct label for each dataset of a mixture: its name, and where a name repeats (two
    ``openfwi`` families, say) the name with its ``family`` option, else with its position."""
    names = [d.name for d in datasets]
    labels = []
    for i, d in enumerate(datasets):
        if names.count(d.name) == 1:
            labels.append(d.name)
            continue
        family = (d.attrs.get("options") or {}).get("family")
        labels.append(f"{d.name}:{family}" if family else f"{d.name}#{i + 1}")
    if len(set(labels)) < len(labels):  # the same family twice: positions tell them apart
        labels = [f"{label}#{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]
    return labels


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


def wavelet_record(survey: Any) -> dict[str, Any]:
    """The source wavelet the weights learn, as their metadata records it (what prediction shapes data to)."""
    return {"kind": survey.wavelet, "peak_freq": survey.peak_freq, "delay": survey.delay, "dt": survey.dt}


def _write_foundation(resolved: ResolvedConfig, *, out: Path, model: nn.Module, datasets: list[SeismicDataset],
                      sizes: list[int], normalization: Normalization, metrics: dict[str, Any], result: TrainResult,
                      info: DistInfo) -> None:
    """Write the weights (with what built them in their metadata), the model card, metrics and loss figure."""
    from ...weights import save_weights
    from .rundir import RunDirectory

    opts: PretrainOptions = resolved.options
    card = _model_card(resolved, out=out, datasets=datasets, sizes=sizes, weights=opts.weights,
                       normalization=normalization, metrics=metrics, device=info.device,
                       world_size=info.world_size)
    metadata = {"format": "fwi-foundation-1", "name": opts.name, "backbone": resolved.spec("backbone").name,
                "backbone_options": json.dumps(resolved.config.components["backbone"][0].options),
                "normalization": json.dumps(normalization.to_dict()),
                "shape": json.dumps(dataclasses.asdict(io_shape(datasets[0].survey))),
                "wavelet": json.dumps(wavelet_record(datasets[0].survey)),
                "datasets": json.dumps(dataset_labels(datasets)), "seed": str(opts.seed),
                "steps": str(result.steps)}
    save_weights(model, out / WEIGHTS_FILE, metadata=metadata)
    rd = RunDirectory(out)
    rd.write_json("model_card.json", card)
    rd.write_text("model_card.md", model_card_markdown(card))
    rd.write_metrics(metrics)
    if opts.progress:
        from .. import figures as fig

        try:
            keys = ("epoch", "train_loss", "val_mae", "val_misfit")
            fig.loss_curves(out / "figures" / "loss.png",
                            [{k: h[k] for k in keys if k in h} for h in result.history], title="pretraining")
        except Exception as exc:  # a figure must never cost the finished weights
            # stacklevel 3: the warning names the caller of pretrain().
            warnings.warn(f"the loss figure was not written: {exc}", UserWarning, stacklevel=3)


def _print_summary(backbone: str, metrics: Mapping[str, Any], result: TrainResult,
                   per_family: Mapping[str, Mapping[str, float]], weights: Path) -> None:
    """What was pretrained, how it validates, and how to use the weights."""
    shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics["validation"].items())
    print(f"pretrained {backbone} ({metrics['parameters']:,} parameters) for {result.steps} steps in "
          f"{result.wall_time:.0f} s: {shown or 'no validation'}")
    for name, m in per_family.items():
        print(f"  {name:<16} MAE {m['mae']:.4f}  SSIM {m['ssim']:.4f}")
    if not result.complete:
        print("the time budget stopped pretraining early: these weights are a snapshot; run the same "
              "command again to resume")
    print(f"weights: {weights}\nuse them: fwi run --backbone {backbone} "
          f"--pretrained {weights} ...")


def _model_card(resolved: ResolvedConfig, *, out: Path, datasets: list[SeismicDataset], sizes: list[int],
                weights: tuple[float, ...], normalization: Normalization, metrics: Mapping[str, Any], device: str,
                world_size: int) -> dict[str, Any]:
    """The model card's content (``model_card.json``; :func:`model_card_markdown` writes it for people)."""
    config = resolved.config
    probabilities = mixture_weights(sizes, weights)
    shares, start = [], 0
    for n in sizes:
        shares.append(float(probabilities[start:start + n].sum()))
        start += n
    argv = list(config.argv)
    return {
        "name": resolved.options.name,
        "backbone": {"name": config.components["backbone"][0].name,
                     "options": dict(config.components["backbone"][0].options)},
        # Called from Python there is no command line; the configuration file is the recipe.
        "command": shlex.join(argv) if argv else f"fwi pretrain --config {out / 'config.toml'}",
        "reproduce": f"fwi pretrain --config {out / 'config.toml'}",
        "data": [{"name": label, "options": dict(c.options), "train": n, "val": d.split_sizes.get("val", 0),
                  "sampling_share": share, "attrs": _plain(d.attrs)}
                 for d, label, c, n, share in zip(datasets, dataset_labels(datasets), config.components["dataset"],
                                                  sizes, shares, strict=True)],
        "physics": (dict(config.components["physics"][0].to_dict()) if config.components.get("physics") else None),
        "normalization": normalization.to_dict(),
        "seed": resolved.options.seed,
        "init": resolved.options.init or None,
        "options": dict(config.options),
        "steps": metrics["training"]["steps"],
        "complete": metrics["training"]["complete"],
        "epochs": metrics["training"]["epochs"],
        "selected_epoch": metrics["training"]["best_epoch"],
        "wall_time_s": metrics["training"]["wall_time"],
        "hardware": hardware(device, world_size),
        "validation": metrics["validation"],
        "validation_by_dataset": metrics["validation_by_dataset"],
        "parameters": metrics["parameters"],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _plain(value: Any) -> Any:
    """``value`` as JSON-able data."""
    from .rundir import to_jsonable

    return to_jsonable(value)


def model_card_markdown(card: Mapping[str, Any]) -> str:
    """The model card as Markdown, for people (``model_card.json`` holds the same for programs)."""
    hw = card["hardware"]
    where = hw.get("gpu") or f"{hw.get('cpu')} ({hw.get('cpu_threads')} threads)"
    lines = [
        f"# {card['name']}: {card['backbone']['name']} foundation model",
        "",
        f"Pretrained with fwi-plugins on {len(card['data'])} dataset famil{'y' if len(card['data']) == 1 else 'ies'}; "
        f"{card['steps']} steps in {card['epochs']} epochs, {card['wall_time_s']:.0f} s on {where} "
        f"({hw['processes']} process{'es' if hw['processes'] > 1 else ''}, torch {hw['torch']}).",
        "",
        *([f"Initialised from the weights `{card['init']}` (see their own model card), then trained as below.",
           ""] if card.get("init") else []),
        "## Reproduce",
        "",
        "```",
        card["command"],
        "```",
        "",
        f"or `{card['reproduce']}`. Seed {card['seed']}.",
        "",
        "## Backbone",
        "",
        f"`{card['backbone']['name']}` with options `{json.dumps(card['backbone']['options'])}`; "
        f"{card['parameters']:,} parameters.",
        "",
        "## Data",
        "",
        "| dataset | train | val | sampling share |",
        "|---|---:|---:|---:|",
    ]
    for d in card["data"]:
        lines.append(f"| {d['name']} | {d['train']} | {d['val']} | {d['sampling_share']:.2f} |")
    lines += ["", "Test splits were not used: validation is on each family's validation split.", "",
              "## Validation", "", "| dataset | MAE | RMSE | SSIM | MAE (m/s) |", "|---|---:|---:|---:|---:|"]
    for name, m in card["validation_by_dataset"].items():
        lines.append(f"| {name} | {m['mae']:.4f} | {m['rmse']:.4f} | {m['ssim']:.4f} | {m['mae_ms']:.1f} |")
    overall = ", ".join(f"{k} = {v:.4g}" for k, v in card["validation"].items())
    chosen = card.get("selected_epoch")
    which = f"epoch {chosen}, the best on validation, whose weights these are" if chosen is not None else "last epoch"
    lines += ["", f"Mixture ({which}): {overall or 'n/a'}.", "",
              "## Normalisation", "", f"`{json.dumps(card['normalization'])}`", ""]
    return "\n".join(lines)

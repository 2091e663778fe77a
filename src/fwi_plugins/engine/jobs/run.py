"""The main job: adapt a foundation model to a dataset and leave a run directory behind.

:func:`run` follows the steps of ``fwi run``, one function each:

1. build the backbone and load its foundation weights (or start from scratch, with a
   warning, when the backbone ships none);
2. load the dataset, simulating missing gathers through the physics (cached);
3. evaluate zero-shot on the test split;
4. adapt with the PEFT method (label loss + ``lambda_physics`` x physics misfit, or the
   misfit alone with ``labels="none"``), checkpointing every epoch;
5. evaluate again, and refine a few test predictions by physics-based FWI;
6. write the run directory::

       config.toml, config.json    the resolved configuration (fwi run --config DIR re-runs it)
       metrics.json                zero-shot / adapted / refined metrics, training history
       adapter/                    the adapter in peft's layout (+ normalization.json)
       predictions/*.nc            truth, zero-shot, adapted and refined velocity (netCDF)
       figures/*.png               velocity side by side, gathers, loss and misfit curves
       checkpoints/                the last finished epoch, for resuming

Running the same configuration into the same directory again resumes: finished epochs
are not trained again. Importing this module stays free of torch.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ConfigError
from ..config import ResolvedConfig, RunConfig
from ..options import RunOptions
from ..evaluate import score_predictions
from .start import GetSpec, hardware, io_shape, load_arrays, release_run_dir, start_job
from ..notify import Notify, no_notify

if TYPE_CHECKING:
    from torch import nn

    from ...data import Normalization, SeismicDataset
    from ...physics import Physics
    from ...specs import BackboneSpec
    from ..training.distributed import DistInfo
    from ..training.result import TrainResult

__all__ = ["load_foundation", "run"]


@dataclass
class _Job:
    """One call of :func:`run`: its configuration, process, directory, notifier and timings."""

    resolved: ResolvedConfig
    info: DistInfo
    out: Path
    notify: Notify
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def opts(self) -> RunOptions:
        return self.resolved.options

    @property
    def device(self) -> str:
        return self.info.device

    @property
    def progress(self) -> bool:
        return self.opts.progress and self.info.is_main


@dataclass
class _Components:
    """The dataset, physics and backbone the run works with, and where the backbone's weights came from."""

    ds: SeismicDataset
    physics: Physics
    model: nn.Module
    foundation: dict[str, Any]


@dataclass
class _Data:
    """The samples the run adapts on and is evaluated on, and the scaling the network sees them through."""

    train_x: np.ndarray
    train_y: np.ndarray | None
    val_x: np.ndarray | None
    val_y: np.ndarray | None
    test_x: np.ndarray
    test_truth: np.ndarray | None
    sizes: dict[str, int]
    n_train: int
    normalization: Normalization


@dataclass
class _Tested:
    """A network's test predictions (m/s) and their metrics."""

    velocity: np.ndarray
    metrics: dict[str, Any]


@dataclass
class _Adapted:
    """The adapted network, its training, its parameter counts and its test predictions."""

    model: nn.Module
    training: TrainResult
    trainable: int
    total: int
    test: _Tested
    self_training: list[dict[str, Any]] | None = None


@dataclass
class _Refined:
    """The first ``k`` adapted test predictions refined by FWI, with the metrics before and after."""

    velocity: np.ndarray
    info: dict[str, Any]
    before: dict[str, Any]
    after: dict[str, Any]
    k: int


def run(config: RunConfig | ResolvedConfig, *, get_spec: GetSpec | None = None, notify: Notify | None = None,
        summary: bool = True) -> dict[str, Any]:
    """Run the main job (``fwi run``) and return its metrics.

    Args:
        config: the job's configuration; resolved against the registry first when it is a
            plain :class:`RunConfig`.
        get_spec: ``get_spec(kind, name) -> spec``; defaults to the process-wide plugin
            registry (:func:`fwi_plugins.api.get_spec`).
        notify: ``notify(hook, **kwargs)`` for lifecycle hooks (``fwi_run_started``,
            ``fwi_epoch_end``, ``fwi_predictions_ready``, ``fwi_run_finished``); the CLI
            passes the plugin manager's ``notify``.
        summary: print the summary table at the end.

    Returns:
        The content of ``metrics.json``: ``zero_shot``, ``adapted``, ``refined`` (and
        ``adapted_on_refined``, the adapted metrics of the refined samples), ``training``,
        ``parameters``, ``timing`` and more.
    """
    started = time.perf_counter()
    notify = notify or no_notify
    resolved, info, out = start_job(config, "run", get_spec)
    try:
        job = _Job(resolved=resolved, info=info, out=out, notify=notify)
        if info.is_main:
            notify("fwi_run_started", run_dir=out, config=resolved.config.to_dict())
        t0 = time.perf_counter()
        parts = _build_components(job)
        data = _load_data(job, parts)
        job.timing["data"] = time.perf_counter() - t0
        zero_shot = _zero_shot(job, parts, data)
        adapted = _adapt(job, parts, data)
        refined = _refine(job, parts, data, adapted.test.velocity)
        metrics = _metrics(job, parts, data, zero_shot, adapted, refined)
        if info.is_main:
            _write_run(job, parts, data, zero_shot, adapted, refined, metrics, started=started, summary=summary)
        else:
            metrics["timing"] = job.timing
        return metrics
    finally:
        if info.is_main:
            release_run_dir(out)  # the folder is free for the next job, finished or failed


def load_foundation(model: nn.Module, spec: BackboneSpec, pretrained: str) -> dict[str, Any]:
    """Load foundation weights into ``model`` per the ``pretrained`` option.

    Returns:
        ``{"source": ..., "metadata": {...}, "digest": ..., "config": ...}``; ``source`` is ``"none"``
        when the network starts from its random initialisation; ``digest`` identifies the weights
        loaded (:func:`~fwi_plugins.weights.state_digest`; empty for random weights), so a run
        resumes only from the same ones; ``config`` is their
        :class:`~fwi_plugins.pretrained.PretrainedConfig` (``None`` for random weights).
    """
    from ...pretrained import choose, load_weights

    choice = choose(spec, pretrained)
    if choice is None:
        if pretrained.strip().lower() == "default":
            # stacklevel 4: the warning names the caller of run() (run builds its components in a stage).
            warnings.warn(f"backbone {spec.name!r} ships no pretrained weights: starting from scratch, so the "
                          f"zero-shot column describes an untrained network (pass --pretrained PATH to "
                          f"use weights from fwi pretrain)", UserWarning, stacklevel=4)
        return {"source": "none", "metadata": {}, "digest": "", "config": None}  # the seed, already checked, fixes it
    config = load_weights(model, spec, choice, label=f"pretrained weights {choice}")
    return {"source": choice, "metadata": dict(config.metadata), "digest": config.digest, "config": config}


def _build_components(job: _Job) -> _Components:
    """Load the dataset, build the physics and the backbone with its foundation weights."""
    from ..training.checkpoint import seed_everything

    resolved, opts, device = job.resolved, job.opts, job.device
    backbone_spec, dataset_spec, physics_spec = (resolved.spec("backbone"), resolved.spec("dataset"),
                                                 resolved.spec("physics"))
    ds = dataset_spec.load()(resolved.component_option("dataset"))
    if opts.labels == "full" and not ds.has_labels:
        raise ConfigError(f"option 'labels' is 'full' but dataset {dataset_spec.name!r} has no velocity labels; "
                          f"adapt label-free with --labels none")
    physics = physics_spec.load()(resolved.component_option("physics"), survey=ds.survey)
    if hasattr(physics, "to") and device != "cpu":
        physics = physics.to(device) or physics
    seed_everything(opts.seed)
    model = backbone_spec.load()(resolved.component_option("backbone"), shape=io_shape(ds.survey))
    foundation = load_foundation(model, backbone_spec, opts.pretrained)
    normalization = foundation["config"].normalization if foundation["config"] else None
    if normalization is not None:
        # The network learned its input scale in pretraining; the target data must use the same.
        ds.set_normalization(normalization)
    return _Components(ds=ds, physics=physics, model=model, foundation=foundation)


def _load_data(job: _Job, parts: _Components) -> _Data:
    """The train, validation and test arrays (rank 0 first, filling the simulation cache)."""
    from ..training.distributed import sync_first

    ds, opts = parts.ds, job.opts
    sizes = ds.split_sizes
    if sizes.get("train", 0) == 0 or sizes.get("test", 0) == 0:
        raise ConfigError(f"dataset {job.resolved.spec('dataset').name!r} has splits {sizes}; the main job needs "
                          f"train and test samples")
    use_labels = opts.labels == "full"

    def load(split: str, labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return load_arrays(ds, parts.physics, split, cache_dir=opts.cache_dir, progress=job.progress,
                           labels=labels)

    def load_splits() -> tuple[Any, Any, Any]:
        return (load("train", use_labels), load("val", use_labels) if sizes.get("val", 0) else (None, None),
                load("test", False))

    (train_x, train_y), (val_x, val_y), (test_x, _) = sync_first(job.info, load_splits)
    n_train = max(1, round(opts.train_fraction * len(train_x)))
    train_x, train_y = train_x[:n_train], (train_y[:n_train] if train_y is not None else None)
    test_truth = ds.velocity("test") if ds.has_labels else None
    if opts.n_eval:
        test_x = test_x[: opts.n_eval]
        test_truth = test_truth[: opts.n_eval] if test_truth is not None else None
    return _Data(train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, test_x=test_x, test_truth=test_truth,
                 sizes=sizes, n_train=n_train, normalization=ds.normalization)


def _test(job: _Job, parts: _Components, data: _Data, net: nn.Module) -> _Tested:
    """``net``'s test predictions in m/s (clipped to the survey's range) and their metrics."""
    from ..training.validation import predict_unit

    opts = job.opts
    unit = predict_unit(net, data.test_x, normalization=data.normalization, device=job.device,
                        batch_size=opts.eval_batch_size, amp=opts.amp)
    velocity = data.normalization.velocity_from_unit(unit)
    velocity = np.clip(velocity, parts.ds.survey.vmin, parts.ds.survey.vmax).astype(np.float32)
    metrics = score_predictions(velocity, data.test_truth, data.test_x, normalization=data.normalization,
                        physics=parts.physics, n_misfit=opts.n_misfit, device=job.device)
    return _Tested(velocity=velocity, metrics=metrics)


def _zero_shot(job: _Job, parts: _Components, data: _Data) -> _Tested:
    """The foundation network on the test split, before any adaptation."""
    t0 = time.perf_counter()
    parts.model.to(job.device)
    tested = _test(job, parts, data, parts.model)
    job.timing["zero_shot"] = time.perf_counter() - t0
    return tested


def _adapt(job: _Job, parts: _Components, data: _Data) -> _Adapted:
    """Adapt the network with the PEFT method (resuming from the run's checkpoints), then test it."""
    import torch

    from ...adapted import count_parameters
    from ..training.train import train
    from ..training.data import TrainData

    resolved, opts, info, out = job.resolved, job.opts, job.info, job.out
    torch.manual_seed(opts.seed + 1)
    backbone_spec = resolved.spec("backbone")
    adapted = resolved.spec("peft").apply(parts.model, resolved.component_option("peft"),
                                          targets=tuple(backbone_spec.peft_targets), head=tuple(backbone_spec.head))
    trainable, total = count_parameters(adapted)
    t0 = time.perf_counter()
    val_data = None
    if data.val_x is not None and len(data.val_x):
        val_data = TrainData(gathers=data.val_x, velocity=data.val_y)
    notify = job.notify if info.is_main else None
    rounds = None
    if opts.labels == "self":
        from ..training.self_training import self_train

        result, rounds = self_train(adapted, TrainData(gathers=data.train_x), val_data, opts=opts,
                                    normalization=data.normalization, physics=parts.physics, out=out,
                                    device=job.device, progress=job.progress, notify=notify,
                                    start_from=parts.foundation["digest"])
    else:
        result = train(adapted, TrainData(gathers=data.train_x, velocity=data.train_y), val_data, options=opts,
                       normalization=data.normalization, physics=parts.physics, checkpoint_dir=out / "checkpoints",
                       stage="adapt", run_dir=out, notify=notify, device=job.device,
                       start_from=parts.foundation["digest"])
    job.timing["adapt"] = time.perf_counter() - t0
    return _Adapted(model=adapted, training=result, trainable=trainable, total=total,
                    test=_test(job, parts, data, adapted), self_training=rounds)


def _refine(job: _Job, parts: _Components, data: _Data, adapted_pred: np.ndarray) -> _Refined | None:
    """Refine the first ``refine_samples`` adapted predictions by FWI (rank 0), or ``None`` when none are asked for."""
    opts = job.opts
    k = min(opts.refine_samples, len(data.test_x))
    if not (k and job.info.is_main):
        return None
    from ..refinement.refine import refine
    from ..training.self_training import refine_options

    t0 = time.perf_counter()
    survey = parts.ds.survey
    outcome = refine(adapted_pred[:k], data.test_x[:k], physics=parts.physics, device=job.device,
                     progress=job.progress, **refine_options(opts, survey.vmin, survey.vmax))
    refined = np.asarray(outcome.velocity, np.float32).reshape(adapted_pred[:k].shape)
    info = outcome.to_dict()
    if outcome.unchanged:  # refine's "do no harm": held-out shots found no better model than the adapted one
        print(f"test {outcome.holdout_note()}")
    truth_k = data.test_truth[:k] if data.test_truth is not None else None
    before, after = (score_predictions(v, truth_k, data.test_x, normalization=data.normalization, physics=parts.physics,
                               n_misfit=k, device=job.device) for v in (adapted_pred[:k], refined))
    job.timing["refine"] = time.perf_counter() - t0
    return _Refined(velocity=refined, info=info, before=before, after=after, k=k)


def _metrics(job: _Job, parts: _Components, data: _Data, zero_shot: _Tested, adapted: _Adapted,
             refined: _Refined | None) -> dict[str, Any]:
    """The content of ``metrics.json``, less the timings."""
    metrics: dict[str, Any] = {"zero_shot": zero_shot.metrics, "adapted": adapted.test.metrics}
    if refined is not None:
        metrics["adapted_on_refined"] = refined.before
        metrics["refined"] = refined.after
    result, trainable, total = adapted.training, adapted.trainable, adapted.total
    metrics.update({
        "training": {"history": result.history, "epochs": result.epochs, "steps": result.steps,
                     "wall_time": result.wall_time, "resumed_from": result.resumed_from,
                     "best_epoch": result.best_epoch, "complete": result.complete},
        "refinement": refined.info if refined is not None else {},
        **({"self_training": adapted.self_training} if adapted.self_training is not None else {}),
        "parameters": {"trainable": int(trainable), "total": int(total),
                       "fraction": float(trainable) / max(1, int(total))},
        "pretrained": parts.foundation["source"],
        # Which weights, whatever their path: the same digest as the checkpoints record.
        "pretrained_digest": parts.foundation["digest"] or None,
        "dataset": {"name": parts.ds.name, "split_sizes": data.sizes, "train_used": int(data.n_train),
                    "test_evaluated": int(len(data.test_x)), "normalization": data.normalization.to_dict()},
        "hardware": hardware(job.device, job.info.world_size),
        "seed": job.opts.seed,
    })
    return metrics


def _write_run(job: _Job, parts: _Components, data: _Data, zero_shot: _Tested, adapted: _Adapted,
               refined: _Refined | None, metrics: dict[str, Any], *, started: float, summary: bool) -> None:
    """Rank 0 writes the outputs and ``metrics.json``, calls ``fwi_run_finished`` and prints the summary."""
    from .rundir import RunDirectory
    from .run_outputs import print_summary, write_outputs

    t0 = time.perf_counter()
    predictions = {"truth": data.test_truth, "zero-shot": zero_shot.velocity, "adapted": adapted.test.velocity,
                   "refined": refined.velocity if refined is not None else None}
    write_outputs(job.out, adapted=adapted.model, ds=parts.ds, physics=parts.physics,
                  normalization=data.normalization, predictions=predictions, history=adapted.training.history,
                  refine_history=refined.info.get("history") if refined is not None else None,
                  test_x=data.test_x, figures=job.opts.figures, notify=job.notify, device=job.device, about=metrics)
    job.timing["write"] = time.perf_counter() - t0
    job.timing["total"] = time.perf_counter() - started
    metrics["timing"] = job.timing
    RunDirectory(job.out).write_metrics(metrics)
    job.notify("fwi_run_finished", run_dir=job.out, metrics=metrics)
    if summary:
        stages = {"zero-shot": zero_shot.metrics, "adapted": adapted.test.metrics}
        if refined is not None:
            stages[f"adapted ({refined.k})"] = refined.before
            stages[f"refined ({refined.k})"] = refined.after
        trainable, total = adapted.trainable, adapted.total
        extra = (f"trainable parameters: {trainable:,} of {total:,} ({100.0 * trainable / max(1, total):.2f}%)"
                 f"   wall time: {job.timing['total']:.0f} s on {job.device}")
        print_summary(stages, job.out, extra)

"""The main job: adapt a foundation model to a dataset and leave a run directory behind.

:func:`run` follows the steps of ``fwi run``:

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
are not trained again.
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from .. import atomic
from ..atomic import is_leftover, remove_leftovers
from .config import ResolvedConfig, RunConfig, RunOptions

__all__ = ["default_out", "hardware", "prepare_run_dir", "resolve", "run"]

GetSpec = Callable[[str, str], Any]
if TYPE_CHECKING:
    from .train import Notify

# Keys that may change between a run and its resumption without changing its result.
# What may change between the calls of one job: how it runs, not what it trains. The time
# budgets are per invocation (a resumed call usually has another), so they are here too.
_RESUMABLE_DIFFS = ("argv", "out", "options.device", "options.progress", "options.figures",
                    "options.cache_dir", "options.eval_batch_size", "options.max_minutes",
                    "options.checkpoint_minutes")


def _registry_get_spec() -> GetSpec:
    # Only when a caller hands in no resolver.
    from .components import registry_spec

    return registry_spec


def __getattr__(name: str) -> Any:
    # Notify and _no_notify are the training loop's (defined once, there); this module
    # handed them out before and stays free of torch until they are asked for.
    if name in ("Notify", "_no_notify"):
        from . import train

        return getattr(train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve(config: RunConfig | ResolvedConfig, get_spec: GetSpec | None = None) -> ResolvedConfig:
    """``config`` checked against the registry (see :meth:`RunConfig.resolve`).

    For ``run``, backbone options the foundation weights were trained with fill in the
    ones not given explicitly (see :func:`with_pretrained_options`).
    """
    if isinstance(config, ResolvedConfig):
        return config
    get_spec = get_spec or _registry_get_spec()
    return with_pretrained_options(config, get_spec).resolve(get_spec)


def with_pretrained_options(config: RunConfig, get_spec: GetSpec) -> RunConfig:
    """Build the backbone the way its foundation weights were built.

    Weights written by ``fwi pretrain`` record their backbone and its options; options
    given explicitly override them only where compatible (see
    :func:`fwi_plugins.pretrained.backbone_options`). ``pretrained = "none"`` (the
    scratch baseline) takes the architecture of the backbone's default weights.

    Raises:
        ConfigError: the weights belong to another backbone.
        OptionError: an option the weights fix, given another value.
        UnknownNameError: ``pretrained`` is neither a shipped name nor a file.
    """
    import dataclasses

    from ..pretrained import backbone_options
    from .config import Component

    items = config.components.get("backbone") or ()
    if config.command != "run" or not items:
        return config
    spec = get_spec("backbone", items[0].name)
    try:
        options, _ = backbone_options(spec, items[0].options, str(config.options.get("pretrained", "default")))
    except ConfigError as exc:
        raise ConfigError(f"option 'pretrained': {exc}") from None
    if options == dict(items[0].options):
        return config
    merged = Component(items[0].name, options)
    return dataclasses.replace(config, components={**config.components, "backbone": (merged, *items[1:])})


def default_out(config: RunConfig) -> Path:
    """``runs/<backbone>-<peft>-<dataset>`` (run) or ``runs/pretrain-<backbone>`` (pretrain).

    Deterministic on purpose: the same command run again finds its own directory and resumes.
    """
    def first(kind: str) -> str:
        items = config.components.get(kind) or ()
        return items[0].name if items else kind

    if config.command == "pretrain":
        return Path("runs") / f"pretrain-{first('backbone')}"
    labels = "-labelfree" if config.options.get("labels") == "none" else ""
    return Path("runs") / f"{first('backbone')}-{first('peft')}-{first('dataset')}{labels}"


def prepare_run_dir(resolved: ResolvedConfig, *, is_main: bool = True) -> tuple[Path, ResolvedConfig]:
    """Create (or reopen) the run directory and write the configuration into it.

    A directory that already holds a different configuration is refused, naming the
    first differing key: resuming it would mix two jobs.
    """
    import dataclasses

    config = resolved.config
    out = Path(config.out) if config.out else default_out(config)
    out = out.expanduser().resolve()
    config = dataclasses.replace(config, out=str(out))
    resolved = dataclasses.replace(resolved, config=config)
    existing = out / "config.json"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    work = _work_done(out)
    if existing.is_file() and work:
        try:
            old = RunConfig.from_dict(json.loads(existing.read_text()), source=str(existing))
        except (json.JSONDecodeError, UnicodeDecodeError, ConfigError) as exc:
            raise ConfigError(f"{out} holds an unreadable config.json ({exc}); choose another --out") from None
        changed = config.diff(old, ignore=_RESUMABLE_DIFFS)
        if changed:
            key = changed[0]
            raise ConfigError(
                f"{out} holds a run with a different configuration (key {key!r}: "
                f"{_lookup(old, key)!r} there, {_lookup(config, key)!r} now); "
                f"choose another --out, or delete that directory to start over")
    elif work:  # a folder of someone's files: a run would overwrite config.* and metrics.json
        raise ConfigError(f"--out {out} is not empty and is not a run directory (it holds no config.json, but "
                          f"{work[0]}); choose a new or empty folder")
    # A run that wrote nothing but its configuration (it failed on a bad input, say) does
    # not hold its folder: the corrected command starts it again.
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out)  # temporaries of writes a killed run never finished
        config.save(out / "config.toml")
        config.save(out / "config.json")
    return out, resolved


def _work_done(out: Path) -> list[str]:
    """The files in ``out`` that a run's configuration alone does not account for (sorted)."""
    if not out.is_dir():
        return []
    found = []
    for path in out.rglob("*"):
        relative = path.relative_to(out)
        if any(is_leftover(Path(part)) for part in relative.parts):
            continue
        if path.is_dir() and not path.is_symlink():
            continue
        if relative.as_posix() in ("config.toml", "config.json"):
            continue
        found.append(relative.as_posix())
    return sorted(found)


def start_job(config: RunConfig | ResolvedConfig, command: str,
              get_spec: GetSpec | None = None) -> tuple[ResolvedConfig, Any, Path]:
    """The first steps of every job: resolve, check the command, join the process group,
    prepare the run directory. Returns ``(resolved, dist_info, run_dir)``."""
    from .train import setup_distributed

    resolved = resolve(config, get_spec)
    if resolved.config.command != command:
        other = "pretrain" if command == "run" else "run"
        raise ConfigError(f"key 'command' is {resolved.config.command!r}; use {other}() for it")
    info = setup_distributed(resolved.options.device)
    out, resolved = prepare_run_dir(resolved, is_main=info.is_main)
    return resolved, info, out


def _lookup(config: RunConfig, dotted: str) -> Any:
    from .config import _flatten

    return _flatten(config.to_dict()).get(dotted)


def hardware(device: str, world_size: int = 1) -> dict[str, Any]:
    """What the job ran on, for model cards and metrics."""
    import torch

    info: dict[str, Any] = {"device": device, "processes": world_size, "platform": platform.platform(),
                            "python": platform.python_version(), "torch": torch.__version__,
                            "cpu": platform.processor() or platform.machine(),
                            "cpu_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def atomic_dir(path: Path, write: Callable[[Path], Any]) -> Path:
    """Have ``write(tmp)`` fill a temporary folder, then swap it in for ``path`` whole."""
    with atomic.atomic_dir(path) as tmp:
        write(tmp)
    return Path(path)


def load_arrays(ds: Any, physics: Any, split: str, *, cache_dir: str | None, progress: bool,
                labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Gathers (simulated and cached if the dataset records none) and, if asked, velocity."""
    gathers = ds.gathers(split, physics, cache_dir=cache_dir or None, progress=progress)
    velocity = ds.velocity(split) if labels and ds.has_labels else None
    return gathers, velocity


def _sync_first(info: Any, work: Callable[[], Any]) -> Any:
    """Rank 0 does ``work`` first (filling shared caches), then every other rank does."""
    from .train import _barrier

    if info.is_main:
        result = work()
        _barrier(info)
        return result
    _barrier(info)
    return work()


def _io_shape(survey: Any) -> Any:
    from ..specs import IOShape

    return IOShape(shots=survey.n_shots, time=survey.nt, receivers=survey.n_receivers,
                   depth=survey.nz, width=survey.nx)


def load_foundation(model: Any, spec: Any, pretrained: str) -> dict[str, Any]:
    """Load foundation weights into ``model`` per the ``pretrained`` option.

    Returns:
        ``{"source": ..., "metadata": {...}}``; ``source`` is ``"none"`` when the network
        starts from its random initialisation.
    """
    from ..pretrained import choose

    choice = choose(spec, pretrained)
    if choice is None:
        if pretrained.strip().lower() == "default":
            warnings.warn(f"backbone {spec.name!r} ships no pretrained weights: starting from scratch, so the "
                          f"zero-shot column describes an untrained network (pass --pretrained PATH to "
                          f"use weights from fwi pretrain)", UserWarning, stacklevel=3)
        return {"source": "none", "metadata": {}}
    from ..weights import load_pretrained

    metadata = load_pretrained(model, spec, choice)
    return {"source": choice, "metadata": dict(metadata or {})}


def _normalization_from(metadata: Mapping[str, Any]) -> Any:
    raw = metadata.get("normalization")
    if raw is None:
        return None
    from ..data import Normalization

    data = json.loads(raw) if isinstance(raw, str) else raw
    return Normalization.from_dict(data)


def _evaluate(predicted: np.ndarray, truth: np.ndarray | None, observed: np.ndarray, *, normalization: Any,
              physics: Any, n_misfit: int, device: str) -> dict[str, Any]:
    """Velocity metrics on every sample; the data misfit on the first ``n_misfit`` (it costs a simulation each)."""
    from .evaluate import evaluate

    result: dict[str, Any] = {}
    if truth is not None:
        result.update(evaluate(predicted, truth, normalization=normalization))
    k = min(n_misfit, len(predicted))
    if k and physics is not None:
        fit = evaluate(predicted[:k], None, normalization=normalization, physics=physics, observed=observed[:k],
                       device=device)
        result["data_misfit"] = fit["data_misfit"]
        result["physics_misfit"] = fit["physics_misfit"]
        result["n_misfit"] = k
    result.setdefault("n_samples", int(len(predicted)))
    return result


def _print_summary(stages: Mapping[str, Mapping[str, Any]], out: Path, extra: str = "") -> None:
    from .rundir import summary_table

    print(summary_table(stages))
    if extra:
        print(extra)
    print(f"run directory: {out}")


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
    import torch

    from .train import TrainData, seed_everything, train

    started = time.perf_counter()
    from .train import _no_notify

    notify = notify or _no_notify
    resolved, info, out = start_job(config, "run", get_spec)
    opts: RunOptions = resolved.options
    device = info.device
    config_dict = resolved.config.to_dict()
    progress = opts.progress and info.is_main
    if info.is_main:
        notify("fwi_run_started", run_dir=out, config=config_dict)
    timing: dict[str, float] = {}

    # -- components ---------------------------------------------------------------------
    backbone_spec, peft_spec = resolved.spec("backbone"), resolved.spec("peft")
    dataset_spec, physics_spec = resolved.spec("dataset"), resolved.spec("physics")
    t0 = time.perf_counter()
    ds = dataset_spec.load()(resolved.component_option("dataset"))
    use_labels = opts.labels == "full"
    if use_labels and not ds.has_labels:
        raise ConfigError(f"option 'labels' is 'full' but dataset {dataset_spec.name!r} has no velocity labels; "
                          f"adapt label-free with --labels none")
    physics = physics_spec.load()(resolved.component_option("physics"), survey=ds.survey)
    if hasattr(physics, "to") and device != "cpu":
        physics = physics.to(device) or physics
    seed_everything(opts.seed)
    model = backbone_spec.load()(resolved.component_option("backbone"), shape=_io_shape(ds.survey))
    foundation = load_foundation(model, backbone_spec, opts.pretrained)
    normalization = _normalization_from(foundation["metadata"])
    if normalization is not None:
        # The network learned its input scale in pretraining; the target data must use the same.
        ds.set_normalization(normalization)

    sizes = ds.split_sizes
    if sizes.get("train", 0) == 0 or sizes.get("test", 0) == 0:
        raise ConfigError(f"dataset {dataset_spec.name!r} has splits {sizes}; the main job needs train and test "
                          f"samples")

    def load(split: str, labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return load_arrays(ds, physics, split, cache_dir=opts.cache_dir, progress=progress, labels=labels)

    def load_splits() -> tuple[Any, Any, Any]:
        return (load("train", use_labels), load("val", use_labels) if sizes.get("val", 0) else (None, None),
                load("test", False))

    (train_x, train_y), (val_x, val_y), (test_x, _) = _sync_first(info, load_splits)
    n_train = max(1, round(opts.train_fraction * len(train_x)))
    train_x, train_y = train_x[:n_train], (train_y[:n_train] if train_y is not None else None)
    test_truth = ds.velocity("test") if ds.has_labels else None
    if opts.n_eval:
        test_x = test_x[: opts.n_eval]
        test_truth = test_truth[: opts.n_eval] if test_truth is not None else None
    normalization = ds.normalization
    timing["data"] = time.perf_counter() - t0

    # -- zero-shot ------------------------------------------------------------------------
    from .train import predict_unit

    def predict_ms(net: Any) -> np.ndarray:
        unit = predict_unit(net, test_x, normalization=normalization, device=device,
                            batch_size=opts.eval_batch_size, amp=opts.amp)
        velocity = normalization.velocity_from_unit(unit)
        return np.clip(velocity, ds.survey.vmin, ds.survey.vmax).astype(np.float32)

    t0 = time.perf_counter()
    model.to(device)
    zero_shot = predict_ms(model)
    metrics_zero = _evaluate(zero_shot, test_truth, test_x, normalization=normalization, physics=physics,
                             n_misfit=opts.n_misfit, device=device)
    timing["zero_shot"] = time.perf_counter() - t0

    # -- adaptation -----------------------------------------------------------------------
    torch.manual_seed(opts.seed + 1)
    adapted = peft_spec.apply(model, resolved.component_option("peft"),
                              targets=tuple(backbone_spec.peft_targets), head=tuple(backbone_spec.head))
    from ..adapted import count_parameters

    trainable, total = count_parameters(adapted)
    t0 = time.perf_counter()
    val_data = TrainData(gathers=val_x, velocity=val_y) if val_x is not None and len(val_x) else None
    result = train(adapted, TrainData(gathers=train_x, velocity=train_y), val_data, options=opts,
                   normalization=normalization, physics=physics, checkpoint_dir=out / "checkpoints",
                   stage="adapt", run_dir=out, notify=notify if info.is_main else None, device=device)
    timing["adapt"] = time.perf_counter() - t0
    adapted_pred = predict_ms(adapted)
    metrics_adapted = _evaluate(adapted_pred, test_truth, test_x, normalization=normalization, physics=physics,
                                n_misfit=opts.n_misfit, device=device)

    # -- refinement -----------------------------------------------------------------------
    refined = None
    refine_info: dict[str, Any] = {}
    metrics_refined: dict[str, Any] | None = None
    metrics_base: dict[str, Any] | None = None
    k = min(opts.refine_samples, len(test_x))
    if k and info.is_main:
        from .refine import refine

        t0 = time.perf_counter()
        outcome = refine(adapted_pred[:k], test_x[:k], physics=physics, iterations=opts.refine_iterations,
                         lr=opts.refine_lr, step=opts.refine_step, smooth=opts.refine_smooth,
                         vmin=ds.survey.vmin, vmax=ds.survey.vmax, frequencies=opts.refine_frequencies or None,
                         device=device, progress=progress)
        refined = np.asarray(outcome.velocity, np.float32).reshape(adapted_pred[:k].shape)
        refine_info = outcome.to_dict()
        truth_k = test_truth[:k] if test_truth is not None else None
        metrics_base = _evaluate(adapted_pred[:k], truth_k, test_x, normalization=normalization, physics=physics,
                                 n_misfit=k, device=device)
        metrics_refined = _evaluate(refined, truth_k, test_x, normalization=normalization, physics=physics,
                                    n_misfit=k, device=device)
        timing["refine"] = time.perf_counter() - t0

    metrics: dict[str, Any] = {
        "zero_shot": metrics_zero,
        "adapted": metrics_adapted,
    }
    if metrics_refined is not None:
        metrics["adapted_on_refined"] = metrics_base
        metrics["refined"] = metrics_refined
    metrics.update({
        "training": {"history": result.history, "epochs": result.epochs, "steps": result.steps,
                     "wall_time": result.wall_time, "resumed_from": result.resumed_from,
                     "best_epoch": result.best_epoch},
        "refinement": refine_info,
        "parameters": {"trainable": int(trainable), "total": int(total),
                       "fraction": float(trainable) / max(1, int(total))},
        "pretrained": foundation["source"],
        "dataset": {"name": ds.name, "split_sizes": sizes, "train_used": int(n_train),
                    "test_evaluated": int(len(test_x)), "normalization": normalization.to_dict()},
        "hardware": hardware(device, info.world_size),
        "seed": opts.seed,
    })

    # -- outputs (rank 0 only) -------------------------------------------------------------
    if info.is_main:
        t0 = time.perf_counter()
        _write_outputs(out, adapted=adapted, ds=ds, physics=physics, normalization=normalization,
                       predictions={"truth": test_truth, "zero-shot": zero_shot, "adapted": adapted_pred,
                                    "refined": refined},
                       history=result.history, refine_history=refine_info.get("history"), test_x=test_x,
                       figures=opts.figures, notify=notify, device=device)
        timing["write"] = time.perf_counter() - t0
        timing["total"] = time.perf_counter() - started
        metrics["timing"] = timing
        from .rundir import RunDirectory

        RunDirectory(out).write_metrics(metrics)
        notify("fwi_run_finished", run_dir=out, metrics=metrics)
        if summary:
            stages = {"zero-shot": metrics_zero, "adapted": metrics_adapted}
            if metrics_refined is not None:
                stages[f"adapted ({k})"] = metrics_base  # type: ignore[assignment]
                stages[f"refined ({k})"] = metrics_refined
            shown = {name: {key: v for key, v in m.items() if key in _SHOWN} for name, m in stages.items()}
            extra = (f"trainable parameters: {trainable:,} of {total:,} ({100.0 * trainable / max(1, total):.2f}%)"
                     f"   wall time: {timing['total']:.0f} s on {device}")
            _print_summary(shown, out, extra)
    else:
        metrics["timing"] = timing
    return metrics


_SHOWN = ("mae", "rmse", "ssim", "mae_ms", "data_misfit")


def _write_outputs(out: Path, *, adapted: Any, ds: Any, physics: Any, normalization: Any,
                   predictions: Mapping[str, np.ndarray | None], history: list[dict[str, Any]],
                   refine_history: Any, test_x: np.ndarray, figures: bool, notify: Notify, device: str) -> None:
    from ..data.io import write_velocity
    from ..adapted import save_adapted

    def save_adapter(tmp: Path) -> None:
        save_adapted(adapted, tmp)
        # The input scale travels with the adapter: predicting with it needs the same scaling.
        (tmp / "normalization.json").write_text(json.dumps(normalization.to_dict(), indent=2) + "\n")

    atomic_dir(out / "adapter", save_adapter)
    attrs = {"dataset": ds.name, "split": "test", "generator": "fwi run"}
    for stage, velocity in predictions.items():
        if velocity is None:
            continue
        path = write_velocity(out / "predictions" / f"{stage}.nc", velocity, dx=ds.survey.dx,
                              attrs={**attrs, "stage": stage})
        if stage != "truth":
            notify("fwi_predictions_ready", run_dir=out, stage=stage, path=path, predictions=velocity)
    if not figures:
        return
    from . import figures as fig

    fig_dir = out / "figures"
    try:
        fig.velocity_comparison(fig_dir / "velocity.png", dict(predictions), dx=ds.survey.dx,
                                vmin=ds.survey.vmin, vmax=ds.survey.vmax, title=f"{ds.name}: test samples")
        if history:
            keys = ("train_loss", "train_label_loss", "train_physics_loss", "val_mae", "val_misfit")
            fig.loss_curves(fig_dir / "loss.png", [{k: h[k] for k in ("epoch", *keys) if k in h} for h in history],
                            title="adaptation")
        if refine_history:
            fig.misfit_history(fig_dir / "refine_misfit.png", refine_history)
        best = predictions.get("refined")
        if best is None:
            best = predictions.get("adapted")
        if best is not None and len(best):
            import torch

            with torch.no_grad():
                v = torch.from_numpy(np.ascontiguousarray(best[:1])).to(device)
                simulated = physics.simulate(v).detach().cpu().numpy()
            fig.gather_comparison(fig_dir / "gathers.png", test_x[:1], simulated, survey=ds.survey,
                                  title="observed vs simulated from the final prediction (sample 0, shot 0)")
    except Exception as exc:  # a figure must never cost the finished run its results
        warnings.warn(f"figures were not all written: {exc}", UserWarning, stacklevel=2)

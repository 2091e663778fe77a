"""The Python API: everything the CLI does, as plain functions for other pipelines.

Components are looked up by name in the plugin registry and built with typed options
(a mapping of values, or the component's option dataclass)::

    from fwi_plugins import api

    survey = api.Survey.openfwi()
    physics = api.build_physics("deepwave", survey=survey)
    model = api.build_backbone("vit", {"size": "tiny"})
    model = api.apply_peft(model, "lora", {"r": 8}, backbone="vit")

The manager itself (``api.plugin_manager()``) calls hooks directly, for example
``api.plugin_manager().hook.fwi_backbones()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .manager import FWIPluginManager, get_plugin_manager
from .specs import KINDS, BackboneSpec, ComponentSpec, IOShape, PeftMethodSpec
from .survey import Survey

__all__ = [
    "IOShape",
    "Survey",
    "apply_peft",
    "build",
    "build_backbone",
    "build_physics",
    "get_spec",
    "list_components",
    "load_dataset",
    "plugin_manager",
]


def plugin_manager() -> FWIPluginManager:
    """The process-wide plugin manager (call hooks on ``.hook``)."""
    return get_plugin_manager()


def list_components(kind: str | None = None) -> dict[str, list[str]] | list[str]:
    """Registered component names: one kind's list, or every kind's."""
    manager = get_plugin_manager()
    if kind is not None:
        return sorted(manager.components(kind))
    return {k: sorted(manager.components(k)) for k in KINDS}


def get_spec(kind: str, name: str) -> ComponentSpec:
    """The spec of one component (raises ``UnknownNameError`` with suggestions)."""
    return get_plugin_manager().get(kind, name)


def build(kind: str, name: str, options: Mapping[str, Any] | Any = None, /, *args: Any, **context: Any) -> Any:
    """Build any component: resolve the name, parse options, call the factory with ``context``."""
    spec = get_spec(kind, name)
    return spec.load()(*args, spec.parse_options(options), **context)


def build_backbone(name: str, options: Mapping[str, Any] | Any = None, *, shape: IOShape | None = None,
                   pretrained: str | None = None) -> Any:
    """Build a backbone network, untrained or with pretrained weights.

    Args:
        name: registered backbone name.
        options: backbone options. With weights, they override the weights' own options
            only where compatible (a differing architecture option is an error naming it).
        shape: the sizes to build for; default: the weights' (OpenFWI's without weights).
        pretrained: ``"default"`` (the backbone's shipped foundation), another shipped
            name (``fwi show backbone NAME``) or a ``.safetensors`` path: the network is
            built the way the weights were and carries their normalisation, so
            :func:`predict` needs nothing more. ``"none"``: the default weights'
            architecture, untrained. ``None``: ``options`` as given, untrained.
    """
    from .pretrained import build_backbone as _build

    return _build(get_spec("backbone", name), options, shape=shape, pretrained=pretrained)  # type: ignore[arg-type]


def apply_peft(model: Any, name: str, options: Mapping[str, Any] | Any = None, *,
               backbone: str | BackboneSpec | None = None, targets: tuple[str, ...] | None = None,
               head: tuple[str, ...] | None = None) -> Any:
    """Adapt ``model`` with a PEFT method; targets and head default to the backbone's own."""
    spec = get_spec("peft", name)
    assert isinstance(spec, PeftMethodSpec)
    backbone_spec = get_spec("backbone", backbone) if isinstance(backbone, str) else backbone
    targets = targets if targets is not None else (backbone_spec.peft_targets if backbone_spec else ())
    head = head if head is not None else (backbone_spec.head if backbone_spec else ())
    return spec.apply(model, options, targets=tuple(targets), head=tuple(head))


def load_dataset(name: str, options: Mapping[str, Any] | Any = None) -> Any:
    """Load a dataset (a :class:`fwi_plugins.data.SeismicDataset`)."""
    return build("dataset", name, options)


def build_physics(name: str, options: Mapping[str, Any] | Any = None, *, survey: Survey | None = None) -> Any:
    """Build a forward model for ``survey`` (OpenFWI geometry by default)."""
    return build("physics", name, options, survey=survey or Survey.openfwi())


# -- operations ---------------------------------------------------------------------
# Thin doors onto the engine, imported on call so ``import fwi_plugins.api`` stays cheap.


def simulate(velocity: Any, physics: Any, *, batch_size: int | None = None, progress: bool = False) -> Any:
    """Simulate gathers ``(N, S, T, R)`` from velocity ``(N, 1, Z, X)`` m/s with a built physics."""
    import numpy as np

    from .data.cache import simulate as _simulate

    return _simulate(np.asarray(velocity, dtype=np.float32), physics, batch_size=batch_size, progress=progress)


def predict(model: Any, gathers: Any, *, survey: Survey | None = None, grid: Any = None, shaping: Any = "auto",
            physics: Any = None, shaping_noise: float | None = None, **kwargs: Any) -> Any:
    """Velocity in m/s from raw gathers with a built network; see :func:`fwi_plugins.engine.inference.predict`.

    A network built with pretrained weights brings their normalisation; others need
    ``normalization=``. Gathers recorded with ``survey`` (any acquisition) are mapped onto
    the network's and the prediction back onto ``grid`` (an
    :class:`~fwi_plugins.acquisition.Grid`, default the survey's); see
    :func:`fwi_plugins.acquisition.predict_on_survey`.

    ``shaping`` turns the data's source wavelet and amplitude into those the weights were
    trained with before the network reads them (:mod:`fwi_plugins.shaping`): ``"estimate"``
    (from the data alone, simulating with ``physics``, default ``deepwave``), a wavelet
    (array sampled on the network's time axis), a :class:`~fwi_plugins.shaping.Shaping`, or
    ``"none"``; ``"auto"`` (the default) estimates for networks whose weights record their
    acquisition and leaves other networks' input as it is. ``shaping_noise`` is the shaping's
    white-noise level.
    """
    from .engine.inference import predict as _predict

    if survey is not None:
        from .acquisition import predict_on_survey

        return predict_on_survey(model, gathers, survey, grid=grid, shaping=shaping, physics=physics,
                                 shaping_noise=shaping_noise, **kwargs)
    if isinstance(shaping, str) and shaping.strip().lower() == "none":
        return _predict(model, gathers, **kwargs)
    from .acquisition.mapped_prediction import shaped_native_prediction

    return shaped_native_prediction(model, gathers, shaping=shaping, physics=physics, noise=shaping_noise,
                                    **kwargs)[0]


def predict_files(input_path: Any, out: Any, *, backbone: str, **kwargs: Any) -> Any:
    """What ``fwi predict`` does: gathers from a file to velocity.nc, velocity.sgy and velocity.png in ``out``.

    Keyword arguments as :func:`fwi_plugins.engine.jobs.predict.predict_files` takes them
    (``pretrained``, ``weights``, ``adapter``, ``options``, ``survey``, ``grid``, ...);
    observers of ``fwi_predictions_ready`` are told through the plugin manager, as in
    ``fwi predict``. Returns its :class:`~fwi_plugins.engine.jobs.predict.PredictResult`.
    """
    from .engine.jobs.predict import predict_files as _predict_files

    kwargs.setdefault("notify", get_plugin_manager().notify)
    return _predict_files(backbone=backbone, input_path=input_path, out=out, **kwargs)


def refine(initial: Any, observed: Any, *, physics: Any, **kwargs: Any) -> Any:
    """Physics-based FWI from a starting model; see :func:`fwi_plugins.engine.refinement.refine.refine`."""
    from .engine.refinement.refine import refine as _refine

    return _refine(initial, observed, physics=physics, **kwargs)


def refine_files(observed: Any, out: Any, *, initial: Any = None, backbone: str | None = None,
                 **kwargs: Any) -> Any:
    """What ``fwi refine`` does: a starting model refined against recorded gathers, written to ``out``.

    The starting model is the file ``initial`` or the prediction of ``backbone``; keyword
    arguments as :func:`fwi_plugins.engine.jobs.refine.refine_files` takes them (``survey``,
    ``physics``, ``physics_options``, ``iterations``, ``frequencies``, ...). Observers of
    ``fwi_run_started`` and ``fwi_run_finished`` are told through the plugin manager, as in
    ``fwi refine``. Returns its :class:`~fwi_plugins.engine.jobs.refine.RefineFilesResult`.
    """
    from .engine.jobs.refine import refine_files as _refine_files

    kwargs.setdefault("notify", get_plugin_manager().notify)
    return _refine_files(observed_path=observed, out=out, initial_path=initial, backbone=backbone, **kwargs)


def evaluate(predicted: Any, truth: Any, **kwargs: Any) -> dict[str, Any]:
    """OpenFWI metrics (and data misfit); see :func:`fwi_plugins.engine.evaluate.evaluate`."""
    from .engine.evaluate import evaluate as _evaluate

    return _evaluate(predicted, truth, **kwargs)


__all__ += ["evaluate", "predict", "predict_files", "refine", "refine_files", "simulate"]


# -- training ------------------------------------------------------------------------
# Added for ``fwi_plugins.study``: a pipeline that trains networks of its own (a PEFT study,
# a sweep) goes through these two doors rather than the engine's modules.


def device_name(device: str = "auto") -> str:
    """The device a run's ``device`` option (``auto``, ``cpu`` or ``cuda``) names, e.g. ``"cuda:0"``."""
    from .engine.config import run_device

    return run_device(device)


def train(model: Any, gathers: Any, velocity: Any, *, normalization: Any, options: Mapping[str, Any] | Any = None,
          physics: Any = None, notify: Any = None, device: str | None = None, resident: bool = False) -> Any:
    """Train ``model``'s trainable parameters in place on labelled gathers: the loop ``fwi run`` uses.

    Args:
        model: a backbone, adapted by a PEFT method (:func:`apply_peft`) or not.
        gathers: raw gathers ``(N, S, T, R)`` float32.
        velocity: velocity ``(N, 1, Z, X)`` in m/s, or ``None`` for label-free adaptation
            (then ``options`` must set ``labels="none"`` and a ``lambda_physics``).
        normalization: the dataset's :class:`~fwi_plugins.data.Normalization`.
        options: the loop's options, a mapping (``epochs``, ``batch_size``, ``lr``,
            ``warmup_epochs``, ``lambda_ssim``, ``seed``, ...; ``fwi show`` lists them under
            ``fwi run``) or a :class:`~fwi_plugins.engine.options.TrainOptions`.
        physics: a built physics, needed when ``lambda_physics`` > 0.
        notify: ``notify(hook_name, **kwargs)``, told of every lifecycle hook (``fwi_epoch_end``
            after each epoch, with ``epoch`` and ``metrics``); an exception it raises ends training.
        device: ``"cpu"``, ``"cuda:0"``, ...; default: ``options.device`` resolved.
        resident: hold every row on ``device`` before the first step (no host copy per batch)
            instead of gathering each batch's rows on the host.

    Returns:
        The loop's result: ``epochs``, ``steps``, ``wall_time``, ``history`` (one record per epoch).
    """
    from .engine.options import TrainOptions
    from .engine.training.train import train as _train
    from .engine.training.data import TrainData

    if not isinstance(options, TrainOptions):
        options = TrainOptions(**dict(options or {}))
    data = TrainData(gathers=gathers, velocity=velocity)
    if resident:
        data = data.to_device(device or device_name(options.device))
    return _train(model, data, None, options=options, normalization=normalization, physics=physics,
                  checkpoint_dir=None, notify=notify, device=device)


__all__ += ["device_name", "train"]


# -- the parts of a training step and of refinement, for benchmarks that time or compare them ------


def autocast(device: Any, enabled: bool = True) -> Any:
    """The training loop's mixed precision: bfloat16 autocast on CUDA when ``enabled``, else nothing."""
    from .engine.device import autocast as _autocast

    return _autocast(device, enabled)


def training_loss(prediction: Any, gathers: Any, velocity: Any, *, normalization: Any,
                  lambda_ssim: float = 1.0) -> Any:
    """The training loop's label loss of one batch, L1 + ``lambda_ssim`` x (1 - SSIM), a scalar tensor.

    ``prediction`` is the network's output on the ``[-1, 1]`` scale, ``velocity`` the labels on
    the same scale, ``gathers`` the raw batch the network read.
    """
    from .engine.training.losses import batch_loss

    return batch_loss(prediction, gathers, velocity, lambda_ssim=lambda_ssim, lambda_physics=0.0,
                      physics_samples=0, normalization=normalization, physics=None).total


def device_rows(rows: Any, *, decimation: int = 1, nt: int | None = None) -> Any:
    """A tensor of samples held on its device, taken by row index (``.take(index)``) with no host copy;
    gathers stored every ``decimation``-th time sample are rebuilt to ``nt`` samples as they are taken."""
    from .engine.training.data import DeviceRows

    return DeviceRows(rows, decimation=decimation, nt=nt)


def upsample_traces(stored: Any, decimation: int, nt: int) -> Any:
    """Full-rate float32 traces ``(..., T, R)`` (torch, on their device) from every ``decimation``-th
    sample, by band-limited interpolation: how device-resident corpora store their gathers."""
    from .engine.training.data import upsample_traces as _upsample

    return _upsample(stored, decimation, nt)


def refine_through_network(model: Any, gathers: Any, *, physics: Any, **kwargs: Any) -> Any:
    """Refinement drawn by the network: a fresh adapter of ``model`` fitted to each survey's data misfit.

    Keyword arguments as :func:`fwi_plugins.engine.refinement.network.refine_through_network`;
    one refinement result per map.
    """
    from .engine.refinement.network import refine_through_network as _through

    return _through(model, gathers, physics=physics, **kwargs)


def plot_velocity(path: Any, panels: Mapping[str, Any], **kwargs: Any) -> Any:
    """Velocity maps side by side with one colour bar, as ``fwi run``'s figures draw them
    (``dx``, ``vmin``, ``vmax``, ``max_rows``, ``title``); returns the path written."""
    from .engine.figures import velocity_comparison

    return velocity_comparison(path, panels, **kwargs)


__all__ += ["autocast", "device_rows", "plot_velocity", "refine_through_network", "training_loss",
            "upsample_traces"]

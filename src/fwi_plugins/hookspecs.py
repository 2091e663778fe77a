"""The contract between fwi-plugins and its plugins.

Two families of hooks:

* **Registration hooks** (``fwi_backbones``, ``fwi_peft_methods``, ``fwi_datasets``,
  ``fwi_physics``, ``fwi_misfits``) take no arguments, must be cheap (no torch import) and return an
  iterable of spec dataclasses. Every component, first-party included, enters here.
* **Lifecycle hooks** (``fwi_run_started``, ``fwi_train_step``, ``fwi_epoch_end``,
  ``fwi_run_finished``, ``fwi_predictions_ready``) let another pipeline observe a run. They return nothing;
  an exception raised in one is reported as a warning and does not stop the run.

Implement any of them with :data:`fwi_plugins.hookimpl` in a module or class and
register it through the ``fwi_plugins`` entry-point group (see docs/writing_plugins.md).
Hooks are called with keyword arguments; an implementation may accept any subset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

PROJECT = "fwi_plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

if TYPE_CHECKING:
    from .specs import BackboneSpec, DatasetSpec, MisfitSpec, PeftMethodSpec, PhysicsSpec


@hookspec
def fwi_backbones() -> Iterable[BackboneSpec]:
    """Declare backbone networks.

    Called once per plugin manager. Must not import torch: point ``factory`` at a
    ``"module:function"`` string (or a function whose module is light) so the import
    happens only when the backbone is built.

    Returns:
        An iterable of :class:`~fwi_plugins.BackboneSpec`.

    Example::

        from fwi_plugins import BackboneSpec, hookimpl

        @hookimpl
        def fwi_backbones():
            yield BackboneSpec(
                name="tinyunet",
                factory="my_plugin.unet:build",   # build(options, *, shape) -> nn.Module
                description="a 3-level U-Net",
                options=UNetOptions,
                peft_targets=("conv1", "conv2"),
                head=("head",),
            )
    """


@hookspec
def fwi_peft_methods() -> Iterable[PeftMethodSpec]:
    """Declare parameter-efficient fine-tuning methods.

    The factory is called as ``factory(model, options, *, targets, head)`` and returns
    the adapted model, whose trainable parameters are what the method trains.

    Returns:
        An iterable of :class:`~fwi_plugins.PeftMethodSpec`.

    Example::

        @hookimpl
        def fwi_peft_methods():
            yield PeftMethodSpec(
                name="bias-only",
                factory="my_plugin.bias:apply",
                description="train only bias terms (BitFit)",
            )
    """


@hookspec
def fwi_datasets() -> Iterable[DatasetSpec]:
    """Declare datasets.

    The factory is called as ``factory(options)`` and returns a
    :class:`fwi_plugins.data.SeismicDataset`: velocity maps and/or gathers with their
    survey and normalisation.

    Returns:
        An iterable of :class:`~fwi_plugins.DatasetSpec`.

    Example::

        @hookimpl
        def fwi_datasets():
            yield DatasetSpec(
                name="my-survey",
                factory="my_plugin.data:load",
                description="field gathers from my survey, no labels",
                options=MySurveyOptions,
            )
    """


@hookspec
def fwi_physics() -> Iterable[PhysicsSpec]:
    """Declare forward models (physics).

    The factory is called as ``factory(options, *, survey)`` and returns an object with
    ``simulate(velocity) -> gathers`` (differentiable, ``(B, 1, Z, X)`` m/s to
    ``(B, S, T, R)``), ``misfit(predicted, observed) -> scalar tensor`` and ``version``.

    Returns:
        An iterable of :class:`~fwi_plugins.PhysicsSpec`.

    Example::

        @hookimpl
        def fwi_physics():
            yield PhysicsSpec(
                name="deepwave",
                factory="fwi_deepwave.physics:build",
                description="2D constant-density acoustic propagation",
                requires=("deepwave",),
                options=DeepwaveOptions,
            )
    """


@hookspec
def fwi_run_started(run_dir: Path, config: Mapping[str, Any]) -> None:
    """A run (``fwi run``, ``fwi pretrain``, ``fwi refine``) is about to start work.

    Args:
        run_dir: the run directory; it exists and holds ``config.json``.
        config: the resolved configuration (what ``--config`` would re-run).

    Example::

        @hookimpl
        def fwi_run_started(run_dir, config):
            print(f"started {config['command']} in {run_dir}")
    """


@hookspec
def fwi_train_step(run_dir: Path | None, stage: str, step: int, metrics: Mapping[str, float]) -> None:
    """Training has taken another ``log_every_steps`` optimisation steps (option, default 10; 0: never).

    Called on the main process only (rank 0 under ``torchrun``). The loop prepares these
    figures only when some plugin implements this hook, so an unused hook costs nothing.

    Args:
        run_dir: the run directory (``None`` when training was called without one).
        stage: ``"pretrain"`` or ``"adapt"``.
        step: optimisation steps taken so far, counted from 1 over the whole training
            (a resumed run goes on counting where it stopped).
        metrics: ``loss`` (the training loss), ``label_loss`` (with labels) and
            ``physics_loss`` (with ``lambda_physics`` > 0), each the sample-weighted mean
            over the steps since the last report within the epoch; ``lr``, the learning
            rate of the last step; ``samples_per_s``, training samples per second over
            those steps, all processes together; ``epoch``, the epoch in progress.

    Example::

        @hookimpl
        def fwi_train_step(run_dir, stage, step, metrics):
            my_tracker.log({f"{stage}/{k}": v for k, v in metrics.items()}, step=step)
    """


@hookspec
def fwi_epoch_end(run_dir: Path, stage: str, epoch: int, metrics: Mapping[str, float]) -> None:
    """An epoch of training has ended.

    Args:
        run_dir: the run directory.
        stage: ``"pretrain"`` or ``"adapt"``.
        epoch: the epoch just finished, counted from 1.
        metrics: training and validation figures for that epoch (``train_loss``,
            ``val_mae``, ...).

    Example::

        @hookimpl
        def fwi_epoch_end(run_dir, stage, epoch, metrics):
            my_tracker.log({f"{stage}/{k}": v for k, v in metrics.items()}, step=epoch)
    """


@hookspec
def fwi_predictions_ready(run_dir: Path, stage: str, path: Path | None, predictions: Any) -> None:
    """Velocity predictions have been written.

    Args:
        run_dir: the run directory (or the output folder of ``fwi predict``).
        stage: ``"zero-shot"``, ``"adapted"``, ``"refined"`` or ``"predict"``.
        path: the netCDF file holding them, or ``None`` when none was written.
        predictions: the velocity in m/s as a numpy array ``(N, 1, Z, X)``.

    Example::

        @hookimpl
        def fwi_predictions_ready(run_dir, stage, path, predictions):
            if stage == "refined":
                my_pipeline.migrate(velocity=predictions)
    """


@hookspec
def fwi_run_finished(run_dir: Path, metrics: Mapping[str, Any]) -> None:
    """A run has finished and written its outputs.

    Args:
        run_dir: the run directory.
        metrics: the content of ``metrics.json``.

    Example::

        @hookimpl
        def fwi_run_finished(run_dir, metrics):
            notify(f"run done: SSIM {metrics['adapted']['ssim']:.3f}")
    """


@hookspec
def fwi_misfits() -> Iterable[MisfitSpec]:
    """Declare data misfits, which every physics offers by name (``-o physics.misfit=NAME``).

    The factory is the misfit itself: ``misfit(predicted, observed) -> scalar tensor``
    on gathers ``(..., time, receiver)``, differentiable and zero for identical data.
    The built-in ``l2``, ``trace-l2``, ``ncc`` and ``envelope`` enter through this hook.

    Returns:
        An iterable of :class:`~fwi_plugins.MisfitSpec`.

    Example::

        from fwi_plugins import MisfitSpec, hookimpl

        @hookimpl
        def fwi_misfits():
            yield MisfitSpec(
                name="l1",
                factory="my_plugin.misfits:l1",   # l1(predicted, observed) -> scalar tensor
                description="mean absolute difference",
            )
    """


REGISTRATION_HOOKS = ("fwi_backbones", "fwi_peft_methods", "fwi_datasets", "fwi_physics", "fwi_misfits")
LIFECYCLE_HOOKS = ("fwi_run_started", "fwi_train_step", "fwi_epoch_end", "fwi_predictions_ready", "fwi_run_finished")

"""The ``fwi predict`` job: gathers from a file to velocity files in a folder, with provenance.

:func:`predict_files` is what ``fwi predict`` runs and :func:`fwi_plugins.api.predict_files`
exposes: it reads the input (lazily where the format allows), builds the model the way its
weights were made, maps the input's acquisition onto the model's, finds or fits the
normalisation, predicts in batches and writes ``velocity.nc``, ``velocity.sgy`` and
``velocity.png``, then tells observers through ``notify``. :func:`predict_velocity` is the
middle of it (:mod:`.prediction`), shared with ``fwi refine`` (which starts from a prediction).
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...data.gathers_input import open_gathers

from .prediction import predict_velocity, weights_source

__all__ = ["PredictResult", "output_grid", "predict_files"]


@dataclass
class PredictResult:
    """What :func:`predict_files` wrote, and what it predicted."""

    velocity: np.ndarray
    provenance: dict[str, Any]
    paths: list[Path] = field(default_factory=list)


def output_grid(gathers_shape: tuple[int, ...], attrs: Mapping[str, Any], *, survey: Any, survey_given: bool,
                weights_config: Any, grid: tuple[int, int] | None, dx: float | None,
                shaped: bool = False) -> tuple[int, int, float, Any]:
    """The velocity grid to predict on: ``(nz, nx, dx, Grid or None)``.

    With weights that record their acquisition and an input survey, the grid is the
    user's, in metres (the returned :class:`~fwi_plugins.acquisition.Grid`); otherwise
    ``grid``, the survey's, the weights' native one for native gathers, or ``R x R``.
    An input that does not say how deep it is gets the depth the recording sees
    (``shaped``: data to be shaped, whose stretch the wavelet does not choose).
    """
    from ...acquisition import AcquisitionMap, Grid, native_survey

    _, shots, nt, receivers = gathers_shape
    native = weights_config.shape if weights_config is not None else None
    spacing = dx or (survey.dx if survey else 10.0)
    if native is not None and survey is not None:
        nx = int(round((survey.nx - 1) * survey.dx / spacing)) + 1
        if not survey_given and attrs.get("grid_depth") == "assumed":
            nz = AcquisitionMap.deepest(survey, native_survey(native), spacing, shaped=shaped)
        else:
            nz = int(round((survey.nz - 1) * survey.dx / spacing)) + 1
        nz, nx = grid or (nz, nx)
        return nz, nx, spacing, Grid(nz=nz, nx=nx, dx=spacing)
    if grid:
        nz, nx = grid
    elif survey:
        nz, nx = survey.nz, survey.nx
    elif native and (native.shots, native.time, native.receivers) == (shots, nt, receivers):
        nz, nx = native.depth, native.width
    else:
        nz, nx = receivers, receivers
    return nz, nx, spacing, None


def predict_files(*, backbone: str, input_path: str | Path, out: str | Path, pretrained: str | None = None,
                  weights: str | Path | None = None, adapter: str | Path | None = None,
                  options: Mapping[str, Any] | None = None, normalization: str | Path | None = None,
                  survey: Any = None, grid: tuple[int, int] | None = None, dx: float | None = None,
                  batch_size: int = 32, device: Any = "auto", progress: bool = True,
                  notify: Callable[..., None] | None = None, shaping: Any = "auto") -> PredictResult:
    """Predict velocity from the gathers in ``input_path`` and write it to the folder ``out``.

    Args:
        backbone: registered backbone name.
        input_path: gathers ``(sample, shot, time, receiver)``: .npy, .nc, .zarr or .sgy.
        out: the output folder (made if missing).
        pretrained: shipped weights name, a .safetensors path or ``"none"``; default: the
            backbone's default foundation. Not with ``weights``.
        weights: a .safetensors file of full weights.
        adapter: an adapter folder saved by ``fwi run``, loaded on top of the weights.
        options: backbone options (only repeating what the weights fix).
        normalization: a JSON file with the normalisation the model was trained with;
            default: found beside the adapter or weights.
        survey: the input's :class:`~fwi_plugins.survey.Survey` (or a survey file or
            preset name); default: from the input's coordinates or headers.
        grid: ``(depth, width)`` cells of the output; default: see :func:`output_grid`.
        dx: output grid spacing in metres; default: the survey's, else 10.
        batch_size: samples per forward pass.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        progress: show a progress bar.
        notify: ``notify(hook, **kwargs)`` for the ``fwi_predictions_ready`` hook (the
            plugin manager's ``notify``, under which a raising observer only warns).
        shaping: ``"auto"``, ``"estimate"``, ``"none"`` or a wavelet file (see :func:`shaping_choice`).

    Returns:
        A :class:`PredictResult`: the velocity, its provenance and the files written.
    """
    from ...errors import OptionError
    from ..device import resolve_device

    input_path, out = Path(input_path), Path(out)
    options = dict(options or {})
    if dx is not None and not (isinstance(dx, numbers.Real) and math.isfinite(dx) and dx > 0):
        raise OptionError(f"--dx {dx}: expected a positive finite grid spacing in metres")
    target = resolve_device(device)  # fail on a bad device before reading anything
    from .predict_outputs import PredictFolder

    PredictFolder(out).check()  # refuse a folder of someone else's files before any work
    source, weights_config = weights_source(backbone, pretrained, Path(weights) if weights else None, options)
    if survey is not None:
        survey = _checked_survey(input_path, survey)
    with open_gathers(input_path) as (gathers, attrs):
        predicted = _predict_opened(
            gathers, attrs, input_path=input_path, survey=survey, grid=grid, dx=dx, backbone=backbone,
            options=options, source=source, weights_config=weights_config,
            adapter=Path(adapter) if adapter is not None else None,
            normalization=Path(normalization) if normalization else None, batch_size=batch_size, device=target,
            progress=progress, shaping=shaping)
    paths = _write_predicted(out, predicted, title=f"{backbone}: {input_path.name}")
    if notify is not None:
        notify("fwi_predictions_ready", run_dir=out, stage="predict", path=paths[0], predictions=predicted.velocity)
    return PredictResult(velocity=predicted.velocity, provenance=predicted.provenance, paths=paths)


def _checked_survey(input_path: Path, survey: Any) -> Any:
    """The :class:`~fwi_plugins.survey.Survey` given (or loaded from a file or preset), checked against the input."""
    from ...data.gathers_input import check_input_survey
    from ...survey import Survey

    given = "the survey given" if isinstance(survey, Survey) else f"--survey {survey}"
    survey = survey if isinstance(survey, Survey) else Survey.load(survey)
    check_input_survey(input_path, survey, given=given)
    return survey


@dataclass
class _Predicted:
    """The velocity predicted from an input file, its provenance, and where its grid lies (spacing, origin)."""

    velocity: np.ndarray
    provenance: dict[str, Any]
    spacing: float
    origin: float


def _predict_opened(gathers: Any, attrs: Mapping[str, Any], *, input_path: Path, survey: Any,
                    grid: tuple[int, int] | None, dx: float | None, backbone: str, options: Mapping[str, Any],
                    source: str, weights_config: Any, adapter: Path | None, normalization: Path | None,
                    batch_size: int, device: Any, progress: bool, shaping: Any = "auto") -> _Predicted:
    """Predict from opened gathers onto the output grid (see :func:`output_grid`), with the provenance written."""
    from ...data.io import survey_from_attrs
    from ...errors import OptionError
    from ...specs import IOShape

    n, shots, nt, receivers = gathers.shape
    input_survey = survey or survey_from_attrs(attrs, where=f"--input {input_path}")
    origin = 0.0 if survey is not None else float(attrs.get("origin_x") or 0.0)
    from ..shaped import shaping_choice

    choice = shaping_choice(shaping, weights_config)
    shaped = not (isinstance(choice, str) and choice.strip().lower() == "none")
    nz, nx, spacing, mapped_grid = output_grid(gathers.shape, attrs, survey=input_survey,
                                               survey_given=survey is not None, weights_config=weights_config,
                                               grid=grid, dx=dx, shaped=shaped)
    shape = IOShape(shots=shots, time=nt, receivers=receivers, depth=nz, width=nx)
    velocity, provenance = predict_velocity(
        gathers, backbone=backbone, options=options, source=source, weights_config=weights_config,
        adapter=adapter, normalization=normalization, shape=shape, batch_size=batch_size, device=device,
        progress=progress, where="--input", survey=input_survey, grid=mapped_grid, shaping=shaping,
        path=input_path)
    if velocity.shape[-2:] != (nz, nx):
        raise OptionError(f"the model predicts a {velocity.shape[-2]} x {velocity.shape[-1]} grid, not the "
                          f"{nz} x {nx} asked for; pass --grid to match the weights")
    provenance = {"generator": "fwi predict", **provenance, "input": str(input_path),
                  "survey": input_survey.to_dict() if input_survey is not None else None}
    return _Predicted(velocity=velocity, provenance=provenance, spacing=spacing, origin=origin)


def _write_predicted(out: Path, predicted: _Predicted, *, title: str) -> list[Path]:
    """``velocity.nc``, ``velocity.sgy`` and ``velocity.png`` in ``out``, in that order.

    Only files ``fwi predict`` wrote are replaced (see :class:`~fwi_plugins.engine.jobs.predict_outputs.PredictFolder`).
    """
    from ...data import Normalization
    from ...data.io import write_velocity
    from ..figures import velocity_comparison
    from .predict_outputs import PredictFolder

    velocity, provenance, spacing, origin = (predicted.velocity, predicted.provenance, predicted.spacing,
                                             predicted.origin)
    norm = Normalization.from_dict(provenance["normalization"])
    folder = PredictFolder(out)
    folder.check()
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        written.append(write_velocity(out / "velocity.nc", velocity, dx=spacing, attrs=provenance, origin=origin))
        written.append(write_velocity(out / "velocity.sgy", velocity, dx=spacing, attrs=provenance, origin=origin))
        written.append(velocity_comparison(out / "velocity.png", {"predicted": velocity}, dx=spacing,
                                           vmin=norm.vmin, vmax=norm.vmax, title=title))
        folder.record()
    except BaseException:
        if created:  # a folder made for outputs that could not all be written is no output: leave nothing
            for path in written:
                path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    return written

"""The ``fwi refine`` job: a starting model refined against recorded gathers, written to a folder.

:func:`refine_files` is what ``fwi refine`` runs and :func:`fwi_plugins.api.refine_files`
exposes: it reads the observed gathers and their survey, takes the starting model from a
file or from a backbone's prediction (:func:`~fwi_plugins.engine.predict_job.predict_velocity`),
builds the physics, runs :func:`fwi_plugins.engine.refine.refine` and writes the refined
model, its history, settings, metrics and figures, telling observers through ``notify``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .components import registry_spec
from .notify import Notify, no_notify

if TYPE_CHECKING:
    from .refine import RefineResult

__all__ = ["RefineFilesResult", "refine_files"]


@dataclass
class RefineFilesResult:
    """What :func:`refine_files` wrote, and what it found.

    Attributes:
        result: the refinement itself (refined velocity, misfit history).
        initial: the starting model in m/s.
        settings: the resolved settings, as written to ``config.json``.
        metrics: start and end misfit, as written to ``metrics.json``.
        wavelet: with ``wavelet="estimate"``: the source wavelet estimated in the refined model.
        paths: the files written, in order.
    """

    result: RefineResult
    initial: np.ndarray
    settings: dict[str, Any]
    metrics: dict[str, Any]
    wavelet: Any = None
    paths: list[Path] = field(default_factory=list)


def refine_files(*, observed_path: str | Path, out: str | Path, initial_path: str | Path | None = None,
                 backbone: str | None = None, pretrained: str | None = None, weights: str | Path | None = None,
                 adapter: str | Path | None = None, normalization: str | Path | None = None,
                 backbone_options: Mapping[str, Any] | None = None, survey: Any = None,
                 physics: str = "deepwave", physics_options: Mapping[str, Any] | None = None,
                 wavelet: str | None = None, iterations: int = 50, lr: float = 0.01, step: str = "normalized",
                 smooth: float = 0.0, frequencies: Sequence[float] | None = None, vmin: float | None = None,
                 vmax: float | None = None, device: Any = "auto", progress: bool = True,
                 notify: Notify | None = None) -> RefineFilesResult:
    """Refine a starting model against the gathers in ``observed_path`` and write the outcome to ``out``.

    Args:
        observed_path: recorded gathers ``(sample, shot, time, receiver)``: .npy, .nc, .zarr or .sgy.
        out: the output folder (made if missing).
        initial_path: the starting velocity (m/s) file. Exactly one of this and ``backbone``.
        backbone: start from this backbone's prediction of the observed gathers instead.
        pretrained: with ``backbone``: shipped weights name, a .safetensors path or ``"none"``;
            default: the backbone's default foundation. Not with ``weights``.
        weights: with ``backbone``: a .safetensors file of full weights.
        adapter: with ``backbone``: an adapter folder saved by ``fwi run``.
        normalization: with ``backbone``: a JSON file with the normalisation the model was
            trained with; default: the weights'.
        backbone_options: with ``backbone``: backbone options (only repeating what the weights fix).
        survey: the :class:`~fwi_plugins.survey.Survey` of the gathers (or a survey file or
            preset name); default: the one stored in the observed file, else OpenFWI's.
        physics: registered physics name.
        physics_options: physics options.
        wavelet: ``"survey"`` or ``"estimate"``: sets the physics' ``wavelet`` option.
        iterations, lr, step, smooth, frequencies, vmin, vmax, device, progress: as
            :func:`fwi_plugins.engine.refine.refine` takes them.
        notify: ``notify(hook, **kwargs)`` for the ``fwi_run_started`` and
            ``fwi_run_finished`` hooks (the plugin manager's ``notify``, under which a
            raising observer only warns).

    Returns:
        A :class:`RefineFilesResult`.

    Files written in ``out``: ``velocity.nc`` (the refined model, with provenance),
    ``initial.nc`` (with ``backbone``: the starting model), ``history.json``,
    ``config.json``, ``metrics.json``, ``velocity.png``, ``misfit.png`` and, with an
    estimated wavelet, ``wavelet.png``.
    """
    from ..data.io import read_gathers, read_velocity, survey_from_attrs, write_velocity
    from ..errors import DataError, OptionError
    from ..io_utils import atomic_write_text
    from ..options import to_dict
    from ..survey import Survey
    from . import figures
    from .refine import refine

    observed_path, out_dir = Path(observed_path), Path(out)
    initial_path = Path(initial_path) if initial_path is not None else None
    weights = Path(weights) if weights is not None else None
    adapter = Path(adapter) if adapter is not None else None
    normalization = Path(normalization) if normalization is not None else None
    backbone_options = dict(backbone_options or {})
    physics_options = dict(physics_options or {})
    cutoffs = tuple(float(f) for f in frequencies) if frequencies else None
    notify = notify or no_notify

    if (initial_path is None) == (backbone is None):
        raise OptionError("give the starting model as --initial FILE or --backbone NAME (its prediction), "
                          "one of the two")
    model_flags = {"--pretrained": pretrained, "--weights": weights, "--adapter": adapter,
                   "--normalization": normalization}
    stray = [flag for flag, value in model_flags.items() if value is not None]
    if initial_path is not None and stray:
        raise OptionError(f"{stray[0]} goes with --backbone, not --initial")
    if backbone is not None:
        from .predict_job import weights_source

        # The weights are checked before any data is read.
        source, weights_config = weights_source(backbone, pretrained, weights, backbone_options)

    observed, observed_attrs = read_gathers(observed_path)
    if survey is not None:
        survey = survey if isinstance(survey, Survey) else Survey.load(survey)
    else:
        survey = survey_from_attrs(observed_attrs, where=str(observed_path)) or Survey.openfwi()

    expected = (survey.n_shots, survey.nt, survey.n_receivers)
    if observed.shape[1:] != expected:
        raise DataError(f"{observed_path}: gathers have (shot, time, receiver) = {observed.shape[1:]}, "
                        f"the survey expects {expected}")
    start: dict[str, Any] = {}
    if backbone is not None:
        from ..acquisition import Grid
        from ..specs import IOShape
        from .device import resolve_device
        from .predict_job import predict_velocity

        shape = IOShape(shots=survey.n_shots, time=survey.nt, receivers=survey.n_receivers,
                        depth=survey.nz, width=survey.nx)
        velocity, start = predict_velocity(
            observed, backbone=backbone, options=backbone_options, source=source, weights_config=weights_config,
            adapter=adapter, normalization=normalization, shape=shape, batch_size=32, device=resolve_device(device),
            progress=progress, where="--observed", survey=survey,
            grid=Grid(nz=survey.nz, nx=survey.nx, dx=survey.dx))
        if velocity.shape[-2:] != (survey.nz, survey.nx):
            raise DataError(f"--backbone {backbone} predicts a {velocity.shape[-2]} x {velocity.shape[-1]} grid, "
                            f"the survey's is {survey.nz} x {survey.nx}")
        initial_path = out_dir / "initial.nc"
    else:
        velocity, _ = read_velocity(initial_path)  # type: ignore[arg-type]  # given: checked above
    if velocity.shape[0] != observed.shape[0]:
        raise DataError(f"{initial_path} holds {velocity.shape[0]} model(s) but {observed_path} holds "
                        f"{observed.shape[0]} set(s) of gathers")
    if not np.all(np.isfinite(velocity)) or float(np.nanmin(velocity)) <= 0:
        raise DataError(f"{initial_path}: velocity must be finite and positive (m/s)")

    spec = registry_spec("physics", physics)
    if wavelet is not None:
        if "wavelet" not in getattr(spec.options, "__dataclass_fields__", {}):
            raise OptionError(f"--wavelet: physics {spec.name!r} has no 'wavelet' option (it cannot estimate "
                              f"a source wavelet); use a physics that has, for example deepwave")
        given = physics_options.get("wavelet")
        if given is not None and str(given) != wavelet:
            raise OptionError(f"--wavelet {wavelet} disagrees with -o physics.wavelet={given}; give one of them")
        physics_options["wavelet"] = wavelet
    options = spec.parse_options(physics_options)
    built = spec.load()(options, survey=survey)
    lo = survey.vmin if vmin is None else vmin
    hi = survey.vmax if vmax is None else vmax
    # The starting model is clipped into the bounds (a prediction may overshoot a little);
    # what is left to check is the grid and whether the survey can simulate it.
    survey.check_velocity(np.clip(velocity, max(lo, survey.vmin), min(hi, survey.vmax)),
                          accuracy=int(getattr(options, "accuracy", 4)), name=str(initial_path))

    settings: dict[str, Any] = {
        "command": "refine", "initial": str(initial_path), "observed": str(observed_path),
        "survey": survey.to_dict(), "physics": spec.name, "physics_options": to_dict(options),
        "physics_version": built.version, "iterations": iterations, "lr": lr,
        "step": step, "smooth": smooth,
        "frequencies": list(cutoffs) if cutoffs else None, "vmin": lo, "vmax": hi,
    }
    if start:
        settings["start"] = start
    paths: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    if backbone is not None:
        paths.append(write_velocity(out_dir / "initial.nc", velocity, dx=survey.dx,
                                    attrs={"generator": "fwi refine", "stage": "initial", **start,
                                           "input": str(observed_path)}))
    atomic_write_text(out_dir / "config.json", json.dumps(settings, indent=2) + "\n")
    paths.append(out_dir / "config.json")
    notify("fwi_run_started", run_dir=out_dir, config=settings)

    result = refine(velocity, observed, physics=built, iterations=iterations, lr=lr, step=step, smooth=smooth,
                    vmin=vmin, vmax=vmax, frequencies=cutoffs, device=device, progress=progress)

    history = {**result.to_dict(), "settings": settings}
    estimated = None
    if getattr(options, "wavelet", "survey") == "estimate":
        from ..wavelet import estimate_wavelet

        estimated = estimate_wavelet(built, result.velocity, observed,
                                     max_lag=getattr(options, "wavelet_lag", None),
                                     damping=float(getattr(options, "wavelet_damping", 1e-3)))
        history["wavelet"] = estimated.to_dict()

    paths.append(write_velocity(out_dir / "velocity.nc", result.velocity, dx=survey.dx,
                                attrs={"generator": "fwi refine", "refine": settings,
                                       "initial_misfit": result.initial_misfit,
                                       "final_misfit": result.final_misfit}))
    atomic_write_text(out_dir / "history.json", json.dumps(history, indent=2) + "\n")
    paths.append(out_dir / "history.json")
    figures.velocity_comparison(out_dir / "velocity.png", {"initial": velocity, "refined": result.velocity},
                                dx=survey.dx, title="refinement")
    figures.misfit_history(out_dir / "misfit.png", result.history, title=f"refinement ({spec.name})")
    paths += [out_dir / "velocity.png", out_dir / "misfit.png"]
    if estimated is not None:
        from ..wavelet import wavelet_figure

        wavelet_figure(out_dir / "wavelet.png", estimated, assumed=survey.wavelet_samples(),
                       title="estimated source wavelet (refined model)")
        paths.append(out_dir / "wavelet.png")
    metrics: dict[str, Any] = {"initial_misfit": result.initial_misfit, "final_misfit": result.final_misfit,
                               "reduction": result.reduction, "iterations": iterations}
    if estimated is not None:
        metrics["wavelet_fit"] = float(np.mean(estimated.fit))
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    paths.append(out_dir / "metrics.json")
    notify("fwi_run_finished", run_dir=out_dir, metrics=metrics)
    return RefineFilesResult(result=result, initial=velocity, settings=settings, metrics=metrics,
                             wavelet=estimated, paths=paths)

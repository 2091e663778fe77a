"""The ``fwi refine`` job: a starting model refined against recorded gathers, written to a folder.

:func:`refine_files` is what ``fwi refine`` runs and :func:`fwi_plugins.api.refine_files`
exposes: it reads the observed gathers and their survey, takes the starting model from a
file or from a backbone's prediction (:func:`~fwi_plugins.engine.jobs.prediction.predict_velocity`),
builds the physics, runs :func:`fwi_plugins.engine.refinement.refine.refine` and writes the refined
model, its history, settings, metrics and figures, telling observers through ``notify``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..components import registry_spec
from ..notify import Notify, no_notify

if TYPE_CHECKING:
    from ...physics import Physics
    from ...specs import PhysicsSpec
    from ...survey import Survey
    from ..refinement.result import RefineResult

__all__ = ["RefineFilesResult", "Refinement", "refine_files"]


@dataclass(frozen=True)
class Refinement:
    """How the job calls :func:`~fwi_plugins.engine.refinement.refine.refine`: its keyword arguments, one field each.

    ``mute``, ``smooth``, ``depth_power`` and ``tv`` left at ``None`` take the step's values
    (:data:`~fwi_plugins.engine.refinement.inputs.SHAPING_DEFAULTS`); :meth:`resolved` fills them in.
    """

    iterations: int = 50
    lr: float = 0.01
    step: str = "lbfgs"
    smooth: float | None = None
    mute: int | None = None
    depth_power: float | None = None
    tv: float | None = None
    prior: float = 0.0
    sobolev: float = 0.0
    regularization: str = "given"
    time_limit: float | None = None
    holdout: int | None = None
    frequencies: tuple[float, ...] | None = None
    vmin: float | None = None
    vmax: float | None = None

    def resolved(self) -> Refinement:
        """The same refinement with the step's shaping written out (what ``config.json`` records)."""
        from ..refinement.inputs import resolve_shaping

        return replace(self, **resolve_shaping(self.step, mute=self.mute, smooth=self.smooth,
                                               depth_power=self.depth_power, tv=self.tv))

    def keywords(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~fwi_plugins.engine.refinement.refine.refine`."""
        return asdict(self)


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
                 wavelet: str | None = None, iterations: int = 50, lr: float = 0.01, step: str = "lbfgs",
                 smooth: float | None = None, mute: int | None = None, depth_power: float | None = None,
                 tv: float | None = None, prior: float = 0.0, sobolev: float = 0.0, regularization: str = "given",
                 time_limit: float | None = None, holdout: int | None = None,
                 frequencies: Sequence[float] | None = None, vmin: float | None = None, vmax: float | None = None,
                 device: Any = "auto", progress: bool = True, notify: Notify | None = None) -> RefineFilesResult:
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
        physics, physics_options: the registered physics name and its options.
        wavelet: ``"survey"`` or ``"estimate"``: sets the physics' ``wavelet`` option.
        iterations, lr, step, smooth, mute, depth_power, tv, prior, sobolev, regularization, time_limit, holdout,
            frequencies, vmin, vmax, device, progress: as :func:`~fwi_plugins.engine.refinement.refine.refine` takes.
        notify: ``notify(hook, **kwargs)`` for the ``fwi_run_started`` and ``fwi_run_finished``
            hooks (the plugin manager's ``notify``, under which a raising observer only warns).

    Returns a :class:`RefineFilesResult`. Files written in ``out``: ``velocity.nc`` (the refined
    model, with provenance), ``initial.nc`` (with ``backbone``: the starting model), ``history.json``,
    ``config.json``, ``metrics.json``, ``velocity.png``, ``misfit.png`` and, with an estimated
    wavelet, ``wavelet.png``.
    """
    observed_path, out_dir = Path(observed_path), Path(out)
    start = _StartRequest.of(initial_path, backbone=backbone, pretrained=pretrained, weights=weights,
                             adapter=adapter, normalization=normalization, options=backbone_options)
    refinement = Refinement(iterations=iterations, lr=lr, step=step, smooth=smooth, mute=mute, depth_power=depth_power,
                            tv=tv, prior=prior, sobolev=sobolev, regularization=regularization, time_limit=time_limit,
                            holdout=holdout, vmin=vmin, vmax=vmax,
                            frequencies=tuple(float(f) for f in frequencies) if frequencies else None).resolved()
    notify = notify or no_notify
    weights_found = _check_start(start)  # the weights are checked before any data is read
    observed, survey = _read_observed(observed_path, survey)
    initial = _starting_model(start, weights_found, observed, observed_path, survey, out_dir=out_dir,
                              device=device, progress=progress)
    setup = _build_physics(physics, dict(physics_options or {}), wavelet, survey, initial, vmin=vmin, vmax=vmax)
    settings = _settings(initial, observed_path, survey, setup, refinement)
    paths = _write_start(out_dir, settings, initial, survey, observed_path)
    notify("fwi_run_started", run_dir=out_dir, config=settings)
    result, estimated = _refine(initial, observed, setup, refinement, device=device, progress=progress)
    metrics, written = _write_outcome(out_dir, result, estimated, initial, survey, setup, settings)
    notify("fwi_run_finished", run_dir=out_dir, metrics=metrics)
    return RefineFilesResult(result=result, initial=initial.velocity, settings=settings, metrics=metrics,
                             wavelet=estimated, paths=paths + written)


# -- inputs: where the starting model comes from, and the observed gathers with their survey ----------------
@dataclass
class _StartRequest:
    """Where the starting model comes from: a velocity file, or a backbone's prediction with these weights."""

    initial_path: Path | None
    backbone: str | None
    pretrained: str | None
    weights: Path | None
    adapter: Path | None
    normalization: Path | None
    options: dict[str, Any]

    @classmethod
    def of(cls, initial_path: str | Path | None, *, backbone: str | None, pretrained: str | None,
           weights: str | Path | None, adapter: str | Path | None, normalization: str | Path | None,
           options: Mapping[str, Any] | None) -> _StartRequest:
        return cls(initial_path=_optional_path(initial_path), backbone=backbone, pretrained=pretrained,
                   weights=_optional_path(weights), adapter=_optional_path(adapter),
                   normalization=_optional_path(normalization), options=dict(options or {}))


def _optional_path(value: str | Path | None) -> Path | None:
    return Path(value) if value is not None else None


def _check_start(start: _StartRequest) -> tuple[str, Any] | None:
    """Exactly one starting model, model flags only with a backbone; its weights as ``weights_source`` finds them."""
    from ...errors import OptionError

    if (start.initial_path is None) == (start.backbone is None):
        raise OptionError("give the starting model as --initial FILE or --backbone NAME (its prediction), "
                          "one of the two")
    model_flags = {"--pretrained": start.pretrained, "--weights": start.weights, "--adapter": start.adapter,
                   "--normalization": start.normalization}
    stray = [flag for flag, value in model_flags.items() if value is not None]
    if start.initial_path is not None and stray:
        raise OptionError(f"{stray[0]} goes with --backbone, not --initial")
    if start.backbone is None:
        return None
    from .prediction import weights_source

    return weights_source(start.backbone, start.pretrained, start.weights, start.options)


def _read_observed(observed_path: Path, survey: Any) -> tuple[np.ndarray, Survey]:
    """The observed gathers and their survey (given, stored with them, else OpenFWI's), checked against each other."""
    from ...data.io import read_gathers, survey_from_attrs
    from ...errors import DataError
    from ...survey import Survey

    observed, observed_attrs = read_gathers(observed_path)
    if survey is not None:
        survey = survey if isinstance(survey, Survey) else Survey.load(survey)
    else:
        survey = survey_from_attrs(observed_attrs, where=str(observed_path)) or Survey.openfwi()
    expected = (survey.n_shots, survey.nt, survey.n_receivers)
    if observed.shape[1:] != expected:
        raise DataError(f"{observed_path}: gathers have (shot, time, receiver) = {observed.shape[1:]}, "
                        f"the survey expects {expected}")
    return observed, survey


# -- the starting model: read from its file, or predicted by the backbone -----------------------------------
@dataclass
class _StartingModel:
    """The starting velocity (m/s), the file it is named by, and with a backbone the prediction's provenance."""

    velocity: np.ndarray
    path: Path
    provenance: dict[str, Any]
    predicted: bool


def _starting_model(start: _StartRequest, weights_found: tuple[str, Any] | None, observed: np.ndarray,
                    observed_path: Path, survey: Survey, *, out_dir: Path, device: Any,
                    progress: bool) -> _StartingModel:
    """The starting model, checked to match the observed gathers and to be a velocity."""
    from ...data.io import read_velocity
    from ...errors import DataError

    if start.backbone is not None and weights_found is not None:
        velocity, provenance = _predicted_start(start, weights_found, observed, survey, device=device,
                                                progress=progress)
        initial = _StartingModel(velocity=velocity, path=out_dir / "initial.nc", provenance=provenance,
                                 predicted=True)
    else:
        assert start.initial_path is not None  # _check_start: one of the two
        velocity, _ = read_velocity(start.initial_path)
        initial = _StartingModel(velocity=velocity, path=start.initial_path, provenance={}, predicted=False)
    if initial.velocity.shape[0] != observed.shape[0]:
        raise DataError(f"{initial.path} holds {initial.velocity.shape[0]} model(s) but {observed_path} holds "
                        f"{observed.shape[0]} set(s) of gathers")
    if not np.all(np.isfinite(initial.velocity)) or float(np.nanmin(initial.velocity)) <= 0:
        raise DataError(f"{initial.path}: velocity must be finite and positive (m/s)")
    return initial


def _predicted_start(start: _StartRequest, weights_found: tuple[str, Any], observed: np.ndarray, survey: Survey, *,
                     device: Any, progress: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """The backbone's prediction of the observed gathers on the survey's grid, and its provenance."""
    from ...acquisition import Grid
    from ...errors import DataError
    from ...specs import IOShape
    from ..device import resolve_device
    from .prediction import predict_velocity

    assert start.backbone is not None  # only called with a backbone
    source, weights_config = weights_found
    shape = IOShape(shots=survey.n_shots, time=survey.nt, receivers=survey.n_receivers,
                    depth=survey.nz, width=survey.nx)
    velocity, provenance = predict_velocity(
        observed, backbone=start.backbone, options=start.options, source=source, weights_config=weights_config,
        adapter=start.adapter, normalization=start.normalization, shape=shape, batch_size=32,
        device=resolve_device(device), progress=progress, where="--observed", survey=survey,
        grid=Grid(nz=survey.nz, nx=survey.nx, dx=survey.dx))
    if velocity.shape[-2:] != (survey.nz, survey.nx):
        raise DataError(f"--backbone {start.backbone} predicts a {velocity.shape[-2]} x {velocity.shape[-1]} grid, "
                        f"the survey's is {survey.nz} x {survey.nx}")
    return velocity, provenance


# -- the physics: built with its options, the starting model checked against the survey ---------------------
@dataclass
class _PhysicsSetup:
    """The physics spec, its parsed options, the built physics and the velocity bounds of the refinement."""

    spec: PhysicsSpec
    options: Any
    built: Physics
    lo: float
    hi: float


def _build_physics(name: str, physics_options: dict[str, Any], wavelet: str | None, survey: Survey,
                   initial: _StartingModel, *, vmin: float | None, vmax: float | None) -> _PhysicsSetup:
    """Build the named physics (``wavelet`` set as its option) and check the starting model can be simulated."""
    from ...errors import OptionError

    spec = registry_spec("physics", name)
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
    survey.check_velocity(np.clip(initial.velocity, max(lo, survey.vmin), min(hi, survey.vmax)),
                          accuracy=int(getattr(options, "accuracy", 4)), name=str(initial.path))
    return _PhysicsSetup(spec=spec, options=options, built=built, lo=lo, hi=hi)


# -- refinement, and the files before and after it ----------------------------------------------------------
def _settings(initial: _StartingModel, observed_path: Path, survey: Survey, setup: _PhysicsSetup,
              refinement: Refinement) -> dict[str, Any]:
    """The resolved settings, as ``config.json`` holds them."""
    from ...options import to_dict

    settings: dict[str, Any] = {
        "command": "refine", "initial": str(initial.path), "observed": str(observed_path),
        "survey": survey.to_dict(), "physics": setup.spec.name, "physics_options": to_dict(setup.options),
        "physics_version": setup.built.version,
        **{k: v for k, v in refinement.keywords().items() if k not in ("frequencies", "vmin", "vmax")},
        "frequencies": list(refinement.frequencies) if refinement.frequencies else None,
        "vmin": setup.lo, "vmax": setup.hi,
    }
    if initial.provenance:
        settings["start"] = initial.provenance
    return settings


def _write_start(out_dir: Path, settings: dict[str, Any], initial: _StartingModel, survey: Survey,
                 observed_path: Path) -> list[Path]:
    """Before refining: ``initial.nc`` (a predicted starting model) and ``config.json``."""
    from ...atomic import atomic_write_text
    from ...data.io import write_velocity

    paths: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    if initial.predicted:
        paths.append(write_velocity(out_dir / "initial.nc", initial.velocity, dx=survey.dx,
                                    attrs={"generator": "fwi refine", "stage": "initial", **initial.provenance,
                                           "input": str(observed_path)}))
    atomic_write_text(out_dir / "config.json", json.dumps(settings, indent=2) + "\n")
    paths.append(out_dir / "config.json")
    return paths


def _refine(initial: _StartingModel, observed: np.ndarray, setup: _PhysicsSetup, refinement: Refinement, *,
            device: Any, progress: bool) -> tuple[RefineResult, Any]:
    """Refine the starting model; with ``wavelet="estimate"``, estimate the source wavelet in the refined one."""
    from ..refinement.refine import refine

    result = refine(initial.velocity, observed, physics=setup.built, device=device, progress=progress,
                    **refinement.keywords())
    if getattr(setup.options, "wavelet", "survey") != "estimate":
        return result, None
    from ...wavelet import estimate_wavelet

    estimated = estimate_wavelet(setup.built, result.velocity, observed,
                                 max_lag=getattr(setup.options, "wavelet_lag", None),
                                 damping=float(getattr(setup.options, "wavelet_damping", 1e-3)))
    return result, estimated


def _write_outcome(out_dir: Path, result: RefineResult, estimated: Any, initial: _StartingModel, survey: Survey,
                   setup: _PhysicsSetup, settings: dict[str, Any]) -> tuple[dict[str, Any], list[Path]]:
    """After refining: the refined model, its history, figures and metrics; returns the metrics and the paths."""
    from ...atomic import atomic_write_text
    from ...data.io import write_velocity
    from .. import figures

    history = {**result.to_dict(), "settings": settings}
    if estimated is not None:
        history["wavelet"] = estimated.to_dict()
    paths = [write_velocity(out_dir / "velocity.nc", result.velocity, dx=survey.dx,
                            attrs={"generator": "fwi refine", "refine": settings,
                                   "initial_misfit": result.initial_misfit,
                                   "final_misfit": result.final_misfit})]
    atomic_write_text(out_dir / "history.json", json.dumps(history, indent=2) + "\n")
    paths.append(out_dir / "history.json")
    figures.velocity_comparison(out_dir / "velocity.png", {"initial": initial.velocity, "refined": result.velocity},
                                dx=survey.dx, title="refinement")
    figures.misfit_history(out_dir / "misfit.png", result.history, title=f"refinement ({setup.spec.name})")
    paths += [out_dir / "velocity.png", out_dir / "misfit.png"]
    if estimated is not None:
        from ...wavelet import wavelet_figure

        wavelet_figure(out_dir / "wavelet.png", estimated, assumed=survey.wavelet_samples(),
                       title="estimated source wavelet (refined model)")
        paths.append(out_dir / "wavelet.png")
    metrics: dict[str, Any] = {"initial_misfit": result.initial_misfit, "final_misfit": result.final_misfit,
                               "reduction": result.reduction, "iterations": settings["iterations"],
                               "kept_start": list(result.kept_start), "holdout_shots": list(result.holdout_shots),
                               "regularization": result.regularization}
    if estimated is not None:
        metrics["wavelet_fit"] = float(np.mean(estimated.fit))
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    paths.append(out_dir / "metrics.json")
    return metrics, paths

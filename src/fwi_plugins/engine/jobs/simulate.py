"""The ``fwi simulate`` job: shot gathers simulated from velocity models, written with their survey.

:func:`simulate_files` is what ``fwi simulate`` runs: it takes the velocity models from a
file or from a registered dataset's split, builds the physics for their survey, simulates
(through the simulation cache) and writes the gathers, with the survey and provenance in
their attributes, and optionally the velocity models beside them. Started by ``torchrun``
(``torchrun --nproc-per-node N $(which fwi) simulate ...``), every process simulates its share
of the models on its own device and the first writes the files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..components import registry_spec

if TYPE_CHECKING:
    from ...data import SeismicDataset
    from ...survey import Survey
    from ..training.distributed import DistInfo

__all__ = ["GATHERS_SUFFIXES", "SimulateResult", "check_request", "simulate_files"]

GATHERS_SUFFIXES = (".nc", ".zarr", ".sgy", ".segy", ".npy")

Echo = Callable[..., None]
"""``echo(message, err=False)``, as :func:`click.echo` takes it: where the job's status lines go."""


def _quiet(message: str, err: bool = False) -> None:
    return None


@dataclass
class SimulateResult:
    """What :func:`simulate_files` simulated and wrote.

    Attributes:
        gathers: ``(N, S, T, R)``, as written.
        velocity: the ``(N, 1, Z, X)`` models simulated, in m/s.
        survey: the acquisition they were simulated with.
        attrs: the provenance written with the gathers.
        seconds: the time the simulation took (cached models included).
        paths: the files written, in order.
    """

    gathers: np.ndarray
    velocity: np.ndarray
    survey: Survey
    attrs: dict[str, Any]
    seconds: float
    paths: list[Path] = field(default_factory=list)


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (after links, ``..`` and ``~``; hard links too when both exist)."""
    a, b = Path(a).expanduser(), Path(b).expanduser()
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_request(velocity_path: Path | None, dataset: str | None, out: Path,
                  velocity_out: Path | None = None) -> None:
    """Exactly one source of velocity models, a gathers file of a format that can be written,
    and no output that is an input or the other output (writing it would destroy what is read).

    :func:`simulate_files` checks this first; ``fwi simulate`` also checks it before reading its
    ``-o`` options, so a wrong request is reported ahead of a malformed option.
    """
    from ...errors import OptionError

    if (velocity_path is None) == (dataset is None):
        raise OptionError("give exactly one of --velocity FILE or --dataset NAME")
    if out.suffix.lower() not in GATHERS_SUFFIXES:
        raise OptionError(f"--out {out}: expected a file ending in {', '.join(GATHERS_SUFFIXES)}")
    pairs = [("--out", out, "--velocity", velocity_path), ("--velocity-out", velocity_out, "--velocity", velocity_path),
             ("--velocity-out", velocity_out, "--out", out)]
    for name, path, other, source in pairs:
        if path is not None and source is not None and _same_file(Path(path), Path(source)):
            raise OptionError(f"{name} {path} is the same file as {other} {source}: writing it would replace "
                              f"what {other} names; choose another {name}")


def simulate_files(*, out: str | Path, velocity_path: str | Path | None = None, dataset: str | None = None,
                   split: str = "train", survey: str | None = None, physics: str = "deepwave",
                   physics_options: Mapping[str, Any] | None = None,
                   dataset_options: Mapping[str, Any] | None = None, velocity_out: str | Path | None = None,
                   cache_dir: str | Path | None = None, batch_size: int | None = None, progress: bool = True,
                   echo: Echo = _quiet) -> SimulateResult:
    """Simulate the gathers of velocity models from a file or a dataset, and write them to ``out``.

    Args:
        out: the gathers file: .nc, .zarr, .sgy/.segy or .npy.
        velocity_path: a velocity file ``(N, 1, Z, X)`` in m/s. Exactly one of this and ``dataset``.
        dataset: a registered dataset whose ``split`` is simulated instead.
        split: ``"train"``, ``"val"`` or ``"test"``.
        survey: a survey preset or file; default: the dataset's, or OpenFWI's layout on the
            velocity file's grid (at the file's spacing).
        physics: registered physics name; physics_options: its options.
        dataset_options: options of ``dataset``.
        velocity_out: also write the models simulated here (same formats as ``out``).
        cache_dir: the simulation cache folder (default: ``$FWI_CACHE_DIR`` or the user cache).
        batch_size: models per simulation call (default: the physics' own, else 16).
        progress: show a progress bar.
        echo: where the status lines go (``fwi simulate`` passes :func:`click.echo`).

    Returns:
        A :class:`SimulateResult`.
    """
    out = Path(out)
    velocity_path = Path(velocity_path) if velocity_path is not None else None
    check_request(velocity_path, dataset, out, Path(velocity_out) if velocity_out is not None else None)
    if dataset is not None:
        models = _dataset_models(dataset, split, survey, dict(dataset_options or {}))
    else:
        assert velocity_path is not None  # check_request: one of the two
        models = _file_models(velocity_path, survey, dict(dataset_options or {}))
    if models.velocity.shape[0] == 0:
        from ...errors import OptionError

        raise OptionError(f"split {split!r} of dataset {dataset!r} is empty; choose another --split "
                          f"or set -o dataset.n_{split}=N")
    physics_spec = registry_spec("physics", physics)
    model = physics_spec.load()(physics_spec.parse_options(dict(physics_options or {})), survey=models.survey)
    info = _join_job(model)
    if not info.is_main:
        echo = _quiet
    gathers, seconds = _simulate(models, model, physics, split=split, cache_dir=cache_dir, batch_size=batch_size,
                                 progress=progress and info.is_main, echo=echo, info=info)
    if not info.is_main:  # the first process writes; the others only simulated their share
        return SimulateResult(gathers=gathers, velocity=models.velocity, survey=models.survey, attrs=models.attrs,
                              seconds=seconds, paths=[])
    paths = _write(models, gathers, model, physics, out=out, velocity_out=velocity_out, seconds=seconds, echo=echo)
    return SimulateResult(gathers=gathers, velocity=models.velocity, survey=models.survey, attrs=models.attrs,
                          seconds=seconds, paths=paths)


# -- the velocity models: a dataset's split, or a file ---------------------------------------------------------
@dataclass
class _Models:
    """The models to simulate, their survey and grid spacing, their provenance, and the dataset they come from."""

    velocity: np.ndarray
    survey: Survey
    dx: float
    attrs: dict[str, Any]
    dataset: SeismicDataset | None
    label: str


def _dataset_models(name: str, split: str, survey: str | None, options: dict[str, Any]) -> _Models:
    """The models of a dataset's split, with the dataset's survey (``survey`` becomes its option)."""
    from ...errors import OptionError

    spec = registry_spec("dataset", name)
    if survey is not None:
        if not any(info.name == "survey" for info in spec.describe_options()):
            raise OptionError(f"--survey: dataset {name!r} takes no survey option")
        options.setdefault("survey", survey)
    ds = spec.load()(spec.parse_options(options))
    attrs = {**{k: v for k, v in ds.attrs.items()}, "dataset": ds.name, "split": split}
    return _Models(velocity=ds.velocity(split), survey=ds.survey, dx=ds.survey.dx, attrs=attrs, dataset=ds,
                   label=name)


def _file_models(velocity_path: Path, survey: str | None, dataset_options: dict[str, Any]) -> _Models:
    """The models of a velocity file, with ``survey`` (default OpenFWI's layout) on their grid and spacing."""
    from dataclasses import replace

    from ...data.families import resolve_survey
    from ...data.io import read_velocity
    from ...errors import OptionError

    if dataset_options:
        raise OptionError("-o dataset.* options need --dataset")
    velocity, file_attrs = read_velocity(velocity_path)
    dx = float(file_attrs.get("dx", 10.0))
    nz, nx = velocity.shape[-2:]
    the_survey = resolve_survey(survey or "openfwi", nz, nx)
    if survey in (None, "openfwi", "small") and dx != the_survey.dx:
        the_survey = replace(the_survey, dx=dx)
    attrs = {"generator": f"file {velocity_path}",
             **{k: v for k, v in file_attrs.items() if k in ("generator", "seed", "family", "options")},
             "velocity_file": str(velocity_path)}
    return _Models(velocity=velocity, survey=the_survey, dx=dx, attrs=attrs, dataset=None, label=velocity_path.name)


# -- simulation and the files ----------------------------------------------------------------------------------
def _join_job(model: Any) -> DistInfo:
    """This process's place in a ``torchrun`` job (a single process otherwise); the physics moves to its device."""
    from ..training.distributed import DistInfo, setup_distributed

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo()
    info = setup_distributed("auto")
    if info.device != "cpu" and hasattr(model, "to"):
        model.to(info.device)
    return info


def _simulate(models: _Models, model: Any, physics: str, *, split: str, cache_dir: str | Path | None,
              batch_size: int | None, progress: bool, echo: Echo, info: DistInfo) -> tuple[np.ndarray, float]:
    """The gathers of every model (through the simulation cache), and the seconds it took.

    In a job of several processes each simulates its share of the cache's parts, and only
    the first then reads them all (the others return no gathers).
    """
    from ...data.cache import cached_gathers, fill_shard
    from ..training.distributed import barrier

    velocity, survey = models.velocity, models.survey
    identity = (models.dataset.cache_identity(split) if models.dataset is not None
                else {"velocity_file": models.attrs["velocity_file"]})
    echo(f"simulating {velocity.shape[0]} model(s) of {velocity.shape[2]} x {velocity.shape[3]} with "
         f"{physics}: {survey.n_shots} shots, {survey.nt} samples, {survey.n_receivers} receivers", err=True)
    started = time.perf_counter()
    if info.distributed:
        fill_shard(velocity, model, identity, rank=info.rank, world=info.world_size, cache_dir=cache_dir,
                   progress=progress, desc=f"simulating {models.label}", batch_size=batch_size)
        barrier(info)
        if not info.is_main:
            return np.zeros((0, survey.n_shots, survey.nt, survey.n_receivers), np.float32), 0.0
    gathers = cached_gathers(velocity, model, identity, cache_dir=cache_dir, progress=progress,
                             desc=f"simulating {models.label}", batch_size=batch_size)
    return gathers, time.perf_counter() - started


def _write(models: _Models, gathers: np.ndarray, model: Any, physics: str, *, out: Path,
           velocity_out: str | Path | None, seconds: float, echo: Echo) -> list[Path]:
    """Write the gathers with their survey and provenance (and the models, with ``velocity_out``)."""
    from ...data.io import write_gathers, write_velocity
    from ...options import to_dict

    attrs, velocity, ds = models.attrs, models.velocity, models.dataset
    attrs.update(physics=physics, physics_version=model.version,
                 physics_options=to_dict(getattr(model, "options", None)) if hasattr(model, "options") else {})
    if ds is not None:
        ds.set_normalization(ds.normalization.fit_gathers(gathers) if not ds.normalization.fitted
                             else ds.normalization)
        attrs["normalization"] = ds.normalization.to_dict()
    write_gathers(out, gathers, survey=models.survey, attrs=attrs)
    echo(f"wrote {out}: gathers {tuple(gathers.shape)} in {seconds:.1f} s "
         f"({velocity.shape[0] / max(seconds, 1e-9):.1f} samples/s, cached ones included)")
    paths = [out]
    if velocity_out is not None:
        write_velocity(Path(velocity_out), velocity, dx=models.dx, attrs=attrs)
        echo(f"wrote {velocity_out}: velocity {tuple(velocity.shape)} m/s")
        paths.append(Path(velocity_out))
    return paths

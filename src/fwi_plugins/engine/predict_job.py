"""The ``fwi predict`` job: gathers from a file to velocity files in a folder, with provenance.

:func:`predict_files` is what ``fwi predict`` runs and :func:`fwi_plugins.api.predict_files`
exposes: it reads the input (lazily where the format allows), builds the model the way its
weights were made, maps the input's acquisition onto the model's, finds or fits the
normalisation, predicts in batches and writes ``velocity.nc``, ``velocity.sgy`` and
``velocity.png``, then tells observers through ``notify``. :func:`predict_velocity` is the
middle of it, shared with ``fwi refine`` (which starts from a prediction).
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.gathers_input import open_gathers
from .components import registry_spec
from .predict import load_model, predict

__all__ = ["PredictResult", "acquisition_map", "find_normalization", "open_gathers", "output_grid",
           "predict_files", "predict_velocity", "weights_source"]

# -- normalisation: stored with the model, or given ------------------------------------
def _normalization_from(data: Any) -> Mapping[str, Any] | None:
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    if isinstance(data, Mapping):
        if "vmin" in data and "vmax" in data:
            return data
        inner = data.get("normalization")
        return _normalization_from(inner) if inner is not None else None
    return None


def find_normalization(explicit: Path | None, weights: Path | None, adapter: Path | None) -> tuple[Any, str]:
    """The normalisation the model was trained with, and where it was found.

    Looked up in order: ``--normalization``; ``normalization.json`` (or a ``config.json``/
    ``metrics.json`` with a ``normalization`` entry) in the adapter folder and the run
    folder above it, then beside the weights file; the weights file's safetensors metadata.

    Returns:
        ``(Normalization or None, description of the source)``.
    """
    from ..data import Normalization
    from ..errors import DataError

    if explicit is not None:
        if not explicit.is_file():
            raise DataError(f"--normalization {explicit}: no such file")
        try:
            found = _normalization_from(json.loads(explicit.read_text()))
        except ValueError as exc:
            raise DataError(f"--normalization {explicit}: not valid JSON ({exc})") from None
        if found is None:
            raise DataError(f"--normalization {explicit}: expected vmin, vmax, data_min, data_max (as "
                            f"Normalization.to_dict() writes them), or a 'normalization' entry holding them")
        return Normalization.from_dict(found), str(explicit)

    folders: list[Path] = []
    if adapter is not None:
        folders += [adapter, adapter.parent]
    if weights is not None:
        folders.append(weights.parent)
    for folder in folders:
        for name in ("normalization.json", "config.json", "metrics.json"):
            candidate = folder / name
            if candidate.is_file():
                with contextlib.suppress(ValueError, OSError):
                    found = _normalization_from(json.loads(candidate.read_text()))
                    if found is not None:
                        return Normalization.from_dict(found), str(candidate)
    if weights is not None and weights.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        # A damaged header is an error, not "no normalisation": the model would be fed
        # gathers scaled by the input's own range and nobody would know why.
        try:
            with safe_open(str(weights), framework="np") as f:
                entry = (f.metadata() or {}).get("normalization")
        except (SafetensorError, OSError, ValueError) as exc:
            raise DataError(f"{weights}: not a readable safetensors file, so its normalisation cannot be "
                            f"read ({exc})") from None
        if entry is not None:
            try:
                data = json.loads(entry)
            except ValueError as exc:
                raise DataError(f"{weights}: metadata 'normalization' is not valid JSON ({exc})") from None
            found = _normalization_from(data)
            if found is None:
                raise DataError(f"{weights}: metadata 'normalization' does not hold vmin and vmax (as "
                                f"Normalization.to_dict() writes them)")
            return Normalization.from_dict(found), f"{weights} (metadata)"
    return None, ""


def _fit_gathers_range(gathers: Any, batch_size: int) -> tuple[float, float]:
    """The input's own amplitude range, read batch by batch."""
    lo, hi = np.inf, -np.inf
    for start in range(0, gathers.shape[0], batch_size):
        chunk = np.asarray(gathers[start:start + batch_size], dtype=np.float32)
        lo, hi = min(lo, float(chunk.min())), max(hi, float(chunk.max()))
    return lo, hi


def _check_signal(gathers: Any, batch_size: int, where: str) -> None:
    """Refuse the user's gathers when they hold NaN or infinite values, or no signal (every sample one value).

    Read batch by batch before any mapping, so a message names the input's own samples
    (sample, shot, time sample, receiver), not the mapped windows the network reads.
    """
    from ..errors import DataError

    lo, hi = np.inf, -np.inf
    bad_samples: list[int] = []
    bad_count = 0
    first_bad: tuple[int, ...] | None = None
    for start in range(0, gathers.shape[0], batch_size):
        chunk = gathers[start:start + batch_size]
        if hasattr(chunk, "detach"):
            chunk = chunk.detach().cpu().numpy()
        chunk = np.asarray(chunk, dtype=np.float32)
        finite = np.isfinite(chunk)
        if not finite.all():
            bad = ~finite
            bad_count += int(bad.sum())
            per_sample = bad.reshape(len(chunk), -1).any(axis=1)
            bad_samples += (start + np.flatnonzero(per_sample)).tolist()
            if first_bad is None:
                index = np.unravel_index(int(np.flatnonzero(bad)[0]), chunk.shape)
                first_bad = (start + int(index[0]), *(int(i) for i in index[1:]))
            chunk = chunk[finite]
        if chunk.size:
            lo, hi = min(lo, float(chunk.min())), max(hi, float(chunk.max()))
    if first_bad is not None:
        n, s, t, r = first_bad
        listed = ", ".join(map(str, bad_samples[:5])) + (", ..." if len(bad_samples) > 5 else "")
        raise DataError(f"{where}: the gathers hold {bad_count} NaN or infinite value(s) in {len(bad_samples)} of "
                        f"{gathers.shape[0]} sample(s) ({listed}); the first is sample {n}, shot {s}, time sample "
                        f"{t}, receiver {r}. Remove those samples or replace the values (dead traces as zeros)")
    if lo == hi:
        raise DataError(f"{where}: every gathers sample is {lo:g}: the input holds no recorded signal to predict "
                        f"velocity from (an empty or failed export?)")


#: Gathers the network reads beyond this multiple of its trained input range [-1, 1] are warned about.
UNIT_RANGE_LIMIT = 1.5

#: Gathers whose peak amplitude is further than this factor from the trained one's (either way) are warned about.
AMPLITUDE_RATIO_LIMIT = 10.0


def _unit_range_problem(lo: float, hi: float, norm: Any, *, shaped: bool) -> str | None:
    """A sentence naming how far the gathers the network reads are from the amplitudes it was trained on, if far.

    Far is a peak amplitude more than :data:`AMPLITUDE_RATIO_LIMIT` times above or below the
    trained data's, or a range in the network's input scale beyond :data:`UNIT_RANGE_LIMIT`
    times [-1, 1].
    """
    unit = np.asarray(norm.gathers_to_unit(np.array([lo, hi], dtype=np.float64)), dtype=np.float64)
    beyond = float(np.abs(unit).max())
    trained_peak = max(abs(float(norm.data_min)), abs(float(norm.data_max)))
    ratio = max(abs(lo), abs(hi)) / trained_peak
    if beyond <= UNIT_RANGE_LIMIT and 1 / AMPLITUDE_RATIO_LIMIT <= ratio <= AMPLITUDE_RATIO_LIMIT:
        return None
    what = "shaped to the trained wavelet" if shaped else "as given (no shaping)"
    return (f"the gathers, {what}, peak at {ratio:.3g} times the amplitude the weights were trained on (raw "
            f"{lo:.3g}..{hi:.3g} against {norm.data_min:.3g}..{norm.data_max:.3g}; {unit[0]:.3g}..{unit[1]:.3g} in "
            f"the network's input scale, trained on [-1, 1]): the map cannot be trusted"
            + ("" if shaped else "; --shaping estimate scales the data to the trained amplitude"))


def weights_source(backbone: str, pretrained: str | None, weights: Path | None,
                    options: Mapping[str, Any]) -> tuple[str, Any]:
    """What ``--pretrained``/``--weights`` ask for, checked against ``options`` before any data is read.

    Returns:
        ``(pretrained value, the weights' PretrainedConfig or None for none)``.
    """
    import warnings

    from ..errors import DataError, OptionError
    from ..pretrained import NONE, backbone_options

    spec = registry_spec("backbone", backbone)
    if weights is not None and pretrained is not None:
        raise OptionError(f"--pretrained {pretrained} and --weights {weights} both name the weights; give one")
    if weights is not None and not weights.is_file():
        raise DataError(f"weights file {weights} does not exist (expected a .safetensors file)")
    source = str(weights) if weights is not None else (pretrained or "default")
    if source.strip().lower() == "default" and not spec.pretrained:
        raise OptionError(f"--pretrained: backbone {backbone!r} ships no pretrained weights; pass --weights "
                          f"FILE.safetensors (from fwi pretrain), or --pretrained none for an untrained network")
    _, config = backbone_options(spec, options, source)  # an option the weights fix fails here, named
    if source.strip().lower() == NONE:
        warnings.warn(f"--pretrained none: {backbone} starts from random weights (untrained), so its "
                      f"predictions are not a velocity estimate", UserWarning, stacklevel=2)
    return source, config


def acquisition_map(gathers_shape: tuple[int, ...], weights_config: Any, survey: Any, grid: Any,
                    where: str, *, shaped: bool = False) -> Any:
    """How the input's acquisition is mapped onto the one the weights were trained for.

    Returns ``None`` when the weights record no acquisition (the network then reads the
    gathers as they are). Gathers of the native layout without a survey are taken as
    recorded with the native acquisition; any other layout needs its survey (positions and
    sample interval), from the input's coordinates or headers or from ``--survey``.

    Raises:
        DataError: no survey for gathers of another layout, or gathers that disagree with it.
        SurveyError: a survey that cannot be mapped, saying why.
    """
    from ..acquisition import AcquisitionMap, native_survey
    from ..errors import DataError, SurveyError

    native_shape = weights_config.shape if weights_config is not None else None
    if native_shape is None:
        return None
    native = native_survey(native_shape, weights_config.wavelet)
    _, shots, nt, receivers = gathers_shape
    layout = (native.n_shots, native.nt, native.n_receivers)
    if survey is None:
        if (shots, nt, receivers) != layout:
            wrong = [f"{have} {what}, not {want}" for what, have, want in (
                ("shots", shots, native.n_shots), ("time samples", nt, native.nt),
                ("receivers", receivers, native.n_receivers)) if have != want]
            raise DataError(f"{where}: the gathers have {'; '.join(wrong)}: the weights {weights_config.label} were "
                            f"trained for {native.n_shots} shots x {native.nt} time samples x {native.n_receivers} "
                            f"receivers, and the input carries no acquisition to map it from (source and receiver "
                            f"positions, sample interval). Give --survey FILE.toml, or an input with them (netCDF "
                            f"source_x/receiver_x/time coordinates, SEG-Y trace headers)")
        survey = native
    if (shots, nt, receivers) != (survey.n_shots, survey.nt, survey.n_receivers):
        raise DataError(f"{where}: gathers of {shots} shots x {nt} time samples x {receivers} receivers, but its "
                        f"survey describes {survey.n_shots} x {survey.nt} x {survey.n_receivers}")
    try:
        mapping = AcquisitionMap(survey, native, grid=grid, shaped=shaped)
    except SurveyError as exc:
        raise SurveyError(f"{where}: {exc}") from None
    return mapping


def predict_velocity(gathers: Any, *, backbone: str, options: Mapping[str, Any], source: str, weights_config: Any,
                     adapter: Path | None, normalization: Path | None, shape: Any, batch_size: int, device: Any,
                     progress: bool, where: str, survey: Any = None, grid: Any = None,
                     shaping: Any = "none", path: Path | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Velocity (m/s) from ``gathers`` with the model the command's options name, and its provenance.

    Gathers recorded with ``survey`` are mapped onto the acquisition the weights were
    trained for and the prediction back onto ``grid`` (see :mod:`fwi_plugins.acquisition`).
    ``shaping`` (see :func:`shaping_choice`) turns the data's wavelet and amplitude into the
    trained ones first (:mod:`fwi_plugins.shaping`); what it found is checked and recorded.
    The normalisation is the one the model was trained with (see :func:`find_normalization`);
    without one, the gathers' own range is used, with a warning. ``path``, the input file,
    is named in the messages about its values.
    """
    import warnings

    from ..acquisition import mapped_gathers, native_survey
    from ..acquisition.first_breaks import check_first_breaks
    from ..acquisition.mapped_prediction import shaped_native_prediction
    from ..options import to_dict
    from ..pretrained import backbone_options
    from .shaped import check_shaping, shaping_choice

    shaping = shaping_choice(shaping, weights_config)
    shaped = not (isinstance(shaping, str) and shaping.strip().lower() == "none")
    mapping = acquisition_map(tuple(gathers.shape), weights_config, survey, grid, where, shaped=shaped)
    named = f"{where} {path}" if path is not None else where
    _check_signal(gathers, batch_size, named)
    if mapping is not None:
        check_first_breaks(gathers, mapping.survey, named)
    if mapping is not None and not mapping.is_identity:
        for note in mapping.notes:
            warnings.warn(f"{where}: {note}", UserWarning, stacklevel=2)
        gathers = mapped_gathers(gathers, mapping)
        shape = weights_config.shape
    else:
        mapping = None
    norm, norm_source = _normalization(normalization, weights_config, adapter, gathers, batch_size, where)
    model = load_model(backbone, options, adapter_dir=adapter, pretrained=source, shape=shape)
    read: dict[str, tuple[float, float]] = {}

    def run(net: Any, data: Any) -> np.ndarray:
        # The range of what the network reads last (shaped, when shaping runs), checked below.
        read["range"] = _fit_gathers_range(data, batch_size)
        return predict(net, data, normalization=norm, batch_size=batch_size, device=device, progress=progress)

    native = native_survey(weights_config.shape, weights_config.wavelet) if shaped else None
    velocity, applied = shaped_native_prediction(model, gathers, shaping=shaping, native=native, predict=run)
    if applied is not None:
        for problem in check_shaping(applied, native):
            warnings.warn(f"{where}: {problem}", UserWarning, stacklevel=2)
    if "range" in read and norm.fitted:
        amplitude = _unit_range_problem(*read["range"], norm, shaped=applied is not None)
        if amplitude is not None:
            warnings.warn(f"{named}: {amplitude}", UserWarning, stacklevel=2)
    if mapping is not None:
        velocity = mapping.velocity_to_user(velocity)
    spec = registry_spec("backbone", backbone)
    provenance = {
        "backbone": backbone,
        "backbone_options": to_dict(spec.parse_options(backbone_options(spec, options, source)[0])),
        "pretrained": source,
        "weights": str(weights_config.path) if weights_config else None,
        "adapter": str(adapter) if adapter else None,
        "normalization": norm.to_dict(),
        "normalization_source": norm_source,
        "acquisition": mapping.describe() if mapping is not None else None,
        "shaping": applied.describe() if applied is not None else None,
    }
    return velocity, {k: v for k, v in provenance.items() if v is not None}


def _normalization(explicit: Path | None, weights_config: Any, adapter: Path | None, gathers: Any, batch_size: int,
                   where: str) -> tuple[Any, str]:
    """The normalisation to predict with and where it came from (fitted on the input when the model has none)."""
    import warnings

    from ..data import Normalization

    norm, norm_source = find_normalization(explicit, weights_config.path if weights_config else None, adapter)
    if norm is None:
        lo, hi = _fit_gathers_range(gathers, batch_size)
        norm = Normalization.openfwi().fit_gathers(np.array([lo, hi], dtype=np.float64))
        norm_source = f"fitted on {where}"
        warnings.warn(f"no normalisation stored with the model; gathers are scaled by the input's own "
                      f"range and velocity by {norm.vmin:g}-{norm.vmax:g} m/s (pass --normalization FILE)",
                      stacklevel=3)
    elif not norm.fitted:
        lo, hi = _fit_gathers_range(gathers, batch_size)
        norm = norm.fit_gathers(np.array([lo, hi], dtype=np.float64))
        norm_source += f" (gathers range fitted on {where})"
    return norm, norm_source


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
    from ..acquisition import AcquisitionMap, Grid, native_survey

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
    from ..errors import OptionError
    from ..survey import Survey
    from .device import resolve_device

    input_path, out = Path(input_path), Path(out)
    options = dict(options or {})
    if dx is not None and not (isinstance(dx, numbers.Real) and math.isfinite(dx) and dx > 0):
        raise OptionError(f"--dx {dx}: expected a positive finite grid spacing in metres")
    target = resolve_device(device)  # fail on a bad device before reading anything
    from .predict_outputs import PredictFolder

    PredictFolder(out).check()  # refuse a folder of someone else's files before any work
    source, weights_config = weights_source(backbone, pretrained, Path(weights) if weights else None, options)
    if survey is not None:
        from ..data.gathers_input import check_input_survey

        given = "the survey given" if isinstance(survey, Survey) else f"--survey {survey}"
        survey = survey if isinstance(survey, Survey) else Survey.load(survey)
        check_input_survey(input_path, survey, given=given)
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
    from ..data.io import survey_from_attrs
    from ..errors import OptionError
    from ..specs import IOShape

    n, shots, nt, receivers = gathers.shape
    input_survey = survey or survey_from_attrs(attrs, where=f"--input {input_path}")
    origin = 0.0 if survey is not None else float(attrs.get("origin_x") or 0.0)
    from .shaped import shaping_choice

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

    Only files ``fwi predict`` wrote are replaced (see :class:`~fwi_plugins.engine.predict_outputs.PredictFolder`).
    """
    from ..data import Normalization
    from ..data.io import write_velocity
    from .figures import velocity_comparison
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

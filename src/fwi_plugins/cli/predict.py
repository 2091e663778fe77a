"""``fwi predict``: velocity from shot gathers with a (pretrained, fine-tuned or adapted) backbone."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import numpy as np

from .common import ComponentName, handles_errors, parse_overrides, plugin_option, split_overrides

_GATHERS_NAMES = ("gathers", "data", "seismic", "pressure")
_GATHERS_DIMS = ("sample", "shot", "time", "receiver")


# -- input: read lazily where the format allows -----------------------------------------
class _LazyVariable:
    """An xarray variable indexed by sample slices, read from disk one slice at a time."""

    def __init__(self, variable: Any) -> None:
        self.variable = variable
        self.shape = tuple(int(s) for s in variable.shape)

    def __getitem__(self, item: slice) -> np.ndarray:
        return np.asarray(self.variable[item].values)


def _check_shape(shape: tuple[int, ...], path: Path) -> None:
    from ..errors import DataError

    if len(shape) != 4 or 0 in shape:
        raise DataError(f"--input {path}: gathers of shape {shape}; expected (sample, shot, time, receiver) "
                        f"or (shot, time, receiver)")


@contextlib.contextmanager
def open_gathers(path: Path) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Gathers ``(N, S, T, R)`` and the file's attributes, lazily indexed where possible.

    ``.npy`` is memory-mapped and netCDF read through xarray slice by slice, so an input
    larger than memory is fine; zarr and SEG-Y go through :func:`fwi_plugins.data.io.read_gathers`.
    """
    from ..data.io import _decode_attrs, gathers_geometry, read_gathers
    from ..errors import DataError

    suffix = path.suffix.lower()
    if not path.exists():
        raise DataError(f"--input {path}: no such file")
    if suffix == ".npy":
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"--input {path}: not a readable numeric .npy array ({exc})") from None
        if array.dtype.kind not in "fiu":
            raise DataError(f"--input {path}: gathers must be real numbers (float32 expected), got {array.dtype}")
        if array.ndim == 3:
            array = array[None]
        _check_shape(array.shape, path)
        yield array, {"path": str(path), "format": "npy"}
    elif suffix == ".nc":
        import xarray as xr

        try:
            ds = xr.open_dataset(path, engine="h5netcdf")
        except Exception as exc:  # h5py raises many types for a damaged file
            raise DataError(f"--input {path}: not a readable netCDF file ({type(exc).__name__}: {exc})") from None
        try:
            names = [n for n in _GATHERS_NAMES if n in ds.data_vars] or list(ds.data_vars)
            if len(names) != 1 and not set(names) & set(_GATHERS_NAMES):
                raise DataError(f"--input {path}: no gathers variable; expected one named 'gathers' "
                                f"(found: {', '.join(map(str, ds.data_vars)) or 'none'})")
            var = ds[names[0]]
            if set(var.dims) == set(_GATHERS_DIMS):
                var = var.transpose(*_GATHERS_DIMS)
            elif var.ndim == 3:
                var = var.expand_dims("sample")
            _check_shape(tuple(var.shape), path)
            attrs = {"path": str(path), "format": "nc", **dict(ds.attrs)}
            attrs.update(gathers_geometry(ds, var, _decode_attrs(ds.attrs), path))
            yield _LazyVariable(var), attrs
        finally:
            ds.close()
    else:
        array, attrs = read_gathers(path)
        yield array, attrs


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
        with contextlib.suppress(Exception):
            from safetensors import safe_open

            with safe_open(str(weights), framework="np") as f:
                found = _normalization_from((f.metadata() or {}).get("normalization"))
            if found is not None:
                return Normalization.from_dict(found), f"{weights} (metadata)"
    return None, ""


def _fit_gathers_range(gathers: Any, batch_size: int) -> tuple[float, float]:
    """The input's own amplitude range, read batch by batch."""
    lo, hi = np.inf, -np.inf
    for start in range(0, gathers.shape[0], batch_size):
        chunk = np.asarray(gathers[start:start + batch_size], dtype=np.float32)
        lo, hi = min(lo, float(chunk.min())), max(hi, float(chunk.max()))
    return lo, hi


def _parse_grid(value: str | None) -> tuple[int, int] | None:
    from ..errors import OptionError

    if value is None:
        return None
    parts = value.lower().replace(",", "x").split("x")
    try:
        nz, nx = (int(p) for p in parts)
    except ValueError:
        raise OptionError(f"--grid {value!r}: expected DEPTHxWIDTH in cells, for example 70x70") from None
    if nz <= 0 or nx <= 0:
        raise OptionError(f"--grid {value!r}: both sizes must be positive")
    return nz, nx


def weights_source(backbone: str, pretrained: str | None, weights: Path | None,
                    options: Mapping[str, Any]) -> tuple[str, Any]:
    """What ``--pretrained``/``--weights`` ask for, checked against ``options`` before any data is read.

    Returns:
        ``(pretrained value, the weights' PretrainedConfig or None for none)``.
    """
    import warnings

    from ..api import get_spec
    from ..errors import DataError, OptionError
    from ..pretrained import NONE, backbone_options

    spec = get_spec("backbone", backbone)
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
                    where: str) -> Any:
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
    native = native_survey(native_shape)
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
        mapping = AcquisitionMap(survey, native, grid=grid)
    except SurveyError as exc:
        raise SurveyError(f"{where}: {exc}") from None
    return mapping


def predict_velocity(gathers: Any, *, backbone: str, options: Mapping[str, Any], source: str, weights_config: Any,
                     adapter: Path | None, normalization: Path | None, shape: Any, batch_size: int, device: Any,
                     progress: bool, where: str, survey: Any = None, grid: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Velocity (m/s) from ``gathers`` with the model the command's options name, and its provenance.

    Gathers recorded with ``survey`` are mapped onto the acquisition the weights were
    trained for and the prediction back onto ``grid`` (see :mod:`fwi_plugins.acquisition`).
    The normalisation is the one the model was trained with (see :func:`find_normalization`);
    without one, the gathers' own range is used, with a warning.
    """
    import warnings

    from ..acquisition import mapped_gathers
    from ..api import get_spec
    from ..data import Normalization
    from ..engine.predict import load_model, predict as run_predict
    from ..options import to_dict
    from ..pretrained import backbone_options

    mapping = acquisition_map(tuple(gathers.shape), weights_config, survey, grid, where)
    if mapping is not None and not mapping.is_identity:
        for note in mapping.notes:
            warnings.warn(f"{where}: {note}", UserWarning, stacklevel=2)
        gathers = mapped_gathers(gathers, mapping)
        shape = weights_config.shape
    else:
        mapping = None
    norm, norm_source = find_normalization(normalization, weights_config.path if weights_config else None, adapter)
    if norm is None:
        lo, hi = _fit_gathers_range(gathers, batch_size)
        norm = Normalization.openfwi().fit_gathers(np.array([lo, hi], dtype=np.float64))
        norm_source = f"fitted on {where}"
        warnings.warn(f"no normalisation stored with the model; gathers are scaled by the input's own "
                      f"range and velocity by {norm.vmin:g}-{norm.vmax:g} m/s (pass --normalization FILE)",
                      stacklevel=2)
    elif not norm.fitted:
        lo, hi = _fit_gathers_range(gathers, batch_size)
        norm = norm.fit_gathers(np.array([lo, hi], dtype=np.float64))
        norm_source += f" (gathers range fitted on {where})"

    model = load_model(backbone, options, adapter_dir=adapter, pretrained=source, shape=shape)
    velocity = run_predict(model, gathers, normalization=norm, batch_size=batch_size, device=device,
                           progress=progress)
    if mapping is not None:
        velocity = mapping.velocity_to_user(velocity)
    spec = get_spec("backbone", backbone)
    provenance = {
        "backbone": backbone,
        "backbone_options": to_dict(spec.parse_options(backbone_options(spec, options, source)[0])),
        "pretrained": source,
        "weights": str(weights_config.path) if weights_config else None,
        "adapter": str(adapter) if adapter else None,
        "normalization": norm.to_dict(),
        "normalization_source": norm_source,
        "acquisition": mapping.describe() if mapping is not None else None,
    }
    return velocity, {k: v for k, v in provenance.items() if v is not None}


@click.command("predict")
@click.option("--backbone", required=True, type=ComponentName("backbone"), metavar="NAME",
              help="Backbone network (fwi list backbone).")
@click.option("--pretrained", metavar="NAME|PATH|none",
              help="Shipped weights of the backbone (default: its default foundation), a .safetensors file, "
                   "or none for an untrained network.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.safetensors",
              help="Full weights of the backbone (for example from fwi pretrain or a full fine-tune), "
                   "instead of --pretrained.")
@click.option("--adapter", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="PEFT adapter folder (peft layout) saved by fwi run, loaded on top of the weights.")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="Shot gathers (sample, shot, time, receiver): .npy, .nc, .zarr or .sgy.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Output folder: velocity.nc, velocity.sgy and velocity.png.")
@click.option("-o", "--option", "overrides", multiple=True, metavar="backbone.KEY=VALUE",
              help="Backbone option (repeatable); default: the options the weights were built with, "
                   "which an option may only repeat.")
@click.option("--normalization", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.json",
              help="Normalisation the model was trained with; default: found beside the adapter/weights.")
@click.option("--survey", "survey_name", metavar="FILE|PRESET",
              help="Acquisition of the input (.toml/.json survey file, or openfwi/small); default: the input's "
                   "own coordinates or headers. Gathers of any acquisition are mapped onto the model's.")
@click.option("--grid", metavar="ZxX", help="Velocity grid in cells; default: the input's survey (its depth: "
                                            "what the recording sees, when the input does not say), else R x R.")
@click.option("--dx", type=float, help="Grid spacing in metres; default: the input's survey, else 10.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Samples per batch.")
@click.option("--device", default="auto", show_default=True, help="auto (GPU when present), cpu or cuda.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@plugin_option
@handles_errors
def predict(backbone: str, pretrained: str | None, weights: Path | None, adapter: Path | None, input_path: Path,
            out: Path, overrides: tuple[str, ...], normalization: Path | None, survey_name: str | None,
            grid: str | None,
            dx: float | None, batch_size: int, device: str, quiet: bool, plugins: tuple[str, ...]) -> None:
    """Predict velocity from shot gathers, in batches, and write it as netCDF, SEG-Y and PNG.

    The backbone is built the way its weights were (options, normalisation), from the
    backbone's default foundation unless --pretrained or --weights says otherwise.

    \b
    Examples:
      fwi predict --backbone vit --input shots.npy --out pred/
      fwi predict --backbone vit --adapter runs/r/adapter --input field.sgy --out pred/ --device cuda
      fwi predict --backbone vit --weights foundation.safetensors --input shots.npy --out pred/
    """
    from ..acquisition import AcquisitionMap, Grid, native_survey
    from ..data import Normalization
    from ..data.io import survey_from_attrs, write_velocity
    from ..engine.figures import velocity_comparison
    from ..engine.predict import resolve_device
    from ..errors import OptionError
    from ..manager import get_plugin_manager
    from ..specs import IOShape
    from ..survey import Survey

    per_kind, plain = split_overrides(parse_overrides(overrides))
    stray = [f"{kind}.{key}" for kind, values in per_kind.items() if kind != "backbone" for key in values]
    stray += list(plain)
    if stray:
        raise OptionError(f"-o {stray[0]}: fwi predict takes only backbone options (-o backbone.KEY=VALUE)")
    requested_grid = _parse_grid(grid)
    if dx is not None and not dx > 0:
        raise OptionError(f"--dx {dx}: expected a positive spacing in metres")
    target = resolve_device(device)  # fail on a bad device before reading anything
    source, weights_config = weights_source(backbone, pretrained, weights, per_kind["backbone"])

    survey_file = Survey.load(survey_name) if survey_name is not None else None
    with open_gathers(input_path) as (gathers, attrs):
        n, shots, nt, receivers = gathers.shape
        survey = survey_file or survey_from_attrs(attrs, where=f"--input {input_path}")
        origin = 0.0 if survey_file is not None else float(attrs.get("origin_x") or 0.0)
        native = weights_config.shape if weights_config is not None else None
        spacing = dx or (survey.dx if survey else 10.0)
        mapped_grid = None
        if native is not None and survey is not None:
            # Mapped onto the weights' acquisition: the grid is the user's, in metres.
            nx = int(round((survey.nx - 1) * survey.dx / spacing)) + 1
            if survey_file is None and attrs.get("grid_depth") == "assumed":
                nz = AcquisitionMap.deepest(survey, native_survey(native), spacing)
            else:
                nz = int(round((survey.nz - 1) * survey.dx / spacing)) + 1
            nz, nx = requested_grid or (nz, nx)
            mapped_grid = Grid(nz=nz, nx=nx, dx=spacing)
        elif requested_grid:
            nz, nx = requested_grid
        elif survey:
            nz, nx = survey.nz, survey.nx
        elif native and (native.shots, native.time, native.receivers) == (shots, nt, receivers):
            nz, nx = native.depth, native.width
        else:
            nz, nx = receivers, receivers
        shape = IOShape(shots=shots, time=nt, receivers=receivers, depth=nz, width=nx)

        velocity, provenance = predict_velocity(
            gathers, backbone=backbone, options=per_kind["backbone"], source=source, weights_config=weights_config,
            adapter=adapter, normalization=normalization, shape=shape, batch_size=batch_size, device=target,
            progress=not quiet, where="--input", survey=survey, grid=mapped_grid)

    if velocity.shape[-2:] != (nz, nx):
        raise OptionError(f"the model predicts a {velocity.shape[-2]} x {velocity.shape[-1]} grid, not the "
                          f"{nz} x {nx} asked for; pass --grid to match the weights")
    provenance = {"generator": "fwi predict", **provenance, "input": str(input_path),
                  "survey": survey.to_dict() if survey is not None else None}
    norm = Normalization.from_dict(provenance["normalization"])
    out.mkdir(parents=True, exist_ok=True)
    nc_path = write_velocity(out / "velocity.nc", velocity, dx=spacing, attrs=provenance, origin=origin)
    sgy_path = write_velocity(out / "velocity.sgy", velocity, dx=spacing, attrs=provenance, origin=origin)
    png_path = velocity_comparison(out / "velocity.png", {"predicted": velocity}, dx=spacing,
                                   vmin=norm.vmin, vmax=norm.vmax, title=f"{backbone}: {input_path.name}")
    get_plugin_manager().hook.fwi_predictions_ready(run_dir=out, stage="predict", path=nc_path,
                                                   predictions=velocity)
    click.echo(f"predicted {n} velocity model(s) of {nz} x {nx} cells ({velocity.min():.0f}-"
               f"{velocity.max():.0f} m/s)")
    for path in (nc_path, sgy_path, png_path):
        click.echo(f"  {path}")

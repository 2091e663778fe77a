"""Reading and writing velocity models and shot gathers: ``.npy``, netCDF, zarr and SEG-Y.

Layouts in memory are the project's: velocity ``(N, 1, Z, X)`` float32 m/s, gathers
``(N, S, T, R)`` float32. On disk:

* ``.npy``: the array as is (read with ``allow_pickle=False``; never unpickled).
* ``.nc`` (netCDF4 through h5netcdf) and ``.zarr``: an xarray dataset with a ``velocity``
  variable on dims ``(sample, depth, x)`` or a ``gathers`` variable on
  ``(sample, shot, time, receiver)``; coordinates in metres and seconds, units, and the
  survey and provenance (generator, seed, package versions) in the attributes.
* ``.sgy``/``.segy`` (segyio, IEEE float32, format 5): one trace per receiver per shot,
  FFID (field record) numbering shots, trace number the receiver, source and receiver
  positions in the trace headers and the sample interval in microseconds in the binary
  header. Velocity models are written one trace per x column, depth as the sample axis
  (the interval field then holds the depth step in millimetres, as depth-domain SEG-Y does).

Every write is atomic: the file appears whole or not at all. Every read checks what it
gets and raises :class:`~fwi_plugins.errors.DataError` naming the file and what was expected.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..atomic import atomic_dir, atomic_path
from ..survey import Survey
from ..units import PLAUSIBLE_VELOCITY, velocity_units_guess

VELOCITY_SUFFIXES = (".npy", ".nc", ".zarr", ".sgy", ".segy")
GATHERS_SUFFIXES = VELOCITY_SUFFIXES
_VELOCITY_NAMES = ("velocity", "vp", "vel", "v", "model")
_GATHERS_NAMES = ("gathers", "data", "seismic", "pressure")
_SEGY_MARK = "FWI-PLUGINS"


# -- validation ----------------------------------------------------------------
def _numeric(arr: Any, where: str, what: str) -> np.ndarray:
    if hasattr(arr, "detach"):
        arr = arr.detach().cpu().numpy()
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{where}: {what} must be real numbers (float32 expected), got dtype {arr.dtype}")
    return arr


def validate_velocity(arr: Any, where: str) -> np.ndarray:
    """Check a velocity array and return it as ``(N, 1, Z, X)`` float32 m/s.

    Accepts ``(Z, X)``, ``(N, Z, X)`` and ``(N, 1, Z, X)``.

    Raises:
        DataError: wrong dtype or shape, NaN/inf, non-positive values, or values that
            look like km/s (or mm/s) rather than m/s. The message starts with ``where``.
    """
    arr = _numeric(arr, where, "velocity")
    if arr.ndim == 2:
        arr = arr[None, None]
    elif arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim != 4 or arr.shape[1] != 1:
        raise DataError(f"{where}: velocity of shape {arr.shape}; expected (N, 1, depth, x), (N, depth, x) "
                        f"or (depth, x)")
    if arr.size == 0:
        raise DataError(f"{where}: velocity of shape {arr.shape} holds no values")
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise DataError(f"{where}: velocity holds {bad} NaN or infinite value(s); expected finite m/s")
    lo, hi = float(arr.min()), float(arr.max())
    if lo <= 0:
        raise DataError(f"{where}: velocity holds non-positive values (min {lo:g}); expected m/s > 0")
    units = velocity_units_guess(lo, hi)
    if units == "km/s":
        raise DataError(f"{where}: velocity spans {lo:g}..{hi:g}, which looks like km/s; expected m/s "
                        f"(multiply by 1000)")
    if units == "mm/s":
        raise DataError(f"{where}: velocity spans {lo:g}..{hi:g}, which looks like mm/s; expected m/s "
                        f"(divide by 1000)")
    if lo < PLAUSIBLE_VELOCITY[0] or hi > PLAUSIBLE_VELOCITY[1]:
        raise DataError(f"{where}: velocity spans {lo:g}..{hi:g} m/s, outside the plausible "
                        f"{PLAUSIBLE_VELOCITY[0]:g}..{PLAUSIBLE_VELOCITY[1]:g} m/s; check the units")
    return np.ascontiguousarray(arr, dtype=np.float32)


def validate_gathers(arr: Any, where: str) -> np.ndarray:
    """Check a gathers array and return it as ``(N, S, T, R)`` float32 (``(S, T, R)`` gets ``N = 1``).

    Raises:
        DataError: wrong dtype or shape, or NaN/inf values. The message starts with ``where``.
    """
    arr = _numeric(arr, where, "gathers")
    if arr.ndim == 3:
        arr = arr[None]
    elif arr.ndim != 4:
        raise DataError(f"{where}: gathers of shape {arr.shape}; expected (N, shot, time, receiver) "
                        f"or (shot, time, receiver)")
    if arr.size == 0:
        raise DataError(f"{where}: gathers of shape {arr.shape} hold no values")
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise DataError(f"{where}: gathers hold {bad} NaN or infinite value(s)")
    return np.ascontiguousarray(arr, dtype=np.float32)


# -- provenance ----------------------------------------------------------------
def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a written file (those imported, plus core ones)."""
    versions = {}
    for dist in ("fwi-plugins", "numpy", "xarray", "h5netcdf", "zarr", "segyio", "torch", "deepwave"):
        module = dist.replace("-", "_")
        if dist not in ("fwi-plugins", "numpy") and module not in sys.modules:
            continue
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return versions


def _encode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """netCDF attributes are flat: nested values become JSON strings, listed in ``json_attrs``."""
    out: dict[str, Any] = {}
    as_json = []
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, (dict, list, tuple, bool)):
            out[key] = json.dumps(value, default=str)
            as_json.append(key)
        elif isinstance(value, (str, int, float, np.integer, np.floating)):
            out[key] = value
        else:
            out[key] = str(value)
    if as_json:
        out["json_attrs"] = ",".join(as_json)
    return out


def _decode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    as_json = set(str(attrs.get("json_attrs", "")).split(",")) - {""}
    for key, value in attrs.items():
        if key == "json_attrs":
            continue
        if key in as_json:
            with contextlib.suppress(ValueError, TypeError):
                value = json.loads(value)
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def _suffix(path: Path, allowed: tuple[str, ...], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise DataError(f"{path}: cannot tell the {what} format from the suffix {suffix or '(none)'!r}; "
                        f"expected one of {', '.join(allowed)}")
    return suffix


def _exists(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: no such file")


# -- public API ----------------------------------------------------------------
def read_velocity(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read velocity maps: ``(N, 1, Z, X)`` float32 m/s and the file's attributes.

    Besides the written formats, MATLAB ``.mat`` files are read (see :func:`read_mat_velocity`).
    Attributes always include ``path`` and ``format``, and ``dx`` (metres) where the file says.
    """
    if Path(path).suffix.lower() == ".mat":
        arr, attrs = read_mat_velocity(Path(path))
        return validate_velocity(arr, attrs["path"]), attrs
    arr, attrs = _read(path, "velocity", VELOCITY_SUFFIXES, _read_segy_velocity)
    return validate_velocity(arr, attrs["path"]), attrs


def read_gathers(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read shot gathers: ``(N, S, T, R)`` float32 and the file's attributes.

    Attributes include ``path`` and ``format``; netCDF/zarr files written here carry the
    ``survey`` (a dict, see :meth:`Survey.to_dict`); SEG-Y adds ``dt`` (seconds, from the
    binary header), ``source_x``/``receiver_x`` (metres, from the trace headers) and ``survey``
    when the geometry allows one to be built.
    """
    arr, attrs = _read(path, "gathers", GATHERS_SUFFIXES, _read_segy_gathers)
    return validate_gathers(arr, attrs["path"]), attrs


def _read(path: str | Path, what: str, suffixes: Any, read_segy: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Dispatch on the file suffix; the array is validated by the caller."""
    path = Path(path)
    suffix = _suffix(path, suffixes, what)
    _exists(path)
    if suffix == ".npy":
        arr, attrs = _read_npy(path), {}
    elif suffix in (".nc", ".zarr"):
        arr, attrs = _read_xarray(path, what)
    else:
        arr, attrs = read_segy(path)
    attrs.update(path=str(path), format=suffix.lstrip("."))
    return arr, attrs


def write_velocity(path: str | Path, velocity: Any, *, dx: float,
                   attrs: Mapping[str, Any] | None = None, origin: float = 0.0) -> Path:
    """Write velocity maps ``(N, 1, Z, X)`` m/s; the format follows the suffix. Atomic.

    ``origin`` is the x (metres) of column 0, as the input's coordinates give it: netCDF
    and zarr carry it in the ``x`` coordinate, SEG-Y in the CDP_X/GroupX trace headers.
    """
    path = Path(path)
    suffix = _suffix(path, VELOCITY_SUFFIXES, "velocity")
    velocity = validate_velocity(velocity, f"writing {path}")
    if not (dx > 0):
        raise DataError(f"writing {path}: dx must be a positive spacing in metres, got {dx!r}")
    if not np.isfinite(origin):
        raise DataError(f"writing {path}: origin must be a finite x in metres, got {origin!r}")
    meta = {"kind": "velocity", "dx": float(dx), **({"origin_x": float(origin)} if origin else {}),
            **dict(attrs or {}), "versions": package_versions()}
    if suffix == ".npy":
        _write_npy(path, velocity)
    elif suffix in (".nc", ".zarr"):
        _write_xarray(path, _velocity_dataset(velocity, dx, meta, origin))
    else:
        _write_segy_velocity(path, velocity, dx, meta, origin)
    return path


def write_gathers(path: str | Path, gathers: Any, *, survey: Survey,
                  attrs: Mapping[str, Any] | None = None) -> Path:
    """Write gathers ``(N, S, T, R)`` recorded with ``survey``; the format follows the suffix. Atomic."""
    path = Path(path)
    suffix = _suffix(path, GATHERS_SUFFIXES, "gathers")
    gathers = validate_gathers(gathers, f"writing {path}")
    expected = (survey.n_shots, survey.nt, survey.n_receivers)
    if gathers.shape[1:] != expected:
        raise DataError(f"writing {path}: gathers of shape {gathers.shape[1:]} per sample, the survey has "
                        f"(shots, time, receivers) = {expected}")
    meta = {"kind": "gathers", **dict(attrs or {}), "survey": survey.to_dict(), "versions": package_versions()}
    if suffix == ".npy":
        _write_npy(path, gathers)
    elif suffix in (".nc", ".zarr"):
        _write_xarray(path, _gathers_dataset(gathers, survey, meta))
    else:
        _write_segy_gathers(path, gathers, survey, meta)
    return path


def survey_from_attrs(attrs: Mapping[str, Any], *, where: str = "file") -> Survey | None:
    """The survey a file's attributes describe, or ``None`` if they describe none."""
    data = attrs.get("survey")
    if not data:
        return None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            raise DataError(f"{where}: attribute 'survey' is not valid JSON") from None
    return Survey.from_dict(data, source=f"{where} (attribute 'survey')")


# -- MATLAB .mat (read only) ---------------------------------------------------
_MAT_SPACING_NAMES = ("dx", "dh", "h", "spacing")


def read_mat_velocity(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """A velocity array from a MATLAB ``.mat`` file, as much academic FWI code stores models.

    MATLAB 5 files are read with ``scipy.io.loadmat`` and 7.3 files (HDF5) with h5py;
    neither runs code from the file. The variable is the one named like a velocity
    (``velocity``, ``vp``, ``vel``, ``v``, ``model``, any case) or the file's only numeric
    array; a scalar ``dx``/``dh``/``h`` gives the spacing in metres. Arrays are
    ``(Z, X)``, ``(N, Z, X)`` or ``(N, 1, Z, X)`` as MATLAB shows them.
    """
    from scipy.io import loadmat

    _exists(path)
    arrays: dict[str, np.ndarray]
    try:
        arrays = {k: v for k, v in loadmat(str(path)).items() if not k.startswith("__")}
    except NotImplementedError:  # MATLAB 7.3: HDF5, stored column-major
        import h5py

        try:
            with h5py.File(path, "r") as f:
                arrays = {k: np.asarray(f[k]).T for k in f if isinstance(f[k], h5py.Dataset)}
        except Exception as exc:
            raise DataError(f"{path}: not a readable MATLAB 7.3 .mat file ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError for damaged files
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(exc).__name__}: {exc})") from None
    numeric = {k: v for k, v in arrays.items()
               if isinstance(v, np.ndarray) and v.dtype.kind in "fiu" and v.size > 1}
    by_name = {k.lower(): k for k in numeric}
    chosen = next((by_name[n] for n in _VELOCITY_NAMES if n in by_name), None)
    if chosen is None:
        if len(numeric) != 1:
            raise DataError(f"{path}: no velocity variable; expected one named {' or '.join(_VELOCITY_NAMES)}, "
                            f"or a single numeric array (found: {', '.join(sorted(arrays)) or 'none'})")
        chosen = next(iter(numeric))
    attrs: dict[str, Any] = {"path": str(path), "format": "mat", "variable": chosen}
    for key, value in arrays.items():
        if key.lower() in _MAT_SPACING_NAMES and isinstance(value, np.ndarray) and value.size == 1 \
                and value.dtype.kind in "fiu":
            dx = float(value.ravel()[0])
            if not (np.isfinite(dx) and dx > 0):
                raise DataError(f"{path}: variable {key!r} = {dx:g} is not a positive spacing in metres")
            attrs["dx"] = dx
    return np.asarray(numeric[chosen]), attrs


# -- .npy ----------------------------------------------------------------------
def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        # numpy says "allow_pickle=False" for object arrays and "cannot reshape" for truncation.
        raise DataError(f"{path}: not a readable numeric .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None


def _write_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # A file handle, because np.save would append ".npy" to the temporary name.
        np.save(fh, arr, allow_pickle=False)


# -- xarray: netCDF and zarr ---------------------------------------------------
def _velocity_dataset(velocity: np.ndarray, dx: float, meta: Mapping[str, Any], origin: float = 0.0) -> Any:
    import xarray as xr

    n, _, nz, nx = velocity.shape
    var = xr.Variable(("sample", "depth", "x"), velocity[:, 0],
                      attrs={"units": "m/s", "long_name": "P-wave velocity"})
    coords = {
        "sample": ("sample", np.arange(n), {"long_name": "model index"}),
        "depth": ("depth", np.arange(nz) * float(dx), {"units": "m", "positive": "down"}),
        "x": ("x", origin + np.arange(nx) * float(dx), {"units": "m", "long_name": "horizontal position"}),
    }
    return xr.Dataset({"velocity": var}, coords=coords, attrs=_encode_attrs(meta))


def _gathers_dataset(gathers: np.ndarray, survey: Survey, meta: Mapping[str, Any]) -> Any:
    import xarray as xr

    n = gathers.shape[0]
    src = np.asarray(survey.sources) * survey.dx
    rec = np.asarray(survey.receivers) * survey.dx
    var = xr.Variable(("sample", "shot", "time", "receiver"), gathers,
                      attrs={"units": "1", "long_name": "pressure (simulation amplitude units)"})
    coords = {
        "sample": ("sample", np.arange(n), {"long_name": "model index"}),
        "shot": ("shot", np.arange(survey.n_shots)),
        "time": ("time", survey.times(), {"units": "s"}),
        "receiver": ("receiver", np.arange(survey.n_receivers)),
        "source_x": ("shot", src[:, 1], {"units": "m"}),
        "source_z": ("shot", src[:, 0], {"units": "m", "positive": "down"}),
        "receiver_x": ("receiver", rec[:, 1], {"units": "m"}),
        "receiver_z": ("receiver", rec[:, 0], {"units": "m", "positive": "down"}),
    }
    return xr.Dataset({"gathers": var}, coords=coords, attrs=_encode_attrs(meta))


def _write_xarray(path: Path, dataset: Any) -> None:
    if path.suffix.lower() == ".nc":
        with atomic_path(path) as tmp:
            dataset.to_netcdf(tmp, engine="h5netcdf")
    else:
        try:
            import zarr  # noqa: F401
        except ImportError:
            from ..errors import MissingDependencyError

            raise MissingDependencyError(f"writing {path}", ["zarr"]) from None
        with atomic_dir(path) as tmp:
            # Zarr 3 has no consolidated metadata in its spec; plain metadata reads everywhere.
            dataset.to_zarr(tmp, mode="w", consolidated=False)


def _open_xarray(path: Path) -> Any:
    import xarray as xr

    try:
        if path.suffix.lower() == ".nc":
            return xr.open_dataset(path, engine="h5netcdf")
        return xr.open_zarr(path, consolidated=False)
    except ImportError as exc:
        from ..errors import MissingDependencyError

        raise MissingDependencyError(f"reading {path}", [getattr(exc, "name", None) or "zarr"]) from None
    except Exception as exc:  # h5py/zarr raise many types for a damaged file
        raise DataError(f"{path}: not a readable {path.suffix} dataset ({type(exc).__name__}: {exc})") from None


def _pick_variable(ds: Any, path: Path, names: tuple[str, ...], what: str) -> Any:
    for name in names:
        if name in ds.data_vars:
            return ds[name]
    if len(ds.data_vars) == 1:
        return ds[next(iter(ds.data_vars))]
    raise DataError(f"{path}: no {what} variable; expected one named {names[0]!r} "
                    f"(found: {', '.join(map(str, ds.data_vars)) or 'none'})")


def _read_xarray(path: Path, what: str) -> tuple[np.ndarray, dict[str, Any]]:
    ds = _open_xarray(path)
    try:
        attrs = _decode_attrs(ds.attrs)
        if what == "velocity":
            var = _pick_variable(ds, path, _VELOCITY_NAMES, what)
            order = [d for d in ("sample", "channel", "depth", "x") if d in var.dims]
            if len(order) == var.ndim:
                var = var.transpose(*order)
            if "depth" in var.coords and var.sizes.get("depth", 0) > 1 and "dx" not in attrs:
                attrs["dx"] = float(var["depth"][1] - var["depth"][0])
            units = var.attrs.get("units")
            if units and units.replace(" ", "").lower() in ("km/s", "kms-1", "km.s-1"):
                raise DataError(f"{path}: variable {var.name!r} is in {units}; expected m/s")
        else:
            var = _pick_variable(ds, path, _GATHERS_NAMES, what)
            order = [d for d in ("sample", "shot", "time", "receiver") if d in var.dims]
            if len(order) == var.ndim:
                var = var.transpose(*order)
            elif var.ndim == 4:
                raise DataError(f"{path}: gathers dims {var.dims}; expected (sample, shot, time, receiver)")
            if "time" in var.coords and var.sizes.get("time", 0) > 1:
                dt = float(var["time"][1] - var["time"][0])
                attrs["dt"] = dt
                survey = attrs.get("survey")
                if isinstance(survey, dict) and survey.get("dt") and abs(survey["dt"] - dt) > 1e-3 * dt:
                    raise DataError(f"{path}: the time coordinate steps by {dt:g} s but the survey "
                                    f"attribute says dt = {survey['dt']:g} s")
            attrs.update(gathers_geometry(ds, var, attrs, path))
        try:
            arr = np.asarray(var.values)
        except Exception as exc:
            raise DataError(f"{path}: cannot read variable {var.name!r} ({type(exc).__name__}: {exc})") from None
        attrs["variable"] = str(var.name)
        return arr, attrs
    finally:
        ds.close()


def gathers_geometry(ds: Any, var: Any, attrs: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The survey an xarray gathers variable's coordinates describe, when no ``survey`` attribute does.

    Reads ``source_x``/``receiver_x`` (metres, optional ``source_z``/``receiver_z``, depth
    positive down) and the ``time`` coordinate (seconds, evenly spaced). Returns attributes
    to add: ``survey``, ``origin_x`` (metres of grid column 0) and ``grid_depth``
    (``"assumed"``: the coordinates say nothing of the grid's depth); empty if none.
    """
    if attrs.get("survey") or "source_x" not in ds.coords or "receiver_x" not in ds.coords:
        return {}
    if "time" not in var.coords or var.sizes.get("time", 0) < 2:
        raise DataError(f"{path}: source_x/receiver_x coordinates but no evenly spaced 'time' coordinate "
                        f"(seconds); the sample interval is needed to map the gathers")
    time = np.asarray(var["time"].values, dtype=np.float64)
    steps = np.diff(time)
    if not (steps > 0).all() or np.ptp(steps) > 1e-3 * steps.mean():
        raise DataError(f"{path}: coordinate 'time' is not evenly spaced increasing seconds")
    for name in ("source_x", "receiver_x", "source_z", "receiver_z"):
        if name in ds.coords:
            units = str(ds[name].attrs.get("units", "m")).strip().lower()
            if units not in ("m", "metre", "meter", "metres", "meters"):
                raise DataError(f"{path}: coordinate {name!r} is in {units!r}; expected metres ('m')")
    from ..acquisition import survey_from_coordinates

    coords = {name: np.asarray(ds[name].values) for name in ("source_x", "receiver_x", "source_z", "receiver_z")
              if name in ds.coords}
    survey, origin = survey_from_coordinates(dt=float(steps.mean()), nt=time.size, where=str(path), **coords)
    if (survey.n_shots, survey.n_receivers) != (var.sizes.get("shot"), var.sizes.get("receiver")):
        raise DataError(f"{path}: headers disagree with the data: {survey.n_shots} source_x and "
                        f"{survey.n_receivers} receiver_x coordinates for gathers of {var.sizes.get('shot')} shots "
                        f"and {var.sizes.get('receiver')} receivers")
    return {"survey": survey.to_dict(), "origin_x": origin, "grid_depth": "assumed"}


# -- SEG-Y ---------------------------------------------------------------------
def _segyio() -> Any:
    import segyio

    return segyio


def _text_header(lines: list[str]) -> str:
    """A 3200-byte textual header: 40 lines of 80 characters, ``C01``..``C40``."""
    out = []
    for i in range(40):
        body = lines[i] if i < len(lines) else ""
        out.append(f"C{i + 1:02d} {body}"[:80].ljust(80))
    return "".join(out)


def _text_fields(text: str) -> dict[str, str]:
    """``KEY=VALUE`` tokens of the lines this module writes (empty for foreign files)."""
    if _SEGY_MARK not in text:
        return {}
    fields = {}
    for token in text.replace("\x00", " ").split():
        key, sep, value = token.partition("=")
        if sep and key:
            fields[key.upper()] = value
    return fields


def _open_segy(path: Path) -> Any:
    segyio = _segyio()
    with path.open("rb") as handle:
        head = handle.read(3600)
    if len(head) == 3600:  # segyio would fall back to IBM floats for an unknown code
        _check_format_code(int.from_bytes(head[3224:3226], "big", signed=True), path)
    try:
        return segyio.open(str(path), "r", ignore_geometry=True)
    except Exception as exc:  # segyio raises RuntimeError/OSError/ValueError for damaged files
        size = path.stat().st_size
        hint = " (a SEG-Y file needs at least 3600 header bytes)" if size < 3600 else ""
        raise DataError(f"{path}: not a readable SEG-Y file, truncated or corrupt "
                        f"({type(exc).__name__}: {exc}){hint}") from None


def _interval(f: Any, path: Path) -> int:
    segyio = _segyio()
    binary = int(f.bin[segyio.BinField.Interval])
    trace = int(f.header[0][segyio.TraceField.TRACE_SAMPLE_INTERVAL]) if f.tracecount else 0
    if binary and trace and binary != trace:
        raise DataError(f"{path}: headers disagree: the binary header's sample interval is {binary} but "
                        f"the trace headers say {trace}")
    interval = binary or trace
    if interval <= 0:
        raise DataError(f"{path}: no sample interval in the binary header (expected microseconds > 0)")
    samples = int(f.bin[segyio.BinField.Samples])
    if samples and samples != len(f.samples):
        raise DataError(f"{path}: headers disagree: the binary header says {samples} samples per trace, "
                        f"the traces hold {len(f.samples)}")
    return interval


# Sample format codes of the binary header (bytes 3225-3226) that segyio decodes.
SEGY_FORMATS = {1: "4-byte IBM float", 2: "4-byte signed integer", 3: "2-byte signed integer",
                5: "4-byte IEEE float", 8: "1-byte signed integer", 10: "4-byte unsigned integer",
                11: "2-byte unsigned integer", 16: "1-byte unsigned integer"}


def _sample_format(f: Any, path: Path) -> int:
    """The binary header's sample format code, checked against what the samples hold.

    segyio falls back to IBM floats for a code it does not know, and IEEE floats read as
    IBM decode to numbers of the right order of magnitude: both would give wrong data
    without a word.
    """
    segyio = _segyio()
    code = int(f.bin[segyio.BinField.Format])
    _check_format_code(code, path)
    if code == 1 and f.tracecount:
        _check_ibm(f, path)
    return code


def _check_format_code(code: int, path: Path) -> None:
    if code not in SEGY_FORMATS:
        known = ", ".join(f"{k} ({v})" for k, v in SEGY_FORMATS.items())
        raise DataError(f"{path}: the binary header's sample format code (bytes 3225-3226) is {code}, which is "
                        f"not a sample format this reader decodes; expected one of {known}")


def _check_ibm(f: Any, path: Path) -> None:
    """Refuse IBM-declared samples that are not IBM floats (most often IEEE floats).

    A nonzero IBM float written by any encoder is normalised: the top hexadecimal digit of
    its fraction is not zero. IEEE floats read as IBM have that digit zero in about one
    sample in sixteen.
    """
    ns = len(f.samples)
    offset = 3600 + 3200 * max(int(f.ext_headers), 0)
    try:
        words = np.memmap(path, dtype=">u4", mode="r", offset=offset, shape=(f.tracecount, 60 + ns))
    except (ValueError, OSError):
        return  # the trace reader reports a truncated file
    rows = np.unique(np.linspace(0, f.tracecount - 1, min(f.tracecount, 2000)).astype(np.int64))
    samples = np.asarray(words[rows, 60:])
    del words
    nonzero = (samples & 0x7FFFFFFF) != 0
    unnormalised = int(np.count_nonzero(nonzero & (((samples >> 20) & 0xF) == 0)))
    total = int(np.count_nonzero(nonzero))
    if unnormalised > max(2, 0.01 * total):
        as_ieee = samples.view(">f4")[nonzero]
        finite = np.isfinite(as_ieee)
        hint = ""
        if finite.all():
            hint = (f"; read as IEEE floats (format 5) they span {float(as_ieee.min()):.3g}.."
                    f"{float(as_ieee.max()):.3g}")
        raise DataError(f"{path}: the binary header declares IBM floats (sample format 1), but "
                        f"{100 * unnormalised / total:.1f}% of the nonzero samples are not valid IBM floats"
                        f"{hint}. The format code is probably wrong: set it to 5 if the traces hold IEEE "
                        f"float32")


def _scaled(values: np.ndarray, scalar: int) -> np.ndarray:
    """Apply a SEG-Y coordinate scalar (negative divides, positive multiplies, 0 means 1)."""
    values = values.astype(np.float64)
    if scalar < 0:
        return values / -scalar
    if scalar > 0:
        return values * scalar
    return values


def _read_traces(f: Any, path: Path) -> tuple[np.ndarray, str]:
    """The traces as float32 and the sample format they were decoded as, in words."""
    code = _sample_format(f, path)
    assumed = f"sample format {code} ({SEGY_FORMATS[code]})"
    try:
        data = f.trace.raw[:]
    except Exception as exc:
        raise DataError(f"{path}: cannot read the traces as {assumed}, the file is truncated or corrupt "
                        f"({exc})") from None
    return np.asarray(data, dtype=np.float32).reshape(f.tracecount, len(f.samples)), assumed


def _text_count(fields: Mapping[str, str], key: str, path: Path) -> int | None:
    """A positive whole number of this module's text header, or ``None`` if not given."""
    if key not in fields:
        return None
    if not fields[key].isdigit() or int(fields[key]) <= 0:
        raise DataError(f"{path}: the text header's {key}={fields[key]!r} is not a positive whole number")
    return int(fields[key])


def _text_number(fields: Mapping[str, str], key: str, path: Path) -> float | None:
    """A number of this module's text header, or ``None`` if the header does not give it."""
    if key not in fields:
        return None
    try:
        value = float(fields[key])
    except ValueError:
        raise DataError(f"{path}: the text header's {key}={fields[key]!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise DataError(f"{path}: the text header's {key}={fields[key]} is not a positive number")
    return value


def _write_segy(path: Path, traces: np.ndarray, interval: int, text: str,
                headers: dict[Any, np.ndarray]) -> None:
    segyio = _segyio()
    spec = segyio.spec()
    spec.format = 5  # IEEE float32: lossless, unlike segyio's default IBM floats
    spec.samples = list(range(traces.shape[1]))
    spec.tracecount = traces.shape[0]
    spec.sorting = 2
    spec.endian = "big"
    with atomic_path(path) as tmp:
        with segyio.create(str(tmp), spec) as f:
            f.text[0] = text.encode("ascii", "replace")
            f.bin.update({segyio.BinField.Interval: interval, segyio.BinField.Samples: traces.shape[1],
                          segyio.BinField.Format: 5})
            for i in range(traces.shape[0]):
                f.header[i] = {key: int(vals[i]) for key, vals in headers.items()}
                f.trace[i] = traces[i]


def _write_segy_velocity(path: Path, velocity: np.ndarray, dx: float, meta: Mapping[str, Any],
                         origin: float = 0.0) -> None:
    segyio = _segyio()
    TF = segyio.TraceField
    n, _, nz, nx = velocity.shape
    interval = int(round(dx * 1000))  # depth step in millimetres in the "microseconds" field
    traces = velocity[:, 0].transpose(0, 2, 1).reshape(n * nx, nz)
    idx = np.arange(n * nx)
    model, col = idx // nx, idx % nx
    headers = {
        TF.TRACE_SEQUENCE_LINE: idx + 1, TF.TRACE_SEQUENCE_FILE: idx + 1,
        TF.FieldRecord: model + 1, TF.TraceNumber: col + 1, TF.CDP: col + 1,
        TF.SourceGroupScalar: np.full(n * nx, -100),
        TF.CDP_X: np.round((origin + col * dx) * 100), TF.GroupX: np.round((origin + col * dx) * 100),
        TF.TRACE_SAMPLE_COUNT: np.full(n * nx, nz), TF.TRACE_SAMPLE_INTERVAL: np.full(n * nx, interval),
    }
    text = _text_header([
        f"{_SEGY_MARK} VELOCITY MODEL KIND=velocity UNITS=m/s DOMAIN=depth",
        "ONE TRACE PER X COLUMN; FFID = MODEL NUMBER; TRACE NUMBER = COLUMN",
        "SAMPLE INTERVAL FIELD = DEPTH STEP IN MILLIMETRES; IEEE FLOAT32",
        f"SAMPLES={n} NZ={nz} NX={nx} DX={dx:g}" + (f" X0={origin:g}" if origin else ""),
        f"GENERATOR={meta.get('generator', 'unknown')} SEED={meta.get('seed', '-')}",
        f"VERSIONS {' '.join(f'{k}={v}' for k, v in meta.get('versions', {}).items())}",
    ])
    _write_segy(path, traces, interval, text, headers)


def _read_segy_velocity(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    segyio = _segyio()
    with _open_segy(path) as f:
        interval = _interval(f, path)
        fields = _text_fields(f.text[0].decode("ascii", "replace"))
        traces, assumed = _read_traces(f, path)
        ffid = np.asarray(f.attributes(segyio.TraceField.FieldRecord)[:])
    text_dx = _text_number(fields, "DX", path)
    if text_dx is not None and abs(text_dx * 1000 - interval) > max(1.0, 1e-5 * interval):
        raise DataError(f"{path}: headers disagree: the binary header's sample interval is {interval} "
                        f"(depth step {interval / 1000:g} m) but the text header says DX={fields['DX']} m")
    nz = traces.shape[1]
    models = list(dict.fromkeys(ffid.tolist()))
    if len(models) <= 1:
        n, nx = 1, traces.shape[0]
    else:
        counts = {m: int(np.count_nonzero(ffid == m)) for m in models}
        if len(set(counts.values())) != 1:
            raise DataError(f"{path}: models (FFIDs) have different numbers of columns {sorted(set(counts.values()))}; "
                            f"expected every model on the same grid")
        n, nx = len(models), traces.shape[0] // len(models)
        order = np.argsort(np.searchsorted(np.asarray(models), ffid) if sorted(models) == models else
                           np.array([models.index(m) for m in ffid]), kind="stable")
        traces = traces[order]
    for key, actual in (("NZ", nz), ("NX", nx), ("SAMPLES", n)):
        if key in fields and fields[key].isdigit() and int(fields[key]) != actual:
            raise DataError(f"{path}: headers disagree with the data: the text header says {key}={fields[key]} "
                            f"but the traces give {actual}")
    velocity = traces.reshape(n, nx, nz).transpose(0, 2, 1)[:, None]
    attrs: dict[str, Any] = {"dx": text_dx or interval / 1000.0, "sample_format": assumed}
    return np.ascontiguousarray(velocity), attrs


def _write_segy_gathers(path: Path, gathers: np.ndarray, survey: Survey, meta: Mapping[str, Any]) -> None:
    segyio = _segyio()
    TF = segyio.TraceField
    n, s, t, r = gathers.shape
    interval = survey.dt * 1e6
    if abs(interval - round(interval)) > 1e-6 * interval or round(interval) > 65535:
        raise DataError(f"writing {path}: SEG-Y stores the sample interval as whole microseconds up to 65535; "
                        f"dt = {survey.dt:g} s cannot be written exactly")
    interval = int(round(interval))
    traces = gathers.transpose(0, 1, 3, 2).reshape(n * s * r, t)
    idx = np.arange(n * s * r)
    shot_global, rec = idx // r, idx % r
    shot = shot_global % s
    src = np.asarray(survey.sources) * survey.dx
    recs = np.asarray(survey.receivers) * survey.dx
    count = n * s * r
    headers = {
        TF.TRACE_SEQUENCE_LINE: idx + 1, TF.TRACE_SEQUENCE_FILE: idx + 1,
        TF.FieldRecord: shot_global + 1, TF.TraceNumber: rec + 1, TF.EnergySourcePoint: shot + 1,
        TF.CDP: shot_global // s + 1,
        TF.SourceGroupScalar: np.full(count, -100), TF.ElevationScalar: np.full(count, -100),
        TF.SourceX: np.round(src[shot, 1] * 100), TF.GroupX: np.round(recs[rec, 1] * 100),
        TF.SourceDepth: np.round(src[shot, 0] * 100),
        # Elevation is positive upwards, the survey's z is depth.
        TF.ReceiverGroupElevation: np.round(-recs[rec, 0] * 100),
        TF.offset: np.round(recs[rec, 1] - src[shot, 1]),
        TF.TRACE_SAMPLE_COUNT: np.full(count, t), TF.TRACE_SAMPLE_INTERVAL: np.full(count, interval),
    }
    text = _text_header([
        f"{_SEGY_MARK} SHOT GATHERS KIND=gathers",
        "FFID = SHOT NUMBER (ALL SAMPLES); TRACE NUMBER = RECEIVER; CDP = SAMPLE NUMBER",
        "ENERGY SOURCE POINT = SHOT WITHIN SAMPLE; COORDINATES IN M, SCALAR -100",
        f"SAMPLES={n} SHOTS={s} RECEIVERS={r} NT={t} DT={survey.dt:g}",
        f"NZ={survey.nz} NX={survey.nx} DX={survey.dx:g} F0={survey.peak_freq:g} PML={survey.pml_width}",
        f"VMIN={survey.vmin:g} VMAX={survey.vmax:g}"
        + (f" DELAY={survey.wavelet_delay:g}" if survey.wavelet_delay is not None else ""),
        f"GENERATOR={meta.get('generator', 'unknown')} SEED={meta.get('seed', '-')}",
        f"VERSIONS {' '.join(f'{k}={v}' for k, v in meta.get('versions', {}).items())}",
    ])
    _write_segy(path, traces, interval, text, headers)


def _read_segy_gathers(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    segyio = _segyio()
    TF = segyio.TraceField
    with _open_segy(path) as f:
        interval = _interval(f, path)
        fields = _text_fields(f.text[0].decode("ascii", "replace"))
        traces, assumed = _read_traces(f, path)
        head = {key: np.asarray(f.attributes(key)[:]) for key in (
            TF.FieldRecord, TF.SourceGroupScalar, TF.ElevationScalar, TF.SourceX, TF.GroupX,
            TF.SourceDepth, TF.ReceiverGroupElevation)}
    text_dt = _text_number(fields, "DT", path)
    if text_dt is not None and abs(text_dt * 1e6 - interval) > max(0.5, 1e-5 * interval):
        raise DataError(f"{path}: headers disagree: the binary header's sample interval is {interval} "
                        f"microseconds but the text header says DT={fields['DT']} s")
    ntr, nt = traces.shape
    ffid = head[TF.FieldRecord]
    shots = list(dict.fromkeys(ffid.tolist()))
    counts = {sh: int(np.count_nonzero(ffid == sh)) for sh in shots}
    if len(set(counts.values())) != 1:
        raise DataError(f"{path}: shots (FFIDs) have different numbers of traces {sorted(set(counts.values()))}; "
                        f"expected one trace per receiver in every shot")
    n_rec = ntr // len(shots)
    n_samples, n_shots = 1, len(shots)
    if fields:
        want = {k: fields.get(k) for k in ("SAMPLES", "SHOTS", "RECEIVERS", "NT")}
        if all(v and v.isdigit() for v in want.values()):
            ns, ss, rr, tt = (int(want[k]) for k in ("SAMPLES", "SHOTS", "RECEIVERS", "NT"))  # type: ignore[arg-type]
            if ns * ss * rr != ntr or tt != nt or rr != n_rec:
                raise DataError(f"{path}: headers disagree with the data: the text header says {ns} samples x "
                                f"{ss} shots x {rr} receivers x {tt} time samples, the file holds {ntr} traces "
                                f"of {nt} samples in {len(shots)} FFIDs")
            n_samples, n_shots = ns, ss
    # Traces grouped by shot in order of first appearance, file order kept within a shot.
    rank = {sh: i for i, sh in enumerate(shots)}
    order = np.argsort(np.array([rank[v] for v in ffid.tolist()]), kind="stable")
    traces = traces[order]
    xy_scalar = int(head[TF.SourceGroupScalar][0])
    z_scalar = int(head[TF.ElevationScalar][0])
    src_x = _scaled(head[TF.SourceX][order], xy_scalar).reshape(-1, n_rec)
    rec_x = _scaled(head[TF.GroupX][order], xy_scalar).reshape(-1, n_rec)
    src_z = _scaled(head[TF.SourceDepth][order], z_scalar).reshape(-1, n_rec)
    rec_z = -_scaled(head[TF.ReceiverGroupElevation][order], z_scalar).reshape(-1, n_rec)
    if not np.allclose(rec_x, rec_x[:1]):
        raise DataError(f"{path}: receiver positions (GroupX) differ between shots; the gathers layout "
                        f"(shot, time, receiver) needs one receiver line shared by every shot")
    if not np.allclose(src_x, src_x[:, :1]):
        raise DataError(f"{path}: headers disagree: traces of one FFID give different source positions (SourceX)")
    per_sample_src = src_x[:, 0].reshape(n_samples, n_shots)
    gathers = traces.reshape(n_samples, n_shots, n_rec, nt).transpose(0, 1, 3, 2)
    dt = interval * 1e-6
    attrs: dict[str, Any] = {
        "dt": dt, "nt": nt, "sample_format": assumed,
        "source_x": per_sample_src[0].tolist(), "source_z": src_z[:n_shots, 0].tolist(),
        "receiver_x": rec_x[0].tolist(), "receiver_z": rec_z[0].tolist(),
    }
    survey = _survey_from_segy(fields, attrs, path)
    if survey is not None:
        attrs["survey"] = survey.to_dict()
        attrs["origin_x"] = 0.0 if fields else float(min(min(attrs["receiver_x"]), min(attrs["source_x"])))
        if _text_count(fields, "NZ", path) is None:
            attrs["grid_depth"] = "assumed"
    return np.ascontiguousarray(gathers), attrs


def _survey_from_segy(fields: Mapping[str, str], attrs: Mapping[str, Any], path: Path) -> Survey | None:
    """Rebuild the survey from trace-header geometry (and this module's text header, if present)."""
    rec_x = np.asarray(attrs["receiver_x"])
    text_dx = _text_number(fields, "DX", path)
    if text_dx is not None:
        dx = text_dx
    else:
        steps = np.diff(np.unique(rec_x))
        if steps.size == 0 or steps.min() <= 0:
            return None
        dx = float(steps.min())
    # Foreign coordinates (e.g. UTM eastings) get the grid's origin at the first position.
    x0 = 0.0 if fields else float(min(rec_x.min(), min(attrs["source_x"])))
    to_grid = lambda v: (np.asarray(v, dtype=np.float64) - x0) / dx  # noqa: E731
    sx, rx = to_grid(attrs["source_x"]), to_grid(rec_x)
    sz = np.asarray(attrs["source_z"]) / dx
    rz = np.asarray(attrs["receiver_z"]) / dx
    nx = _text_count(fields, "NX", path) or int(np.ceil(max(sx.max(), rx.max()))) + 1
    nz = _text_count(fields, "NZ", path) or nx
    kwargs: dict[str, Any] = dict(
        nz=nz, nx=nx, dx=dx, nt=int(attrs["nt"]), dt=float(attrs["dt"]),
        sources=tuple(zip(sz.tolist(), sx.tolist())), receivers=tuple(zip(rz.tolist(), rx.tolist())))
    for key, name, conv in (("F0", "peak_freq", float), ("PML", "pml_width", int), ("VMIN", "vmin", float),
                            ("VMAX", "vmax", float), ("DELAY", "wavelet_delay", float)):
        if key in fields:
            try:
                kwargs[name] = conv(fields[key])
            except ValueError:
                raise DataError(f"{path}: the text header's {key}={fields[key]!r} is not a number") from None
    try:
        return Survey(**kwargs)
    except Exception as exc:
        raise DataError(f"{path}: the trace-header geometry does not form a valid survey ({exc})") from None

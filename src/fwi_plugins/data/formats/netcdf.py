"""netCDF4 (through h5netcdf) and zarr files: xarray datasets with named dims, coordinates and units.

Velocity is a ``velocity`` variable on dims ``(sample, depth, x)``, gathers a ``gathers``
variable on ``(sample, shot, time, receiver)``; coordinates are in metres and seconds, and
the survey and provenance (generator, seed, package versions) travel in the attributes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import atomic_dir, atomic_path
from ...errors import DataError
from ...survey import Survey
from . import GATHERS_NAMES, VELOCITY_NAMES

__all__ = ["decode_attrs", "encode_attrs", "gathers_dataset", "gathers_geometry", "read_dataset", "time_seconds",
           "velocity_dataset", "write_dataset"]

# A ``time`` coordinate's ``units`` and the factor to seconds.
_TIME_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
               "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3}
# Without units, a step this long in "seconds" over this many samples is no seismic recording
# (a 20 Hz sampling rate), but milliseconds written as numbers: refused rather than guessed.
_UNLABELLED_MAX_STEP, _UNLABELLED_MIN_SAMPLES = 0.05, 100


def encode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
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


def decode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
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



def velocity_dataset(velocity: np.ndarray, dx: float, meta: Mapping[str, Any], origin: float = 0.0) -> Any:
    import xarray as xr

    n, _, nz, nx = velocity.shape
    var = xr.Variable(("sample", "depth", "x"), velocity[:, 0],
                      attrs={"units": "m/s", "long_name": "P-wave velocity"})
    coords = {
        "sample": ("sample", np.arange(n), {"long_name": "model index"}),
        "depth": ("depth", np.arange(nz) * float(dx), {"units": "m", "positive": "down"}),
        "x": ("x", origin + np.arange(nx) * float(dx), {"units": "m", "long_name": "horizontal position"}),
    }
    return xr.Dataset({"velocity": var}, coords=coords, attrs=encode_attrs(meta))


def gathers_dataset(gathers: np.ndarray, survey: Survey, meta: Mapping[str, Any]) -> Any:
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
    return xr.Dataset({"gathers": var}, coords=coords, attrs=encode_attrs(meta))


def time_seconds(var: Any, path: Path) -> np.ndarray | None:
    """The ``time`` coordinate of a gathers variable in seconds, or ``None`` if it has none.

    A ``units`` attribute of seconds (``s``, ``seconds``) or milliseconds (``ms``,
    ``milliseconds``) is honoured and any other refused. Without units the values are
    seconds, unless they step by more than 0.05 over more than 100 samples: such a file
    almost surely holds milliseconds, and is refused naming that mistake.
    """
    if "time" not in var.coords:
        return None
    coord = var["time"]
    if coord.dtype.kind == "m":  # decoded by xarray from CF time units
        return np.asarray(coord.values / np.timedelta64(1, "s"), dtype=np.float64)
    time = np.asarray(coord.values, dtype=np.float64)
    units = coord.attrs.get("units")
    if units is not None:
        factor = _TIME_UNITS.get(str(units).strip().lower())
        if factor is None:
            raise DataError(f"{path}: coordinate 'time' is in {units!r}; expected seconds ('s') or "
                            f"milliseconds ('ms')")
        return time * factor
    if time.size > _UNLABELLED_MIN_SAMPLES:
        step = float(np.median(np.diff(time)))
        if step > _UNLABELLED_MAX_STEP:
            raise DataError(f"{path}: coordinate 'time' has no units and steps by {step:g} over {time.size} "
                            f"samples: as seconds that is a {time[-1] - time[0]:g} s recording sampled at "
                            f"{1 / step:.3g} Hz, so it is probably in milliseconds; set its units attribute "
                            f"('ms' or 's')")
    return time


def write_dataset(path: Path, dataset: Any) -> None:
    if path.suffix.lower() == ".nc":
        with atomic_path(path) as tmp:
            dataset.to_netcdf(tmp, engine="h5netcdf")
    else:
        try:
            import zarr  # noqa: F401
        except ImportError:
            from ...errors import MissingDependencyError

            raise MissingDependencyError(f"writing {path}", ["zarr"]) from None
        with atomic_dir(path) as tmp:
            # Zarr 3 has no consolidated metadata in its spec; plain metadata reads everywhere.
            dataset.to_zarr(tmp, mode="w", consolidated=False)


def _open_dataset(path: Path) -> Any:
    import xarray as xr

    try:
        if path.suffix.lower() == ".nc":
            return xr.open_dataset(path, engine="h5netcdf")
        return xr.open_zarr(path, consolidated=False)
    except ImportError as exc:
        from ...errors import MissingDependencyError

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


def read_dataset(path: Path, what: str) -> tuple[np.ndarray, dict[str, Any]]:
    ds = _open_dataset(path)
    try:
        attrs = decode_attrs(ds.attrs)
        if what == "velocity":
            var = _pick_variable(ds, path, VELOCITY_NAMES, what)
            order = [d for d in ("sample", "channel", "depth", "x") if d in var.dims]
            if len(order) == var.ndim:
                var = var.transpose(*order)
            if "depth" in var.coords and var.sizes.get("depth", 0) > 1 and "dx" not in attrs:
                attrs["dx"] = float(var["depth"][1] - var["depth"][0])
            units = var.attrs.get("units")
            if units and units.replace(" ", "").lower() in ("km/s", "kms-1", "km.s-1"):
                raise DataError(f"{path}: variable {var.name!r} is in {units}; expected m/s")
        else:
            var = _pick_variable(ds, path, GATHERS_NAMES, what)
            order = [d for d in ("sample", "shot", "time", "receiver") if d in var.dims]
            if len(order) == var.ndim:
                var = var.transpose(*order)
            elif var.ndim == 4:
                raise DataError(f"{path}: gathers dims {var.dims}; expected (sample, shot, time, receiver)")
            time = time_seconds(var, path)
            if time is not None and time.size > 1:
                dt = float(time[1] - time[0])
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
    time = time_seconds(var, path)
    if time is None or time.size < 2:
        raise DataError(f"{path}: source_x/receiver_x coordinates but no evenly spaced 'time' coordinate "
                        f"(seconds); the sample interval is needed to map the gathers")
    steps = np.diff(time)
    if not (steps > 0).all() or np.ptp(steps) > 1e-3 * steps.mean():
        raise DataError(f"{path}: coordinate 'time' is not evenly spaced increasing seconds")
    for name in ("source_x", "receiver_x", "source_z", "receiver_z"):
        if name in ds.coords:
            units = str(ds[name].attrs.get("units", "m")).strip().lower()
            if units not in ("m", "metre", "meter", "metres", "meters"):
                raise DataError(f"{path}: coordinate {name!r} is in {units!r}; expected metres ('m')")
    from ...acquisition import survey_from_coordinates

    names = ("source_x", "receiver_x", "source_z", "receiver_z")
    coords: dict[str, Any] = {name: np.asarray(ds[name].values) for name in names if name in ds.coords}
    survey, origin = survey_from_coordinates(dt=float(steps.mean()), nt=time.size, where=str(path), **coords)
    if (survey.n_shots, survey.n_receivers) != (var.sizes.get("shot"), var.sizes.get("receiver")):
        raise DataError(f"{path}: headers disagree with the data: {survey.n_shots} source_x and "
                        f"{survey.n_receivers} receiver_x coordinates for gathers of {var.sizes.get('shot')} shots "
                        f"and {var.sizes.get('receiver')} receivers")
    return {"survey": survey.to_dict(), "origin_x": origin, "grid_depth": "assumed"}


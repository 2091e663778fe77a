"""Gathers from a file for prediction: read lazily where the format allows, so inputs larger than memory work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .formats import GATHERS_NAMES

__all__ = ["check_input_survey", "declared_interval", "open_gathers"]

_GATHERS_DIMS = ("sample", "shot", "time", "receiver")


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
    from .formats.netcdf import decode_attrs, gathers_geometry, time_seconds
    from .io import read_gathers
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
            names = [n for n in GATHERS_NAMES if n in ds.data_vars] or [str(n) for n in ds.data_vars]
            if len(names) != 1 and not set(names) & set(GATHERS_NAMES):
                raise DataError(f"--input {path}: no gathers variable; expected one named 'gathers' "
                                f"(found: {', '.join(map(str, ds.data_vars)) or 'none'})")
            var = ds[names[0]]
            if set(var.dims) == set(_GATHERS_DIMS):
                var = var.transpose(*_GATHERS_DIMS)
            elif var.ndim == 3:
                var = var.expand_dims("sample")
            _check_shape(tuple(var.shape), path)
            attrs = {"path": str(path), "format": "nc", **dict(ds.attrs)}
            time = time_seconds(var, path)
            if time is not None and time.size > 1:
                attrs["dt"] = float(time[1] - time[0])
            attrs.update(gathers_geometry(ds, var, decode_attrs(ds.attrs), path))
            yield _LazyVariable(var), attrs
        finally:
            ds.close()
    else:
        array, attrs = read_gathers(path)
        yield array, attrs


def declared_interval(path: Path) -> tuple[float, str] | None:
    """The sample interval (seconds) the gathers file states, and what states it; ``None`` if it states none.

    Only metadata is read: a netCDF/zarr file's ``time`` coordinate (its units honoured,
    see :func:`~fwi_plugins.data.formats.netcdf.time_seconds`) or ``survey`` attribute, a
    SEG-Y file's binary header. ``.npy`` files state nothing.

    Raises:
        DataError: the file contradicts itself (time coordinate against survey attribute).
    """
    from ..errors import DataError

    suffix = path.suffix.lower()
    if suffix in (".sgy", ".segy"):
        from .formats.segy_headers import open_segy, sample_interval

        with open_segy(path) as f:
            return sample_interval(f, path) * 1e-6, "its binary header's sample interval"
    if suffix not in (".nc", ".zarr"):
        return None
    from .formats.netcdf import _open_dataset, _pick_variable, decode_attrs, time_seconds

    ds = _open_dataset(path)
    try:
        var = _pick_variable(ds, path, GATHERS_NAMES, "gathers")
        time = time_seconds(var, path)
        survey = decode_attrs(ds.attrs).get("survey")
    finally:
        ds.close()
    from_survey = float(survey["dt"]) if isinstance(survey, dict) and survey.get("dt") else None
    if time is not None and time.size > 1:
        dt = float(time[1] - time[0])
        if from_survey is not None and not _same(dt, from_survey):
            raise DataError(f"{path}: the time coordinate steps by {dt:g} s but the survey attribute says "
                            f"dt = {from_survey:g} s")
        return dt, "its time coordinate"
    if from_survey is not None:
        return from_survey, "its survey attribute"
    return None


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-3 * max(abs(a), abs(b))


def check_input_survey(path: Path, survey: Any, *, given: str) -> None:
    """Refuse a survey the user gave for ``path`` whose sample interval contradicts the file's own.

    Args:
        path: the gathers file.
        survey: the :class:`~fwi_plugins.survey.Survey` the user gave.
        given: how the user gave it, for the message (``"--survey s.toml"``).

    Raises:
        DataError: naming both intervals and both sources.
    """
    from ..errors import DataError

    if not path.exists():
        return  # reading the input reports it
    declared = declared_interval(path)
    if declared is None:
        return
    dt, source = declared
    if not _same(dt, survey.dt):
        raise DataError(f"--input {path}: {source} gives dt = {dt:g} s, but {given} says dt = {survey.dt:g} s; "
                        f"correct whichever is wrong (or leave the survey out to use the file's own geometry)")

"""Gathers from a file for prediction: read lazily where the format allows, so inputs larger than memory work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .formats import GATHERS_NAMES

__all__ = ["open_gathers"]

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
    from .formats.netcdf import decode_attrs, gathers_geometry
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
            names = [n for n in GATHERS_NAMES if n in ds.data_vars] or list(ds.data_vars)
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
            attrs.update(gathers_geometry(ds, var, decode_attrs(ds.attrs), path))
            yield _LazyVariable(var), attrs
        finally:
            ds.close()
    else:
        array, attrs = read_gathers(path)
        yield array, attrs

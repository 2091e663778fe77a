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

This module chooses the format by suffix; each format lives in :mod:`fwi_plugins.data.formats`
and the array checks in :mod:`fwi_plugins.data.array_checks`.
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
from ..survey import Survey
from .formats import require_file
from .formats.mat import read_mat_velocity
from .formats.netcdf import gathers_dataset, gathers_geometry, read_dataset, velocity_dataset, write_dataset
from .formats.npy import read_npy, write_npy
from .formats.segy import read_segy_gathers, read_segy_velocity, write_segy_gathers, write_segy_velocity
from .formats.segy_headers import SEGY_FORMATS
from .array_checks import validate_gathers, validate_velocity

__all__ = ["GATHERS_SUFFIXES", "SEGY_FORMATS", "VELOCITY_SUFFIXES", "gathers_geometry", "package_versions",
           "read_gathers", "read_mat_velocity", "read_velocity", "survey_from_attrs", "validate_gathers",
           "validate_velocity", "write_gathers", "write_velocity"]

VELOCITY_SUFFIXES = (".npy", ".nc", ".zarr", ".sgy", ".segy")
GATHERS_SUFFIXES = VELOCITY_SUFFIXES


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


def _suffix(path: Path, allowed: tuple[str, ...], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise DataError(f"{path}: cannot tell the {what} format from the suffix {suffix or '(none)'!r}; "
                        f"expected one of {', '.join(allowed)}")
    return suffix


# -- public API ----------------------------------------------------------------
def read_velocity(path: str | Path, *, grid: tuple[int, int] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Read velocity maps: ``(N, 1, Z, X)`` float32 m/s and the file's attributes.

    Besides the written formats, MATLAB ``.mat`` files are read (see :func:`read_mat_velocity`);
    ``grid`` (``(nz, nx)``, the survey's) decides the axis order of their 3-D stacks.
    Attributes always include ``path`` and ``format``, and ``dx`` (metres) where the file says.
    """
    if Path(path).suffix.lower() == ".mat":
        arr, attrs = read_mat_velocity(Path(path), grid=grid)
        return validate_velocity(arr, attrs["path"]), attrs
    arr, attrs = _read(path, "velocity", VELOCITY_SUFFIXES, read_segy_velocity)
    return validate_velocity(arr, attrs["path"]), attrs


def read_gathers(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read shot gathers: ``(N, S, T, R)`` float32 and the file's attributes.

    Attributes include ``path`` and ``format``; netCDF/zarr files written here carry the
    ``survey`` (a dict, see :meth:`Survey.to_dict`); SEG-Y adds ``dt`` (seconds, from the
    binary header), ``source_x``/``receiver_x`` (metres, from the trace headers) and ``survey``
    when the geometry allows one to be built.
    """
    arr, attrs = _read(path, "gathers", GATHERS_SUFFIXES, read_segy_gathers)
    return validate_gathers(arr, attrs["path"]), attrs


def _read(path: str | Path, what: str, suffixes: Any, read_segy: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Dispatch on the file suffix; the array is validated by the caller."""
    path = Path(path)
    suffix = _suffix(path, suffixes, what)
    require_file(path)
    attrs: dict[str, Any]
    if suffix == ".npy":
        arr, attrs = read_npy(path), {}
    elif suffix in (".nc", ".zarr"):
        arr, attrs = read_dataset(path, what)
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
        write_npy(path, velocity)
    elif suffix in (".nc", ".zarr"):
        write_dataset(path, velocity_dataset(velocity, dx, meta, origin))
    else:
        write_segy_velocity(path, velocity, dx, meta, origin)
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
        write_npy(path, gathers)
    elif suffix in (".nc", ".zarr"):
        write_dataset(path, gathers_dataset(gathers, survey, meta))
    else:
        write_segy_gathers(path, gathers, survey, meta)
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


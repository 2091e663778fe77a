"""MATLAB ``.mat`` velocity models (read only)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from . import VELOCITY_NAMES, require_file

__all__ = ["read_mat_velocity"]

_MAT_SPACING_NAMES = ("dx", "dh", "h", "spacing")
_MAT_GRID_NAMES = ("nz", "nx")
# Without a stated grid, a stack whose third axis changes this many times more from one
# index to the next than its first is refused as probably (Z, X, N).
_ROUGHNESS_RATIO = 3.0


def read_mat_velocity(path: Path, *, grid: tuple[int, int] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """A velocity array from a MATLAB ``.mat`` file, as much academic FWI code stores models.

    MATLAB 5 files are read with ``scipy.io.loadmat`` and 7.3 files (HDF5) with h5py;
    neither runs code from the file. The variable is the one named like a velocity
    (``velocity``, ``vp``, ``vel``, ``v``, ``model``, any case) or the file's only numeric
    array; a scalar ``dx``/``dh``/``h`` gives the spacing in metres. Arrays are
    ``(Z, X)``, ``(N, Z, X)`` or ``(N, 1, Z, X)`` as MATLAB shows them, and also
    ``(Z, X, N)``, MATLAB's own order for a stack of maps, where the grid says so.

    A 3-D array's order is decided by the grid (``nz`` x ``nx`` cells): ``grid`` if given
    (the survey's), else scalar ``nz`` and ``nx`` variables of the file. The order is never
    guessed: without a grid, an array whose first two sizes are equal (a MATLAB stack of
    square maps) or whose third axis changes far more between neighbours than its first
    (a stack along the third axis) is refused, naming its shape and how to state the grid.
    ``attrs["layout"]`` says which order was read.
    """
    require_file(path)
    arrays = _mat_arrays(path)
    numeric = {k: v for k, v in arrays.items()
               if isinstance(v, np.ndarray) and v.dtype.kind in "fiu" and v.size > 1}
    by_name = {k.lower(): k for k in numeric}
    chosen = next((by_name[n] for n in VELOCITY_NAMES if n in by_name), None)
    if chosen is None:
        # A variable named like a velocity that cannot be one is reported as what it is, not passed over.
        named = {k.lower(): k for k, v in arrays.items() if isinstance(v, np.ndarray) and v.dtype.kind in "fiucb"}
        for name in VELOCITY_NAMES:
            if name in named:
                _check_velocity_variable(arrays[named[name]], path, named[name])
        if len(numeric) != 1:
            raise DataError(f"{path}: no velocity variable; expected one named {' or '.join(VELOCITY_NAMES)}, "
                            f"or a single numeric array (found: {', '.join(sorted(arrays)) or 'none'})")
        chosen = next(iter(numeric))
    _check_velocity_variable(numeric[chosen], path, chosen)
    attrs: dict[str, Any] = {"path": str(path), "format": "mat", "variable": chosen}
    attrs.update(_mat_spacing(arrays, path))
    stated = grid or _file_grid(arrays, path)
    velocity = np.asarray(numeric[chosen])
    if velocity.ndim == 3:
        velocity, attrs["layout"] = _stack_order(velocity, stated, path, chosen)
    return velocity, attrs


def _mat_arrays(path: Path) -> dict[str, np.ndarray]:
    """The file's variables: MATLAB 5 through ``scipy.io.loadmat``, 7.3 (HDF5, column-major) through h5py."""
    from scipy.io import loadmat

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
    return arrays


def _mat_spacing(arrays: Mapping[str, Any], path: Path) -> dict[str, float]:
    """``{"dx": spacing}`` from a scalar ``dx``/``dh``/``h`` variable (empty without one)."""
    spacing: dict[str, float] = {}
    for key, value in arrays.items():
        if key.lower() in _MAT_SPACING_NAMES and isinstance(value, np.ndarray) and value.size == 1 \
                and value.dtype.kind in "fiu":
            dx = float(value.ravel()[0])
            if not (np.isfinite(dx) and dx > 0):
                raise DataError(f"{path}: variable {key!r} = {dx:g} is not a positive spacing in metres")
            spacing["dx"] = dx
    return spacing


def _check_velocity_variable(value: np.ndarray, path: Path, name: str) -> None:
    """Refuse a numeric variable named like a velocity that cannot be one, saying why."""
    what = f"{path}: variable {name!r}"
    if value.dtype.kind == "c":
        raise DataError(f"{what} holds complex values ({value.dtype}); a velocity is real, in m/s")
    if value.dtype.kind == "b":
        raise DataError(f"{what} holds logical (true/false) values; a velocity is a number in m/s")
    if value.size == 0:
        raise DataError(f"{what} is empty (shape {value.shape}); expected a velocity map")
    if value.size == 1:
        raise DataError(f"{what} is a single value ({value.ravel()[0].item()!r}); expected a velocity map")
    if value.ndim not in (2, 3, 4):
        raise DataError(f"{what} has {value.ndim} dimensions (shape {value.shape}); expected (Z, X), (N, Z, X), "
                        f"(N, 1, Z, X) or MATLAB's stack order (Z, X, N)")


def _file_grid(arrays: dict[str, Any], path: Path) -> tuple[int, int] | None:
    """The grid ``(nz, nx)`` the file's scalar ``nz`` and ``nx`` variables state, if it has both."""
    found = {}
    for key, value in arrays.items():
        if key.lower() in _MAT_GRID_NAMES and isinstance(value, np.ndarray) and value.size == 1 \
                and value.dtype.kind in "fiu":
            number = float(value.ravel()[0])
            if not (number >= 1 and number == int(number)):
                raise DataError(f"{path}: variable {key!r} = {number:g} is not a number of grid cells")
            found[key.lower()] = int(number)
    return (found["nz"], found["nx"]) if len(found) == 2 else None


def _stack_order(arr: np.ndarray, grid: tuple[int, int] | None, path: Path, name: str) -> tuple[np.ndarray, str]:
    """A 3-D stack as ``(N, Z, X)``, from ``(N, Z, X)`` or MATLAB's ``(Z, X, N)`` (see :func:`read_mat_velocity`)."""
    a, b, c = arr.shape
    how = "state the grid: scalar nz and nx variables in the file, or the survey (survey=FILE.toml)"
    if grid is not None:
        grid = (int(grid[0]), int(grid[1]))
        fits = [order for order, maps in (("(N, Z, X)", (b, c)), ("(Z, X, N)", (a, b))) if maps == grid]
        if not fits:
            raise DataError(f"{path}: variable {name!r} of shape {arr.shape} is neither (N, Z, X) nor (Z, X, N) "
                            f"of the {grid[0]} x {grid[1]} grid")
        if len(fits) == 2:
            raise DataError(f"{path}: variable {name!r} of shape {arr.shape} fits the {grid[0]} x {grid[1]} grid "
                            f"as (N, Z, X) and as (Z, X, N); store it as (N, 1, Z, X) to say which")
        layout = fits[0]
    else:
        if a == b:
            raise DataError(f"{path}: variable {name!r} of shape {arr.shape} reads as {a} maps of {b} x {c} "
                            f"(N, Z, X) or as {c} maps of {a} x {b} (Z, X, N, MATLAB's stack order); {how}")
        first = float(np.abs(np.diff(arr, axis=0)).mean())
        third = float(np.abs(np.diff(arr, axis=2)).mean())
        if third > _ROUGHNESS_RATIO * first:
            raise DataError(f"{path}: variable {name!r} of shape {arr.shape} changes {third / max(first, 1e-12):.3g} "
                            f"times more along its third axis than its first, as a stack of {c} maps of {a} x {b} "
                            f"(Z, X, N) would, not {a} maps of {b} x {c} (N, Z, X); {how}")
        layout = "(N, Z, X)"
    if layout == "(Z, X, N)":
        arr = arr.transpose(2, 0, 1)
    return arr, layout


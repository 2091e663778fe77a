"""MATLAB ``.mat`` velocity models (read only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from . import VELOCITY_NAMES, require_file

__all__ = ["read_mat_velocity"]

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

    require_file(path)
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
    chosen = next((by_name[n] for n in VELOCITY_NAMES if n in by_name), None)
    if chosen is None:
        if len(numeric) != 1:
            raise DataError(f"{path}: no velocity variable; expected one named {' or '.join(VELOCITY_NAMES)}, "
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


"""Checks of velocity and gathers arrays at the boundary, whatever they were read from.

Layouts in memory are the project's: velocity ``(N, 1, Z, X)`` float32 m/s, gathers
``(N, S, T, R)`` float32. Every check raises :class:`~fwi_plugins.errors.DataError`
whose message starts with where the array came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from ..units import PLAUSIBLE_VELOCITY, velocity_units_guess

__all__ = ["validate_gathers", "validate_velocity"]


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
        bad = ~np.isfinite(arr)
        n, s, t, r = (int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), arr.shape))
        samples = int(bad.reshape(len(arr), -1).any(axis=1).sum())
        raise DataError(f"{where}: gathers hold {int(bad.sum())} NaN or infinite value(s) in {samples} of {len(arr)} "
                        f"sample(s); the first is sample {n}, shot {s}, time sample {t}, receiver {r}")
    return np.ascontiguousarray(arr, dtype=np.float32)

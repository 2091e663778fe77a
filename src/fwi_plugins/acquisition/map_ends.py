"""The two ends an acquisition map joins: the grid wanted and the surveys.

The velocity grid wanted (:class:`Grid`), a network's native acquisition
(:func:`native_survey`), and a survey told from positions in metres (:func:`survey_from_coordinates`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..errors import DataError, SurveyError
from ..survey import Survey

__all__ = ["Grid", "native_survey", "survey_from_coordinates"]


@dataclasses.dataclass(frozen=True)
class Grid:
    """The velocity grid wanted: ``nz x nx`` cells of ``dx`` metres, column 0 at ``x = 0``."""

    nz: int
    nx: int
    dx: float

    def __post_init__(self) -> None:
        if self.nz < 1 or self.nx < 1 or not (math.isfinite(self.dx) and self.dx > 0):
            raise SurveyError(f"grid {self.nz} x {self.nx} at {self.dx} m: expected positive sizes and spacing")


def native_survey(shape: Any = None, wavelet: Any = None) -> Survey:
    """The acquisition a network of ``shape`` (an :class:`~fwi_plugins.specs.IOShape`) was trained on.

    OpenFWI's layout at the shape's sizes: one receiver per 10 m column, shots evenly spread,
    1 ms sampling, a 15 Hz Ricker, or the Ricker ``wavelet`` records (``peak_freq``, ``delay``:
    the weights' metadata).
    """
    ricker = {} if not wavelet else {"peak_freq": float(wavelet["peak_freq"]),
                                     "wavelet_delay": wavelet.get("delay")}
    if shape is None:
        return Survey.openfwi(**ricker)
    if shape.receivers != shape.width:
        raise SurveyError(f"a native acquisition of {shape.receivers} receivers on {shape.width} columns is not "
                          f"OpenFWI's layout (one receiver per column); this model's acquisition cannot be mapped")
    return Survey.openfwi(nz=shape.depth, nx=shape.width, n_sources=shape.shots, nt=shape.time, **ricker)


def survey_from_coordinates(*, source_x: Any, receiver_x: Any, dt: float, nt: int, dx: float | None = None,
                            source_z: Any = None, receiver_z: Any = None, nz: int | None = None,
                            where: str = "input") -> tuple[Survey, float]:
    """A survey from positions in metres (xarray coordinates, SEG-Y headers) and its x origin.

    The grid's column 0 is put at the leftmost source or receiver; ``dx`` defaults to the
    smallest receiver step, ``nz`` to the number of columns.

    Returns:
        ``(survey, origin)``: positions in the survey are ``(metres - origin) / dx``.
    """
    sx = np.asarray(source_x, dtype=np.float64).ravel()
    rx = np.asarray(receiver_x, dtype=np.float64).ravel()
    sz = np.zeros_like(sx) if source_z is None else np.asarray(source_z, dtype=np.float64).ravel()
    rz = np.zeros_like(rx) if receiver_z is None else np.asarray(receiver_z, dtype=np.float64).ravel()
    if not (np.isfinite(sx).all() and np.isfinite(rx).all() and np.isfinite(sz).all() and np.isfinite(rz).all()):
        raise DataError(f"{where}: source or receiver coordinates hold NaN or infinite values")
    if dx is None:
        steps = np.diff(np.unique(rx))
        if steps.size == 0:
            raise DataError(f"{where}: all receivers at one position ({rx[0]:g} m); the grid spacing cannot be "
                            f"told from them")
        dx = float(steps.min())
    origin = float(min(sx.min(), rx.min()))
    # Enough columns for the rightmost position, whole cell or not (a span of 2.5 cells needs 4 columns);
    # the tolerance keeps a span of whole cells, off by rounding, from gaining one.
    nx = int(np.ceil((max(sx.max(), rx.max()) - origin) / dx - 1e-6)) + 1
    try:
        survey = Survey(nz=nz or nx, nx=nx, dx=dx, nt=int(nt), dt=float(dt),
                        sources=tuple(zip((sz / dx).tolist(), ((sx - origin) / dx).tolist())),
                        receivers=tuple(zip((rz / dx).tolist(), ((rx - origin) / dx).tolist())))
    except SurveyError as exc:
        raise DataError(f"{where}: the coordinates do not form a survey ({exc})") from None
    return survey, origin

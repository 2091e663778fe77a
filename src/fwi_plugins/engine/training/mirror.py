"""Mirroring: free training data from a survey symmetric about the model's centre.

Flip a velocity map left to right and the wave equation gives the same gathers seen from the
other side: the shot at column ``x`` becomes the shot at ``nx - 1 - x`` and the receiver at
``x`` the receiver at ``nx - 1 - x``. When the survey's positions are themselves symmetric
(the ``i``-th of ``S`` sources sits where the ``(S-1-i)``-th lands when mirrored, and likewise
the receivers), the mirrored map's gathers are the original gathers with the shot order and the
receiver order reversed, exactly: a second, labelled sample for nothing.

When the survey is not symmetric the mirrored gathers are those of another survey, and training
on them would teach the network a wrong geometry; :func:`check_mirror_symmetric` refuses.
OpenFWI's 5 sources on 70 columns sit at cells 0, 17, 34, 52, 69: the middle source would have to
sit at 34.5, so that survey is refused (by half a cell).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...data.rows import RowStack
from ...errors import DataError
from ...survey import Survey
from .data import DeviceRows, TrainData

__all__ = ["GATHER_MIRROR_AXES", "VELOCITY_MIRROR_AXES", "check_mirror_symmetric", "mirror_asymmetry",
           "mirror_data"]

#: Axes of a batch of gathers ``(N, S, T, R)`` that mirroring reverses: shots and receivers.
GATHER_MIRROR_AXES = (1, 3)
#: Axes of a batch of velocity maps ``(N, 1, Z, X)`` that mirroring reverses: the horizontal one.
VELOCITY_MIRROR_AXES = (3,)


def mirror_asymmetry(positions: Sequence[tuple[float, float]], nx: int) -> float:
    """How far, in cells, the mirrored positions miss the same positions in reverse order (0: symmetric)."""
    points = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    mirrored = np.stack([points[:, 0], (nx - 1) - points[:, 1]], axis=1)
    return float(np.abs(mirrored - points[::-1]).max()) if len(points) else 0.0


def check_mirror_symmetric(survey: Survey, *, tolerance: float = 1e-3) -> None:
    """Refuse mirroring unless ``survey``'s sources and receivers are symmetric within ``tolerance`` cells.

    Raises:
        DataError: naming the source or receiver positions and what mirroring would need them to be.
    """
    problems = []
    for label, points in (("sources", survey.sources), ("receivers", survey.receivers)):
        off = mirror_asymmetry(points, survey.nx)
        if off > tolerance:
            xs = ", ".join(f"{x:g}" for _, x in points)
            wanted = ", ".join(f"{survey.nx - 1 - x:g}" for _, x in reversed(points))
            problems.append(f"{label} at columns {xs} (mirrored about column {(survey.nx - 1) / 2:g}, in reverse "
                            f"order: {wanted}; off by up to {off:g} cells)")
    if problems:
        raise DataError(f"mirroring needs a survey symmetric about the model's centre within {tolerance:g} "
                        f"cells, so that a flipped map's gathers are the gathers with shots and receivers "
                        f"reversed; this survey (nx {survey.nx}) has {'; '.join(problems)}. Mirroring such a "
                        f"survey would teach the network another geometry: train without it, or on a "
                        f"symmetric survey (e.g. an odd number of columns with sources at both ends and the "
                        f"middle)")


def mirror_data(data: TrainData, survey: Survey, *, tolerance: float = 1e-3) -> TrainData:
    """``data`` followed by its mirrored copies (``2N`` samples): sample ``N + i`` is sample ``i``
    mirrored. Nothing is copied: device rows flip a batch when it is taken, host arrays are read
    through flipped views. Sampling weights are repeated.

    Raises:
        DataError: the survey is not symmetric (see :func:`check_mirror_symmetric`), or the data
            already hold mirrored rows.
    """
    check_mirror_symmetric(survey, tolerance=tolerance)
    n_shots, n_receivers = len(survey.sources), len(survey.receivers)
    if data.gathers.shape[1] != n_shots or data.gathers.shape[3] != n_receivers:
        raise DataError(f"mirroring: gathers of shape {data.gathers.shape} do not match the survey's {n_shots} "
                        f"sources and {n_receivers} receivers")
    weights = None if data.weights is None else np.concatenate([data.weights, data.weights])
    return TrainData(gathers=_mirrored(data.gathers, GATHER_MIRROR_AXES),
                     velocity=None if data.velocity is None else _mirrored(data.velocity, VELOCITY_MIRROR_AXES),
                     weights=weights)


def _mirrored(rows: np.ndarray | RowStack | DeviceRows, axes: tuple[int, ...]) -> np.ndarray | RowStack | DeviceRows:
    if isinstance(rows, DeviceRows):
        if rows.mirror_axes:
            raise DataError("mirroring: these rows are mirrored already")
        return DeviceRows(rows.stored, decimation=rows.decimation, nt=rows.shape[2] if rows.ndim == 4 else None,
                          mirror_axes=axes)
    parts = rows.parts if isinstance(rows, RowStack) else [rows]
    # np.flip is a view (a memory map stays a memory map); take_rows copies each batch out.
    return RowStack([*parts, *(np.flip(p, axes) for p in parts)])

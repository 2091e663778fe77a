"""PNG figures a person looks at after a run.

* :func:`velocity_comparison`: true / predicted / refined velocity side by side, one
  row per sample, one colour bar in m/s, axes in metres.
* :func:`gather_comparison`: observed vs simulated shot gathers (and their difference)
  for one shot, time in seconds, receiver position in metres.
* :func:`loss_curves`: training and validation loss per epoch.
* :func:`misfit_history`: data misfit per refinement iteration.

matplotlib is imported only when a figure is drawn, and through its object API
(``matplotlib.figure.Figure``) rather than pyplot, so drawing never changes the global
backend or leaks open figures in a long-running process. Every file is written
atomically: it appears whole or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from ..atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..survey import Survey

__all__ = ["gather_comparison", "loss_curves", "misfit_history", "velocity_comparison"]

DPI = 120


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        # The temporary name ends in ".part", so the format must be explicit.
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def _numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu()
    return np.asarray(array, dtype=np.float64)


def _maps(array: Any, name: str) -> np.ndarray:
    """``(Z, X)``, ``(N, Z, X)`` or ``(N, 1, Z, X)`` as ``(N, Z, X)``."""
    a = _numpy(array)
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3:
        return a
    if a.ndim == 4 and a.shape[1] == 1:
        return a[:, 0]
    raise DataError(f"{name}: expected a velocity map (Z, X) or a stack (N, 1, Z, X), got shape {a.shape}")


# -- velocity -----------------------------------------------------------------------
def velocity_comparison(path: str | Path, panels: Mapping[str, Any], *, dx: float = 10.0,
                        vmin: float | None = None, vmax: float | None = None, max_rows: int = 4,
                        title: str | None = None, cmap: str = "viridis") -> Path:
    """Velocity maps side by side with one shared colour bar.

    Args:
        path: the PNG to write.
        panels: column title -> velocity in m/s, ``(Z, X)`` or ``(N, 1, Z, X)``, for
            example ``{"true": v, "predicted": p, "refined": r}``; ``None`` values are
            skipped. Every panel must have the same grid; rows are samples.
        dx: grid spacing in metres (both axes).
        vmin: bottom of the colour scale in m/s (default: the smallest value shown).
        vmax: top of the colour scale in m/s (default: the largest value shown).
        max_rows: draw at most this many samples.
        title: figure title.
        cmap: matplotlib colour map name.

    Returns:
        ``path``.
    """
    columns = {name: _maps(v, name) for name, v in panels.items() if v is not None}
    if not columns:
        raise DataError("velocity_comparison needs at least one velocity panel")
    grids = {name: m.shape[1:] for name, m in columns.items()}
    if len(set(grids.values())) != 1:
        raise DataError(f"velocity panels have different grids: {grids}")
    rows = min(max_rows, min(m.shape[0] for m in columns.values()))
    shown = [m[:rows] for m in columns.values()]
    lo = float(min(m.min() for m in shown)) if vmin is None else vmin
    hi = float(max(m.max() for m in shown)) if vmax is None else vmax
    nz, nx = next(iter(grids.values()))
    # Pixel edges, so that a cell centred at i * dx covers [i - 1/2, i + 1/2] * dx.
    extent = (-0.5 * dx, (nx - 0.5) * dx, (nz - 0.5) * dx, -0.5 * dx)

    ncols = len(columns)
    fig = _new_figure(3.0 * ncols + 0.8, 2.8 * rows + (0.4 if title else 0.0))
    axes = fig.subplots(rows, ncols, squeeze=False, sharex=True, sharey=True)
    image = None
    for col, (name, maps) in enumerate(columns.items()):
        for row in range(rows):
            ax = axes[row, col]
            image = ax.imshow(maps[row], extent=extent, vmin=lo, vmax=hi, cmap=cmap, aspect="equal",
                              interpolation="nearest")
            if row == 0:
                ax.set_title(name)
            if row == rows - 1:
                ax.set_xlabel("x (m)")
            if col == 0:
                ax.set_ylabel(f"depth (m){f'  · sample {row}' if rows > 1 else ''}")
    colorbar = fig.colorbar(image, ax=axes, shrink=0.9)
    colorbar.set_label("velocity (m/s)")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


# -- gathers ------------------------------------------------------------------------
def _gather(array: Any, name: str, *, sample: int, shot: int) -> np.ndarray:
    """``(T, R)``, ``(S, T, R)`` or ``(N, S, T, R)`` down to one ``(T, R)`` gather."""
    a = _numpy(array)
    if a.ndim == 4:
        if not 0 <= sample < a.shape[0]:
            raise DataError(f"{name}: sample {sample} is out of range (0..{a.shape[0] - 1})")
        a = a[sample]
    if a.ndim == 3:
        if not 0 <= shot < a.shape[0]:
            raise DataError(f"{name}: shot {shot} is out of range (0..{a.shape[0] - 1})")
        a = a[shot]
    if a.ndim != 2:
        raise DataError(f"{name}: expected gathers (N, S, T, R), (S, T, R) or (T, R), got shape {np.shape(array)}")
    return a


def _gather_extent(shape: tuple[int, ...], *, survey: Survey | None, dt: float | None, dx: float | None,
                   receiver_x: Sequence[float] | None) -> tuple[float, float, float, float]:
    """The image extent of a ``(T, R)`` gather: receiver positions in metres across, time in seconds down."""
    nt, nr = shape
    if dt is None:
        dt = survey.dt if survey is not None else 0.001
    if dx is None:
        dx = survey.dx if survey is not None else 10.0
    if receiver_x is None:
        if survey is not None and survey.n_receivers == nr:
            receiver_x = [x * dx for _, x in survey.receivers]
        else:
            receiver_x = list(np.arange(nr) * dx)
    rx = np.asarray(receiver_x, dtype=np.float64)
    if rx.shape != (nr,):
        raise DataError(f"receiver_x has {rx.size} positions but the gathers have {nr} receivers")
    half = 0.5 * (rx[1] - rx[0]) if nr > 1 else 0.5 * dx
    return (rx[0] - half, rx[-1] + half, (nt - 0.5) * dt, -0.5 * dt)


def gather_comparison(path: str | Path, observed: Any, simulated: Any | None = None, *,
                      survey: Survey | None = None, dt: float | None = None, dx: float | None = None,
                      receiver_x: Sequence[float] | None = None, shot: int = 0, sample: int = 0,
                      clip_percentile: float = 99.0, title: str | None = None) -> Path:
    """Observed and simulated gathers of one shot, and their difference, on one scale.

    Args:
        path: the PNG to write.
        observed: gathers ``(N, S, T, R)``, ``(S, T, R)`` or ``(T, R)``.
        simulated: the same shape, or ``None`` to draw the observed gather alone.
        survey: gives the time step and receiver positions when ``dt``/``receiver_x``
            are not passed.
        dt: time sample interval in seconds (default: the survey's, else 0.001).
        dx: grid spacing in metres, for receiver positions (default: the survey's, else 10).
        receiver_x: receiver positions in metres (default: the survey's receivers, else
            ``dx * arange(R)``).
        shot: which shot to draw.
        sample: which sample, for 4D input.
        clip_percentile: the colour scale saturates at this percentile of ``|observed|``,
            so that the direct arrival does not hide the reflections.
        title: figure title.

    Returns:
        ``path``.
    """
    obs = _gather(observed, "observed", sample=sample, shot=shot)
    sim = None if simulated is None else _gather(simulated, "simulated", sample=sample, shot=shot)
    if sim is not None and sim.shape != obs.shape:
        raise DataError(f"observed gather has shape {obs.shape} but simulated has {sim.shape}")
    extent = _gather_extent(obs.shape, survey=survey, dt=dt, dx=dx, receiver_x=receiver_x)
    scale = float(np.percentile(np.abs(obs), clip_percentile)) or float(np.abs(obs).max()) or 1.0

    panels = {"observed": obs}
    if sim is not None:
        panels["simulated"] = sim
        panels["simulated − observed"] = sim - obs
    fig = _new_figure(3.2 * len(panels) + 0.8, 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    image = None
    for ax, (name, data) in zip(axes, panels.items()):
        image = ax.imshow(data, extent=extent, vmin=-scale, vmax=scale, cmap="gray", aspect="auto",
                          interpolation="nearest")
        ax.set_title(name)
        ax.set_xlabel("receiver x (m)")
    axes[0].set_ylabel("time (s)")
    colorbar = fig.colorbar(image, ax=list(axes), shrink=0.9)
    colorbar.set_label("amplitude")
    fig.suptitle(title or f"shot {shot}" + (f", sample {sample}" if np.ndim(observed) == 4 else ""))
    return _save(fig, path)


# -- curves -------------------------------------------------------------------------
def _columns(history: Mapping[str, Sequence[float]] | Sequence[Mapping[str, Any]]) -> tuple[np.ndarray | None,
                                                                                            dict[str, np.ndarray]]:
    """History as ``(x values or None, {label: values})`` from columns or per-epoch records."""
    if isinstance(history, Mapping):
        columns = {str(k): _numpy(v).ravel() for k, v in history.items() if v is not None and len(v)}
        x = columns.pop("epoch", None)
        return x, columns
    records = list(history)
    keys = [k for k in dict.fromkeys(k for r in records for k in r) if k != "epoch"]
    columns = {}
    for key in keys:
        values = [r.get(key) for r in records]
        if all(isinstance(v, (int, float)) or v is None for v in values):
            columns[key] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    x = np.array([r.get("epoch", i + 1) for i, r in enumerate(records)], dtype=np.float64) if records else None
    return x, columns


def _log_scale_fits(columns: Mapping[str, np.ndarray]) -> bool:
    finite = np.concatenate([c[np.isfinite(c)] for c in columns.values()]) if columns else np.array([])
    return finite.size > 1 and bool(np.all(finite > 0)) and finite.max() / finite.min() > 10


def loss_curves(path: str | Path, history: Mapping[str, Sequence[float]] | Sequence[Mapping[str, Any]], *,
                title: str = "training", ylabel: str = "loss", log: bool | None = None) -> Path:
    """Loss per epoch, one line per series.

    Args:
        path: the PNG to write.
        history: ``{"train": [...], "val": [...]}`` (an ``"epoch"`` column, if present, is
            the x axis) or per-epoch records ``[{"epoch": 1, "train": 0.3, "val": 0.4}, ...]``
            (non-numeric fields are ignored).
        title: figure title.
        ylabel: y axis label.
        log: logarithmic y axis; default when every value is positive and they span more
            than a factor of 10.

    Returns:
        ``path``.
    """
    x, columns = _columns(history)
    if not columns:
        raise DataError("loss_curves: the history holds no numeric series")
    fig = _new_figure(6.0, 4.0)
    ax = fig.subplots()
    for label, values in columns.items():
        xs = x[: len(values)] if x is not None else np.arange(1, len(values) + 1)
        ax.plot(xs, values, marker="o" if len(values) <= 30 else None, markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if log if log is not None else _log_scale_fits(columns):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title)
    return _save(fig, path)


def misfit_history(path: str | Path, history: Any, *, title: str = "refinement",
                   ylabel: str = "data misfit", log: bool | None = None) -> Path:
    """Data misfit per refinement iteration.

    Args:
        path: the PNG to write.
        history: ``(iterations,)`` values, ``(N, iterations)`` (one faint line per
            sample and their mean), or a mapping label -> values.
        title: figure title.
        ylabel: y axis label.
        log: logarithmic y axis (default as in :func:`loss_curves`).

    Returns:
        ``path``.
    """
    if isinstance(history, Mapping):
        columns = {str(k): _numpy(v).ravel() for k, v in history.items()}
    else:
        values = _numpy(history)
        if values.ndim == 1:
            columns = {"misfit": values}
        elif values.ndim == 2:
            columns = {f"sample {i}": row for i, row in enumerate(values)}
            columns["mean"] = values.mean(axis=0)
        else:
            raise DataError(f"misfit history must be (iterations,) or (N, iterations), got shape {values.shape}")
    if not columns or all(c.size == 0 for c in columns.values()):
        raise DataError("misfit_history: the history is empty")
    fig = _new_figure(6.0, 4.0)
    ax = fig.subplots()
    many = len(columns) > 1 and "mean" in columns
    for label, values in columns.items():
        faint = many and label != "mean"
        ax.plot(np.arange(len(values)), values, label=None if faint else label,
                alpha=0.3 if faint else 1.0, linewidth=0.8 if faint else 1.8)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    if log if log is not None else _log_scale_fits(columns):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title)
    return _save(fig, path)

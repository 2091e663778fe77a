"""Velocity and data metrics as OpenFWI defines them.

OpenFWI reports three velocity metrics:

* MAE and RMSE on the normalised scale, where velocity is min-max mapped from
  ``[vmin, vmax]`` (1500-4500 m/s) to ``[-1, 1]``; multiplied by ``(vmax - vmin) / 2``
  (1500) they are in m/s.
* SSIM on maps rescaled to ``[0, 1]`` (``unit / 2 + 0.5``), with an 11-pixel Gaussian
  window of standard deviation 1.5, zero padding at the borders and the constants
  ``C1 = 0.01**2``, ``C2 = 0.03**2`` (a data range of 1), averaged over every pixel.

Everything here works on numpy arrays shaped ``(N, 1, Z, X)`` (any ``(N, ..., Z, X)``
works; a single ``(Z, X)`` map is treated as ``N = 1``) and computes in float64, so
results do not depend on the input precision. ``reduction="mean"`` gives one number
for the whole set, ``reduction="none"`` one per sample.

Dataset RMSE is the square root of the mean squared error over every pixel of every
sample (what OpenFWI prints), which is not the mean of per-sample RMSEs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from ..errors import DataError

__all__ = [
    "SSIM_C1",
    "SSIM_C2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "from_unit",
    "gaussian_window",
    "mae",
    "mse",
    "relative_l2",
    "rmse",
    "ssim",
    "summarize",
    "to_unit",
    "velocity_metrics",
]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2

Reduction = Literal["mean", "none"]


# -- helpers --------------------------------------------------------------------
def _as_samples(array: Any, name: str) -> np.ndarray:
    """``array`` as float64 ``(N, P)`` with one row of pixels per sample."""
    a = np.asarray(array.detach().cpu() if hasattr(array, "detach") else array, dtype=np.float64)
    if a.ndim < 2:
        raise DataError(f"{name} must be a map (Z, X) or a stack (N, 1, Z, X), got shape {a.shape}")
    if a.ndim == 2:
        a = a[None]
    return a.reshape(a.shape[0], -1)


def _pair(predicted: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _as_samples(predicted, "predicted")
    t = _as_samples(truth, "truth")
    if np.shape(predicted)[-2:] != np.shape(truth)[-2:] or p.shape != t.shape:
        raise DataError(f"predicted has shape {tuple(np.shape(predicted))} but truth has "
                        f"{tuple(np.shape(truth))}; they must match")
    if p.shape[0] == 0:
        raise DataError("predicted and truth hold no samples")
    return p, t


def _reduce(per_sample: np.ndarray, reduction: Reduction) -> float | np.ndarray:
    if reduction == "none":
        return per_sample
    if reduction == "mean":
        return float(per_sample.mean())
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def to_unit(velocity: Any, vmin: float = 1500.0, vmax: float = 4500.0) -> np.ndarray:
    """Min-max map velocity in m/s from ``[vmin, vmax]`` to ``[-1, 1]`` (float64)."""
    v = np.asarray(velocity, dtype=np.float64)
    return 2.0 * (v - vmin) / (vmax - vmin) - 1.0


def from_unit(unit: Any, vmin: float = 1500.0, vmax: float = 4500.0) -> np.ndarray:
    """The inverse of :func:`to_unit`: ``[-1, 1]`` back to m/s (float64)."""
    u = np.asarray(unit, dtype=np.float64)
    return (u + 1.0) * 0.5 * (vmax - vmin) + vmin


# -- pointwise errors ---------------------------------------------------------------
def mae(predicted: Any, truth: Any, *, reduction: Reduction = "mean") -> float | np.ndarray:
    """Mean absolute error, in the units of the inputs.

    Args:
        predicted: ``(N, 1, Z, X)`` or ``(Z, X)``.
        truth: the same shape as ``predicted``.
        reduction: ``"mean"`` for one number over every pixel, ``"none"`` for ``(N,)``.
    """
    p, t = _pair(predicted, truth)
    return _reduce(np.abs(p - t).mean(axis=1), reduction)


def mse(predicted: Any, truth: Any, *, reduction: Reduction = "mean") -> float | np.ndarray:
    """Mean squared error, in the squared units of the inputs (see :func:`mae`)."""
    p, t = _pair(predicted, truth)
    return _reduce(np.square(p - t).mean(axis=1), reduction)


def rmse(predicted: Any, truth: Any, *, reduction: Reduction = "mean") -> float | np.ndarray:
    """Root mean squared error, in the units of the inputs.

    With ``reduction="mean"`` the root is taken after averaging over every pixel of every
    sample (OpenFWI's dataset RMSE); ``"none"`` gives each sample's own RMSE.
    """
    per_sample = mse(predicted, truth, reduction="none")
    if reduction == "none":
        return np.sqrt(per_sample)
    # Every sample has the same pixel count, so the mean of per-sample MSEs is the pixel mean.
    return float(np.sqrt(_reduce(per_sample, reduction)))


# -- SSIM ---------------------------------------------------------------------------
def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalised 1D Gaussian whose outer product is the SSIM window."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter(images: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'same' convolution of ``(N, Z, X)`` images with zero padding."""
    from scipy.ndimage import correlate1d

    # The window is symmetric, so correlation equals convolution; zero padding (mode
    # "constant") matches the reference implementation's padded conv2d.
    out = correlate1d(images, window, axis=-1, mode="constant", cval=0.0)
    return correlate1d(out, window, axis=-2, mode="constant", cval=0.0)


def ssim(predicted: Any, truth: Any, *, reduction: Reduction = "mean", window_size: int = SSIM_WINDOW,
         sigma: float = SSIM_SIGMA) -> float | np.ndarray:
    """Structural similarity of maps already on the ``[0, 1]`` scale.

    For OpenFWI's number, pass velocity rescaled with ``to_unit(v) / 2 + 0.5`` (or use
    :func:`velocity_metrics`). Values outside ``[0, 1]`` are not clipped, as in OpenFWI.

    Args:
        predicted: ``(N, C, Z, X)``, ``(N, Z, X)`` or ``(Z, X)``; each channel is scored
            on its own and channels are averaged.
        truth: the same shape as ``predicted``.
        reduction: ``"mean"`` over every pixel of every sample, or ``"none"`` for ``(N,)``.
        window_size: side of the Gaussian window in pixels.
        sigma: its standard deviation in pixels.

    Returns:
        1.0 for identical maps; lower for less similar ones.
    """
    p_shape, t_shape = np.shape(predicted), np.shape(truth)
    if p_shape != t_shape:
        raise DataError(f"predicted has shape {tuple(p_shape)} but truth has {tuple(t_shape)}; they must match")
    if len(p_shape) < 2:
        raise DataError(f"SSIM needs maps (Z, X) or stacks (N, 1, Z, X), got shape {tuple(p_shape)}")
    n = 1 if len(p_shape) == 2 else p_shape[0]
    if n == 0:
        raise DataError("predicted and truth hold no samples")
    p = _as_samples(predicted, "predicted").reshape((-1,) + tuple(p_shape[-2:]))
    t = _as_samples(truth, "truth").reshape((-1,) + tuple(t_shape[-2:]))
    window = gaussian_window(window_size, sigma)

    mu_p = _filter(p, window)
    mu_t = _filter(t, window)
    var_p = _filter(p * p, window) - mu_p**2
    var_t = _filter(t * t, window) - mu_t**2
    cov = _filter(p * t, window) - mu_p * mu_t
    numerator = (2.0 * mu_p * mu_t + SSIM_C1) * (2.0 * cov + SSIM_C2)
    denominator = (mu_p**2 + mu_t**2 + SSIM_C1) * (var_p + var_t + SSIM_C2)
    ssim_map = numerator / denominator
    per_sample = ssim_map.reshape(n, -1).mean(axis=1)
    return _reduce(per_sample, reduction)


# -- all of it at once --------------------------------------------------------------
def velocity_metrics(predicted: Any, truth: Any, *, vmin: float = 1500.0, vmax: float = 4500.0,
                     predicted_unit: Any = None, truth_unit: Any = None,
                     per_sample: bool = False) -> dict[str, Any]:
    """OpenFWI's velocity metrics for maps in m/s.

    Args:
        predicted: predicted velocity, ``(N, 1, Z, X)`` in m/s.
        truth: true velocity, same shape, m/s.
        vmin: the velocity mapped to -1 (OpenFWI: 1500 m/s).
        vmax: the velocity mapped to +1 (OpenFWI: 4500 m/s).
        predicted_unit: ``predicted`` already on the ``[-1, 1]`` scale, when a dataset's
            own normalisation made it; otherwise min-max from ``vmin``/``vmax``.
        truth_unit: the same for ``truth``.
        per_sample: also return per-sample lists under ``"per_sample"``.

    Returns:
        ``mae``, ``rmse`` (normalised scale), ``mae_ms``, ``rmse_ms`` (m/s), ``ssim``
        and ``n_samples``; plus ``per_sample`` when asked.
    """
    if not vmax > vmin:
        raise DataError(f"vmax ({vmax}) must be greater than vmin ({vmin})")
    pu = to_unit(predicted, vmin, vmax) if predicted_unit is None else np.asarray(predicted_unit, np.float64)
    tu = to_unit(truth, vmin, vmax) if truth_unit is None else np.asarray(truth_unit, np.float64)
    values: dict[str, np.ndarray] = {
        "mae": mae(pu, tu, reduction="none"),
        "mse": mse(pu, tu, reduction="none"),
        "mae_ms": mae(predicted, truth, reduction="none"),
        "mse_ms": mse(predicted, truth, reduction="none"),
        "ssim": ssim(pu / 2.0 + 0.5, tu / 2.0 + 0.5, reduction="none"),
    }
    out: dict[str, Any] = {
        "mae": float(values["mae"].mean()),
        "rmse": float(np.sqrt(values["mse"].mean())),
        "ssim": float(values["ssim"].mean()),
        "mae_ms": float(values["mae_ms"].mean()),
        "rmse_ms": float(np.sqrt(values["mse_ms"].mean())),
        "n_samples": int(values["mae"].shape[0]),
    }
    if per_sample:
        out["per_sample"] = {
            "mae": values["mae"].tolist(),
            "rmse": np.sqrt(values["mse"]).tolist(),
            "ssim": values["ssim"].tolist(),
            "mae_ms": values["mae_ms"].tolist(),
            "rmse_ms": np.sqrt(values["mse_ms"]).tolist(),
        }
    return out


# -- data misfit --------------------------------------------------------------------
def relative_l2(simulated: Any, observed: Any, *, reduction: Reduction = "mean") -> float | np.ndarray:
    """Relative L2 data misfit ``||simulated - observed|| / ||observed||`` per sample.

    Args:
        simulated: gathers ``(N, S, T, R)``; the first axis indexes samples.
        observed: the same shape.
        reduction: ``"mean"`` of per-sample values, or ``"none"`` for ``(N,)``.

    Returns:
        0 for a perfect fit, 1 for predicting silence. A sample whose observed gathers are
        all zero scores its absolute norm, so that silence against silence is 0.
    """
    s = _as_samples(simulated, "simulated")
    o = _as_samples(observed, "observed")
    if np.shape(simulated) != np.shape(observed):
        raise DataError(f"simulated gathers have shape {tuple(np.shape(simulated))} but observed have "
                        f"{tuple(np.shape(observed))}; they must match")
    residual = np.linalg.norm(s - o, axis=1)
    norm = np.linalg.norm(o, axis=1)
    per_sample = np.where(norm > 0, residual / np.where(norm > 0, norm, 1.0), residual)
    return _reduce(per_sample, reduction)


def summarize(metrics: Mapping[str, Any]) -> str:
    """One line, ``MAE 0.0131 | RMSE 0.0211 | SSIM 0.9895 | MAE 19.6 m/s``, for logs."""
    parts = []
    for key, label, fmt in (("mae", "MAE", ".4f"), ("rmse", "RMSE", ".4f"), ("ssim", "SSIM", ".4f"),
                            ("mae_ms", "MAE", ".1f"), ("data_misfit", "data misfit", ".4f")):
        if key in metrics and metrics[key] is not None:
            unit = " m/s" if key.endswith("_ms") else ""
            parts.append(f"{label} {metrics[key]:{fmt}}{unit}")
    return " | ".join(parts)

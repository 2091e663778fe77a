"""Evaluation: OpenFWI velocity metrics and, given physics, the data misfit of a prediction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from . import metrics

if TYPE_CHECKING:
    from ..data.dataset import Normalization
    from ..physics import Physics

__all__ = ["evaluate", "score_predictions", "simulate"]


def simulate(physics: Any, velocity: Any, *, batch_size: int = 16, device: Any = "auto",
             progress: bool = False) -> np.ndarray:
    """Gathers ``(N, S, T, R)`` simulated from velocity ``(N, 1, Z, X)`` m/s, batch by batch.

    Args:
        physics: an object keeping the :class:`fwi_plugins.physics.Physics` contract.
        velocity: velocity in m/s (numpy or tensor).
        batch_size: models per simulation call.
        device: where to simulate (see :func:`fwi_plugins.engine.device.resolve_device`).
        progress: show a progress bar.
    """
    import torch
    from tqdm.auto import tqdm

    from .device import resolve_device

    target = resolve_device(device)
    v = np.asarray(velocity.detach().cpu() if hasattr(velocity, "detach") else velocity, dtype=np.float32)
    parts = []
    with torch.no_grad():
        for start in tqdm(range(0, v.shape[0], batch_size), desc="simulate", unit="batch",
                          disable=not progress, leave=False):
            batch = torch.from_numpy(np.ascontiguousarray(v[start:start + batch_size])).to(target)
            parts.append(physics.simulate(batch).detach().cpu().numpy())
    return np.concatenate(parts, axis=0)


def evaluate(predicted: Any, truth: Any, *, normalization: Normalization | None = None, vmin: float = 1500.0,
             vmax: float = 4500.0, physics: Any = None, observed: Any = None, per_sample: bool = False,
             batch_size: int = 16, device: Any = "auto", progress: bool = False) -> dict[str, Any]:
    """Score predicted velocity against the truth, and against observed data when physics is given.

    Args:
        predicted: predicted velocity ``(N, 1, Z, X)`` in m/s.
        truth: true velocity, same shape, m/s; ``None`` for data without labels (then
            only the data misfit is computed).
        normalization: the dataset's normalisation; its ``vmin``/``vmax`` then define the
            ``[-1, 1]`` scale instead of the ``vmin``/``vmax`` arguments.
        vmin: velocity mapped to -1 when no normalisation is given (OpenFWI: 1500 m/s).
        vmax: velocity mapped to +1 (OpenFWI: 4500 m/s).
        physics: a forward model (:class:`fwi_plugins.physics.Physics`); with
            ``observed``, gathers are simulated from ``predicted`` and compared.
        observed: observed gathers ``(N, S, T, R)`` for the data misfit.
        per_sample: add per-sample lists under ``"per_sample"``.
        batch_size: models per simulation call.
        device: where to simulate.
        progress: show a progress bar while simulating.

    Returns:
        ``mae``, ``rmse`` (on the ``[-1, 1]`` scale), ``mae_ms``, ``rmse_ms`` (m/s),
        ``ssim`` and ``n_samples`` when ``truth`` is given; ``data_misfit`` (relative L2
        of simulated vs observed gathers, mean over samples) and ``physics_misfit`` (the
        physics plugin's own misfit, sample-weighted mean over batches) when ``physics``
        and ``observed`` are given.

    Raises:
        DataError: shapes that do not match, or nothing to evaluate.
    """
    if (physics is None) != (observed is None):
        raise DataError("the data misfit needs both physics and observed gathers; "
                        f"got {'physics' if physics is not None else 'observed gathers'} only")
    if truth is None and physics is None:
        raise DataError("nothing to evaluate: give the true velocity, or physics and observed gathers")
    if normalization is not None:
        vmin, vmax = float(normalization.vmin), float(normalization.vmax)

    result: dict[str, Any] = {}
    if truth is not None:
        result.update(metrics.velocity_metrics(predicted, truth, vmin=vmin, vmax=vmax, per_sample=per_sample))

    if physics is not None:
        per, physics_misfit = _data_misfit(predicted, observed, physics, batch_size=batch_size, device=device,
                                           progress=progress)
        result["data_misfit"] = float(per.mean())
        result["physics_misfit"] = physics_misfit
        result.setdefault("n_samples", int(len(per)))
        if per_sample:
            result.setdefault("per_sample", {})["data_misfit"] = per.tolist()
    return result


def _data_misfit(predicted: Any, observed: Any, physics: Any, *, batch_size: int, device: Any,
                 progress: bool) -> tuple[np.ndarray, float]:
    """Gathers simulated from ``predicted`` scored against ``observed``.

    Returns:
        The relative L2 misfit of each sample, and the physics' own misfit (sample-weighted
        mean over batches).
    """
    import torch

    pred = np.asarray(predicted.detach().cpu() if hasattr(predicted, "detach") else predicted, np.float32)
    obs = np.asarray(observed.detach().cpu() if hasattr(observed, "detach") else observed, np.float32)
    if obs.ndim != 4 or obs.shape[0] != pred.shape[0]:
        raise DataError(f"observed gathers have shape {obs.shape}; expected (N, shot, time, receiver) "
                        f"with N = {pred.shape[0]} predicted samples")
    simulated = simulate(physics, pred, batch_size=batch_size, device=device, progress=progress)
    if simulated.shape != obs.shape:
        raise DataError(f"gathers simulated from the prediction have shape {simulated.shape} but the observed "
                        f"gathers have {obs.shape}; was the observed data recorded with this survey?")
    per = metrics.relative_l2(simulated, obs, reduction="none")
    with torch.no_grad():
        total = 0.0
        for start in range(0, obs.shape[0], batch_size):
            stop = min(start + batch_size, obs.shape[0])
            value = physics.misfit(torch.from_numpy(simulated[start:stop]), torch.from_numpy(obs[start:stop]))
            total += float(value) * (stop - start)
    return per, total / obs.shape[0]


def score_predictions(predicted: np.ndarray, truth: np.ndarray | None, observed: np.ndarray, *,
                      normalization: Normalization, physics: Physics, n_misfit: int, device: str) -> dict[str, Any]:
    """Velocity metrics on every sample; the data misfit on the first ``n_misfit`` (it costs a simulation each)."""
    result: dict[str, Any] = {}
    if truth is not None:
        result.update(evaluate(predicted, truth, normalization=normalization))
    k = min(n_misfit, len(predicted))
    if k and physics is not None:
        fit = evaluate(predicted[:k], None, normalization=normalization, physics=physics, observed=observed[:k],
                       device=device)
        result["data_misfit"] = fit["data_misfit"]
        result["physics_misfit"] = fit["physics_misfit"]
        result["n_misfit"] = k
    result.setdefault("n_samples", int(len(predicted)))
    return result

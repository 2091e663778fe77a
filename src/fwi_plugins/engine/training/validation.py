"""The network on held-out samples: batched prediction on its own scale, and the validation
that ends every training epoch.

The network runs under bfloat16 autocast on CUDA (when ``amp`` is on); physics always
runs in float32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ...data.rows import RowStack, take_rows
from ..options import TrainOptions
from .distributed import DistInfo, all_reduce_sums
from .losses import physics_velocity
from .data import TrainData

if TYPE_CHECKING:
    from ...data import Normalization
    from ...physics import Physics

__all__ = ["predict_unit", "validate"]


def predict_unit(model: nn.Module, gathers: np.ndarray | RowStack, *, normalization: Normalization,
                 device: str = "cpu", batch_size: int = 16, amp: bool = True) -> np.ndarray:
    """The network's normalised velocity ``(N, 1, Z, X)`` float32 for raw gathers, in batches.

    The project's one inference loop, :func:`~fwi_plugins.engine.inference.predict`, on the
    network's own scale (no conversion to m/s).
    """
    from ..inference import predict

    if len(gathers) == 0:
        return np.zeros((0, 1, 1, 1), np.float32)
    return predict(model, gathers, normalization=normalization, velocity_from_unit=_unit, batch_size=batch_size,
                   device=device, progress=False, amp=amp)


def _unit(velocity: torch.Tensor) -> torch.Tensor:
    return velocity


def validate(model: nn.Module, data: TrainData, *, options: TrainOptions, normalization: Normalization,
             physics: Physics | None, device: str, info: DistInfo) -> dict[str, float]:
    """Mean normalised-velocity MAE (OpenFWI's MAE) and physics misfit on this rank's shard, reduced.

    The shard is read one batch of ``eval_batch_size`` rows at a time: memory-mapped
    gathers are never read whole.

    Returns:
        ``val_mae`` and ``val_mae_ms`` (m/s) when ``data`` has labels, ``val_misfit`` with
        ``physics``.
    """
    idx = np.arange(info.rank, len(data), info.world_size)
    sums = {"n": float(len(idx)), "mae": 0.0, "misfit": 0.0}
    maes = []
    for start in range(0, len(idx), options.eval_batch_size):
        rows = idx[start:start + options.eval_batch_size]
        gathers = take_rows(data.gathers, rows)
        unit = predict_unit(model, gathers, normalization=normalization, device=device,
                            batch_size=options.eval_batch_size, amp=options.amp)
        if data.velocity is not None:
            truth = normalization.velocity_to_unit(data.velocity[rows])
            maes.append(np.abs(unit - truth).mean(axis=(1, 2, 3)))
        if physics is not None:
            sums["misfit"] += _misfit_sum(unit, gathers, normalization=normalization, physics=physics,
                                          device=device)
    if maes:
        # Summed once over the shard, as one array: the same float32 sum as unbatched.
        sums["mae"] = float(np.concatenate(maes).sum())
    sums = all_reduce_sums(sums, info, device)
    out: dict[str, float] = {}
    n = max(sums["n"], 1.0)
    if data.velocity is not None:
        out["val_mae"] = sums["mae"] / n
        out["val_mae_ms"] = out["val_mae"] * 0.5 * (normalization.vmax - normalization.vmin)
    if physics is not None:
        out["val_misfit"] = sums["misfit"] / n
    return out


def _misfit_sum(unit: np.ndarray, gathers: np.ndarray, *, normalization: Normalization, physics: Physics,
                device: str) -> float:
    """The physics misfit of one batch of predictions ``unit`` against their gathers, summed over samples."""
    with torch.no_grad():
        u = torch.from_numpy(unit).to(device)
        simulated = physics.simulate(physics_velocity(u, normalization, physics))
        observed = torch.from_numpy(gathers).to(device)
        return float(physics.misfit(simulated, observed)) * len(u)

"""The training loss: a label term on the normalised velocity plus a physics term.

For a batch with prediction ``pred`` and label ``y`` (both on the network's [-1, 1] scale)::

    loss = |pred - y|  +  lambda_ssim (1 - SSIM(pred, y))  +  lambda_physics misfit(simulate(pred), observed)

with the L1 term averaged, SSIM taken on the [0, 1] scale, and the physics term on the
prediction in m/s (float32, clamped to the survey's velocity range). With
``labels="none"`` only the physics term remains (label-free adaptation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ...data import Normalization
    from ...physics import Physics

__all__ = ["BatchLoss", "batch_loss", "label_loss", "physics_loss", "physics_velocity", "ssim_torch"]


def ssim_torch(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Differentiable mean SSIM of ``(N, 1, Z, X)`` maps on the ``[0, 1]`` scale.

    The same definition as :func:`fwi_plugins.engine.metrics.ssim` (Gaussian window of
    11 pixels, sigma 1.5, zero padding), written with ``conv2d`` so it can be a loss.
    """
    from ..metrics import SSIM_C1, SSIM_C2, gaussian_window

    g = torch.as_tensor(gaussian_window(), dtype=predicted.dtype, device=predicted.device)
    kernel = (g[:, None] * g[None, :])[None, None]
    pad = kernel.shape[-1] // 2

    def blur(images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(images, kernel, padding=pad)

    p, t = predicted.reshape(-1, 1, *predicted.shape[-2:]), truth.reshape(-1, 1, *truth.shape[-2:])
    mu_p, mu_t = blur(p), blur(t)
    var_p = blur(p * p) - mu_p**2
    var_t = blur(t * t) - mu_t**2
    cov = blur(p * t) - mu_p * mu_t
    numerator = (2.0 * mu_p * mu_t + SSIM_C1) * (2.0 * cov + SSIM_C2)
    denominator = (mu_p**2 + mu_t**2 + SSIM_C1) * (var_p + var_t + SSIM_C2)
    return (numerator / denominator).mean()


def physics_velocity(unit: torch.Tensor, normalization: Normalization, physics: Physics) -> torch.Tensor:
    """The network's normalised velocity in m/s, float32, as the physics simulates it."""
    velocity = normalization.velocity_from_unit(unit.float())
    survey = getattr(physics, "survey", None)
    if survey is not None:
        # A prediction outside the survey's range can break the solver's stability
        # condition; clamping keeps the simulation valid (gradients vanish only there).
        velocity = velocity.clamp(float(survey.vmin), float(survey.vmax))
    return velocity


def label_loss(pred: torch.Tensor, y: torch.Tensor, *, lambda_ssim: float) -> torch.Tensor:
    """The label term: mean absolute difference, plus ``lambda_ssim`` x (1 - SSIM) when it is positive."""
    loss = (pred - y).abs().mean()
    if lambda_ssim > 0:
        loss = loss + lambda_ssim * (1.0 - ssim_torch(pred / 2 + 0.5, y / 2 + 0.5))
    return loss


def physics_loss(pred: torch.Tensor, observed: torch.Tensor, *, normalization: Normalization, physics: Physics,
                 samples: int) -> torch.Tensor:
    """The physics misfit between gathers simulated from the first ``samples`` predictions
    (all of them for 0) and their observed raw gathers."""
    k = len(pred) if samples == 0 else min(len(pred), samples)
    simulated = physics.simulate(physics_velocity(pred[:k], normalization, physics))
    return physics.misfit(simulated, observed[:k].float())


@dataclass
class BatchLoss:
    """A batch's loss and the terms it is made of (``None`` for a term not used)."""

    total: torch.Tensor
    label: torch.Tensor | None
    physics: torch.Tensor | None


def batch_loss(pred: torch.Tensor, observed: torch.Tensor, y: torch.Tensor | None, *, lambda_ssim: float,
               lambda_physics: float, physics_samples: int, normalization: Normalization,
               physics: Physics | None) -> BatchLoss:
    """The loss of one batch (see the module's formula).

    Args:
        pred: the network's output ``(B, 1, Z, X)``, float32, normalised.
        observed: the batch's raw gathers ``(B, S, T, R)``.
        y: the normalised labels, or ``None`` to train without them.
        lambda_ssim: weight of the structural term of the label loss.
        lambda_physics: weight of the physics term.
        physics_samples: samples of the batch the physics term simulates (0: all).
        normalization: the dataset's scaling.
        physics: the forward model, or ``None`` without a physics term.
    """
    loss = pred.new_zeros(())
    label = misfit = None
    if y is not None:
        label = label_loss(pred, y, lambda_ssim=lambda_ssim)
        loss = loss + label
    if physics is not None:
        misfit = physics_loss(pred, observed, normalization=normalization, physics=physics, samples=physics_samples)
        loss = loss + lambda_physics * misfit
    return BatchLoss(total=loss, label=label, physics=misfit)

"""The pieces of a refinement objective besides the data misfit: preconditioning and regularisation.

Surface acquisition (OpenFWI's: sources and receivers in the top row) puts most of the FWI
gradient's energy at the sources and receivers themselves, where a velocity change explains
little of the data but dominates every step; a network's prediction is also least wrong
there. :class:`Preconditioner` mutes those rows, can boost the weakly illuminated deep part
and smooths the update to the scale the wavelengths resolve. Gradient-descent steps apply
it to the gradient; :mod:`fwi_plugins.engine.refinement.lbfgs` optimises through it as a change
of variables, so the quasi-Newton curvature pairs and the line search stay consistent.

:func:`prior_penalty` ties the model to the start (the network's prediction) where the data
do not ask for a change; :func:`total_variation` favours blocky models with sharp interfaces,
as OpenFWI's layered and faulted maps are; :func:`sobolev_penalty` (the squared gradient)
favours smooth ones and punishes streaks hardest. All are in units of the velocity range so their
weights do not depend on the survey.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .filters import gaussian_blur

__all__ = ["Preconditioner", "prior_penalty", "sobolev_penalty", "total_variation"]


def _blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    return gaussian_blur(images, sigma) if sigma > 0 else images


@dataclass(frozen=True)
class Preconditioner:
    """A linear, diagonal-then-smoothing operator on velocity updates ``(N, 1, Z, X)``.

    Attributes:
        mute: rows from the top whose update is zero (sources and receivers at the
            surface: 0 keeps every row). A cosine taper over as many rows again follows.
        depth_power: the update of row ``z`` is scaled by ``((z + 1) / Z) ** depth_power``
            (0: no scaling), which offsets the geometric spreading that weakens the gradient
            with depth.
        smooth: standard deviation in cells of a Gaussian that smooths the update (0: none).
    """

    mute: int = 0
    depth_power: float = 0.0
    smooth: float = 0.0

    @property
    def identity(self) -> bool:
        return self.mute == 0 and self.depth_power == 0 and self.smooth == 0

    def weights(self, nz: int, *, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The depth weight of each row, ``(Z, 1)``: 0 in the muted rows, 1 from the taper's end."""
        z = torch.arange(nz, device=device, dtype=torch.float64)
        w = ((z + 1) / nz).pow(self.depth_power) if self.depth_power else torch.ones_like(z)
        if self.mute > 0:
            # Zero in the muted rows, then half a cosine over the next `mute` rows: a hard
            # edge would print the mute line into the model.
            ramp = ((z - self.mute + 1) / (self.mute + 1)).clamp(0.0, 1.0)
            w = w * (0.5 - 0.5 * torch.cos(math.pi * ramp))
        return w.to(dtype).view(nz, 1)

    def gradient(self, grad: torch.Tensor) -> torch.Tensor:
        """The preconditioned gradient for a descent step: smoothed, then weighted by depth."""
        if self.identity:
            return grad
        return _blur(grad, self.smooth) * self.weights(grad.shape[-2], device=grad.device, dtype=grad.dtype)

    def parameterize(self, u: torch.Tensor) -> torch.Tensor:
        """The model update ``P u`` of a change of variables, ``P = sqrt(W) G``.

        The steepest-descent direction in ``u`` maps to the update ``P P^T g``; with the
        Gaussian ``G`` of width ``smooth / sqrt(2)`` (two of them make one of width
        ``smooth``) and the square root of the depth weights ``W``, that is the
        :meth:`gradient` of a descent step, up to edge effects.
        """
        if self.identity:
            return u
        w = self.weights(u.shape[-2], device=u.device, dtype=u.dtype).sqrt()
        return w * _blur(u, self.smooth / math.sqrt(2.0))


def prior_penalty(model: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of each model from its start, per model ``(N,)``; both in range units."""
    return (model - start).square().flatten(1).mean(1)


def total_variation(model: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Isotropic total variation per model ``(N,)``: mean gradient magnitude in range units per cell.

    ``eps`` (range units) rounds the kink at zero so the gradient stays defined in flat regions.
    """
    dz = model[..., 1:, :-1] - model[..., :-1, :-1]
    dx = model[..., :-1, 1:] - model[..., :-1, :-1]
    return (dz.square() + dx.square() + eps**2).sqrt().flatten(1).mean(1)


def sobolev_penalty(model: torch.Tensor) -> torch.Tensor:
    """Mean squared gradient per model ``(N,)`` (range units per cell, squared): favours smooth models."""
    dz = model[..., 1:, :-1] - model[..., :-1, :-1]
    dx = model[..., :-1, 1:] - model[..., :-1, :-1]
    return (dz.square() + dx.square()).flatten(1).mean(1)

"""The torchwave gradient with respect to velocity: against central differences and against Deepwave.

torchwave's gradient is autograd through its own time loop, so central differences check that
nothing on the way cuts or corrupts the graph (a detached term, an in-place write autograd does
not see); a wrong scheme differentiated consistently passes that check, which is why the same
gradient is also held to Deepwave's hand-written adjoint of the same scheme.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fwi_plugins import api
from fwi_plugins.survey import Survey

SURVEY = Survey.small(nz=20, nx=24, nt=100, n_sources=2, pml_width=8)
OPTIONS = {"accuracy": 4, "pml_width": 8}
#: Central differences at a 0.1 m/s step in float64: worst relative error measured 7e-7 over
#: the directions below (1e-8 where <grad, d> is not small), so 1e-5 leaves a margin of ten.
FD_RTOL = 1e-5
#: torchwave against Deepwave, both float64: 3e-6 relative L2 error measured.
DEEPWAVE_RTOL = 1e-4


def smooth_direction(generator: torch.Generator) -> torch.Tensor:
    """A random perturbation smoothed over a few cells, largest entry 1 (m/s per unit step)."""
    noise = torch.randn(1, 1, SURVEY.nz, SURVEY.nx, generator=generator, dtype=torch.float64)
    taps = torch.exp(-torch.arange(-4, 5, dtype=torch.float64) ** 2 / 8.0)
    kernel = (taps[:, None] * taps[None, :] / taps.sum() ** 2).view(1, 1, 9, 9)
    smooth = F.conv2d(F.pad(noise, (4, 4, 4, 4), mode="replicate"), kernel)
    return smooth / smooth.abs().max()


def setting(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A velocity increasing with depth, and data observed in a smoothly perturbed one (float64)."""
    depth = torch.linspace(0.0, 1.0, SURVEY.nz, dtype=torch.float64).view(1, 1, -1, 1)
    velocity = (2000.0 + 1500.0 * depth).expand(1, 1, SURVEY.nz, SURVEY.nx).clone()
    truth = velocity + 300.0 * smooth_direction(generator)
    return velocity, truth


def misfit_and_gradient(name: str, velocity: torch.Tensor, truth: torch.Tensor):
    physics = api.build_physics(name, OPTIONS, survey=SURVEY)
    observed = physics.simulate(truth).detach()

    def misfit(v: torch.Tensor) -> torch.Tensor:
        return physics.misfit(physics.simulate(v), observed)

    v = velocity.clone().requires_grad_(True)
    misfit(v).backward()
    assert v.grad is not None and v.grad.dtype == torch.float64
    return misfit, v.grad


def test_gradient_matches_central_differences_along_smooth_directions():
    generator = torch.Generator().manual_seed(0)
    velocity, truth = setting(generator)
    misfit, gradient = misfit_and_gradient("torchwave", velocity, truth)
    assert gradient.abs().max() > 0
    step = 0.1  # m/s: truncation O(step^2) far below rounding of the float64 misfit
    for _ in range(3):
        direction = smooth_direction(generator)
        with torch.no_grad():
            numeric = (misfit(velocity + step * direction) - misfit(velocity - step * direction)) / (2 * step)
        analytic = (gradient * direction).sum()
        assert torch.isclose(analytic, numeric, rtol=FD_RTOL, atol=0.0), \
            f"adjoint {analytic.item():.9e} vs central differences {numeric.item():.9e}"


def test_gradient_matches_deepwave():
    pytest.importorskip("deepwave")
    velocity, truth = setting(torch.Generator().manual_seed(0))
    _, ours = misfit_and_gradient("torchwave", velocity, truth)
    _, theirs = misfit_and_gradient("deepwave", velocity, truth)
    error = float((ours - theirs).norm() / theirs.norm())
    assert error < DEEPWAVE_RTOL, f"relative L2 error {error:.2e} between the torchwave and deepwave gradients"

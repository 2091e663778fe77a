"""The gradient with respect to velocity against finite differences."""

from __future__ import annotations

import torch

from fwi_plugins.survey import Survey


def test_velocity_gradient_matches_central_differences():
    from fwi_deepwave.options import DeepwaveOptions
    from fwi_deepwave.physics import build

    survey = Survey.small(nz=12, nx=14, nt=120, n_sources=2, pml_width=8)
    physics = build(DeepwaveOptions(accuracy=4), survey=survey)
    generator = torch.Generator().manual_seed(0)
    # float64 throughout, so the finite-difference error is the O(h^2) truncation alone.
    velocity = 2500.0 + 200.0 * torch.rand(1, 1, survey.nz, survey.nx, generator=generator, dtype=torch.float64)
    observed = physics.simulate(velocity + 50.0).detach()

    def loss(v: torch.Tensor) -> torch.Tensor:
        return physics.misfit(physics.simulate(v), observed)

    v = velocity.clone().requires_grad_(True)
    loss(v).backward()
    gradient = v.grad
    assert gradient is not None and gradient.dtype == torch.float64
    assert gradient.abs().max() > 0

    direction = torch.randn(velocity.shape, generator=generator, dtype=torch.float64)
    step = 1.0  # m/s: small against 2500 m/s, large against float64 rounding
    with torch.no_grad():
        numeric = (loss(velocity + step * direction) - loss(velocity - step * direction)) / (2 * step)
    analytic = (gradient * direction).sum()
    assert torch.isclose(analytic, numeric, rtol=1e-3), f"adjoint {analytic.item():.6e} vs FD {numeric.item():.6e}"

    # And cell by cell for the three cells with the largest gradient.
    for index in gradient.flatten().abs().topk(3).indices:
        e = torch.zeros(velocity.numel(), dtype=torch.float64)
        e[index] = 1.0
        e = e.view_as(velocity)
        with torch.no_grad():
            fd = (loss(velocity + step * e) - loss(velocity - step * e)) / (2 * step)
        assert torch.isclose(gradient.flatten()[index], fd, rtol=1e-2), (index, gradient.flatten()[index], fd)

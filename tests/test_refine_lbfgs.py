"""L-BFGS refinement and its preconditioning, against independent references on tiny problems.

A quadratic has its minimiser from a linear solve; a linear stand-in physics makes the data
misfit a least-squares problem whose minimiser is the true model; the preconditioner's change
of variables is checked against a plain Gaussian blur written here.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from fwi_plugins.engine.refinement.inputs import SHAPING_DEFAULTS
from fwi_plugins.engine.refinement.refine import refine
from fwi_plugins.engine.refinement.lbfgs import lbfgs_minimize
from fwi_plugins.engine.refinement.terms import Preconditioner, prior_penalty, total_variation
from fwi_plugins.errors import OptionError
from fwi_plugins.survey import Survey
from fwi_plugins.testing import LinearPhysics as _LinearPhysics

SURVEY = Survey.small(nz=8, nx=8, nt=64, n_sources=2, dt=0.004)
#: No shaping of the update: the raw gradient, whatever the step's defaults.
RAW = {"mute": 0, "smooth": 0.0, "depth_power": 0.0, "tv": 0.0}

torch.set_num_threads(1)


class LinearPhysics(_LinearPhysics):
    """The shared linear stand-in on this module's survey."""

    def __init__(self, survey: Survey = SURVEY) -> None:
        super().__init__(survey)


def quadratic(n: int = 20, condition: float = 100.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """An SPD matrix with eigenvalues from 1 to ``condition`` and a right-hand side."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    a = q @ torch.diag(torch.logspace(0, math.log10(condition), n, dtype=torch.float64)) @ q.T
    return a, torch.randn(n, generator=g, dtype=torch.float64)


def test_lbfgs_finds_the_minimiser_of_a_quadratic_from_a_linear_solve():
    a, b = quadratic()
    calls = []
    outcome = lbfgs_minimize(lambda x: 0.5 * x @ a @ x - b @ x, torch.zeros(20, dtype=torch.float64),
                             max_evaluations=80, first_step=0.1, on_evaluation=lambda x, v: calls.append(v))
    expected = np.linalg.solve(a.numpy(), b.numpy())
    np.testing.assert_allclose(outcome.x.numpy(), expected, atol=1e-5)
    assert outcome.evaluations == len(calls) <= 80
    assert outcome.value == min(calls)


def test_lbfgs_keeps_the_best_point_evaluated_and_honours_its_budgets():
    a, b = quadratic(seed=1)
    values: list[float] = []
    points: list[torch.Tensor] = []

    def record(x: torch.Tensor, v: float) -> None:
        values.append(v)
        points.append(x.clone())

    outcome = lbfgs_minimize(lambda x: 0.5 * x @ a @ x - b @ x, torch.zeros(20, dtype=torch.float64),
                             max_evaluations=7, first_step=0.1, on_evaluation=record)
    assert outcome.evaluations == len(values) == 7
    best = int(np.argmin(values))
    torch.testing.assert_close(outcome.x, points[best])
    # The first trial step moves each entry by first_step on average.
    assert abs(float((points[1] - points[0]).abs().mean()) - 0.1) < 1e-9
    # A deadline already past still allows the first evaluation, and no other.
    late = lbfgs_minimize(lambda x: 0.5 * x @ a @ x - b @ x, torch.zeros(20, dtype=torch.float64),
                          max_evaluations=50, first_step=0.1, deadline=time.perf_counter() - 1)
    assert late.evaluations == 1


def reference_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """A 2-D Gaussian, as one dense kernel with zero padding (differs from reflection only at the edges)."""
    radius = int(math.ceil(4 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    return torch.nn.functional.conv2d(images, kernel[None, None], padding=radius)


def test_the_change_of_variables_gives_the_descent_steps_preconditioned_gradient():
    """P P^T g (the L-BFGS steepest-descent update) equals W * G_sigma(g) away from edges and mute."""
    nz, nx, sigma = 40, 40, 2.0
    pre = Preconditioner(mute=0, depth_power=0.0, smooth=sigma)
    g = torch.zeros(1, 1, nz, nx, dtype=torch.float64)
    g[..., 20, 20] = 1.0
    u = torch.zeros_like(g, requires_grad=True)
    (pt_g,) = torch.autograd.grad(pre.parameterize(u), u, grad_outputs=g)
    update = pre.parameterize(pt_g)
    inner = (..., slice(10, 30), slice(10, 30))
    torch.testing.assert_close(update[inner], reference_blur(g, sigma)[inner], atol=2e-4, rtol=0)
    torch.testing.assert_close(pre.gradient(g)[inner], reference_blur(g, sigma)[inner], atol=2e-4, rtol=0)


def test_preconditioner_weights_mute_taper_and_depth_scaling():
    w = Preconditioner(mute=3).weights(12)[:, 0].numpy()
    assert w.shape == (12,)
    np.testing.assert_array_equal(w[:3], 0.0)
    np.testing.assert_allclose(w[6:], 1.0)
    assert np.all(np.diff(w[2:7]) > 0)
    depth = Preconditioner(depth_power=1.0).weights(10)[:, 0].numpy()
    np.testing.assert_allclose(depth, (np.arange(10) + 1) / 10)
    both = Preconditioner(mute=2, depth_power=2.0).weights(10)[:, 0].numpy()
    np.testing.assert_allclose(both, Preconditioner(mute=2).weights(10)[:, 0].numpy() * depth**2, rtol=1e-6)


def test_total_variation_and_prior_against_hand_computed_values():
    z, x = torch.meshgrid(torch.arange(6.0), torch.arange(7.0), indexing="ij")
    ramp = (0.03 * x + 0.04 * z)[None, None]
    torch.testing.assert_close(total_variation(ramp, eps=0.0), torch.tensor([0.05]))
    start = torch.zeros(2, 1, 4, 4)
    moved = start.clone()
    moved[1, 0, 0, 0] = 0.4
    torch.testing.assert_close(prior_penalty(moved, start), torch.tensor([0.0, 0.16 / 16]))


def linear_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray, LinearPhysics]:
    rng = np.random.default_rng(3)
    truth = rng.uniform(2200, 3800, size=(2, 1, SURVEY.nz, SURVEY.nx)).astype(np.float32)
    start = (truth + rng.normal(0, 300, truth.shape)).astype(np.float32)
    physics = LinearPhysics()
    with torch.no_grad():
        observed = physics.simulate(torch.from_numpy(truth)).numpy()
    return truth, start, observed, physics


def test_lbfgs_refinement_solves_the_least_squares_problem_far_closer_than_descent():
    truth, start, observed, physics = linear_problem()
    lbfgs = refine(start, observed, physics=physics, iterations=40, step="lbfgs", progress=False, **RAW)
    descent = refine(start, observed, physics=physics, iterations=40, step="normalized", progress=False, **RAW)
    lbfgs_error, descent_error = np.abs(lbfgs.velocity - truth).mean(), np.abs(descent.velocity - truth).mean()
    assert lbfgs_error < 0.1 * descent_error
    assert lbfgs.reduction > 0.9999
    # It may stop early once converged: the budget is a most, not a quota.
    assert len(lbfgs.history) <= 40 and lbfgs.history[-1] < 1e-4 * lbfgs.history[0]


def test_lbfgs_refinement_respects_the_mute_the_bounds_and_the_prior():
    truth, start, observed, physics = linear_problem()
    muted = refine(start, observed, physics=physics, iterations=10, step="lbfgs", progress=False,
                   **dict(RAW, mute=2))
    np.testing.assert_allclose(muted.velocity[..., :2, :], start[..., :2, :], rtol=0, atol=1e-3)
    assert not np.allclose(muted.velocity[..., 4:, :], start[..., 4:, :])
    bounded = refine(start, observed, physics=physics, iterations=10, step="lbfgs", vmin=2500.0, vmax=3500.0,
                     progress=False, **RAW)
    assert bounded.velocity.min() >= 2500.0 and bounded.velocity.max() <= 3500.0
    free = np.abs(refine(start, observed, physics=physics, iterations=20, step="lbfgs", progress=False,
                         **RAW).velocity - start).mean()
    tied = np.abs(refine(start, observed, physics=physics, iterations=20, step="lbfgs", prior=1e4,
                         progress=False, **RAW).velocity - start).mean()
    assert tied < 0.2 * free


@pytest.mark.parametrize("step", ["normalized", "adam", "lbfgs"])
def test_total_variation_flattens_every_rule(step):
    _, start, observed, physics = linear_problem()
    scale = SURVEY.vmax - SURVEY.vmin
    plain = refine(start, observed, physics=physics, iterations=10, step=step, prior=1e-9,
                   progress=False, **RAW).velocity
    flat = refine(start, observed, physics=physics, iterations=10, step=step, progress=False,
                  **dict(RAW, tv=1.0)).velocity
    assert float(total_variation(torch.from_numpy(flat) / scale).mean()) < \
        float(total_variation(torch.from_numpy(plain) / scale).mean())


@pytest.mark.parametrize(("step", "expected"), [("lbfgs", [1, 2]), ("normalized", [1]), ("adam", [1])])
def test_a_time_limit_stops_after_the_first_evaluation(step, expected):
    """L-BFGS refines the models one after another, the descent rules all at once."""
    _, start, observed, physics = linear_problem()
    calls: list[int] = []
    refine(start, observed, physics=physics, iterations=50, step=step, time_limit=1e-9, progress=False,
           callback=lambda i, m, v: calls.append(i))
    assert calls == expected


@pytest.mark.parametrize(("option", "value", "message"), [
    ("mute", -1, "mute"), ("mute", 8, "mute"), ("mute", 1.5, "mute"), ("prior", math.nan, "prior"),
    ("tv", -1.0, "tv"), ("depth_power", math.inf, "depth_power"), ("time_limit", 0.0, "time_limit"),
])
def test_bad_new_options_are_named(option, value, message):
    _, start, observed, physics = linear_problem()
    with pytest.raises(OptionError, match=message):
        refine(start, observed, physics=physics, iterations=1, step="lbfgs", progress=False, **{option: value})


@pytest.mark.parametrize("step", ["lbfgs", "normalized"])
def test_shaping_left_unset_takes_the_steps_defaults(step):
    _, start, observed, physics = linear_problem()
    implicit = refine(start, observed, physics=physics, iterations=3, step=step, progress=False).velocity
    explicit = refine(start, observed, physics=physics, iterations=3, step=step, progress=False,
                      **SHAPING_DEFAULTS[step]).velocity
    np.testing.assert_array_equal(implicit, explicit)
    raw = refine(start, observed, physics=physics, iterations=3, step=step, progress=False, **RAW).velocity
    assert np.array_equal(implicit, raw) == (step == "normalized")


def test_lbfgs_shaping_defaults_are_the_measured_winner():
    assert SHAPING_DEFAULTS["lbfgs"] == {"mute": 3, "smooth": 2.0, "depth_power": 1.0, "tv": 0.02}
    assert all(v == 0 for k, d in SHAPING_DEFAULTS.items() if k != "lbfgs" for v in d.values())

"""Refinement through the deepwave physics recovers a layered model from a smoothed start."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fwi_plugins import api
from fwi_plugins.engine.refinement.filters import lowpass
from fwi_plugins.engine.refinement.refine import refine
from fwi_plugins.engine.refinement.result import RefineResult
from fwi_plugins.errors import DataError, OptionError

SURVEY = api.Survey.small(nz=24, nx=32, nt=200, n_sources=3)
#: Normalised steepest descent on the raw gradient, whatever refine's defaults.
DESCENT = {"step": "normalized", "mute": 0, "depth_power": 0.0, "tv": 0.0, "prior": 0.0}


def layered() -> np.ndarray:
    v = np.full((1, 1, SURVEY.nz, SURVEY.nx), 2000.0, np.float32)
    v[..., SURVEY.nz // 3 :, :] = 2500.0
    v[..., 2 * SURVEY.nz // 3 :, :] = 3000.0
    return v


def smoothed(v: np.ndarray, passes: int = 12) -> np.ndarray:
    """A blurred copy (repeated 3-point vertical averaging): the usual kind of starting model."""
    out = v.copy()
    for _ in range(passes):
        padded = np.concatenate([out[..., :1, :], out, out[..., -1:, :]], axis=-2)
        out = (padded[..., :-2, :] + padded[..., 1:-1, :] + padded[..., 2:, :]) / 3.0
    return out.astype(np.float32)


@pytest.mark.parametrize("step", ["normalized", "adam"])
def test_refinement_cuts_the_data_misfit_by_80_percent_and_moves_toward_the_truth(step):
    physics = api.build_physics("deepwave", survey=SURVEY)
    truth = layered()
    start = smoothed(truth)
    observed = physics.simulate(torch.from_numpy(truth)).detach()
    steps: list[int] = []
    result = refine(start, observed, physics=physics, iterations=30, lr=0.005, step=step, progress=False,
                    mute=0, smooth=0.0, depth_power=0.0, callback=lambda i, misfit, v: steps.append(i))

    assert isinstance(result, RefineResult)
    assert result.velocity.shape == start.shape and result.velocity.dtype == np.float32
    assert len(result.history) == 30 and steps == list(range(1, 31))
    assert result.final_misfit <= 0.2 * result.initial_misfit, result.to_dict()
    assert result.reduction >= 0.8
    error_before = np.abs(start - truth).mean()
    error_after = np.abs(result.velocity - truth).mean()
    assert error_after < 0.85 * error_before, (error_before, error_after)
    assert SURVEY.vmin <= result.velocity.min() and result.velocity.max() <= SURVEY.vmax


def test_bounds_hold_and_frequency_stages_split_the_iterations():
    physics = api.build_physics("deepwave", survey=SURVEY)
    observed = physics.simulate(torch.from_numpy(layered())).detach()
    start = np.full((SURVEY.nz, SURVEY.nx), 2400.0, np.float32)  # a bare 2D map is accepted too
    result = refine(start, observed[0], physics=physics, iterations=5, lr=0.2, vmin=2300.0, vmax=2600.0,
                    frequencies=(20, 8), progress=False)
    assert result.velocity.shape == start.shape
    assert result.velocity.min() >= 2300.0 and result.velocity.max() <= 2600.0
    assert result.stages == [(8.0, 2), (20.0, 3)]  # sorted low to high, the remainder to the last
    assert not np.allclose(result.velocity, start)


def test_lowpass_keeps_low_frequencies_and_removes_high_ones():
    dt, n = 0.002, 500
    t = torch.arange(n, dtype=torch.float64) * dt
    low = torch.sin(2 * torch.pi * 4.0 * t)
    high = torch.sin(2 * torch.pi * 60.0 * t)
    filtered = lowpass((low + high).view(1, 1, n, 1), 10.0, dt)[0, 0, :, 0]
    inner = slice(50, n - 50)  # away from the ends, where the finite record is cut
    assert torch.allclose(filtered[inner], low[inner], atol=0.02)


def test_bad_inputs_are_named():
    physics = api.build_physics("deepwave", survey=SURVEY)
    observed = torch.zeros(1, SURVEY.n_shots, SURVEY.nt, SURVEY.n_receivers)
    with pytest.raises(DataError, match="observed gathers"):
        refine(layered(), observed[..., :5], physics=physics, iterations=1, progress=False)
    with pytest.raises(DataError, match=r"2 initial model\(s\) but 1"):
        refine(np.concatenate([layered()] * 2), observed, physics=physics, iterations=1, progress=False)
    with pytest.raises(OptionError, match="step 'newton'"):
        refine(layered(), observed, physics=physics, iterations=1, step="newton", progress=False)
    with pytest.raises(OptionError, match="smooth"):
        refine(layered(), observed, physics=physics, iterations=1, smooth=-1.0, progress=False)
    with pytest.raises(OptionError, match="iterations"):
        refine(layered(), observed, physics=physics, iterations=0, progress=False)
    with pytest.raises(OptionError, match="vmin < vmax"):
        refine(layered(), observed, physics=physics, iterations=1, vmin=3000.0, vmax=2000.0, progress=False)


def test_normalized_step_moves_the_most_sensitive_cell_by_lr():
    physics = api.build_physics("deepwave", survey=SURVEY)
    observed = physics.simulate(torch.from_numpy(layered())).detach()
    start = smoothed(layered())
    result = refine(start, observed, physics=physics, iterations=1, lr=0.01, vmin=1500.0, vmax=4500.0,
                    smooth=0.0, progress=False, **DESCENT)
    change = np.abs(result.velocity - start)
    assert change.max() == pytest.approx(0.01 * 3000.0, rel=1e-4)
    # The update follows the gradient's shape: most cells move far less than the largest step.
    assert np.median(change) < 0.5 * change.max()


def test_gradient_smoothing_gives_a_smoother_update():
    physics = api.build_physics("deepwave", survey=SURVEY)
    observed = physics.simulate(torch.from_numpy(layered())).detach()
    start = smoothed(layered())

    def roughness(smooth: float) -> float:
        update = refine(start, observed, physics=physics, iterations=1, smooth=smooth, progress=False,
                        **DESCENT).velocity - start
        return float(np.abs(np.diff(update, axis=-1)).mean() + np.abs(np.diff(update, axis=-2)).mean()) / float(
            np.abs(update).max())

    assert roughness(2.0) < 0.85 * roughness(0.0)


def test_gaussian_blur_keeps_constants_and_shape():
    from fwi_plugins.engine.refinement.filters import gaussian_blur

    flat = torch.full((2, 1, 9, 12), 3.0)
    assert torch.allclose(gaussian_blur(flat, 1.5), flat)
    spike = torch.zeros(1, 1, 15, 15)
    spike[0, 0, 7, 7] = 1.0
    blurred = gaussian_blur(spike, 1.0)
    assert blurred.shape == spike.shape
    assert float(blurred.sum()) == pytest.approx(1.0, abs=1e-5) and float(blurred.max()) < 0.2

"""Refinement against a reference written from its documented definition.

The reference below implements, independently of :mod:`fwi_plugins.engine.refinement.refine`, what
its docstring states: the model is optimised in units of ``vmax - vmin``; each normalised
step moves every model's largest gradient entry by ``lr`` (per model, not per batch);
models are projected back into ``[vmin, vmax]``; with frequency continuation, simulated and
observed data both go through the same zero-phase low-pass (response 1 below the cutoff,
a cosine taper to 0 at 1.5 times it, applied on twice the trace length), with the
iterations split evenly between the cutoffs and the remainder given to the last.
A linear stand-in physics with broadband (white) traces makes every filter matter.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from fwi_plugins.engine.refinement.filters import lowpass
from fwi_plugins.engine.refinement.refine import refine
from fwi_plugins.survey import Survey
from fwi_plugins.testing import LinearPhysics as _LinearPhysics

torch.set_num_threads(1)

SURVEY = Survey.small(nz=8, nx=8, nt=64, n_sources=2, dt=0.004)
#: The rule the reference implements: normalised steepest descent on the raw gradient.
DESCENT = {"step": "normalized", "mute": 0, "smooth": 0.0, "depth_power": 0.0, "tv": 0.0, "prior": 0.0}


class LinearPhysics(_LinearPhysics):
    """The shared linear stand-in on this module's survey."""

    def __init__(self, survey: Survey = SURVEY) -> None:
        super().__init__(survey)


def reference_lowpass(data: torch.Tensor, cutoff: float, dt: float) -> torch.Tensor:
    """Along dim -2 (time): rfft on 2n samples, multiply by the taper, back, keep n."""
    n = data.shape[-2]
    freqs = np.fft.rfftfreq(2 * n, dt)
    response = np.where(freqs <= cutoff, 1.0,
                        np.where(freqs >= 1.5 * cutoff, 0.0,
                                 0.5 * (1 + np.cos(np.pi * (freqs - cutoff) / (0.5 * cutoff)))))
    spectrum = torch.fft.rfft(data, n=2 * n, dim=-2) * torch.as_tensor(response, dtype=data.dtype)[:, None]
    return torch.fft.irfft(spectrum, n=2 * n, dim=-2)[..., :n, :]


def reference_refine(v0: np.ndarray, observed: np.ndarray, physics: LinearPhysics, *, iterations: int, lr: float,
                     frequencies: tuple[float, ...] | None) -> tuple[np.ndarray, list[float]]:
    lo, hi = SURVEY.vmin, SURVEY.vmax
    scale = hi - lo
    if frequencies:
        base, extra = divmod(iterations, len(frequencies))
        stages = [(f, base + (extra if i == len(frequencies) - 1 else 0)) for i, f in enumerate(sorted(frequencies))]
    else:
        stages = [(None, iterations)]
    m = torch.from_numpy(np.clip(v0, lo, hi) / scale).float()
    d = torch.from_numpy(observed).float()
    history = []
    for cutoff, n in stages:
        for _ in range(n):
            m.requires_grad_(True)
            sim = physics.simulate(m * scale)
            if cutoff is None:
                loss = (sim - d).square().mean()
            else:
                low = reference_lowpass(sim, cutoff, SURVEY.dt) - reference_lowpass(d, cutoff, SURVEY.dt)
                loss = low.square().mean()
            (grad,) = torch.autograd.grad(loss, m)
            with torch.no_grad():
                m = m.detach().clone()
                for i in range(len(m)):
                    m[i] -= lr * grad[i] / grad[i].abs().max()
                m = m.clamp(lo / scale, hi / scale)
            history.append(float(loss.detach()))
    return (m * scale).numpy(), history


def models(seed: int = 0) -> tuple[np.ndarray, np.ndarray, LinearPhysics]:
    """Three starting models far from their truths by very different amounts."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(2000, 4000, size=(3, 1, SURVEY.nz, SURVEY.nx)).astype(np.float32)
    start = truth.copy()
    start[0] += 20.0
    start[1] -= 400.0
    start[2] += 1200.0 * rng.random(start[2].shape).astype(np.float32) - 600.0
    physics = LinearPhysics()
    with torch.no_grad():
        observed = physics.simulate(torch.from_numpy(truth)).numpy()
    return start, observed, physics


def test_lowpass_is_the_documented_tapered_filter():
    x = torch.randn(2, 3, SURVEY.nt, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for cutoff in (5.0, 20.0, 60.0):
        torch.testing.assert_close(lowpass(x, cutoff, SURVEY.dt), reference_lowpass(x, cutoff, SURVEY.dt))


@pytest.mark.parametrize("frequencies", [None, (6.0, 15.0)], ids=["full-band", "continuation"])
def test_refining_several_models_at_once_follows_the_reference(frequencies):
    start, observed, physics = models()
    result = refine(start, observed, physics=physics, iterations=5, lr=0.02, frequencies=frequencies,
                    progress=False, **DESCENT)
    expected, history = reference_refine(start, observed, physics, iterations=5, lr=0.02, frequencies=frequencies)
    np.testing.assert_allclose(result.velocity, expected, rtol=0, atol=0.05)  # m/s
    np.testing.assert_allclose(result.history, history, rtol=1e-4)
    if frequencies:
        assert result.stages == [(6.0, 2), (15.0, 3)]


def test_a_batch_refines_each_model_as_if_it_were_alone():
    start, observed, physics = models(seed=1)
    together = refine(start, observed, physics=physics, iterations=4, lr=0.02, progress=False,
                      **DESCENT).velocity
    for i in range(len(start)):
        alone = refine(start[i:i + 1], observed[i:i + 1], physics=physics, iterations=4, lr=0.02,
                       progress=False, **DESCENT).velocity
        np.testing.assert_allclose(together[i:i + 1], alone, rtol=0, atol=0.05)
    # Each model's largest move in the first step is lr of the velocity range (30 m/s here).
    one = refine(start, observed, physics=physics, iterations=1, lr=0.01, progress=False, **DESCENT).velocity
    moved = np.abs(one - np.clip(start, SURVEY.vmin, SURVEY.vmax)).reshape(len(start), -1).max(axis=1)
    np.testing.assert_allclose(moved, 0.01 * (SURVEY.vmax - SURVEY.vmin), rtol=1e-4)

"""Field-like data: another wavelet, amplitude scale and noise, matched by an estimated wavelet.

The observed gathers are simulated by calling deepwave directly with the true source (a
10 Hz wavelet turned 60 degrees in phase, 37 times louder than the survey's 15 Hz Ricker,
with noise): an independent recording the physics knows nothing about.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from fwi_plugins import api
from fwi_plugins.survey import Survey
from fwi_plugins.wavelet import estimate_wavelet, phase_rotate, ricker

SURVEY = Survey.small(nz=24, nx=36, nt=300, n_sources=3)
SCALE, PEAK, PHASE, DELAY, NOISE = 37.0, 10.0, 60.0, 0.15, 0.05


def true_wavelet() -> np.ndarray:
    return SCALE * phase_rotate(ricker(SURVEY.times(), PEAK, DELAY), PHASE)


def truth() -> np.ndarray:
    z = np.arange(SURVEY.nz)[:, None]
    x = np.arange(SURVEY.nx)[None, :]
    v = 2000.0 + 1500.0 * (z > 8 + 0.1 * x) + 700.0 * (z > 17)
    return v.astype(np.float32)[None, None]


def record(velocity: np.ndarray, wavelet: np.ndarray, *, seed: int = 0) -> np.ndarray:
    import deepwave

    s = SURVEY
    out = deepwave.scalar(
        torch.from_numpy(velocity[0, 0]).expand(s.n_shots, -1, -1).contiguous(), s.dx, s.dt,
        source_amplitudes=torch.tensor(wavelet, dtype=torch.float32).view(1, 1, -1).repeat(s.n_shots, 1, 1),
        source_locations=torch.tensor(s.sources).long().view(-1, 1, 2),
        receiver_locations=torch.tensor(s.receivers).long().view(1, -1, 2).repeat(s.n_shots, 1, 1),
        accuracy=4, pml_width=s.pml_width, pml_freq=s.peak_freq, max_vel=s.vmax)
    data = out.receiver_amplitudes.transpose(1, 2)[None].numpy()
    rng = np.random.default_rng(seed)
    return (data + NOISE * data.std() * rng.standard_normal(data.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def observed() -> np.ndarray:
    return record(truth(), true_wavelet())


def start() -> np.ndarray:
    return gaussian_filter(truth(), sigma=(0, 0, 4, 4)).astype(np.float32)


def test_estimated_wavelet_matches_the_true_one_in_a_smoothed_model(observed):
    physics = api.build_physics("deepwave", survey=SURVEY)
    est = estimate_wavelet(physics, start(), observed)
    got, want = est.wavelet[0], true_wavelet()
    # Phase and shape (correlation), and amplitude scale (norm ratio), of the whole wavelet.
    assert np.dot(got, want) / np.linalg.norm(got) / np.linalg.norm(want) > 0.99
    assert np.linalg.norm(got) / np.linalg.norm(want) == pytest.approx(1.0, abs=0.1)
    assert est.fit[0] > 0.9 > 0.0 > est.fit_unfiltered[0]
    # In the true model it is exact to the noise.
    exact = estimate_wavelet(physics, truth(), observed).wavelet[0]
    assert np.linalg.norm(exact - want) / np.linalg.norm(want) < 0.03


def test_refinement_with_the_estimated_wavelet_lowers_model_error_where_the_ricker_does_not(observed):
    v0, true = start(), truth()
    errors = {}
    for wavelet in ("survey", "estimate"):
        physics = api.build_physics("deepwave", {"wavelet": wavelet}, survey=SURVEY)
        result = api.refine(v0, observed, physics=physics, iterations=15, lr=0.02, step="normalized",
                            progress=False)
        errors[wavelet] = float(np.abs(result.velocity - true).mean())
    before = float(np.abs(v0 - true).mean())
    assert errors["estimate"] < 0.9 * before      # measured 240 -> 208 m/s
    assert errors["survey"] > before             # measured 240 -> 269 m/s


def test_the_physics_misfit_compares_like_with_like(observed):
    # The physics term of label-free adaptation: the true model must fit the recording
    # to the noise, whatever its wavelet and scale.
    v = torch.from_numpy(truth())
    plain = api.build_physics("deepwave", survey=SURVEY)
    matched = api.build_physics("deepwave", {"wavelet": "estimate"}, survey=SURVEY)
    obs = torch.from_numpy(observed)
    energy = float(obs.square().mean())
    assert float(matched.misfit(matched.simulate(v), obs)) < 2 * NOISE**2 * energy
    assert float(plain.misfit(plain.simulate(v), obs)) > 0.9 * energy


def test_wavelet_options_are_checked():
    from fwi_plugins.errors import OptionError

    for bad in ({"wavelet": "measured"}, {"wavelet_lag": "-1"}, {"wavelet_damping": "0"}):
        with pytest.raises(OptionError, match=next(iter(bad))):
            api.build_physics("deepwave", bad, survey=SURVEY)

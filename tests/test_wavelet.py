"""Matching filters and wavelets (fwi_plugins.wavelet) against numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fwi_plugins.errors import DataError, OptionError
from fwi_plugins.misfit_functions import misfit_l2
from fwi_plugins.wavelet import apply_filter, matched_misfit, matching_filter, phase_rotate, ricker


def _convolve(traces: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """``traces`` (..., T) convolved with taps on lags -m..m, the first T samples (numpy reference)."""
    m = len(taps) // 2
    full = np.apply_along_axis(lambda tr: np.convolve(tr, taps), -1, traces)
    return full[..., m:m + traces.shape[-1]]


def test_apply_filter_is_numpys_convolution_with_negative_lags():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((2, 3, 50, 4))          # (B, S, T, R)
    taps = rng.standard_normal((2, 9))
    got = apply_filter(torch.from_numpy(data), torch.from_numpy(taps)).numpy()
    for b in range(2):
        want = _convolve(np.moveaxis(data[b], 1, -1), taps[b])
        np.testing.assert_allclose(got[b], np.moveaxis(want, -1, 1), atol=1e-10)


def test_matching_filter_recovers_a_known_filter_per_sample():
    rng = np.random.default_rng(2)
    # Traces that start and end silent, so truncating the convolution loses nothing.
    sim = np.zeros((2, 4, 120, 6))
    sim[:, :, 20:100] = rng.standard_normal((2, 4, 80, 6))
    true = rng.standard_normal((2, 11))
    obs = np.stack([np.moveaxis(_convolve(np.moveaxis(sim[b], 1, -1), true[b]), -1, 1) for b in range(2)])
    got = matching_filter(torch.from_numpy(sim), torch.from_numpy(obs), max_lag=5, damping=1e-9).numpy()
    np.testing.assert_allclose(got, true, atol=1e-5)


def test_matching_filter_carries_the_amplitude_scale_and_ignores_independent_noise():
    rng = np.random.default_rng(3)
    sim = np.zeros((1, 8, 200, 10))
    sim[..., 30:170, :] = rng.standard_normal((1, 8, 140, 10))
    obs = -250.0 * sim + 0.5 * 250.0 * rng.standard_normal(sim.shape)   # SNR 2 per sample
    taps = matching_filter(torch.from_numpy(sim), torch.from_numpy(obs), max_lag=3).numpy()[0]
    assert taps[3] == pytest.approx(-250.0, rel=0.03)
    assert np.abs(np.delete(taps, 3)).max() < 0.03 * 250.0


def test_matched_misfit_is_zero_for_another_wavelet_and_its_gradient_holds_the_filter():
    t = np.arange(300) * 0.002
    # Gathers of one model recorded with two wavelets are the same Green's functions
    # convolved with each: a wavelet change the filter can express.
    green = np.zeros((1, 2, 300, 3))
    green[0, 0, 120, 0], green[0, 1, 150, 1], green[0, 1, 180, 2] = 1.0, -0.5, 0.7
    assumed = ricker(t, 15.0, 0.1)
    actual = 40.0 * phase_rotate(ricker(t, 15.0, 0.12), 30)
    def record(w):
        return np.moveaxis(np.apply_along_axis(lambda tr: np.convolve(tr, w)[:300], -1,
                                               np.moveaxis(green, 2, 3)), 3, 2)
    sim = torch.tensor(record(assumed), requires_grad=True)
    obs = torch.from_numpy(record(actual))
    compare = matched_misfit(misfit_l2, max_lag=60, damping=1e-8)
    value = compare(sim, obs)
    energy = float(obs.square().mean())
    assert float(value.detach()) < 1e-3 * energy
    assert float(misfit_l2(sim, obs).detach()) > 0.5 * energy
    value.backward()
    # Held constant, the filter makes the gradient that of |f * sim - obs|^2 for fixed f.
    taps = matching_filter(sim, obs, max_lag=60, damping=1e-8)
    fixed = sim.detach().clone().requires_grad_(True)
    misfit_l2(apply_filter(fixed, taps), obs).backward()
    torch.testing.assert_close(sim.grad, fixed.grad)


def test_phase_rotation_turns_a_cosine_into_a_sine():
    t = np.arange(2000) * 0.001
    taper = np.exp(-((t - 1.0) / 0.25) ** 2)
    cosine = taper * np.cos(2 * np.pi * 20 * t)
    rotated = phase_rotate(cosine, 90)
    np.testing.assert_allclose(rotated, taper * np.sin(2 * np.pi * 20 * t), atol=1e-3)


def test_bad_settings_and_shapes_are_named():
    a = torch.zeros(1, 2, 10, 3)
    with pytest.raises(DataError, match="shape"):
        matching_filter(a, torch.zeros(1, 2, 11, 3), max_lag=2)
    with pytest.raises(OptionError, match="shorter than the traces"):
        matching_filter(a, a, max_lag=10)
    with pytest.raises(OptionError, match="damping"):
        matching_filter(a, a, max_lag=2, damping=0.0)
    with pytest.raises(DataError, match="silent"):
        matching_filter(a, a + 1.0, max_lag=2)

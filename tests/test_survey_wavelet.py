"""The survey's source wavelet against the analytic Ricker wavelet."""

from __future__ import annotations

import numpy as np
import pytest

from fwi_plugins.survey import Survey


def ricker(t: np.ndarray, peak_freq: float, delay: float) -> np.ndarray:
    """``(1 - 2 pi^2 f^2 (t - t0)^2) exp(-pi^2 f^2 (t - t0)^2)``."""
    a = (np.pi * peak_freq * (t - delay)) ** 2
    return (1.0 - 2.0 * a) * np.exp(-a)


@pytest.mark.parametrize(("peak_freq", "dt", "delay"), [(15.0, 0.001, None), (8.0, 0.0005, None),
                                                        (25.0, 0.0005, 0.2)])
def test_wavelet_is_the_ricker_formula(peak_freq, dt, delay):
    survey = Survey.small(nt=400, peak_freq=peak_freq, dt=dt, wavelet_delay=delay)
    t = np.arange(400) * dt
    t0 = 1.5 / peak_freq if delay is None else delay
    samples = survey.wavelet_samples()
    assert samples.shape == (400,) and samples.dtype == np.float32
    np.testing.assert_allclose(samples, ricker(t, peak_freq, t0), atol=1e-6)


def test_openfwi_wavelet_peaks_at_its_stated_frequency_and_time():
    survey = Survey.openfwi()
    w = survey.wavelet_samples().astype(np.float64)
    assert survey.peak_freq == 15.0 and survey.dt == 0.001
    # The maximum is at the delay, 1.5 / 15 s = sample 100, with amplitude 1.
    assert int(np.argmax(w)) == 100 and w[100] == pytest.approx(1.0)
    # The amplitude spectrum peaks at the peak frequency (0.1 Hz bins after padding).
    spectrum = np.abs(np.fft.rfft(w, 10_000))
    freqs = np.fft.rfftfreq(10_000, survey.dt)
    assert freqs[np.argmax(spectrum)] == pytest.approx(15.0, abs=0.11)

"""The simulation against the analytic answer: a 2D homogeneous medium."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fwi_plugins.survey import Survey

special = pytest.importorskip("scipy.special")


def analytic_trace(wavelet: np.ndarray, *, dt: float, distance: float, speed: float, dx: float) -> np.ndarray:
    """Pressure at ``distance`` from a wavelet injected into one cell, by deepwave's convention.

    Deepwave adds ``-v^2 dt^2 w`` to one cell per step, i.e. solves
    ``lap(u) - u_tt / v^2 = dx^2 w(t) delta(x)``; the causal solution is ``dx^2`` times the
    wavelet convolved with the 2D Green's function, ``(i/4) H0^(2)(omega r / v)`` in the
    frequency domain (numpy's ``exp(+i omega t)`` convention).
    """
    n = 4 * wavelet.size  # padding: the 2D Green's function has a long tail
    spectrum = np.fft.rfft(wavelet, n)
    omega = 2 * np.pi * np.fft.rfftfreq(n, dt)
    green = np.zeros_like(spectrum)
    # The Ricker wavelet has no DC, where H0 is singular.
    green[1:] = 0.25j * special.hankel2(0, omega[1:] * distance / speed)
    return np.fft.irfft(dx * dx * green * spectrum, n)[: wavelet.size]


def test_homogeneous_trace_matches_the_2d_greens_function_with_exact_scaling():
    from fwi_deepwave.physics import build
    from fwi_deepwave.options import DeepwaveOptions

    speed, dx, pml = 2000.0, 5.0, 20
    survey = Survey(nz=80, nx=110, dx=dx, nt=500, dt=0.0005, sources=[(40, 30)], receivers=[(40, 60)],
                    peak_freq=15.0, pml_width=pml, vmin=1500.0, vmax=2500.0)
    physics = build(DeepwaveOptions(accuracy=8), survey=survey)
    simulated = physics.simulate(torch.full((1, 1, survey.nz, survey.nx), speed))[0, 0, :, 0].numpy()

    distance = 30 * dx
    expected = analytic_trace(survey.wavelet_samples().astype(np.float64), dt=survey.dt, distance=distance,
                              speed=speed, dx=dx)
    # Compare only up to the earliest possible echo from the model's edge (where the PML
    # begins): the shortest image path runs via the top or bottom edge, 40 cells away.
    echo_path = np.hypot(distance, 2 * 40 * dx)
    window = survey.times() < survey.delay + echo_path / speed - 1.0 / survey.peak_freq
    assert survey.times()[window][-1] > survey.delay + distance / speed + 0.05  # the direct wave is inside
    error = np.linalg.norm(simulated[window] - expected[window]) / np.linalg.norm(expected[window])
    assert error < 0.05, f"relative L2 error {error:.3%} against the analytic trace"
    # Exact scaling, no fitted amplitude: the peak amplitudes agree too.
    assert abs(simulated[window].max() / expected[window].max() - 1) < 0.02

"""Acquisition mapping against independent references: analytic signals and direct simulations.

Simulations run on tiny grids with a tiny "native" acquisition, so that windows, shot
selection and blending are checked in seconds; the OpenFWI native acquisition is
checked for exact identity.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fwi_plugins import api
from fwi_plugins.acquisition import AcquisitionMap, Grid, native_survey, predict_on_survey, resample_matrix
from fwi_plugins.data import Normalization
from fwi_plugins.errors import SurveyError
from fwi_plugins.survey import Survey, evenly_spaced

NATIVE = Survey.small(nz=16, nx=16, nt=200, n_sources=3)  # 10 m, 2 ms, 15 Hz; shots at 0, 8, 15


def _line(nx: int, *, shot_every: int = 1, nz: int = 16, dx: float = 10.0, nt: int = 200, dt: float = 0.002,
          peak_freq: float = 15.0) -> Survey:
    return Survey(nz=nz, nx=nx, dx=dx, nt=nt, dt=dt, peak_freq=peak_freq, pml_width=20,
                  sources=tuple((0.0, float(x)) for x in range(0, nx, shot_every)),
                  receivers=tuple((0.0, float(x)) for x in range(nx)), vmin=1500.0, vmax=4500.0)


def _simulate(velocity: np.ndarray, survey: Survey) -> np.ndarray:
    physics = api.build_physics("deepwave", survey=survey)
    with torch.no_grad():
        return physics.simulate(torch.from_numpy(velocity[None, None].astype(np.float32))).numpy()


def _layered(nz: int, nx: int, *, bump: bool = False) -> np.ndarray:
    v = np.repeat(np.linspace(1800.0, 3200.0, nz)[:, None], nx, axis=1)
    v[nz // 2:] += 400.0
    if bump:  # a lateral change, so that every window sees something else
        v[nz // 3: nz // 2, nx // 3: nx // 2] = 3800.0
    return v


def _ricker(t: np.ndarray, f: float, delay: float) -> np.ndarray:
    a = (np.pi * f * (t - delay)) ** 2
    return (1 - 2 * a) * np.exp(-a)


# -- time resampling -------------------------------------------------------------------
def test_resampling_reproduces_an_analytic_band_limited_signal():
    coarse = np.arange(500) * 0.004
    fine = np.arange(1900) * 0.001
    m = resample_matrix(0.004, 500, fine)
    resampled = m @ _ricker(coarse, 15.0, 0.3)
    assert np.abs(resampled - _ricker(fine, 15.0, 0.3)).max() < 1e-3


def test_resampling_suppresses_what_the_new_sampling_would_alias():
    fine = np.arange(4000) * 0.0005
    coarse = np.arange(1000) * 0.002  # Nyquist 250 Hz: a 300 Hz tone would alias to 200 Hz
    signal = np.sin(2 * np.pi * 20 * fine) + np.sin(2 * np.pi * 300 * fine)
    resampled = resample_matrix(0.0005, fine.size, coarse) @ signal
    interior = (coarse > 0.1) & (coarse < 1.9)
    assert np.abs(resampled - np.sin(2 * np.pi * 20 * coarse))[interior].max() < 0.01


# -- the plan ----------------------------------------------------------------------------
def test_the_native_acquisition_maps_onto_itself_exactly():
    mapping = AcquisitionMap(Survey.openfwi(), native_survey())
    assert mapping.is_identity and mapping.scale == 1.0 and mapping.n_windows == 1
    rng = np.random.default_rng(0)
    gathers = rng.standard_normal((2, 5, 1000, 70)).astype(np.float32)
    np.testing.assert_array_equal(mapping.gathers_to_native(gathers), gathers)
    velocity = rng.uniform(1500, 4500, (2, 1, 70, 70)).astype(np.float32)
    np.testing.assert_allclose(mapping.velocity_to_user(velocity), velocity, rtol=1e-6)


def test_the_issue_geometry_is_read_in_windows_at_the_scale_its_depth_needs():
    # 7 shots, 150 receivers, 1,500 samples at 1 ms, a 100 x 150 grid at 10 m.
    survey = Survey(nz=100, nx=150, dx=10.0, nt=1500, dt=0.001, sources=evenly_spaced(7, 150),
                    receivers=tuple((0.0, float(x)) for x in range(150)))
    mapping = AcquisitionMap(survey, native_survey())
    assert mapping.scale == pytest.approx(990 / 690)  # the depth sets it: 990 m seen as 690 m
    assert mapping.n_windows == 3 and mapping.windows[-1].start + mapping.window_width == pytest.approx(1490)


def test_a_stretched_survey_is_read_as_the_native_wavefield():
    # Every distance and time twice the native ones, the wavelet half as fast: the same physics.
    velocity = _layered(16, 16, bump=True)
    native = _simulate(velocity, NATIVE)
    stretched = Survey(nz=16, nx=16, dx=20.0, nt=400, dt=0.003, peak_freq=7.5, pml_width=20,
                       sources=NATIVE.sources, receivers=NATIVE.receivers)
    mapping = AcquisitionMap(stretched, NATIVE)
    assert mapping.scale == pytest.approx(2.0) and mapping.n_windows == 1
    mapped = mapping.gathers_to_native(_simulate(velocity, stretched))[0]
    # 2-D amplitudes change with the stretch; the waveforms must not.
    gain = float((mapped * native[0]).sum() / (mapped * mapped).sum())
    assert np.linalg.norm(gain * mapped - native[0]) < 0.03 * np.linalg.norm(native[0])


def test_a_prediction_is_written_back_stretched_like_the_survey():
    # At scale 2 a native cell is 20 m of the user's, in depth as across: on a 20 m grid the
    # native map comes back as it is, on a 10 m grid every other row and column is that map.
    stretched = Survey(nz=16, nx=16, dx=20.0, nt=400, dt=0.003, peak_freq=7.5, pml_width=20,
                       sources=NATIVE.sources, receivers=NATIVE.receivers)
    native = _layered(16, 16, bump=True)[None, None]
    mapping = AcquisitionMap(stretched, NATIVE)
    assert mapping.scale == pytest.approx(2.0) and mapping.n_windows == 1
    np.testing.assert_allclose(mapping.velocity_to_user(native), native, rtol=1e-6)
    fine = AcquisitionMap(stretched, NATIVE, grid=Grid(nz=31, nx=31, dx=10.0))
    np.testing.assert_allclose(fine.velocity_to_user(native)[..., ::2, ::2], native, rtol=1e-6)


def test_a_wide_line_is_read_in_windows_equal_to_simulating_each_window():
    velocity = _layered(16, 40, bump=True)
    survey = _line(40)
    mapping = AcquisitionMap(survey, NATIVE)
    starts = [w.start for w in mapping.windows]
    assert starts == pytest.approx([0, 60, 120, 180, 240])  # at least half a window of overlap
    mapped = mapping.gathers_to_native(_simulate(velocity, survey))
    for k, start in enumerate(starts):
        cell = int(round(start / 10))
        direct = Survey(nz=16, nx=40, dx=10.0, nt=200, dt=0.002, pml_width=20,
                        sources=tuple((0.0, cell + x) for _, x in NATIVE.sources),
                        receivers=tuple((0.0, float(cell + x)) for x in range(16)))
        expected = _simulate(velocity, direct)[0]
        # Equal up to the solver's float32 round-off between batches of 40 and of 3 shots.
        assert np.linalg.norm(mapped[k] - expected) < 2e-3 * np.linalg.norm(expected)


def test_shots_between_recorded_shots_are_blended_at_equal_offsets():
    # In a layered earth a gather depends on offset only: blending neighbours at equal
    # offsets must give the shot in between.
    velocity = _layered(16, 40)
    survey = _line(40, shot_every=3)
    mapping = AcquisitionMap(survey, NATIVE)
    mapped = mapping.gathers_to_native(_simulate(velocity, survey))
    k, start = 1, 60.0
    assert mapping.windows[k].start == pytest.approx(start)
    direct = Survey(nz=16, nx=40, dx=10.0, nt=200, dt=0.002, pml_width=20,
                    sources=tuple((0.0, 6 + x) for _, x in NATIVE.sources),
                    receivers=tuple((0.0, float(6 + x)) for x in range(16)))
    expected = _simulate(velocity, direct)[0]
    assert np.linalg.norm(mapped[k] - expected) < 0.05 * np.linalg.norm(expected)


class _Probe(torch.nn.Module):
    """A fixed, input-dependent map: each column's velocity follows that receiver's energy."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = x.abs().mean(dim=(1, 2))  # (B, R)
        column = torch.tanh(energy / energy.mean(dim=1, keepdim=True) - 1)
        depth = torch.linspace(-0.5, 0.5, 16)
        return (0.5 * column[:, None, None, :] + depth[None, None, :, None]).clamp(-1, 1)


def test_windows_are_predicted_one_by_one_and_blended_with_triangular_weights():
    velocity = _layered(16, 40, bump=True)
    survey = _line(40)
    gathers = _simulate(velocity, survey)
    norm = Normalization(data_min=-1.0, data_max=1.0, log_gathers=False)
    result = predict_on_survey(_Probe(), gathers, survey, native=NATIVE, normalization=norm, progress=False)
    assert result.shape == (1, 1, 16, 40)

    mapping = AcquisitionMap(survey, NATIVE)
    total, weight = np.zeros((16, 40)), np.zeros(40)
    for window in mapping.windows:  # each window simulated directly and predicted alone
        cell = int(round(window.start / 10))
        direct = Survey(nz=16, nx=40, dx=10.0, nt=200, dt=0.002, pml_width=20,
                        sources=tuple((0.0, cell + x) for _, x in NATIVE.sources),
                        receivers=tuple((0.0, float(cell + x)) for x in range(16)))
        with torch.no_grad():
            alone = norm.velocity_from_unit(_Probe()(torch.from_numpy(_simulate(velocity, direct)))).numpy()[0, 0]
        columns = np.arange(cell, cell + 16)
        u = (columns - cell) / 15
        w = np.minimum(u, 1 - u) + 1e-6  # falls to (almost) zero at the window's edges
        total[:, columns] += w * alone
        weight[columns] += w
    np.testing.assert_allclose(result[0, 0], total / weight, rtol=1e-4)


# -- refusals ------------------------------------------------------------------------------
@pytest.mark.parametrize(("survey", "grid", "message"), [
    (_line(40, nz=16, nt=100), None, "the recording holds"),  # too short to see 150 m deep at 10 m per cell
    (_line(40, nz=60), Grid(nz=60, nx=40, dx=10.0), "Depths the recording cannot reach"),
    (_line(12), None, "the receivers span 110 m"),
    (_line(40, shot_every=15), None, "from the nearest shot"),
    (_line(40), Grid(nz=16, nx=80, dx=10.0), "beyond the receiver line"),
])
def test_what_cannot_be_mapped_is_refused_saying_why(survey, grid, message):
    with pytest.raises(SurveyError, match=message):
        AcquisitionMap(survey, NATIVE, grid=grid)


def test_buried_receivers_are_refused():
    survey = Survey(nz=16, nx=40, dx=10.0, nt=200, dt=0.002, sources=((0.0, 0.0),),
                    receivers=tuple((5.0, float(x)) for x in range(40)))
    with pytest.raises(SurveyError, match="receiver 0 is 50 m below the surface"):
        AcquisitionMap(survey, NATIVE)

"""The convolutional forward model against answers worked out by hand."""

from __future__ import annotations

import pytest
import torch

from fwi_example.convolutional import ConvolutionalPhysics
from fwi_plugins import Survey


def _survey(**overrides) -> Survey:
    # 10 m cells, 2 ms samples, 15 Hz Ricker peaking at 0.1 s.
    return Survey.small(nz=30, nx=6, nt=200, n_sources=2, **overrides)


def _two_layers(survey: Survey, top: int, v1: float, v2: float) -> torch.Tensor:
    v = torch.full((1, 1, survey.nz, survey.nx), v1, dtype=torch.float64)
    v[..., top:, :] = v2
    return v


def test_two_layer_trace_matches_the_analytic_answer():
    survey = _survey()
    d = ConvolutionalPhysics(survey).simulate(_two_layers(survey, 10, 2000.0, 3000.0))
    # Interface at 100 m: two-way time 2 * 100 / 2000 = 0.1 s, plus the 0.1 s wavelet delay.
    peak = 0.1 / survey.dt + survey.delay / survey.dt
    trace = d[0, 0, :, 0]
    assert int(trace.argmax()) == round(peak)
    # Reflection coefficient (3000 - 2000) / (3000 + 2000) times the Ricker peak of 1.
    assert float(trace.max()) == pytest.approx(0.2, abs=1e-6)
    # Every shot and every receiver column sees the same flat-layer trace.
    assert torch.allclose(d, trace[None, None, :, None].expand_as(d))


def test_velocity_decrease_reverses_polarity():
    survey = _survey()
    # Interface at 150 m under 3000 m/s: 0.1 s two-way, on a sample, so the full -0.2 shows.
    d = ConvolutionalPhysics(survey).simulate(_two_layers(survey, 15, 3000.0, 2000.0))
    assert float(d[0, 0].min()) == pytest.approx(-0.2, abs=1e-6)


def test_receiver_between_columns_blends_its_neighbours():
    survey = _survey(receivers=((0.0, 1.0), (0.0, 1.5), (0.0, 2.0)))
    v = _two_layers(survey, 10, 2000.0, 3000.0)
    v[..., 2] = 2500.0  # column 2 is a homogeneous 2500 m/s: no reflection at all
    d = ConvolutionalPhysics(survey).simulate(v)
    assert d[0, 0, :, 2].abs().max() == 0
    assert d[0, 0, :, 1].abs().max() < d[0, 0, :, 0].abs().max()


def test_simulation_is_differentiable_in_interface_depth_and_contrast():
    survey = Survey.small(nz=6, nx=2, nt=60, n_sources=1)
    torch.manual_seed(0)
    v = (2000.0 + 1500.0 * torch.rand(1, 1, survey.nz, survey.nx, dtype=torch.float64)).requires_grad_()
    physics = ConvolutionalPhysics(survey)
    assert torch.autograd.gradcheck(lambda x: physics.simulate(x), (v,), eps=1e-3, atol=1e-6)


def test_envelope_misfit_ignores_polarity_that_l2_sees():
    survey = _survey()
    d = ConvolutionalPhysics(survey).simulate(_two_layers(survey, 10, 2000.0, 3000.0))
    assert float(ConvolutionalPhysics(survey, misfit="envelope").misfit(d, -d)) < 1e-10
    assert float(ConvolutionalPhysics(survey, misfit="l2").misfit(d, -d)) > 1e-4


def test_wrong_grid_is_refused_with_the_expected_shape():
    physics = ConvolutionalPhysics(_survey())
    with pytest.raises(ValueError, match=r"\(batch, 1, 30, 6\)"):
        physics.simulate(torch.full((1, 1, 20, 6), 2000.0))

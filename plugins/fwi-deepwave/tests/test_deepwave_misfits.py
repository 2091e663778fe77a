"""Data misfits: scalars, zero for identical data, differentiable, each with its invariance."""

from __future__ import annotations

import pytest
import torch

from fwi_plugins.errors import DataError, UnknownNameError
from fwi_plugins.misfit_functions import MISFITS, envelope
from fwi_plugins.physics import get_misfit


def ricker_gathers(shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    t = torch.arange(200, dtype=torch.float64).view(1, 1, -1, 1) * 0.002
    centres = 0.15 + 0.01 * torch.arange(6, dtype=torch.float64).view(1, 1, 1, -1) + shift
    a = (torch.pi * 15.0 * (t - centres)) ** 2
    return scale * (1 - 2 * a) * torch.exp(-a) * torch.ones(2, 3, 1, 1, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(MISFITS))
def test_misfit_is_a_differentiable_scalar_and_zero_for_identical_data(name):
    misfit = get_misfit(name)
    observed = ricker_gathers()
    assert misfit(observed, observed.clone()).ndim == 0
    assert float(misfit(observed, observed.clone())) == pytest.approx(0.0, abs=1e-9)
    predicted = ricker_gathers(shift=0.01).requires_grad_(True)
    loss = misfit(predicted, observed)
    assert loss.ndim == 0 and float(loss.detach()) > 0
    loss.backward()
    assert predicted.grad is not None and torch.isfinite(predicted.grad).all()
    assert predicted.grad.abs().max() > 0


@pytest.mark.parametrize("name", sorted(MISFITS))
def test_misfit_gradient_is_finite_on_silent_traces(name):
    predicted = torch.zeros(1, 1, 50, 4, dtype=torch.float64, requires_grad=True)
    get_misfit(name)(predicted, torch.zeros(1, 1, 50, 4, dtype=torch.float64)).backward()
    assert torch.isfinite(predicted.grad).all()


def test_amplitude_invariance_of_the_normalised_misfits():
    observed = ricker_gathers()
    for name in ("trace-l2", "ncc"):
        assert float(get_misfit(name)(ricker_gathers(scale=5.0), observed)) == pytest.approx(0.0, abs=1e-9)
    assert float(get_misfit("l2")(ricker_gathers(scale=5.0), observed)) > 0.1


def test_envelope_misfit_grows_steadily_where_l2_saturates():
    # Beyond half a period the waveform L2 stops growing with the time shift (cycle skipping);
    # the envelope misfit keeps growing, so its gradient still points the right way.
    observed = ricker_gathers()
    shifts = [0.02, 0.04, 0.06, 0.08]
    env = [float(get_misfit("envelope")(ricker_gathers(shift=s), observed)) for s in shifts]
    l2 = [float(get_misfit("l2")(ricker_gathers(shift=s), observed)) for s in shifts]
    assert all(a < b for a, b in zip(env, env[1:]))
    assert l2[2] < l2[1]  # a larger shift looks like a better fit to L2: a local minimum ahead


def test_envelope_of_a_cosine_is_flat():
    t = torch.arange(400, dtype=torch.float64) * 0.001
    signal = 2.0 * torch.cos(2 * torch.pi * 50.0 * t)  # a whole number of periods
    assert torch.allclose(envelope(signal.view(-1, 1)), torch.full((400, 1), 2.0, dtype=torch.float64), atol=1e-6)


def test_shape_mismatch_and_unknown_names_are_clear():
    with pytest.raises(DataError, match="shape"):
        get_misfit("l2")(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 5))
    with pytest.raises(UnknownNameError, match="Did you mean 'ncc'"):
        get_misfit("ncx")
    assert get_misfit("trace_l2") is get_misfit("trace-l2")

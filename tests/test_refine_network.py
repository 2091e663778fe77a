"""Refinement through the network (a per-survey adapter fitted to the data), on a tiny problem.

The physics is the linear stand-in, so every misfit here is recomputed independently as a
plain least-squares sum; the network's own prediction comes from ``api.predict``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fwi_plugins import api
from fwi_plugins.data import Normalization
from fwi_plugins.engine.refinement.network import refine_through_network
from fwi_plugins.errors import OptionError
from fwi_plugins.specs import IOShape
from fwi_plugins.survey import Survey
from fwi_plugins.testing import LinearPhysics

SURVEY = Survey.small(nz=8, nx=8, nt=32, n_sources=2, dt=0.004)
SHAPE = IOShape(shots=2, time=32, receivers=8, depth=8, width=8)
VIT = {"size": "tiny", "dim": 32, "depth": 1, "heads": 2, "decoder_dim": 8, "patch_time": 8, "patch_receiver": 4}

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    physics = LinearPhysics(SURVEY)
    rng = np.random.default_rng(3)
    truth = (2500.0 + 1500.0 * rng.random((2, 1, 8, 8))).astype(np.float32)
    with torch.no_grad():
        observed = physics.simulate(torch.from_numpy(truth)).numpy()
    model = api.build_backbone("vit", VIT, shape=SHAPE).eval()
    normalization = Normalization(vmin=1500.0, vmax=4500.0).fit_gathers(observed)
    return physics, observed, model, normalization


def least_squares(physics, velocity, observed):
    """The stand-in's misfit written out: mean squared difference of A (v - 3000) / 1000 and the data."""
    a = physics.operator.numpy().astype(np.float64)
    flat = (np.asarray(velocity, np.float64).reshape(len(velocity), -1) - 3000.0) / 1000.0
    return float(((flat @ a.T - observed.reshape(len(observed), -1)) ** 2).mean())


def clipped_prediction(model, observed, normalization):
    v = api.predict(model, observed, normalization=normalization, progress=False)
    return np.clip(v, SURVEY.vmin, SURVEY.vmax)


def test_the_first_evaluation_is_the_networks_own_prediction(problem):
    physics, observed, model, normalization = problem
    start = clipped_prediction(model, observed[:1], normalization)
    result = refine_through_network(model, observed[:1], physics=physics, normalization=normalization,
                                    backbone="vit", iterations=1, device="cpu")[0]
    assert result.initial_misfit == pytest.approx(least_squares(physics, start, observed[:1]), rel=1e-4)
    np.testing.assert_allclose(result.velocity, start, rtol=1e-5)


def test_it_lowers_the_misfit_and_returns_the_model_whose_misfit_it_reports(problem):
    physics, observed, model, normalization = problem
    results = refine_through_network(model, observed, physics=physics, normalization=normalization,
                                     backbone="vit", lr=0.02, iterations=25, device="cpu")
    assert len(results) == 2
    for i, result in enumerate(results):
        recomputed = least_squares(physics, result.velocity, observed[i:i + 1])
        assert result.final_misfit == pytest.approx(recomputed, rel=1e-4)
        assert result.final_misfit < 0.95 * result.initial_misfit
        assert result.final_misfit == pytest.approx(min(result.history), rel=1e-6)


def test_the_models_own_weights_are_left_untouched(problem):
    physics, observed, model, normalization = problem
    before = {k: v.clone() for k, v in model.state_dict().items()}
    refine_through_network(model, observed[:1], physics=physics, normalization=normalization, backbone="vit",
                           lr=0.05, iterations=3, device="cpu")
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(hasattr(m, "lora_A") for m in model.modules())


def test_a_strong_prior_holds_the_model_near_the_prediction(problem):
    physics, observed, model, normalization = problem
    start = clipped_prediction(model, observed[:1], normalization)
    free, held = (refine_through_network(model, observed[:1], physics=physics, normalization=normalization,
                                         backbone="vit", lr=0.02, iterations=15, prior=prior, device="cpu")[0]
                  for prior in (0.0, 1e4))
    assert np.abs(held.velocity - start).mean() < 0.5 * np.abs(free.velocity - start).mean()


def test_the_time_limit_ends_each_survey_early(problem):
    physics, observed, model, normalization = problem
    result = refine_through_network(model, observed[:1], physics=physics, normalization=normalization,
                                    backbone="vit", iterations=10_000, time_limit=0.0, device="cpu")[0]
    assert len(result.history) == 1


@pytest.mark.parametrize("kwargs", [{"iterations": 0}, {"lr": 0.0}, {"prior": -1.0}])
def test_bad_options_are_refused(problem, kwargs):
    physics, observed, model, normalization = problem
    with pytest.raises(OptionError):
        refine_through_network(model, observed[:1], physics=physics, normalization=normalization,
                               backbone="vit", device="cpu", **kwargs)


def test_a_model_without_a_card_needs_a_normalization(problem):
    physics, observed, model, _ = problem
    with pytest.raises(OptionError, match="normalization"):
        refine_through_network(model, observed[:1], physics=physics, backbone="vit", device="cpu")

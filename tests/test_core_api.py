"""The Python API end to end on a tiny survey: what another pipeline would call."""

from __future__ import annotations

import numpy as np
import pytest

from fwi_plugins import api
from fwi_plugins.errors import UnknownNameError
from fwi_plugins.specs import IOShape


def test_list_components_and_unknown_name():
    listing = api.list_components()
    assert "vit" in listing["backbone"] and "deepwave" in listing["physics"]
    with pytest.raises(UnknownNameError, match="Did you mean 'lora'"):
        api.get_spec("peft", "lorra")


def test_build_adapt_simulate_predict_refine_evaluate():
    survey = api.Survey.small(nz=16, nx=16, nt=120, n_sources=2)
    physics = api.build_physics("deepwave", survey=survey)
    velocity = np.full((2, 1, 16, 16), 2000.0, np.float32)
    velocity[:, :, 8:] = 2600.0
    gathers = api.simulate(velocity, physics)
    assert gathers.shape == (2, 2, 120, 16) and np.abs(gathers).max() > 0

    shape = IOShape(shots=2, time=120, receivers=16, depth=16, width=16)
    model = api.build_backbone("vit", {"size": "tiny", "dim": 32, "depth": 1, "heads": 2, "decoder_dim": 8},
                               shape=shape)
    total = sum(p.numel() for p in model.parameters())
    adapted = api.apply_peft(model, "lora", {"r": 2}, backbone="vit")
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    assert 0 < trainable < total

    from fwi_plugins.data import Normalization

    normalization = Normalization(vmin=1500.0, vmax=4500.0).fit_gathers(gathers)
    predicted = api.predict(adapted, gathers, normalization=normalization, progress=False)
    assert predicted.shape == (2, 1, 16, 16)
    assert predicted.min() >= 1500.0 - 1e-3 and predicted.max() <= 4500.0 + 1e-3  # tanh head, in m/s

    start = np.full_like(velocity, 2300.0)
    result = api.refine(start, gathers, physics=physics, iterations=5, progress=False)
    assert result.velocity.shape == velocity.shape
    assert result.final_misfit < result.initial_misfit

    perfect = api.evaluate(velocity, velocity)
    assert perfect["mae"] == 0 and perfect["ssim"] == pytest.approx(1.0)
    scores = api.evaluate(start, velocity)
    # A constant 2300 m/s against 2000/2600 m/s halves: 300 m/s everywhere.
    assert scores["mae_ms"] == pytest.approx(300.0, rel=1e-5)
    assert scores["mae"] == pytest.approx(300.0 / 1500.0, rel=1e-5)

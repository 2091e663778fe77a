"""A max_vel below the model's fastest cell is an error, not a silent clamp of the model."""

from __future__ import annotations

import pytest
import torch

from fwi_deepwave.options import DeepwaveOptions
from fwi_deepwave.physics import build
from fwi_plugins.errors import SurveyError
from fwi_plugins.survey import Survey


def test_max_vel_below_the_model_is_refused_naming_both():
    survey = Survey.small()
    physics = build(DeepwaveOptions(max_vel=2000.0), survey=survey)
    model = torch.full((1, 1, survey.nz, survey.nx), 1800.0)
    model[..., survey.nz // 2:, :] = 4000.0
    with pytest.raises(SurveyError, match=r"4000 m/s.*max_vel 2000"):
        physics.simulate(model)


def test_max_vel_at_or_above_the_model_simulates():
    survey = Survey.small()
    physics = build(DeepwaveOptions(max_vel=2000.0), survey=survey)
    out = physics.simulate(torch.full((1, 1, survey.nz, survey.nx), 2000.0))
    assert torch.isfinite(out).all()

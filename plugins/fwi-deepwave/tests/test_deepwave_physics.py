"""The deepwave physics through the registry: shapes, batching, chunking, options, errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from fwi_plugins import api
from fwi_plugins.errors import DataError, OptionError, SurveyError
from fwi_plugins.physics import Physics
from fwi_plugins.survey import Survey
from fwi_plugins.testing import check_component

SURVEY = Survey.small(nz=16, nx=20, nt=120, n_sources=3)


def two_layer(batch: int = 1, top: float = 2000.0, bottom: float = 3000.0) -> torch.Tensor:
    v = torch.full((batch, 1, SURVEY.nz, SURVEY.nx), top)
    v[:, :, SURVEY.nz // 2 :] = bottom
    return v


def test_registered_through_the_entry_point_with_provenance():
    spec = api.get_spec("physics", "deepwave")
    assert spec.provider is not None and spec.provider.distribution == "fwi-deepwave"
    assert spec.requires == ("deepwave",)
    names = {o.name for o in spec.describe_options()}
    assert {"accuracy", "pml_width", "max_vel", "misfit", "max_batch", "check"} <= names


def test_keeps_the_physics_contract():
    physics = check_component(api.get_spec("physics", "deepwave"))
    assert isinstance(physics, Physics)


def test_registration_does_not_import_deepwave_or_torch():
    code = ("import sys, fwi_deepwave.plugin, fwi_deepwave.options;"
            "print('deepwave' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_batch_equals_models_simulated_one_by_one_and_chunking_changes_nothing():
    physics = api.build_physics("deepwave", survey=SURVEY)
    chunked = api.build_physics("deepwave", {"max_batch": "2"}, survey=SURVEY)  # 6 shots -> 3 calls
    models = torch.cat([two_layer(1), two_layer(1, 2200.0, 2800.0)])
    batch = physics.simulate(models)
    assert batch.shape == (2, SURVEY.n_shots, SURVEY.nt, SURVEY.n_receivers)
    assert batch.dtype == torch.float32
    for i in range(2):
        torch.testing.assert_close(batch[i], physics.simulate(models[i : i + 1])[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked.simulate(models), batch, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(batch[0], batch[1])  # the two models really differ


def test_shots_are_where_the_survey_puts_them():
    physics = api.build_physics("deepwave", survey=SURVEY)
    data = physics.simulate(two_layer())[0]
    # The direct wave is strongest at the receiver above each source.
    first_arrivals = data.abs().amax(dim=1)  # (S, R)
    for shot, (_, x) in enumerate(SURVEY.sources):
        assert int(first_arrivals[shot].argmax()) == int(x)


def test_float64_in_float64_out():
    physics = api.build_physics("deepwave", survey=SURVEY)
    out = physics.simulate(two_layer().double())
    assert out.dtype == torch.float64


def test_options_are_validated_with_clear_messages():
    with pytest.raises(OptionError, match="accuracy"):
        api.build_physics("deepwave", {"accuracy": "3"}, survey=SURVEY)
    with pytest.raises(OptionError, match="misfit"):
        api.build_physics("deepwave", {"misfit": "l3"}, survey=SURVEY)
    with pytest.raises(OptionError, match="max_batch"):
        api.build_physics("deepwave", {"max_batch": "-1"}, survey=SURVEY)


def test_version_changes_with_settings_that_change_the_data():
    a = api.build_physics("deepwave", survey=SURVEY).version
    assert a == api.build_physics("deepwave", {"misfit": "ncc"}, survey=SURVEY).version
    assert a != api.build_physics("deepwave", {"accuracy": "8"}, survey=SURVEY).version
    assert a != api.build_physics("deepwave", {"pml_width": "10"}, survey=SURVEY).version


def test_bad_inputs_fail_before_simulating():
    physics = api.build_physics("deepwave", survey=SURVEY)
    with pytest.raises(DataError, match=r"\(batch, 1, depth, x\)"):
        physics.simulate(torch.full((SURVEY.nz, SURVEY.nx), 2000.0))
    with pytest.raises(SurveyError, match="grid"):
        physics.simulate(torch.full((1, 1, 10, 10), 2000.0))
    bad = two_layer()
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(SurveyError, match="NaN"):
        physics.simulate(bad)
    with pytest.raises(SurveyError, match="range"):
        physics.simulate(two_layer(top=2.0, bottom=3.0))


def test_unchecked_models_are_clamped_to_max_vel_so_the_time_step_stays_stable():
    physics = api.build_physics("deepwave", {"check": "false"}, survey=SURVEY)
    fast = physics.simulate(two_layer(bottom=20000.0))
    assert torch.isfinite(fast).all()
    torch.testing.assert_close(fast, physics.simulate(two_layer(bottom=SURVEY.vmax)))


def test_misfit_option_selects_the_function():
    physics = api.build_physics("deepwave", {"misfit": "ncc"}, survey=SURVEY)
    data = physics.simulate(two_layer())
    # ncc ignores amplitude: a scaled copy fits perfectly.
    assert float(physics.misfit(3.0 * data, data)) < 1e-6
    assert float(physics.misfit(data, data.roll(10, dims=2))) > 0.01


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_simulates_on_the_input_device():
    physics = api.build_physics("deepwave", survey=SURVEY)
    cpu = physics.simulate(two_layer())
    gpu = physics.simulate(two_layer().cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-4 * float(cpu.abs().max()))

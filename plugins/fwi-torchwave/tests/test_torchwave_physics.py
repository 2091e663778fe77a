"""The torchwave physics: registry, contract, and agreement with Deepwave's scalar propagator."""

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

# dt = 2 ms is too coarse for 4500 m/s at 10 m: both propagators take 3 internal steps per
# sample, so the agreement below covers the source and receiver resampling too.
SURVEY = Survey.small(nz=16, nx=20, nt=120, n_sources=3)


def layered(batch: int = 1, speeds: tuple[float, ...] = (2000.0, 3000.0, 4000.0)) -> torch.Tensor:
    v = torch.empty((batch, 1, SURVEY.nz, SURVEY.nx))
    for i, speed in enumerate(speeds):
        v[:, :, i * SURVEY.nz // len(speeds):] = speed
    return v


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_registered_through_the_entry_point_with_provenance():
    spec = api.get_spec("physics", "torchwave")
    assert spec.provider is not None and spec.provider.distribution == "fwi-torchwave"
    names = {o.name for o in spec.describe_options()}
    assert {"accuracy", "pml_width", "max_vel", "misfit", "max_batch", "check", "compile"} <= names


def test_keeps_the_physics_contract():
    physics = check_component(api.get_spec("physics", "torchwave"))
    assert isinstance(physics, Physics)


def test_registration_does_not_import_torch():
    code = "import sys, fwi_torchwave.plugin, fwi_torchwave.options; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


@pytest.mark.parametrize(("accuracy", "pml_width"), [(4, None), (2, 10), (8, 12)])
def test_gathers_match_deepwave(accuracy, pml_width):
    pytest.importorskip("deepwave")
    options = {"accuracy": accuracy, "pml_width": pml_width}
    models = torch.cat([layered(), layered(speeds=(2000.0, 2600.0, 3400.0, 4500.0))])
    ours = api.build_physics("torchwave", options, survey=SURVEY).simulate(models)
    theirs = api.build_physics("deepwave", options, survey=SURVEY).simulate(models)
    assert ours.shape == theirs.shape == (2, SURVEY.n_shots, SURVEY.nt, SURVEY.n_receivers)
    # Same scheme, same internal step, same resampling: only float32 rounding differs
    # (measured about 1e-5); the acceptance bound is 1 %.
    assert relative_error(ours, theirs) < 1e-3
    for shot in range(SURVEY.n_shots):
        assert relative_error(ours[:, shot], theirs[:, shot]) < 1e-3


def test_batch_equals_models_simulated_one_by_one_and_chunking_changes_nothing():
    physics = api.build_physics("torchwave", survey=SURVEY)
    chunked = api.build_physics("torchwave", {"max_batch": "2"}, survey=SURVEY)  # 6 shots -> 3 chunks
    models = torch.cat([layered(), layered(speeds=(2200.0, 2800.0))])
    batch = physics.simulate(models)
    assert batch.dtype == torch.float32
    for i in range(2):
        torch.testing.assert_close(batch[i], physics.simulate(models[i:i + 1])[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked.simulate(models), batch, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(batch[0], batch[1])


def test_direct_wave_is_strongest_above_each_source_and_float64_stays_float64():
    physics = api.build_physics("torchwave", survey=SURVEY)
    data = physics.simulate(layered().double())
    assert data.dtype == torch.float64
    first_arrivals = data[0].abs().amax(dim=1)  # (S, R)
    for shot, (_, x) in enumerate(SURVEY.sources):
        assert int(first_arrivals[shot].argmax()) == int(x)


def test_gradient_flows_to_the_velocity():
    survey = Survey.small(nz=12, nx=12, nt=60, n_sources=1)
    physics = api.build_physics("torchwave", {"pml_width": 6}, survey=survey)
    velocity = torch.full((1, 1, 12, 12), 2500.0, requires_grad=True)
    observed = physics.simulate(torch.full((1, 1, 12, 12), 2600.0)).detach()
    physics.misfit(physics.simulate(velocity), observed).backward()
    assert velocity.grad is not None and torch.isfinite(velocity.grad).all() and velocity.grad.abs().sum() > 0


def test_bad_inputs_and_options_fail_with_clear_messages():
    physics = api.build_physics("torchwave", survey=SURVEY)
    with pytest.raises(DataError, match=r"\(batch, 1, depth, x\)"):
        physics.simulate(torch.full((SURVEY.nz, SURVEY.nx), 2000.0))
    slower = api.build_physics("torchwave", {"max_vel": "4000"}, survey=SURVEY)
    with pytest.raises(SurveyError, match="max_vel"):
        slower.simulate(layered(speeds=(2000.0, 4200.0)))
    with pytest.raises(OptionError, match="accuracy"):
        api.build_physics("torchwave", {"accuracy": "3"}, survey=SURVEY)
    with pytest.raises(OptionError, match="compile"):
        api.build_physics("torchwave", {"compile": "maybe"}, survey=SURVEY)
    off_grid = Survey.small(nz=16, nx=20, nt=120, sources=((0.0, 2.5),))
    with pytest.raises(SurveyError, match=r"survey field 'sources'\[0\] = \(0, 2.5\): x = 2.5 is not a whole cell"):
        api.build_physics("torchwave", survey=off_grid)


def test_unchecked_models_are_clamped_to_max_vel():
    physics = api.build_physics("torchwave", {"check": "false"}, survey=SURVEY)
    fast = physics.simulate(layered(speeds=(2000.0, 20000.0)))
    assert torch.isfinite(fast).all()
    torch.testing.assert_close(fast, physics.simulate(layered(speeds=(2000.0, SURVEY.vmax))))


def test_version_changes_with_settings_that_change_the_data():
    a = api.build_physics("torchwave", survey=SURVEY).version
    assert a == api.build_physics("torchwave", {"misfit": "ncc", "compile": "off"}, survey=SURVEY).version
    assert a != api.build_physics("torchwave", {"accuracy": "8"}, survey=SURVEY).version
    assert a != api.build_physics("torchwave", {"pml_width": "10"}, survey=SURVEY).version


@pytest.mark.slow
def test_compiled_step_gives_the_same_gathers(recwarn):
    plain = api.build_physics("torchwave", {"compile": "off"}, survey=SURVEY).simulate(layered())
    fused = api.build_physics("torchwave", {"compile": "on"}, survey=SURVEY).simulate(layered())
    assert not [w for w in recwarn if "torch.compile failed" in str(w.message)], "compiling fell back"
    assert relative_error(fused, plain) < 1e-4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_simulates_on_the_input_device_and_matches_the_cpu():
    physics = api.build_physics("torchwave", survey=SURVEY)
    cpu = physics.simulate(layered())
    gpu = physics.simulate(layered().cuda())
    assert gpu.device.type == "cuda"
    assert relative_error(gpu.cpu(), cpu) < 1e-4


def test_a_failing_compiler_falls_back_to_plain_torch_once(monkeypatch):
    from fwi_torchwave import propagator

    attempts = []

    def broken(*args):
        def step(*fields):
            attempts.append(1)
            raise RuntimeError("no C compiler")
        return step

    monkeypatch.setattr(propagator, "compiled_step", broken)
    monkeypatch.setattr(propagator, "_COMPILE_FAILED", set())
    plain = api.build_physics("torchwave", {"compile": "off"}, survey=SURVEY).simulate(layered())
    physics = api.build_physics("torchwave", {"compile": "on"}, survey=SURVEY)
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*no C compiler"):
        first = physics.simulate(layered())
    second = physics.simulate(layered())
    assert attempts == [1]  # tried once, then plain torch for the rest of the process
    torch.testing.assert_close(first, plain)
    torch.testing.assert_close(second, plain)

"""Survey checks fail before simulating, with messages that say what is wrong and what to change."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fwi_plugins.errors import SurveyError
from fwi_plugins.survey import Survey


def test_openfwi_preset_geometry():
    s = Survey.openfwi()
    assert (s.nz, s.nx, s.dx, s.nt, s.dt, s.peak_freq) == (70, 70, 10.0, 1000, 0.001, 15.0)
    assert [x for _, x in s.sources] == [0.0, 17.0, 34.0, 52.0, 69.0]
    assert s.n_receivers == 70 and all(z == 0 for z, _ in s.receivers)
    s.check_velocity(np.full((1, 1, 70, 70), 3000.0))


def test_too_few_points_per_wavelength_names_the_numbers_and_the_fix():
    coarse = Survey.small(dx=40.0)
    with pytest.raises(SurveyError, match=r"grid points per shortest wavelength.*finer grid or a lower peak"):
        coarse.check_velocity(np.full((32, 32), 1500.0), accuracy=4)
    # A higher accuracy order needs fewer points: the same model passes at order 8 on a 20 m grid.
    fine_enough = Survey.small(dx=20.0)
    with pytest.raises(SurveyError, match="accuracy order 2"):
        fine_enough.check_velocity(np.full((32, 32), 1500.0), accuracy=2)
    fine_enough.check_velocity(np.full((32, 32), 1500.0), accuracy=8)


def test_velocity_outside_the_stated_range_hints_at_units():
    s = Survey.small()
    with pytest.raises(SurveyError, match=r"outside the survey's stated range 1500\.\.4500 m/s \(units off by 1000"):
        s.check_velocity(np.full((32, 32), 3.0))
    with pytest.raises(SurveyError, match="outside the survey's stated range"):
        s.check_velocity(np.full((32, 32), 5000.0))


@pytest.mark.parametrize(("value", "message"), [(np.nan, "NaN"), (np.inf, "infinite"), (-1.0, "non-positive"),
                                                (0.0, "non-positive")])
def test_nan_and_non_positive_velocities(value, message):
    v = np.full((1, 1, 32, 32), 2000.0)
    v[0, 0, 5, 5] = value
    with pytest.raises(SurveyError, match=message):
        Survey.small().check_velocity(v, name="model.npy")


def test_wrong_grid_names_both_shapes():
    with pytest.raises(SurveyError, match=r"model\.npy has grid \(30, 32\), the survey expects \(32, 32\)"):
        Survey.small().check_velocity(np.full((30, 32), 2000.0), name="model.npy")


def test_off_grid_sources_and_receivers():
    with pytest.raises(SurveyError, match=r"'sources'\[1\] = \(0\.0, 40\.0\) is off the 32 x 32 grid"):
        Survey.small(sources=[(0, 3), (0, 40)])
    with pytest.raises(SurveyError, match=r"'receivers'\[0\] = \(-1\.0, 3\.0\) is off"):
        Survey.small(receivers=[(-1, 3)])


def test_time_sampling_too_coarse_for_the_wavelet():
    with pytest.raises(SurveyError, match=r"dt=0\.02 s samples up to 25 Hz.*use dt <="):
        Survey.small(dt=0.02).check_velocity(np.full((32, 32), 2000.0))


def test_toml_and_json_round_trip(tmp_path):
    s = Survey.small(nz=20, nx=24, nt=100, n_sources=2)
    for suffix in (".toml", ".json"):
        assert Survey.load(s.save(tmp_path / f"survey{suffix}")) == s
    with pytest.raises(SurveyError, match="does not exist"):
        Survey.load(tmp_path / "missing.toml")


# -- fractional positions: deepwave spreads them over 4 cells each side (Hicks windows) -----
def _survey_file(tmp_path, receivers):
    path = tmp_path / "survey.json"
    Survey(nz=20, nx=20, dx=10.0, nt=200, dt=0.002, sources=((0.0, 10.0),), receivers=receivers,
           vmin=1500.0, vmax=4500.0).save(path)
    return path


@pytest.mark.parametrize("physics", ["deepwave", "torchwave"])
@pytest.mark.parametrize("receiver, field", [((0.0, 2.5), "x = 2.5"), ((0.0, 16.5), "x = 16.5"),
                                             ((0.5, 5.0), "z = 0.5")])
def test_simulate_refuses_a_fractional_receiver_it_cannot_place_naming_the_field(tmp_path, physics, receiver,
                                                                                   field):
    from click.testing import CliRunner

    from fwi_plugins.cli import main

    pytest.importorskip(f"fwi_{physics}")
    np.save(tmp_path / "v.npy", np.full((1, 1, 20, 20), 2000.0, np.float32))
    survey = _survey_file(tmp_path, ((0.0, 2.0), receiver))
    result = CliRunner().invoke(main, ["simulate", "--velocity", str(tmp_path / "v.npy"), "--survey", str(survey),
                                       "--physics", physics, "--out", str(tmp_path / "g.npy"), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert f"survey field 'receivers'[1] = ({receiver[0]:g}, {receiver[1]:g}): {field} is not a whole cell" \
        in result.output
    assert "Traceback" not in result.output and "DeepwaveRuntimeError" not in result.output


def test_deepwave_simulates_fractional_receivers_up_to_the_edge_of_what_it_accepts():
    import torch

    from fwi_plugins import api

    # In 20 cells a fractional coordinate may lie in [3, 16): the ends of that range simulate,
    # and each receiver's trace lies between those of the whole cells beside it.
    survey = Survey(nz=20, nx=20, dx=10.0, nt=200, dt=0.002, sources=((0.0, 10.0),),
                    receivers=((3.0, 3.0), (3.0, 3.5), (3.0, 4.0), (3.0, 15.0), (3.0, 15.99), (3.0, 16.0)),
                    vmin=1500.0, vmax=4500.0)
    gathers = api.build_physics("deepwave", survey=survey).simulate(torch.full((1, 1, 20, 20), 2000.0))
    peak = gathers[0, 0].abs().amax(dim=0)
    assert torch.isfinite(gathers).all()
    assert min(peak[0], peak[2]) < peak[1] < max(peak[0], peak[2])
    with pytest.raises(SurveyError, match=r"'receivers'\[0\] = \(3, 2.5\): x = 2.5 .* at least 3 and below 16"):
        api.build_physics("deepwave", survey=dataclasses.replace(survey, receivers=((3.0, 2.5),)))

"""A file's own metadata against what the user says, and a file's fields against each other.

Each case once gave a silently wrong answer: the survey's dt over the file's time step, a
time coordinate in milliseconds read as seconds, SEG-Y source positions that contradict the
offsets, a MATLAB stack in its own axis order read as another.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from fwi_plugins.cli import main
from fwi_plugins.data import io
from fwi_plugins.data.gathers_input import open_gathers
from fwi_plugins.errors import DataError
from fwi_plugins.survey import Survey, evenly_spaced


def _events(shots: int, nt: int, receivers: int, dt: float) -> np.ndarray:
    t = np.arange(nt)[:, None] * dt
    x = np.arange(receivers)[None, :] * 10.0
    shot = np.stack([np.exp(-((t - 0.1 - np.abs(x - s * 10.0 * receivers / shots) / 2000.0) / 0.01) ** 2)
                     for s in range(shots)])
    return shot[None].astype(np.float32)


def _write_nc(path, gathers, time, time_attrs, *, source_x=None, receiver_x=None):
    coords = {"time": ("time", time, time_attrs)}
    if source_x is not None:
        coords["source_x"] = ("shot", np.asarray(source_x), {"units": "m"})
        coords["receiver_x"] = ("receiver", np.asarray(receiver_x), {"units": "m"})
    xr.Dataset({"gathers": (("sample", "shot", "time", "receiver"), gathers)}, coords=coords).to_netcdf(
        path, engine="h5netcdf")
    return path


# -- the survey's dt against the file's time coordinate ------------------------------
def test_predict_refuses_a_survey_whose_dt_contradicts_the_files_time_coordinate(tmp_path):
    survey = Survey(nz=70, nx=120, dx=10.0, nt=1000, dt=0.002, sources=evenly_spaced(9, 120),
                    receivers=tuple((0.0, float(x)) for x in range(120)))
    survey.save(tmp_path / "s.toml")
    path = _write_nc(tmp_path / "g.nc", _events(9, 1000, 120, 0.001), np.arange(1000) * 0.001, {"units": "s"})
    result = CliRunner().invoke(main, ["predict", "--backbone", "vit", "--input", str(path), "--survey",
                                       str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1, result.output
    assert "its time coordinate gives dt = 0.001 s" in result.output
    assert "s.toml says dt = 0.002 s" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_survey_agreeing_with_the_file_passes_the_check(tmp_path):
    from fwi_plugins.data.gathers_input import check_input_survey

    survey = Survey.small(nz=8, nx=10, nt=40)
    io.write_gathers(tmp_path / "g.nc", np.zeros((1, survey.n_shots, 40, survey.n_receivers), np.float32),
                     survey=survey)
    io.write_gathers(tmp_path / "g.sgy", np.zeros((1, survey.n_shots, 40, survey.n_receivers), np.float32),
                     survey=survey)
    for name in ("g.nc", "g.sgy"):
        check_input_survey(tmp_path / name, survey, given="--survey small")
        with pytest.raises(DataError, match=rf"{name}: .*dt = {survey.dt:g} s, but --survey x says dt = 0.5 s"):
            check_input_survey(tmp_path / name, Survey.small(nz=8, nx=10, nt=40, dt=0.5), given="--survey x")


# -- time units ----------------------------------------------------------------------
@pytest.mark.parametrize("units", ["ms", "milliseconds", "MS"])
def test_a_time_coordinate_in_milliseconds_is_read_as_milliseconds(tmp_path, units):
    receiver_x = np.arange(60) * 10.0
    path = _write_nc(tmp_path / "g.nc", _events(3, 1000, 60, 0.001), np.arange(1000.0), {"units": units},
                     source_x=[0.0, 300.0, 590.0], receiver_x=receiver_x)
    _, attrs = io.read_gathers(path)
    assert attrs["dt"] == pytest.approx(0.001)
    assert io.survey_from_attrs(attrs).dt == pytest.approx(0.001)
    with open_gathers(path) as (_, lazy_attrs):  # the predict path
        assert lazy_attrs["dt"] == pytest.approx(0.001)
        assert io.survey_from_attrs(lazy_attrs).dt == pytest.approx(0.001)


def test_milliseconds_without_units_are_refused_naming_the_likely_mistake(tmp_path):
    path = _write_nc(tmp_path / "g.nc", _events(3, 1000, 60, 0.001), np.arange(1000.0), {},
                     source_x=[0.0, 300.0, 590.0], receiver_x=np.arange(60) * 10.0)
    with pytest.raises(DataError, match=r"g\.nc: coordinate 'time' has no units and steps by 1 .*probably in "
                                        r"milliseconds"):
        io.read_gathers(path)
    with pytest.raises(DataError, match="probably in milliseconds"), open_gathers(path):
        pass


def test_unknown_time_units_are_refused_and_plain_seconds_still_read(tmp_path):
    gathers = _events(3, 200, 60, 0.004)
    bad = _write_nc(tmp_path / "bad.nc", gathers, np.arange(200.0), {"units": "fortnights"})
    with pytest.raises(DataError, match=r"bad\.nc: coordinate 'time' is in 'fortnights'; expected seconds"):
        io.read_gathers(bad)
    unlabelled = _write_nc(tmp_path / "plain.nc", gathers, np.arange(200) * 0.004, {})
    assert io.read_gathers(unlabelled)[1]["dt"] == pytest.approx(0.004)


# -- MATLAB stacks: (N, Z, X) or MATLAB's (Z, X, N) ------------------------------------
def _layered(n: int, nz: int, nx: int) -> np.ndarray:
    """Smooth layered maps, each with its own interfaces: neighbours in a stack differ, cells do not."""
    rng = np.random.default_rng(7)
    z = np.arange(nz)[:, None]
    x = np.arange(nx)[None, :]
    maps = [1500 + 2500 * (z > rng.uniform(2, nz - 2) + rng.uniform(-0.3, 0.3) * x) * rng.uniform(0.3, 1)
            + 40 * z for _ in range(n)]
    return np.stack(maps).astype(np.float32)  # (N, Z, X)


def test_a_matlab_stack_in_matlab_order_is_refused_without_a_grid(tmp_path):
    from scipy.io import savemat

    maps = _layered(30, 12, 16)
    savemat(tmp_path / "stack.mat", {"vp": maps.transpose(1, 2, 0)})  # (Z, X, N) = (12, 16, 30)
    with pytest.raises(DataError, match=r"stack\.mat: variable 'vp' of shape \(12, 16, 30\) changes .* times more "
                                        r"along its third axis .*state the grid"):
        io.read_velocity(tmp_path / "stack.mat")
    square = _layered(30, 16, 16)
    savemat(tmp_path / "square.mat", {"vp": square.transpose(1, 2, 0)})
    with pytest.raises(DataError, match=r"square\.mat: .*\(16, 16, 30\) reads as 16 maps of 16 x 30 \(N, Z, X\) "
                                        r"or as 30 maps of 16 x 16 \(Z, X, N"):
        io.read_velocity(tmp_path / "square.mat")


def test_a_matlab_stack_follows_the_grid_the_file_or_the_survey_states(tmp_path):
    from scipy.io import savemat

    from fwi_plugins import api

    maps = _layered(30, 12, 16)
    savemat(tmp_path / "stated.mat", {"vp": maps.transpose(1, 2, 0), "nz": 12, "nx": 16})
    velocity, attrs = io.read_velocity(tmp_path / "stated.mat")
    np.testing.assert_array_equal(velocity[:, 0], maps)
    assert attrs["layout"] == "(Z, X, N)"
    savemat(tmp_path / "bare.mat", {"vp": maps.transpose(1, 2, 0)})
    np.testing.assert_array_equal(io.read_velocity(tmp_path / "bare.mat", grid=(12, 16))[0][:, 0], maps)
    Survey.small(nz=12, nx=16).save(tmp_path / "s.toml")
    ds = api.load_dataset("files", {"velocity": str(tmp_path / "bare.mat"), "survey": str(tmp_path / "s.toml"),
                                    "splits": (1.0, 0.0, 0.0)})
    np.testing.assert_array_equal(ds.velocity("train")[:, 0], maps)
    # The stack order Python writes is unchanged, and a stack that fits the grid neither way is refused.
    savemat(tmp_path / "python.mat", {"vp": maps})
    np.testing.assert_array_equal(io.read_velocity(tmp_path / "python.mat", grid=(12, 16))[0][:, 0], maps)
    assert io.read_velocity(tmp_path / "python.mat")[1]["layout"] == "(N, Z, X)"
    with pytest.raises(DataError, match=r"python\.mat: variable 'vp' of shape \(30, 12, 16\) is neither "
                                        r"\(N, Z, X\) nor \(Z, X, N\) of the 20 x 16 grid"):
        io.read_velocity(tmp_path / "python.mat", grid=(20, 16))

"""Inputs whose fault was misreported or hidden (issue 28).

Each case once gave a traceback, a wrong grid, or a message about something else: irregular
receiver coordinates one column short of their grid, a complex or empty ``vp`` reported as no
velocity at all, ``--dx inf`` failing deep in a SEG-Y writer, a damaged weights header read as
"no normalisation".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from fwi_plugins.acquisition import survey_from_coordinates
from fwi_plugins.data import io


# -- irregular receiver coordinates: the grid covers the last receiver ----------------
@pytest.mark.parametrize("receiver_x, columns", [([0.0, 10.0, 25.0], 4), ([0.0, 10.0, 20.0, 34.0], 5),
                                                 ([100.0, 110.0, 125.0], 4), ([0.0, 10.0, 20.0], 3),
                                                 ([0.0, 0.1 + 0.2, 0.6000000000000001], 3)])
def test_a_survey_from_irregular_coordinates_has_a_column_for_its_last_receiver(receiver_x, columns):
    survey, origin = survey_from_coordinates(source_x=[receiver_x[0]], receiver_x=receiver_x, dt=0.001, nt=10)
    assert survey.nx == columns
    assert survey.receivers[-1][1] == pytest.approx((receiver_x[-1] - origin) / survey.dx)
    assert survey.receivers[-1][1] <= survey.nx - 1


def test_netcdf_gathers_with_irregular_receivers_read_with_a_grid_that_holds_them(tmp_path):
    receiver_x = np.array([0.0, 10.0, 20.0, 35.0, 45.0, 65.0])  # span 6.5 cells of 10 m
    gathers = np.random.default_rng(0).normal(size=(1, 2, 50, receiver_x.size)).astype(np.float32)
    xr.Dataset({"gathers": (("sample", "shot", "time", "receiver"), gathers)},
               coords={"time": ("time", np.arange(50) * 0.001, {"units": "s"}),
                       "source_x": ("shot", np.array([0.0, 65.0]), {"units": "m"}),
                       "receiver_x": ("receiver", receiver_x, {"units": "m"})}).to_netcdf(
        tmp_path / "g.nc", engine="h5netcdf")
    _, attrs = io.read_gathers(tmp_path / "g.nc")
    survey = io.survey_from_attrs(attrs)
    assert survey is not None and (survey.dx, survey.nx) == (10.0, 8)
    assert [x for _, x in survey.receivers] == [0.0, 1.0, 2.0, 3.5, 4.5, 6.5]


# -- a .mat vp that cannot be a velocity is reported as what it is ---------------------
@pytest.mark.parametrize("vp, message", [
    (np.full((10, 10), 2000 + 1j, np.complex64), "variable 'vp' holds complex values (complex64)"),
    (np.zeros((0, 0)), "variable 'vp' is empty (shape (0, 0))"),
    (np.full((1, 1), 2000.0), "variable 'vp' is a single value (2000.0)"),
    (np.full((2, 3, 4, 5, 6), 2000.0), "variable 'vp' has 5 dimensions (shape (2, 3, 4, 5, 6))"),
])
def test_simulate_names_the_mat_file_the_variable_and_what_is_wrong_with_it(tmp_path, vp, message):
    from click.testing import CliRunner
    from scipy.io import savemat

    from fwi_plugins.cli import main

    savemat(tmp_path / "model.mat", {"vp": vp, "dx": 10.0})
    result = CliRunner().invoke(main, ["simulate", "--velocity", str(tmp_path / "model.mat"), "--out",
                                       str(tmp_path / "g.npy"), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert f"model.mat: {message}" in result.output
    assert "no velocity variable" not in result.output and "Traceback" not in result.output


def test_a_scalar_named_like_a_velocity_beside_the_map_is_still_passed_over(tmp_path):
    from scipy.io import savemat

    savemat(tmp_path / "model.mat", {"v": 3.0, "model": np.full((8, 9), 2000.0)})
    velocity, attrs = io.read_velocity(tmp_path / "model.mat")
    assert attrs["variable"] == "model" and velocity.shape[-2:] == (8, 9)


# -- --dx: a positive finite spacing in metres -----------------------------------------
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "-5", "0"])
def test_predict_names_dx_when_it_is_not_a_positive_finite_spacing(tmp_path, direct_waves, value):
    from click.testing import CliRunner

    from fwi_plugins.cli import main

    np.save(tmp_path / "g.npy", direct_waves)
    result = CliRunner().invoke(main, ["predict", "--backbone", "vit", "--input", str(tmp_path / "g.npy"),
                                       f"--dx={value}", "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2, result.output  # an option error
    assert f"--dx {float(value)}: expected a positive finite grid spacing in metres" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


# -- weights metadata: a damaged header is an error, a missing entry is no normalisation --
def _shipped_weights_with_damaged_header(path):
    import fwi_plugins

    data = bytearray((Path(fwi_plugins.__file__).parent / "weights" / "vit-tiny-openfwi.safetensors").read_bytes())
    size = int.from_bytes(data[:8], "little")
    at = 8 + bytes(data[8:8 + size]).index(b'"dtype":"F32"') + len('"dtype":"')
    data[at:at + 3] = b"Q99"  # the header stays JSON; safetensors can no longer read it
    path.write_bytes(bytes(data))
    return path


def test_predict_with_weights_whose_header_is_damaged_names_the_file_not_a_missing_normalisation(
        tmp_path, direct_waves):
    from click.testing import CliRunner

    from fwi_plugins.cli import main

    weights = _shipped_weights_with_damaged_header(tmp_path / "damaged.safetensors")
    np.save(tmp_path / "g.npy", direct_waves)
    result = CliRunner().invoke(main, ["predict", "--backbone", "vit", "--weights", str(weights), "--input",
                                       str(tmp_path / "g.npy"), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1, result.output
    assert f"{weights}: not a readable safetensors file, so its normalisation cannot be read" in result.output
    assert "no normalisation stored" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("entry, message", [("{not json", "metadata 'normalization' is not valid JSON"),
                                            ('{"kind": "minmax"}', "metadata 'normalization' does not hold vmin")])
def test_a_normalization_entry_that_is_not_one_is_an_error_naming_the_weights(tmp_path, entry, message):
    from safetensors.numpy import save_file

    from fwi_plugins.engine.jobs.predict_normalization import find_normalization
    from fwi_plugins.errors import DataError

    weights = tmp_path / "w.safetensors"
    save_file({"w": np.zeros(2, np.float32)}, str(weights), metadata={"normalization": entry})
    with pytest.raises(DataError, match=f"{weights}: {message}"):
        find_normalization(None, weights, None)
    save_file({"w": np.zeros(2, np.float32)}, str(weights), metadata={"name": "no normalisation here"})
    assert find_normalization(None, weights, None) == (None, "")

"""fwi predict on gathers of another acquisition: mapped onto the shipped model's, written back on the user's grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from fwi_plugins import api
from fwi_plugins.acquisition import AcquisitionMap, native_survey
from fwi_plugins.cli import main
from fwi_plugins.data.io import read_velocity, write_gathers
from fwi_plugins.survey import Survey, evenly_spaced

ORIGIN = 5000.0  # foreign coordinates: the line starts 5 km along


def _gathers(shots: int, nt: int, receivers: int, dt: float) -> np.ndarray:
    # Smooth, decaying events: something a network can read without NaNs.
    t = np.arange(nt)[:, None] * dt
    x = np.arange(receivers)[None, :] * 10.0
    shot = np.stack([np.exp(-((t - 0.1 - np.abs(x - s * 10.0 * receivers / shots) / 2000.0) / 0.01) ** 2)
                     for s in range(shots)])
    return shot[None].astype(np.float32)


def _write_nc(path, gathers, *, dt, source_x, receiver_x):
    n, s, t, r = gathers.shape
    ds = xr.Dataset({"gathers": (("sample", "shot", "time", "receiver"), gathers)},
                    coords={"time": ("time", np.arange(t) * dt, {"units": "s"}),
                            "source_x": ("shot", np.asarray(source_x), {"units": "m"}),
                            "receiver_x": ("receiver", np.asarray(receiver_x), {"units": "m"})})
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def test_the_issue_geometry_from_netcdf_coordinates_is_predicted_on_its_own_grid(tmp_path):
    # 7 shots, 150 receivers, 1,500 samples at 1 ms (the issue's example), coordinates only.
    gathers = _gathers(7, 1500, 150, 0.001)
    receiver_x = ORIGIN + np.arange(150) * 10.0
    source_x = ORIGIN + np.array([p[1] for p in evenly_spaced(7, 150)]) * 10.0
    path = _write_nc(tmp_path / "line.nc", gathers, dt=0.001, source_x=source_x, receiver_x=receiver_x)
    result = CliRunner().invoke(main, ["predict", "--backbone", "vit", "--input", str(path), "--out",
                                       str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    velocity, attrs = read_velocity(tmp_path / "out" / "velocity.nc")
    # Depth not given: as deep as the network sees at its preferred scale (the 15 Hz wavelet: 1).
    assert velocity.shape == (1, 1, 70, 150)
    ds = xr.open_dataset(tmp_path / "out" / "velocity.nc", engine="h5netcdf")
    np.testing.assert_allclose(ds["x"].values, receiver_x)
    ds.close()
    acquisition = attrs["acquisition"]
    assert acquisition["scale"] == 1.0 and acquisition["windows_m"] == pytest.approx([0, 800 / 3, 1600 / 3, 800])
    assert attrs["survey"]["nx"] == 150
    segy, _ = read_velocity(tmp_path / "out" / "velocity.sgy")
    np.testing.assert_allclose(segy, velocity)
    import segyio

    with segyio.open(str(tmp_path / "out" / "velocity.sgy"), ignore_geometry=True) as f:
        x = f.attributes(segyio.TraceField.CDP_X)[:] / 100.0
    np.testing.assert_allclose(x, receiver_x)


def test_the_prediction_equals_the_mapped_prediction_of_the_python_api(tmp_path):
    # The command's result against api.predict with the same survey: the same map, the same network.
    survey = Survey(nz=90, nx=100, dx=10.0, nt=1200, dt=0.002, sources=evenly_spaced(6, 100),
                    receivers=tuple((0.0, float(x)) for x in range(100)), peak_freq=15.0)
    gathers = _gathers(6, 1200, 100, 0.002)
    write_gathers(tmp_path / "line.sgy", gathers, survey=survey)
    result = CliRunner().invoke(main, ["predict", "--backbone", "vit", "--input", str(tmp_path / "line.sgy"),
                                       "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    velocity, _ = read_velocity(tmp_path / "out" / "velocity.nc")
    model = api.build_backbone("vit", pretrained="default")
    expected = api.predict(model, gathers, survey=survey, progress=False)
    assert velocity.shape == expected.shape == (1, 1, 90, 100)
    np.testing.assert_allclose(velocity, expected, rtol=1e-5)
    mapping = AcquisitionMap(survey, native_survey())
    assert mapping.scale == pytest.approx(890 / 690)


def test_npy_gathers_take_their_acquisition_from_a_survey_file(tmp_path):
    survey = Survey(nz=70, nx=120, dx=10.0, nt=1000, dt=0.001, sources=evenly_spaced(9, 120),
                    receivers=tuple((0.0, float(x)) for x in range(120)))
    np.save(tmp_path / "g.npy", _gathers(9, 1000, 120, 0.001))
    survey.save(tmp_path / "survey.toml")
    result = CliRunner().invoke(main, ["predict", "--backbone", "vit", "--input", str(tmp_path / "g.npy"),
                                       "--survey", str(tmp_path / "survey.toml"), "--grid", "50x120",
                                       "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    velocity, attrs = read_velocity(tmp_path / "out" / "velocity.nc")
    assert velocity.shape == (1, 1, 50, 120)
    assert attrs["acquisition"]["grid"] == {"nz": 50, "nx": 120, "dx": 10.0}


def test_a_grid_deeper_than_the_recording_sees_is_refused_and_nothing_written(tmp_path):
    survey = Survey(nz=300, nx=150, dx=10.0, nt=1000, dt=0.001, sources=evenly_spaced(7, 150),
                    receivers=tuple((0.0, float(x)) for x in range(150)))
    write_gathers(tmp_path / "line.nc", _gathers(7, 1000, 150, 0.001), survey=survey)
    result = CliRunner().invoke(main, ["predict", "--backbone", "vit", "--input", str(tmp_path / "line.nc"),
                                       "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1, result.output
    assert "error: --input: the survey cannot be mapped" in result.output
    assert "2990 m deep" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_refine_starts_from_the_mapped_prediction_on_the_true_geometry(tmp_path):
    survey = Survey(nz=40, nx=100, dx=10.0, nt=700, dt=0.002, sources=evenly_spaced(8, 100),
                    receivers=tuple((0.0, float(x)) for x in range(100)), pml_width=10)
    velocity = np.repeat(np.linspace(1800, 3000, 40)[:, None], 100, axis=1)[None, None].astype(np.float32)
    physics = api.build_physics("deepwave", survey=survey)
    gathers = api.simulate(velocity, physics)
    write_gathers(tmp_path / "obs.nc", gathers, survey=survey)
    result = CliRunner().invoke(main, ["refine", "--backbone", "vit", "--observed", str(tmp_path / "obs.nc"),
                                       "--iterations", "1", "--out", str(tmp_path / "ref"), "--no-progress"])
    assert result.exit_code == 0, result.output
    initial, attrs = read_velocity(tmp_path / "ref" / "initial.nc")
    assert initial.shape == (1, 1, 40, 100) and attrs["acquisition"]["grid"]["nx"] == 100
    config = json.loads((tmp_path / "ref" / "config.json").read_text())
    assert config["survey"]["nx"] == 100 and len(config["survey"]["sources"]) == 8

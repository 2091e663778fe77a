"""File formats: round trips, attributes, SEG-Y headers, and bad input naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fwi_plugins.data import io
from fwi_plugins.errors import DataError
from fwi_plugins.survey import Survey

FORMATS = [".npy", ".nc", ".zarr", ".sgy"]


@pytest.fixture
def survey():
    return Survey.small(nz=8, nx=10, nt=40, n_sources=3)


@pytest.fixture
def velocity():
    return np.random.default_rng(0).uniform(1500, 4500, (3, 1, 8, 10)).astype(np.float32)


@pytest.fixture
def gathers(survey):
    return np.random.default_rng(1).normal(size=(2, survey.n_shots, survey.nt, survey.n_receivers)).astype(np.float32)


@pytest.mark.parametrize("suffix", FORMATS)
def test_velocity_round_trip_is_exact(tmp_path, velocity, suffix):
    path = io.write_velocity(tmp_path / f"v{suffix}", velocity, dx=12.5, attrs={"generator": "test", "seed": 7})
    back, attrs = io.read_velocity(path)
    assert back.dtype == np.float32 and back.shape == velocity.shape
    np.testing.assert_array_equal(back, velocity)
    if suffix != ".npy":
        assert attrs["dx"] == pytest.approx(12.5)


@pytest.mark.parametrize("suffix", FORMATS)
def test_gathers_round_trip_is_exact(tmp_path, gathers, survey, suffix):
    path = io.write_gathers(tmp_path / f"g{suffix}", gathers, survey=survey, attrs={"generator": "test"})
    back, attrs = io.read_gathers(path)
    np.testing.assert_array_equal(back, gathers)
    if suffix != ".npy":
        assert io.survey_from_attrs(attrs) == survey


def test_netcdf_has_named_dims_units_and_provenance(tmp_path, gathers, survey):
    import xarray as xr

    path = io.write_gathers(tmp_path / "g.nc", gathers, survey=survey, attrs={"generator": "gen", "seed": 3})
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        var = ds["gathers"]
        assert var.dims == ("sample", "shot", "time", "receiver")
        assert ds["time"].attrs["units"] == "s"
        np.testing.assert_allclose(ds["time"].values[:3], [0, survey.dt, 2 * survey.dt])
        assert ds["receiver_x"].attrs["units"] == "m"
        np.testing.assert_allclose(ds["receiver_x"].values, np.arange(10) * survey.dx)
        assert ds.attrs["generator"] == "gen" and ds.attrs["seed"] == 3
        versions = json.loads(ds.attrs["versions"])
        assert "numpy" in versions and "fwi-plugins" in versions
        assert json.loads(ds.attrs["survey"])["nt"] == survey.nt


def test_velocity_netcdf_dims_and_coordinates_in_metres(tmp_path, velocity):
    import xarray as xr

    path = io.write_velocity(tmp_path / "v.nc", velocity, dx=10.0)
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds["velocity"].dims == ("sample", "depth", "x")
        assert ds["velocity"].attrs["units"] == "m/s"
        assert ds["depth"].attrs["units"] == "m"
        assert float(ds["depth"][-1]) == pytest.approx(70.0)


def test_segy_headers_are_ieee_with_microseconds_and_geometry(tmp_path, gathers, survey):
    import segyio

    path = io.write_gathers(tmp_path / "g.sgy", gathers, survey=survey)
    with segyio.open(path, ignore_geometry=True) as f:
        assert f.bin[segyio.BinField.Format] == 5  # IEEE float32, not lossy IBM floats
        assert f.bin[segyio.BinField.Interval] == 2000  # 2 ms in microseconds
        assert f.tracecount == 2 * 3 * 10
        h = f.header[10 + 3]  # sample 0, shot 1, receiver 3
        assert h[segyio.TraceField.FieldRecord] == 2
        assert h[segyio.TraceField.TraceNumber] == 4
        scalar = h[segyio.TraceField.SourceGroupScalar]
        assert scalar == -100
        assert h[segyio.TraceField.GroupX] / 100 == pytest.approx(3 * survey.dx)
        assert h[segyio.TraceField.SourceX] / 100 == pytest.approx(survey.sources[1][1] * survey.dx)
        np.testing.assert_array_equal(f.trace[13], gathers[0, 1, :, 3])


def test_foreign_segy_shot_gathers_take_geometry_from_trace_headers(tmp_path):
    """A file without this package's text header: one sample, shots by FFID, dx from receiver spacing."""
    import segyio

    nt, n_rec, shots = 50, 6, 2
    data = np.random.default_rng(2).normal(size=(shots * n_rec, nt)).astype(np.float32)
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount, spec.sorting = 5, list(range(nt)), shots * n_rec, 2
    path = tmp_path / "field.segy"
    with segyio.create(path, spec) as f:
        f.bin.update({segyio.BinField.Interval: 4000})
        for i in range(shots * n_rec):
            s, r = divmod(i, n_rec)
            f.header[i] = {segyio.TraceField.FieldRecord: 101 + s, segyio.TraceField.TraceNumber: r + 1,
                           segyio.TraceField.SourceX: 5000 + 2500 * s, segyio.TraceField.GroupX: 5000 + 500 * r,
                           segyio.TraceField.SourceGroupScalar: 1}
            f.trace[i] = data[i]
    arr, attrs = io.read_gathers(path)
    assert arr.shape == (1, shots, nt, n_rec)
    np.testing.assert_array_equal(arr[0, 1, :, 2], data[n_rec + 2])
    assert attrs["dt"] == pytest.approx(0.004)
    assert attrs["source_x"] == [5000.0, 7500.0]
    survey = io.survey_from_attrs(attrs)
    assert survey.dx == 500.0 and survey.receivers[0] == (0.0, 0.0) and survey.sources[1] == (0.0, 5.0)


# -- bad input -----------------------------------------------------------------
def test_truncated_segy_names_the_file(tmp_path, gathers, survey):
    path = io.write_gathers(tmp_path / "g.sgy", gathers, survey=survey)
    raw = path.read_bytes()
    bad = tmp_path / "truncated.sgy"
    bad.write_bytes(raw[: len(raw) - 1000])
    with pytest.raises(DataError, match="truncated.sgy"):
        io.read_gathers(bad)
    tiny = tmp_path / "tiny.sgy"
    tiny.write_bytes(raw[:1000])
    with pytest.raises(DataError, match="tiny.sgy.*3600"):
        io.read_gathers(tiny)


def test_segy_binary_and_trace_headers_disagreeing(tmp_path, gathers, survey):
    import segyio

    path = io.write_gathers(tmp_path / "g.sgy", gathers, survey=survey)
    with segyio.open(path, "r+", ignore_geometry=True) as f:
        f.bin.update({segyio.BinField.Interval: 4000})
    with pytest.raises(DataError, match=r"g\.sgy: headers disagree.*4000.*2000"):
        io.read_gathers(path)


def test_segy_text_header_disagreeing_with_trace_count(tmp_path, gathers, survey):
    import segyio

    path = io.write_gathers(tmp_path / "g.sgy", gathers, survey=survey)
    with segyio.open(path, "r+", ignore_geometry=True) as f:
        text = bytearray(f.text[0])
        at = text.find(b"SAMPLES=2")
        text[at:at + 9] = b"SAMPLES=3"
        f.text[0] = bytes(text)
    with pytest.raises(DataError, match="headers disagree with the data"):
        io.read_gathers(path)


@pytest.mark.parametrize("scale, match", [(1e-3, "km/s"), (1e3, "mm/s")])
def test_velocity_units_off_by_1000(tmp_path, velocity, scale, match):
    path = tmp_path / "v.npy"
    np.save(path, velocity * scale)
    with pytest.raises(DataError, match=rf"v\.npy.*{match}"):
        io.read_velocity(path)


def test_nan_wrong_shape_and_dtype_are_refused(tmp_path, velocity):
    bad = velocity.copy()
    bad[0, 0, 1, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match="nan.npy.*NaN"):
        io.read_velocity(tmp_path / "nan.npy")
    np.save(tmp_path / "shape.npy", velocity[:, None])
    with pytest.raises(DataError, match=r"shape.npy.*expected \(N, 1, depth, x\)"):
        io.read_velocity(tmp_path / "shape.npy")
    np.save(tmp_path / "complex.npy", velocity.astype(np.complex64))
    with pytest.raises(DataError, match="complex.npy.*dtype complex64"):
        io.read_velocity(tmp_path / "complex.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy"):
        io.read_gathers(tmp_path / "obj.npy")
    with pytest.raises(DataError, match="inf"):
        io.validate_gathers(np.full((1, 2, 3, 4), np.inf), "x")


def test_corrupt_netcdf_and_unknown_suffix(tmp_path, velocity):
    (tmp_path / "broken.nc").write_bytes(b"not netcdf at all")
    with pytest.raises(DataError, match="broken.nc"):
        io.read_velocity(tmp_path / "broken.nc")
    with pytest.raises(DataError, match=r"\.csv.*expected one of"):
        io.write_velocity(tmp_path / "v.csv", velocity, dx=10)


def test_failed_write_leaves_nothing_behind(tmp_path, gathers, survey):
    target = tmp_path / "out.nc"
    io.write_gathers(target, gathers, survey=survey)
    before = target.read_bytes()
    wrong = np.zeros((1, 2, survey.nt, survey.n_receivers), np.float32)  # 2 shots, survey has 3
    with pytest.raises(DataError, match="out.sgy"):
        io.write_gathers(tmp_path / "out.sgy", wrong, survey=survey)
    # A failure inside the writer (dt not whole microseconds) also leaves no file or temporary.
    odd = Survey.small(nz=8, nx=10, nt=40, n_sources=3, dt=0.0015005)
    with pytest.raises(DataError, match="microseconds"):
        io.write_gathers(tmp_path / "odd.sgy", gathers, survey=odd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]
    assert target.read_bytes() == before


def test_zarr_overwrite_replaces_whole_store(tmp_path, velocity):
    path = tmp_path / "v.zarr"
    io.write_velocity(path, velocity, dx=10)
    io.write_velocity(path, velocity[:1] + 1, dx=10)
    back, _ = io.read_velocity(path)
    np.testing.assert_array_equal(back, velocity[:1] + 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.zarr"]

"""The openfwi reader on small OpenFWI-layout fixtures (folders, zips, paired gathers), and the files dataset."""

from __future__ import annotations

import io as _io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fwi_plugins import api
from fwi_plugins.data import io
from fwi_plugins.errors import DataError, OptionError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "openfwi"


def _maps(n, start):
    # Every map is constant at a value encoding its origin, so splits can be traced back.
    return (1500.0 + np.arange(start, start + n, dtype=np.float32)).reshape(n, 1, 1, 1) * np.ones((1, 1, 70, 70),
                                                                                                   np.float32)


def _zip(path: Path, members: dict[str, np.ndarray]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in members.items():
            buf = _io.BytesIO()
            np.save(buf, arr)
            zf.writestr(name, buf.getvalue())
    return path


@pytest.fixture
def folder(tmp_path):
    _zip(tmp_path / "flatvel-a_train_vmodel.zip", {"vmodel1.npy": _maps(10, 0), "vmodel2.npy": _maps(10, 10)})
    _zip(tmp_path / "flatvel-a_test_vmodel.zip", {"vmodel3.npy": _maps(6, 100)})
    return tmp_path


def test_zip_folder_splits_never_validate_on_test_files(folder):
    ds = api.load_dataset("openfwi", {"path": str(folder), "n_train": 12, "n_val": 4, "n_test": 0})
    assert ds.split_sizes == {"train": 12, "val": 4, "test": 6}
    ids = {s: set(ds.velocity(s)[:, 0, 0, 0].astype(int) - 1500) for s in ("train", "val", "test")}
    assert ids["test"] == set(range(100, 106))
    assert ids["train"].isdisjoint(ids["val"]) and (ids["train"] | ids["val"]) <= set(range(20))
    assert ds.attrs["test_files"] == [f"{folder / 'flatvel-a_test_vmodel.zip'}!vmodel3.npy"]
    assert ds.normalization.vmin == 1500 and ds.normalization.vmax == 4500
    assert not ds.has_recorded_gathers


def test_plain_npy_files_with_paired_gathers(tmp_path):
    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir(), test.mkdir()
    np.save(train / "model1.npy", _maps(4, 0))
    g = np.random.default_rng(0).normal(size=(4, 5, 1000, 70)).astype(np.float32)
    np.save(train / "data1.npy", g)
    np.save(test / "model2.npy", _maps(2, 50))
    np.save(test / "data2.npy", g[:2] * 2)
    ds = api.load_dataset("openfwi", {"path": str(train), "test_path": str(test), "n_train": 3, "n_val": 1})
    assert ds.has_recorded_gathers
    train_v = ds.velocity("train")[:, 0, 0, 0] - 1500
    np.testing.assert_array_equal(ds.gathers("train"), g[train_v.astype(int)])
    np.testing.assert_array_equal(ds.gathers("test"), g[:2] * 2)


def test_openfwi_bad_files(tmp_path):
    np.save(tmp_path / "model1.npy", _maps(2, 0)[:, :, :50])
    with pytest.raises(DataError, match=r"model1.npy.*\(N, 1, 70, 70\)"):
        api.load_dataset("openfwi", {"path": str(tmp_path / "model1.npy")})
    np.save(tmp_path / "model1.npy", _maps(2, 0) / 1000)
    with pytest.raises(DataError, match="model1.npy.*km/s"):
        api.load_dataset("openfwi", {"path": str(tmp_path / "model1.npy")})
    with pytest.raises(OptionError, match="path="):
        api.load_dataset("openfwi", {})
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    with pytest.raises(DataError, match="broken.zip"):
        api.load_dataset("openfwi", {"path": str(tmp_path / "broken.zip")})


def test_folder_with_two_families_asks_which(folder):
    _zip(folder / "curvevel-a_train_vmodel.zip", {"vmodel1.npy": _maps(3, 0)})
    with pytest.raises(OptionError, match="family=NAME"):
        api.load_dataset("openfwi", {"path": str(folder)})
    ds = api.load_dataset("openfwi", {"path": str(folder), "family": "curvevel-a", "n_val": 1, "n_train": 2})
    assert ds.split_sizes == {"train": 2, "val": 1, "test": 0}


def test_real_openfwi_maps_when_shared_data_is_present():
    if not (SHARED / "flatvel-a_test_vmodel.zip").exists():
        pytest.skip(f"the OpenFWI maps are not at {SHARED}")
    ds = api.load_dataset("openfwi", {"path": str(SHARED), "family": "flatvel-a", "n_train": 40, "n_val": 8,
                                      "n_test": 10})
    v = ds.velocity("test")
    assert v.shape == (10, 1, 70, 70) and 1500 <= v.min() and v.max() <= 4500
    assert all("test" in f for f in ds.attrs["test_files"]) and all("train" in f for f in ds.attrs["train_files"])


# -- files -----------------------------------------------------------------------
def test_files_dataset_velocity_and_gathers_from_formats(tmp_path):
    from fwi_plugins.survey import Survey

    survey = Survey.small(nz=16, nx=16, nt=40, n_sources=2)
    v = np.random.default_rng(0).uniform(1500, 4500, (10, 1, 16, 16)).astype(np.float32)
    g = np.random.default_rng(1).normal(size=(10, 2, 40, 16)).astype(np.float32)
    io.write_velocity(tmp_path / "v.nc", v, dx=10)
    io.write_gathers(tmp_path / "g.sgy", g, survey=survey)
    ds = api.load_dataset("files", {"velocity": str(tmp_path / "v.nc"), "gathers": str(tmp_path / "g.sgy")})
    assert ds.split_sizes == {"train": 8, "val": 1, "test": 1}
    assert ds.survey == survey
    np.testing.assert_array_equal(ds.velocity("test"), v[9:])
    np.testing.assert_array_equal(ds.gathers("train"), g[:8])


def test_files_gathers_only_is_label_free(tmp_path):
    from fwi_plugins.survey import Survey

    survey = Survey.small(nz=16, nx=16, nt=40, n_sources=2)
    io.write_gathers(tmp_path / "field.sgy", np.ones((1, 2, 40, 16), np.float32), survey=survey)
    ds = api.load_dataset("files", {"gathers": str(tmp_path / "field.sgy"), "splits": "0,0,1"})
    assert not ds.has_labels and ds.split_sizes == {"train": 0, "val": 0, "test": 1}
    assert ds.gathers("test").shape == (1, 2, 40, 16)
    np.save(tmp_path / "raw.npy", np.ones((1, 2, 40, 16), np.float32))
    with pytest.raises(DataError, match="raw.npy.*survey"):
        api.load_dataset("files", {"gathers": str(tmp_path / "raw.npy")})

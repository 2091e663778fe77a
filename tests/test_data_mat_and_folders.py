"""Velocity in MATLAB .mat files, and folders whose file names say nothing of the split."""

from __future__ import annotations

import numpy as np
from scipy.io import savemat

from fwi_plugins import api
from fwi_plugins.data.io import read_velocity


def _maps(n: int, seed: int, nz: int = 70, nx: int = 70) -> np.ndarray:
    return np.random.default_rng(seed).uniform(1500, 4500, (n, 1, nz, nx)).astype(np.float32)


def test_a_matlab_5_file_gives_its_velocity_variable_and_spacing(tmp_path):
    vp = _maps(1, 0, 20, 30)[0, 0]
    savemat(tmp_path / "marmousi.mat", {"Vp": vp, "dh": 12.5, "note": "smoothed"})
    velocity, attrs = read_velocity(tmp_path / "marmousi.mat")
    np.testing.assert_array_equal(velocity, vp[None, None])
    assert attrs["dx"] == 12.5 and attrs["variable"] == "Vp"


def test_a_matlab_7_3_file_is_read_as_matlab_shows_it(tmp_path):
    import h5py

    vp = _maps(1, 1, 20, 30)[0, 0]
    path = tmp_path / "model.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["vel"] = vp.T  # MATLAB writes column-major: h5py sees the transpose
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116) + b"\0" * 8 + b"\x00\x02" + b"IM")
    velocity, attrs = read_velocity(path)
    np.testing.assert_array_equal(velocity, vp[None, None])


def test_the_files_dataset_reads_a_folder_of_mat_files_whatever_their_names(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    a, b = _maps(6, 2), _maps(4, 3)
    savemat(folder / "overthrust_slices.mat", {"model": a[:, 0]})
    savemat(folder / "bp_slices.mat", {"model": b[:, 0]})
    ds = api.load_dataset("files", {"velocity": str(folder), "splits": (0.8, 0.1, 0.1)})
    assert ds.split_sizes == {"train": 8, "val": 1, "test": 1}
    together = np.concatenate([ds.velocity(s) for s in ("train", "val", "test")])
    np.testing.assert_array_equal(together, np.concatenate([b, a]))  # name order: bp_ before overthrust_


def test_the_openfwi_reader_draws_a_test_split_when_no_file_name_says_test(tmp_path):
    tmp_path = tmp_path / "maps"  # pytest's own folder name says "test"
    tmp_path.mkdir()
    maps = [_maps(5, 10 + i) for i in range(4)]
    for i, m in enumerate(maps, start=1):
        np.save(tmp_path / f"model{i}.npy", m)
    ds = api.load_dataset("openfwi", {"path": str(tmp_path), "n_train": 12, "n_val": 3, "n_test": 5})
    assert ds.split_sizes == {"train": 12, "val": 3, "test": 5}
    rows = {s: {ds.velocity(s)[i].tobytes() for i in range(ds.split_sizes[s])} for s in ("train", "val", "test")}
    assert not (rows["test"] & rows["train"]) and not (rows["test"] & rows["val"])
    every = {m[i].tobytes() for m in maps for i in range(5)}
    assert rows["train"] | rows["val"] | rows["test"] == every


def test_the_openfwi_reader_takes_mat_files(tmp_path):
    tmp_path = tmp_path / "maps"
    tmp_path.mkdir()
    m = _maps(3, 20)
    savemat(tmp_path / "vmodel1.mat", {"vmodel": m})
    np.save(tmp_path / "model2_test.npy", _maps(2, 21))
    ds = api.load_dataset("openfwi", {"path": str(tmp_path), "n_train": 2, "n_val": 1, "n_test": 0})
    np.testing.assert_array_equal(np.sort(np.concatenate([ds.velocity("train"), ds.velocity("val")]), axis=None),
                                  np.sort(m, axis=None))

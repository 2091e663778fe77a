"""The environment's errors are clean: a read-only folder, a full disk, a seed out of range, a failed simulation.

Each is one ``error:`` line naming the path (exit 1, or 2 for an option), no traceback, and
nothing left behind. Run as root, file modes do not stop writes, so the read-only cases
make the write itself raise ``PermissionError``; a real ``chmod`` test runs where it can.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fwi_plugins.data.io import write_velocity

TINY_VIT = {"size": "tiny", "dim": "16", "depth": "1", "heads": "2", "decoder_dim": "8", "patch_time": "50",
            "patch_receiver": "4"}
TINY_DATA = {"n_train": "2", "n_val": "0", "n_test": "1", "nz": "16", "nx": "16", "survey": "small"}
RUN_ARGS = ["run", "--backbone", "vit", "--peft", "lora", "--physics", "deepwave", "--dataset", "flatvel-a",
            "--pretrained", "none", "--device", "cpu", "-o", "epochs=1", "-o", "progress=false",
            "-o", "figures=false", *[a for k, v in TINY_VIT.items() for a in ("-o", f"backbone.{k}={v}")],
            *[a for k, v in TINY_DATA.items() for a in ("-o", f"dataset.{k}={v}")]]
PREDICT_VIT = ["-o", "backbone.dim=32", "-o", "backbone.depth=1", "-o", "backbone.heads=2",
               "-o", "backbone.decoder_dim=8", "-o", "backbone.patch_time=16", "-o", "backbone.patch_receiver=4"]


def clean_error(result, *needles, code=1):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], result.output


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.part")]


def read_only(monkeypatch, folder: Path) -> None:
    """Every new file in ``folder`` is refused, as a read-only folder refuses it to anyone but root."""
    real_mkstemp, real_mkdtemp, real_open = tempfile.mkstemp, tempfile.mkdtemp, os.open

    def inside(path) -> bool:
        return path is not None and Path(path).resolve().is_relative_to(folder.resolve())

    def mkstemp(*args, dir=None, **kwargs):
        if inside(dir):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    def mkdtemp(*args, dir=None, **kwargs):
        if inside(dir):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real_mkdtemp(*args, dir=dir, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and inside(Path(path).parent):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(os, "open", open_)


def gathers_file(tmp_path) -> tuple[Path, Path]:
    from fwi_plugins.data import Normalization
    from fwi_plugins.survey import Survey

    import json

    survey = Survey.small(nz=16, nx=16, nt=64, n_sources=2)
    rng = np.random.default_rng(0)
    path = tmp_path / "g.npy"
    np.save(path, rng.normal(size=(1, survey.n_shots, survey.nt, survey.n_receivers)).astype(np.float32))
    norm = Normalization.openfwi().fit_gathers(np.array([-5.0, 5.0]))
    (tmp_path / "norm.json").write_text(json.dumps({"normalization": norm.to_dict()}))
    return path, tmp_path / "norm.json"


def predict_args(tmp_path, out):
    gathers, norm = gathers_file(tmp_path)
    return ["predict", "--backbone", "vit", *PREDICT_VIT, "--device", "cpu", "--quiet", "--pretrained", "none",
            "--input", str(gathers), "--out", str(out), "--grid", "16x16", "--normalization", str(norm)]


# -- a read-only output folder ---------------------------------------------------------------------------
def test_run_into_a_read_only_folder_is_one_error_line(cli, tmp_path, monkeypatch):
    out = tmp_path / "locked"
    out.mkdir()
    read_only(monkeypatch, out)
    clean_error(cli(*RUN_ARGS, "--out", str(out)), str(out), "Permission denied")
    assert list(out.iterdir()) == []


def test_predict_into_a_read_only_folder_is_one_error_line(cli, tmp_path, monkeypatch):
    out = tmp_path / "locked"
    out.mkdir()
    args = predict_args(tmp_path, out)
    read_only(monkeypatch, out)
    clean_error(cli(*args), str(out), "Permission denied")
    assert list(out.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_run_and_predict_into_a_chmod_read_only_folder(cli, tmp_path):
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o555)
    try:
        clean_error(cli(*RUN_ARGS, "--out", str(out / "run")), str(out), "Permission denied")
        clean_error(cli(*predict_args(tmp_path, out)), str(out), "Permission denied")
    finally:
        out.chmod(0o755)


# -- a full disk -------------------------------------------------------------------------------------------
def disk_full_on(monkeypatch, name_start: str) -> None:
    """``np.save`` into a temporary whose name starts with ``name_start`` writes half, then the disk is full."""
    real_save = np.save

    def save(file, arr, *args, **kwargs):
        name = Path(getattr(file, "name", str(file))).name
        if name.startswith(name_start):
            file.write(b"\x93NUMPY half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(file, arr, *args, **kwargs)

    monkeypatch.setattr(np, "save", save)


def test_a_full_disk_writing_the_gathers_names_the_file_and_leaves_no_part(cli, tmp_path, monkeypatch):
    disk_full_on(monkeypatch, ".g.npy.")
    result = cli("simulate", "--dataset", "flatvel-a", *[a for k, v in TINY_DATA.items()
                                                          for a in ("-o", f"dataset.{k}={v}")],
                 "--out", str(tmp_path / "g.npy"), "--no-progress")
    clean_error(result, str(tmp_path / "g.npy"), "No space left on device")
    assert not (tmp_path / "g.npy").exists() and not leftovers(tmp_path)


def test_a_full_disk_writing_the_cache_leaves_no_entry(cli, tmp_path, monkeypatch):
    disk_full_on(monkeypatch, ".part-")
    result = cli("simulate", "--dataset", "flatvel-a", *[a for k, v in TINY_DATA.items()
                                                          for a in ("-o", f"dataset.{k}={v}")],
                 "--out", str(tmp_path / "g.npy"), "--no-progress")
    clean_error(result, str(tmp_path / "cache"), "No space left on device")
    assert not leftovers(tmp_path)
    assert not [p for p in (tmp_path / "cache").glob("*") if p.is_dir()]


def test_a_full_disk_writing_the_run_configuration_leaves_nothing(cli, tmp_path, monkeypatch):
    real = Path.write_text

    def write_text(self, text, *args, **kwargs):
        if self.name.startswith(".config.toml."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    out = tmp_path / "run"
    clean_error(cli(*RUN_ARGS, "--out", str(out)), str(out / "config.toml"), "No space left on device")
    assert not out.exists()


# -- the seed ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["--seed", "99999999999999999999999"], ["--seed", "-1"],
                                  ["-o", "seed=99999999999999999999999"]])
def test_a_seed_out_of_range_is_refused_naming_the_range(cli, tmp_path, args):
    result = cli(*RUN_ARGS, *args, "--out", str(tmp_path / "run"), "--dry-run")
    assert result.exit_code == 2, result.output
    assert "4294967295" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_the_largest_seed_is_taken(cli, tmp_path):
    result = cli(*RUN_ARGS, "--seed", "4294967295", "--dry-run", "--json")
    assert result.exit_code == 0, result.output


# -- a failed simulation -----------------------------------------------------------------------------------
def test_a_failed_simulation_leaves_no_cache_entry(cli, tmp_path):
    velocity = write_velocity(tmp_path / "fast.nc", np.full((1, 1, 16, 16), 9000.0, np.float32), dx=10.0)
    result = cli("simulate", "--velocity", str(velocity), "--survey", "small", "--out", str(tmp_path / "g.nc"),
                 "--no-progress")
    clean_error(result, "9000")
    cache = tmp_path / "cache"
    assert not cache.exists() or not [p for p in cache.iterdir() if p.is_dir()], list(cache.rglob("*"))

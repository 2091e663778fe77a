"""Outputs never replace what fwi did not write: run directories, predictions, simulated gathers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from fwi_plugins.cli import main
from fwi_plugins.engine.config import Component, RunConfig
from fwi_plugins.errors import ConfigError
from fwi_plugins.manager import FWIPluginManager

TINY_VIT = {"size": "tiny", "dim": "16", "depth": "1", "heads": "2", "decoder_dim": "8", "patch_time": "50",
            "patch_receiver": "4"}
TINY_DATA = {"n_train": "2", "n_val": "0", "n_test": "1", "nz": "16", "nx": "16", "survey": "small"}
RUN_ARGS = ["run", "--backbone", "vit", "--peft", "lora", "--physics", "deepwave", "--dataset", "flatvel-a",
            "--pretrained", "none", "--device", "cpu", "-o", "epochs=1", "-o", "progress=false",
            "-o", "figures=false", *[a for k, v in TINY_VIT.items() for a in ("-o", f"backbone.{k}={v}")],
            *[a for k, v in TINY_DATA.items() for a in ("-o", f"dataset.{k}={v}")]]


@pytest.fixture
def manager(tmp_path, monkeypatch):
    monkeypatch.setenv("FWI_CACHE_DIR", str(tmp_path / "cache"))
    return FWIPluginManager().load_all()


def config(out, **options) -> RunConfig:
    base = {"epochs": 1, "batch_size": 4, "device": "cpu", "progress": False, "figures": False,
            "pretrained": "none"}
    base.update(options)
    return RunConfig(command="run", out=str(out), options=base, components={
        "backbone": (Component("vit", TINY_VIT),), "peft": (Component("lora", {"r": "2"}),),
        "physics": (Component("deepwave"),), "dataset": (Component("flatvel-a", TINY_DATA),)})


def prepare(cfg, manager):
    from fwi_plugins.engine.jobs.start import prepare_run_dir, resolve

    return prepare_run_dir(resolve(cfg, manager.get))[0]


def release(out):
    from fwi_plugins.engine.jobs.start import release_run_dir

    release_run_dir(out)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- fwi run: the run directory's manifest -------------------------------------------------------------
def test_run_refuses_a_folder_holding_only_the_users_config_toml(cli, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.toml").write_text("# my own notes on this experiment\n")
    result = cli(*RUN_ARGS, "--out", str(out))
    assert result.exit_code == 1, result.output
    assert "config.toml" in result.output and "not a run directory" in result.output
    assert "Traceback" not in result.output
    assert (out / "config.toml").read_text() == "# my own notes on this experiment\n"
    assert sorted(p.name for p in out.iterdir()) == ["config.toml"]


def test_a_run_directory_knows_its_files_and_resumes(tmp_path, manager):
    out = prepare(config(tmp_path / "run"), manager)
    release(out)
    manifest = json.loads((out / ".fwi-run.json").read_text())
    assert {"config.toml", "config.json", "metrics.json", "adapter/", "checkpoints/"} <= set(manifest["files"])
    assert prepare(config(out), manager) == out  # its own files are replaced, not refused


def test_a_run_directory_without_manifest_from_an_earlier_version_still_resumes(tmp_path, manager):
    out = prepare(config(tmp_path / "old"), manager)
    release(out)
    (out / ".fwi-run.json").unlink()  # as an earlier version left it: config.toml and config.json alike
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "latest.json").write_text("{}")
    prepare(config(out), manager)
    assert (out / ".fwi-run.json").is_file()


def test_a_run_directory_refuses_to_replace_a_file_it_did_not_write(tmp_path, manager):
    from fwi_plugins.engine.jobs.rundir import RunDirectory

    out = prepare(config(tmp_path / "run"), manager)
    (out / "notes.json").write_text("mine")
    with pytest.raises(ConfigError, match=r"notes\.json was not written by fwi"):
        RunDirectory(out).write_json("notes.json", {"x": 1})
    assert (out / "notes.json").read_text() == "mine"
    RunDirectory(out).write_json("summary.json", {"x": 1})  # a new file is recorded and written
    RunDirectory(out).write_json("summary.json", {"x": 2})  # and then replaced as its own
    assert json.loads((out / "summary.json").read_text()) == {"x": 2}


# -- fwi run: one job at a time --------------------------------------------------------------------------
def test_a_second_run_into_a_held_folder_stops_naming_the_other_process(tmp_path, manager):
    out = tmp_path / "run"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".fwi-run.lock").write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(),
                                                       "since": "2025-01-01T00:00:00+00:00"}))
        with pytest.raises(ConfigError, match=rf"{out.name} is in use by another fwi process \(pid {other.pid}"):
            prepare(config(out), manager)
        assert not (out / "config.json").exists()
    finally:
        other.kill()
        other.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, manager):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".fwi-run.lock").write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    prepare(config(out), manager)
    assert json.loads((out / ".fwi-run.lock").read_text())["pid"] == os.getpid()
    release(out)
    assert not (out / ".fwi-run.lock").exists()


def test_two_processes_preparing_one_folder_one_is_refused(tmp_path):
    """Two real processes: the one that finds the folder held stops with the other's pid."""
    script = (
        "import sys, time\n"
        "from fwi_plugins.engine.jobs.lock import FolderLock\n"
        "lock = FolderLock(sys.argv[1])\n"
        "lock.acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n")
    out = tmp_path / "run"
    out.mkdir()
    first = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "held"
        from fwi_plugins.engine.jobs.lock import FolderLock

        with pytest.raises(ConfigError, match=rf"pid {first.pid} on host"):
            FolderLock(out).acquire()
    finally:
        first.kill()
        first.wait()
    FolderLock(out).acquire()  # dead now: stale, taken over
    FolderLock(out).release()


# -- fwi predict: only its own outputs are replaced ---------------------------------------------------------
PREDICT_VIT = ["-o", "backbone.dim=32", "-o", "backbone.depth=1", "-o", "backbone.heads=2",
               "-o", "backbone.decoder_dim=8", "-o", "backbone.patch_time=16", "-o", "backbone.patch_receiver=4"]


def predict(tmp_path, out):
    import numpy as np

    from fwi_plugins.data import Normalization
    from fwi_plugins.survey import Survey

    survey = Survey.small(nz=16, nx=16, nt=64, n_sources=2)
    gathers = tmp_path / "g.npy"
    if not gathers.exists():
        rng = np.random.default_rng(0)
        np.save(gathers, rng.normal(size=(1, survey.n_shots, survey.nt, survey.n_receivers)).astype(np.float32))
        norm = Normalization.openfwi().fit_gathers(np.array([-5.0, 5.0]))
        (tmp_path / "norm.json").write_text(json.dumps({"normalization": norm.to_dict()}))
    return CliRunner().invoke(main, ["predict", "--backbone", "vit", *PREDICT_VIT, "--device", "cpu", "--quiet",
                                     "--pretrained", "none", "--input", str(gathers), "--out", str(out),
                                     "--grid", "16x16", "--normalization", str(tmp_path / "norm.json")])


def users_velocity(path):
    import numpy as np

    from fwi_plugins.data.io import write_velocity

    return write_velocity(path, np.full((1, 1, 8, 8), 2000.0, np.float32), dx=5.0, attrs={"generator": "my survey"})


def test_predict_refuses_to_replace_a_velocity_nc_it_did_not_write(tmp_path):
    out = tmp_path / "pred"
    out.mkdir()
    before = users_velocity(out / "velocity.nc").read_bytes()
    result = predict(tmp_path, out)
    assert result.exit_code == 1, result.output
    assert "velocity.nc was not written by fwi predict" in result.output and "--out" in result.output
    assert "Traceback" not in result.output
    assert (out / "velocity.nc").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["velocity.nc"]


def test_predict_refuses_a_users_png_beside_its_outputs(tmp_path):
    out = tmp_path / "pred"
    out.mkdir()
    (out / "velocity.png").write_bytes(b"my figure")
    result = predict(tmp_path, out)
    assert result.exit_code == 1 and "velocity.png was not written by fwi predict" in result.output
    assert (out / "velocity.png").read_bytes() == b"my figure"


def test_predict_replaces_its_own_outputs_then_and_from_an_earlier_version(tmp_path):
    out = tmp_path / "pred"
    assert predict(tmp_path, out).exit_code == 0
    again = predict(tmp_path, out)
    assert again.exit_code == 0, again.output
    (out / ".fwi-predict.json").unlink()  # an earlier version kept no manifest: its provenance says fwi predict
    earlier = predict(tmp_path, out)
    assert earlier.exit_code == 0, earlier.output


# -- fwi simulate: an output is never an input --------------------------------------------------------------
def simulate_cli(*args):
    return CliRunner().invoke(main, ["simulate", *args])


@pytest.fixture
def velocity_file(tmp_path):
    return users_velocity(tmp_path / "model.nc")


@pytest.mark.parametrize("args", [
    lambda v, d: ["--velocity", str(v), "--out", str(v)],
    lambda v, d: ["--velocity", str(v), "--out", str(d / "g.nc"), "--velocity-out", str(v)],
    lambda v, d: ["--velocity", str(v), "--out", str(d / "sub" / ".." / "model.nc")],
    lambda v, d: ["--velocity", str(v), "--out", str(d / "g.nc"), "--velocity-out", str(d / "g.nc")],
])
def test_simulate_refuses_an_output_that_is_an_input_or_the_other_output(tmp_path, velocity_file, args):
    (tmp_path / "sub").mkdir()
    before = velocity_file.read_bytes()
    result = simulate_cli(*args(velocity_file, tmp_path), "--survey", "small", "--no-progress")
    assert result.exit_code == 2, result.output
    assert "is the same file as" in result.output and "Traceback" not in result.output
    assert velocity_file.read_bytes() == before
    assert not (tmp_path / "g.nc").exists()


def test_simulate_refuses_a_link_to_its_input(tmp_path, velocity_file):
    link = tmp_path / "link.nc"
    link.symlink_to(velocity_file)
    result = simulate_cli("--velocity", str(velocity_file), "--out", str(link), "--survey", "small", "--no-progress")
    assert result.exit_code == 2 and "is the same file as --velocity" in result.output

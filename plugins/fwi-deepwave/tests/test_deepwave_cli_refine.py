"""``fwi refine`` end to end on a tiny survey, and its answers to bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fwi_plugins import api
from fwi_plugins.cli import main
from fwi_plugins.data.io import read_velocity

SURVEY = api.Survey.small(nz=16, nx=20, nt=150, n_sources=2)


@pytest.fixture
def files(tmp_path):
    truth = np.full((1, 1, SURVEY.nz, SURVEY.nx), 2000.0, np.float32)
    truth[..., SURVEY.nz // 2 :, :] = 2600.0
    physics = api.build_physics("deepwave", survey=SURVEY)
    np.save(tmp_path / "observed.npy", physics.simulate(torch.from_numpy(truth)).numpy())
    np.save(tmp_path / "initial.npy", np.full_like(truth, 2300.0))
    SURVEY.save(tmp_path / "survey.toml")
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(main, ["refine", *args], catch_exceptions=False)


def test_refine_writes_model_history_and_figures(files):
    out = files / "out"
    result = invoke("--initial", str(files / "initial.npy"), "--observed", str(files / "observed.npy"),
                    "--survey", str(files / "survey.toml"), "--physics", "deepwave", "-o", "physics.accuracy=4",
                    "--iterations", "8", "--lr", "0.03", "--step", "adam", "--smooth", "1", "--frequencies", "10,20",
                    "--device", "cpu", "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "lower) after 8 iterations" in result.output
    velocity, attrs = read_velocity(out / "velocity.nc")
    assert velocity.shape == (1, 1, SURVEY.nz, SURVEY.nx)
    assert not np.allclose(velocity, 2300.0)
    assert attrs["dx"] == SURVEY.dx
    history = json.loads((out / "history.json").read_text())
    assert len(history["history"]) == 8
    assert history["final_misfit"] < history["initial_misfit"]
    assert history["settings"]["physics"] == "deepwave" and history["settings"]["frequencies"] == [10.0, 20.0]
    assert history["settings"]["step"] == "adam" and history["settings"]["smooth"] == 1.0
    for png in ("velocity.png", "misfit.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final_misfit"] == history["final_misfit"]
    assert json.loads((out / "config.json").read_text())["survey"] == SURVEY.to_dict()
    assert not list(out.glob(".*.part"))  # atomic writes leave no temporary files


def test_lifecycle_hooks_see_the_run(files):
    from fwi_plugins import hookimpl
    from fwi_plugins.manager import get_plugin_manager

    seen = []

    class Listener:
        @hookimpl
        def fwi_run_started(self, run_dir, config):
            seen.append(("started", config["command"], run_dir))

        @hookimpl
        def fwi_run_finished(self, run_dir, metrics):
            seen.append(("finished", metrics["iterations"], run_dir))

    get_plugin_manager().register(Listener(), name="listener")
    out = files / "hooked"
    result = invoke("--initial", str(files / "initial.npy"), "--observed", str(files / "observed.npy"),
                    "--survey", str(files / "survey.toml"), "--iterations", "2", "--out", str(out),
                    "--no-progress")
    assert result.exit_code == 0, result.output
    assert seen == [("started", "refine", out), ("finished", 2, out)]


def test_missing_file_is_named(files):
    result = invoke("--initial", str(files / "nope.npy"), "--observed", str(files / "observed.npy"),
                    "--survey", str(files / "survey.toml"), "--no-progress")
    assert result.exit_code != 0
    assert "nope.npy" in result.output and "Traceback" not in result.output


def test_gathers_not_matching_the_survey_name_the_file(files):
    result = invoke("--initial", str(files / "initial.npy"), "--observed", str(files / "observed.npy"),
                    "--survey", "small", "--no-progress")
    assert result.exit_code == 1
    assert "observed.npy" in result.output and "survey expects" in result.output


def test_velocity_on_the_wrong_grid_names_the_file(files):
    np.save(files / "small.npy", np.full((1, 1, 8, 8), 2000.0, np.float32))
    result = invoke("--initial", str(files / "small.npy"), "--observed", str(files / "observed.npy"),
                    "--survey", str(files / "survey.toml"), "--no-progress")
    assert result.exit_code == 1
    assert "small.npy" in result.output and "grid" in result.output


def test_pickled_file_is_refused_not_loaded(files):
    np.save(files / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    result = invoke("--initial", str(files / "pickled.npy"), "--observed", str(files / "observed.npy"),
                    "--survey", str(files / "survey.toml"), "--no-progress")
    assert result.exit_code == 1
    assert "pickled.npy" in result.output


def test_bad_names_and_options_exit_2(files):
    base = ["--initial", str(files / "initial.npy"), "--observed", str(files / "observed.npy"),
            "--survey", str(files / "survey.toml"), "--no-progress"]
    result = invoke(*base, "--physics", "deepwav")
    assert result.exit_code == 2 and "Did you mean 'deepwave'" in result.output
    result = invoke(*base, "-o", "physics.acuracy=4")
    assert result.exit_code == 2 and "accuracy" in result.output
    result = invoke(*base, "--frequencies", "five")
    assert result.exit_code == 2 and "--frequencies" in result.output


def test_refine_with_an_estimated_wavelet_writes_it(files):
    # The recording is 50 times louder and of opposite polarity: a scale only the estimate can explain.
    np.save(files / "loud.npy", -50.0 * np.load(files / "observed.npy"))
    out = files / "wavelet"
    result = invoke("--initial", str(files / "initial.npy"), "--observed", str(files / "loud.npy"),
                    "--survey", str(files / "survey.toml"), "--wavelet", "estimate", "--iterations", "2",
                    "--device", "cpu", "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "estimated source wavelet explains" in result.output
    history = json.loads((out / "history.json").read_text())
    assert history["settings"]["physics_options"]["wavelet"] == "estimate"
    wavelet = np.asarray(history["wavelet"]["wavelet"][0])
    ricker = SURVEY.wavelet_samples()
    # The model is not the truth, so the match is close rather than exact.
    assert np.dot(wavelet, ricker) / np.linalg.norm(wavelet) / np.linalg.norm(ricker) < -0.9
    assert np.linalg.norm(wavelet) / np.linalg.norm(ricker) == pytest.approx(50.0, rel=0.3)
    assert (out / "wavelet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "metrics.json").read_text())["wavelet_fit"] > 0.5


def test_refine_wavelet_flag_conflicts_are_errors(files):
    args = ["--initial", str(files / "initial.npy"), "--observed", str(files / "observed.npy"),
            "--survey", str(files / "survey.toml"), "--out", str(files / "never"), "--no-progress"]
    result = CliRunner().invoke(main, ["refine", *args, "--wavelet", "estimate", "-o", "physics.wavelet=survey"])
    assert result.exit_code == 2      # an option error, as other bad options
    assert "error: --wavelet estimate disagrees with -o physics.wavelet=survey" in result.output
    assert "Traceback" not in result.output
    assert not (files / "never").exists()

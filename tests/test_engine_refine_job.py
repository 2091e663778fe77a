"""The ``fwi refine`` job lives in the engine: the API writes what the command writes, and tells the same observers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fwi_plugins import api, hookimpl
from fwi_plugins.cli import main
from fwi_plugins.data import Normalization
from fwi_plugins.data.io import read_velocity
from fwi_plugins.manager import get_plugin_manager
from fwi_plugins.survey import Survey

SURVEY = Survey.small(nz=16, nx=16, nt=64, n_sources=2)
VIT = {"dim": 32, "depth": 1, "heads": 2, "decoder_dim": 8, "patch_time": 16, "patch_receiver": 4}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    truth = np.full((1, 1, SURVEY.nz, SURVEY.nx), 2000.0, np.float32)
    truth[..., SURVEY.nz // 2:, :] = 2600.0
    physics = api.build_physics("deepwave", survey=SURVEY)
    np.save(tmp_path / "observed.npy", physics.simulate(torch.from_numpy(truth)).numpy())
    np.save(tmp_path / "initial.npy", np.full_like(truth, 2300.0))
    SURVEY.save(tmp_path / "survey.toml")
    norm = Normalization.openfwi().fit_gathers(np.array([-5.0, 5.0]))
    (tmp_path / "norm.json").write_text(json.dumps(norm.to_dict()))
    return tmp_path


def _cli(*args: str) -> None:
    result = CliRunner().invoke(main, ["refine", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _same_outputs(cli: Path, by_api: Path, paths: list[Path]) -> None:
    assert sorted(p.name for p in cli.iterdir()) == sorted(p.name for p in by_api.iterdir())
    assert sorted(p.name for p in paths) == sorted(p.name for p in by_api.iterdir())
    for name in ("history.json", "config.json", "metrics.json"):
        assert json.loads((by_api / name).read_text()) == json.loads((cli / name).read_text()), name
    for name in [p.name for p in by_api.glob("*.nc")]:
        velocity_cli, attrs_cli = read_velocity(cli / name)
        velocity_api, attrs_api = read_velocity(by_api / name)
        np.testing.assert_array_equal(velocity_api, velocity_cli)
        # Versions list the packages imported so far, and the path is each one's own.
        assert ({k: v for k, v in attrs_api.items() if k not in ("versions", "path")}
                == {k: v for k, v in attrs_cli.items() if k not in ("versions", "path")})


def _beside(files: Path, name: str, monkeypatch) -> Path:
    """A working folder beside the inputs: both runs then record the same relative paths in their settings."""
    (files / name).mkdir()
    monkeypatch.chdir(files / name)
    return files / name / "out"


def test_the_api_writes_what_fwi_refine_writes(files, monkeypatch):
    cli = _beside(files, "cli", monkeypatch)
    _cli("--initial", "../initial.npy", "--observed", "../observed.npy", "--survey", "../survey.toml",
         "--iterations", "2", "--frequencies", "10,20", "--wavelet", "estimate", "--device", "cpu",
         "--out", "out", "--no-progress")
    by_api = _beside(files, "api", monkeypatch)
    done = api.refine_files("../observed.npy", "out", initial="../initial.npy", survey="../survey.toml",
                            iterations=2, frequencies=(10, 20), wavelet="estimate", device="cpu", progress=False)
    assert done.result.history and done.wavelet is not None
    assert done.metrics == json.loads((by_api / "metrics.json").read_text())
    # The default rule is shaped L-BFGS, and config.json records the shaping it used.
    assert {k: done.settings[k] for k in SHAPING} == {"step": "lbfgs", "mute": 3, "smooth": 2.0, "depth_power": 1.0,
                                                      "tv": 0.02, "prior": 0.0, "time_limit": None}
    _same_outputs(cli, by_api, done.paths)


SHAPING = ("step", "mute", "smooth", "depth_power", "tv", "prior", "time_limit")


def test_the_refinement_options_reach_refine_from_the_command_and_the_api_alike(files, monkeypatch):
    from fwi_plugins.engine.refinement import refine as refine_module

    calls = []
    original = refine_module.refine

    def recording(*args, **kwargs):
        calls.append({k: kwargs[k] for k in SHAPING})
        return original(*args, **kwargs)

    monkeypatch.setattr(refine_module, "refine", recording)
    given = {"step": "adam", "mute": 2, "smooth": 1.0, "depth_power": 0.5, "tv": 0.01, "prior": 0.1,
             "time_limit": 60.0}
    cli = _beside(files, "cli", monkeypatch)
    _cli("--initial", "../initial.npy", "--observed", "../observed.npy", "--survey", "../survey.toml",
         "--iterations", "2", "--step", "adam", "--mute", "2", "--smooth", "1", "--depth-power", "0.5",
         "--tv", "0.01", "--prior", "0.1", "--time-limit", "60", "--device", "cpu", "--out", "out", "--no-progress")
    by_api = _beside(files, "api", monkeypatch)
    done = api.refine_files("../observed.npy", "out", initial="../initial.npy", survey="../survey.toml",
                            iterations=2, device="cpu", progress=False, **given)
    assert calls == [given, given]
    assert {k: done.settings[k] for k in SHAPING} == given
    _same_outputs(cli, by_api, done.paths)


def test_the_api_starts_from_a_backbone_as_fwi_refine_does(files, monkeypatch):
    cli = _beside(files, "cli", monkeypatch)
    flags = [a for k, v in VIT.items() for a in ("-o", f"backbone.{k}={v}")]
    torch.manual_seed(0)
    _cli("--backbone", "vit", *flags, "--pretrained", "none", "--normalization", "../norm.json",
         "--observed", "../observed.npy", "--survey", "../survey.toml", "--iterations", "1", "--device", "cpu",
         "--out", "out", "--no-progress")
    by_api = _beside(files, "api", monkeypatch)
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="untrained"):
        done = api.refine_files("../observed.npy", "out", backbone="vit", backbone_options=VIT, pretrained="none",
                                normalization="../norm.json", survey="../survey.toml", iterations=1, device="cpu",
                                progress=False)
    assert done.paths[0] == Path("out") / "initial.nc"
    _same_outputs(cli, by_api, done.paths)


def test_the_api_tells_observers_through_the_manager(files):
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
    api.refine_files(files / "observed.npy", out, initial=files / "initial.npy", survey=SURVEY, iterations=1,
                     device="cpu", progress=False)
    assert seen == [("started", "refine", out), ("finished", 1, out)]


def test_a_raising_observer_only_warns(files):
    class Raising:
        @hookimpl
        def fwi_run_finished(self, run_dir, metrics):
            raise RuntimeError("observer broke")

    get_plugin_manager().register(Raising(), name="raising")
    with pytest.warns(Warning, match="observer broke"):
        api.refine_files(files / "observed.npy", files / "o", initial=files / "initial.npy", survey=SURVEY,
                         iterations=1, device="cpu", progress=False)
    assert (files / "o" / "metrics.json").is_file()

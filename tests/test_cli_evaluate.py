"""``fwi evaluate`` through the command line."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from fwi_plugins.cli import main
from fwi_plugins.data.io import write_gathers, write_velocity
from fwi_plugins.survey import Survey

PHYSICS_PLUGIN = textwrap.dedent('''
    import torch
    from fwi_plugins import hookimpl, PhysicsSpec

    class Linear:
        version = "1"

        def __init__(self, survey):
            self.survey = survey

        def simulate(self, velocity):
            return torch.cat([velocity, -velocity], dim=1) / 1000.0

        def misfit(self, predicted, observed):
            return (predicted - observed).square().mean()

    def build(options, *, survey):
        return Linear(survey)

    @hookimpl
    def fwi_physics():
        yield PhysicsSpec(name="linear-test", factory=build, description="gathers proportional to velocity")
''')


@pytest.fixture()
def files(tmp_path):
    truth = np.random.default_rng(0).uniform(2000, 4000, size=(4, 1, 8, 9)).astype(np.float32)
    paths = {
        "truth": write_velocity(tmp_path / "truth.npy", truth, dx=10.0),
        "pred": write_velocity(tmp_path / "pred.nc", truth + 150.0, dx=10.0),
        "scaled": write_velocity(tmp_path / "scaled.npy", truth * 1.1, dx=10.0),
        "plugin": tmp_path / "linear_physics.py",
    }
    paths["plugin"].write_text(PHYSICS_PLUGIN)
    survey = Survey.small(nz=8, nx=9, nt=8, n_sources=2)
    observed = np.concatenate([truth, -truth], axis=1) / 1000.0
    paths["observed"] = write_gathers(tmp_path / "observed.nc", observed, survey=survey)
    return paths


def test_table_and_json(files, tmp_path):
    runner = CliRunner()
    table = runner.invoke(main, ["evaluate", "--predicted", str(files["pred"]), "--truth", str(files["truth"])])
    assert table.exit_code == 0, table.output
    rows = {line.split("  ")[0]: line.split()[-1] for line in table.output.splitlines()[2:]}
    assert rows["MAE"] == "0.1000" and rows["MAE (m/s)"] == "150.0" and rows["samples"] == "4"

    out = tmp_path / "m" / "metrics.json"
    result = runner.invoke(main, ["evaluate", "--predicted", str(files["pred"]), "--truth", str(files["truth"]),
                                  "--json", "--per-sample", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["rmse_ms"] == pytest.approx(150.0, rel=1e-5)
    assert len(data["per_sample"]["ssim"]) == 4
    assert json.loads(out.read_text()) == data


def test_data_misfit_with_a_physics_plugin(files):
    result = CliRunner().invoke(main, [
        "evaluate", "--plugin", str(files["plugin"]), "--predicted", str(files["scaled"]),
        "--physics", "linear-test", "--observed", str(files["observed"]), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["data_misfit"] == pytest.approx(0.1, rel=1e-4)
    assert "mae" not in data


@pytest.mark.parametrize("args, code, message", [
    (["--predicted", "PRED"], 2, "needs --truth"),
    (["--predicted", "PRED", "--truth", "TRUTH", "--observed", "OBS"], 2, "go together"),
    (["--predicted", "PRED", "--truth", "missing.npy"], 1, "missing.npy: no such file"),
    (["--predicted", "PRED", "--truth", "OBS"], 1, "shape"),
    (["--predicted", "PRED", "--truth", "TRUTH", "-o", "backbone.size=tiny"], 2, "only physics options"),
])
def test_user_errors_name_the_option(files, args, code, message):
    subst = {"PRED": str(files["pred"]), "TRUTH": str(files["truth"]), "OBS": str(files["observed"])}
    result = CliRunner().invoke(main, ["evaluate", *[subst.get(a, a) for a in args]])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output

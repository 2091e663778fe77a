"""The ``fwi predict`` job lives in the engine: the API writes what the command writes, observers only warn."""

from __future__ import annotations

import ast
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fwi_plugins
from fwi_plugins import api
from fwi_plugins.cli import main
from fwi_plugins.data import Normalization
from fwi_plugins.data.io import read_velocity
from fwi_plugins.survey import Survey

SURVEY = Survey.small(nz=16, nx=16, nt=64, n_sources=2)
OPTIONS = {"dim": 32, "depth": 1, "heads": 2, "decoder_dim": 8, "patch_time": 16, "patch_receiver": 4}

RAISING_PLUGIN = textwrap.dedent('''
    from fwi_plugins import hookimpl

    @hookimpl
    def fwi_predictions_ready(run_dir, stage, path, predictions):
        raise RuntimeError("observer broke")
''')


def _inputs(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "g.npy", rng.normal(size=(2, SURVEY.n_shots, SURVEY.nt, SURVEY.n_receivers)).astype(np.float32))
    norm = Normalization.openfwi().fit_gathers(np.array([-5.0, 5.0]))
    (tmp_path / "norm.json").write_text(json.dumps(norm.to_dict()))
    return tmp_path / "g.npy", tmp_path / "norm.json"


def _cli(*args: str):
    flags = [a for k, v in OPTIONS.items() for a in ("-o", f"backbone.{k}={v}")]
    return CliRunner().invoke(main, ["predict", "--backbone", "vit", *flags, "--device", "cpu", "--quiet",
                                     "--pretrained", "none", "--grid", "16x16", *args])


def test_the_api_writes_what_fwi_predict_writes(tmp_path):
    gathers, norm = _inputs(tmp_path)
    torch.manual_seed(0)
    result = _cli("--input", str(gathers), "--out", str(tmp_path / "cli"), "--normalization", str(norm))
    assert result.exit_code == 0, result.output
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="untrained"):
        done = api.predict_files(gathers, tmp_path / "api", backbone="vit", options=OPTIONS, pretrained="none",
                                 grid=(16, 16), normalization=norm, device="cpu", progress=False)
    assert [p.name for p in done.paths] == ["velocity.nc", "velocity.sgy", "velocity.png"]
    by_cli, cli_attrs = read_velocity(tmp_path / "cli" / "velocity.nc")
    by_api, api_attrs = read_velocity(tmp_path / "api" / "velocity.nc")
    np.testing.assert_array_equal(by_api, by_cli)
    np.testing.assert_array_equal(done.velocity, by_api)
    # Versions list the packages imported so far, and the path is each one's own.
    same = {k: v for k, v in api_attrs.items() if k not in ("versions", "path")}
    assert same == {k: v for k, v in cli_attrs.items() if k not in ("versions", "path")}


def test_a_raising_observer_only_warns_in_fwi_predict(tmp_path):
    gathers, norm = _inputs(tmp_path)
    (tmp_path / "raising.py").write_text(RAISING_PLUGIN)
    result = _cli("--input", str(gathers), "--out", str(tmp_path / "o"), "--normalization", str(norm),
                  "--plugin", str(tmp_path / "raising.py"))
    assert result.exit_code == 0, result.output
    assert "observer broke" in result.output
    assert (tmp_path / "o" / "velocity.nc").is_file()


def test_the_engine_does_not_import_the_api_layer():
    """api -> engine is one way: no engine module imports fwi_plugins.api back."""
    engine = Path(fwi_plugins.__file__).parent / "engine"
    for path in sorted(engine.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = {a.name for a in node.names}
                assert not (node.module == "api" or (node.module is None and "api" in names)
                            or (node.module or "").endswith("fwi_plugins.api")), f"{path.name} imports api"

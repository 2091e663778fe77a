"""``fwi predict`` end to end on a tiny backbone: .npy and netCDF in, netCDF, SEG-Y and PNG out."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from fwi_plugins.cli import main
from fwi_plugins.data.gathers_input import open_gathers
from fwi_plugins.engine.jobs.predict_normalization import find_normalization
from fwi_plugins.data import Normalization
from fwi_plugins.data.io import read_velocity, write_gathers
from fwi_plugins.survey import Survey

SURVEY = Survey.small(nz=16, nx=16, nt=64, n_sources=2)
VIT = ["-o", "backbone.dim=32", "-o", "backbone.depth=1", "-o", "backbone.heads=2", "-o", "backbone.decoder_dim=8",
       "-o", "backbone.patch_time=16", "-o", "backbone.patch_receiver=4"]

HOOK_PLUGIN = textwrap.dedent('''
    import json
    from pathlib import Path
    from fwi_plugins import hookimpl

    @hookimpl
    def fwi_predictions_ready(run_dir, stage, path, predictions):
        Path(run_dir, "hook.json").write_text(json.dumps({"stage": stage, "path": str(path),
                                                          "shape": list(predictions.shape)}))
''')


def _gathers(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, SURVEY.n_shots, SURVEY.nt, SURVEY.n_receivers)).astype(np.float32)


def _run(*args: str):
    # The tiny network here is not the shipped foundation's: untrained unless weights are given.
    untrained = [] if {"--weights", "--pretrained"} & set(args) else ["--pretrained", "none"]
    return CliRunner().invoke(main, ["predict", "--backbone", "vit", *VIT, "--device", "cpu", "--quiet", *untrained,
                                     *args])


def test_predict_from_npy_writes_three_formats_and_calls_the_hook(tmp_path):
    np.save(tmp_path / "g.npy", _gathers())
    norm = Normalization.openfwi().fit_gathers(np.array([-5.0, 5.0]))
    (tmp_path / "norm.json").write_text(json.dumps({"normalization": norm.to_dict()}))
    (tmp_path / "hook_plugin.py").write_text(HOOK_PLUGIN)
    out = tmp_path / "pred"
    result = _run("--input", str(tmp_path / "g.npy"), "--out", str(out), "--batch-size", "2", "--grid", "16x16",
                  "--normalization", str(tmp_path / "norm.json"), "--plugin", str(tmp_path / "hook_plugin.py"))
    assert result.exit_code == 0, result.output
    assert "predicted 3 velocity model(s) of 16 x 16 cells" in result.output
    nc, nc_attrs = read_velocity(out / "velocity.nc")
    sgy, _ = read_velocity(out / "velocity.sgy")
    assert nc.shape == (3, 1, 16, 16) and np.isfinite(nc).all()
    np.testing.assert_allclose(sgy, nc, rtol=1e-6)
    assert nc_attrs["dx"] == 10.0 and nc_attrs["backbone"] == "vit"
    assert (out / "velocity.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "hook.json").read_text()) == {"stage": "predict", "path": str(out / "velocity.nc"),
                                                           "shape": [3, 1, 16, 16]}
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]


def test_predict_from_netcdf_takes_grid_and_spacing_from_the_survey(tmp_path):
    write_gathers(tmp_path / "g.nc", _gathers(2), survey=SURVEY.with_grid(16, 16))
    with open_gathers(tmp_path / "g.nc") as (lazy, attrs):
        assert lazy.shape == (2, 2, 64, 16) and "survey" in attrs
        np.testing.assert_array_equal(lazy[1:2], _gathers(2)[1:2])
    result = _run("--input", str(tmp_path / "g.nc"), "--out", str(tmp_path / "o"), "--dx", "5")
    assert result.exit_code == 0, result.output
    # No normalisation was stored with the model: the command says so and goes on.
    assert "no normalisation stored with the model" in result.output
    v, attrs = read_velocity(tmp_path / "o" / "velocity.nc")
    assert v.shape == (2, 1, 16, 16) and attrs["dx"] == 5.0
    assert attrs["normalization_source"] == "fitted on --input"


def test_normalization_found_beside_the_adapter(tmp_path):
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    norm = Normalization(vmin=1000.0, vmax=5000.0, data_min=-2.0, data_max=3.0)
    (run / "config.json").write_text(json.dumps({"normalization": norm.to_dict(), "backbone": "vit"}))
    found, source = find_normalization(None, None, run / "adapter")
    assert found == norm and source.endswith("config.json")
    assert find_normalization(None, None, None) == (None, "")


@pytest.mark.parametrize("args, code, message", [
    (["--input", "missing.npy", "--out", "o"], 1, "--input missing.npy: no such file"),
    (["--input", "G", "--out", "o", "--grid", "16by16"], 2, "--grid '16by16'"),
    (["--input", "G", "--out", "o", "-o", "peft.r=4"], 2, "only backbone options"),
    (["--input", "G", "--out", "o", "--normalization", "none.json"], 1, "--normalization none.json: no such file"),
    (["--input", "G", "--out", "o", "--weights", "w.safetensors"], 1, "weights file w.safetensors does not exist"),
    (["--input", "BAD", "--out", "o"], 1, "expected (sample, shot, time, receiver)"),
])
def test_user_errors(tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    np.save("g.npy", _gathers(1))
    np.save("bad.npy", np.zeros((4, 5), np.float32))
    args = [{"G": "g.npy", "BAD": "bad.npy"}.get(a, a) for a in args]
    result = _run(*args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_weights_and_their_stored_normalization_reproduce_the_python_api(tmp_path):
    from fwi_plugins.engine.inference import load_model, predict
    from fwi_plugins.specs import IOShape
    from fwi_plugins.weights import save_weights

    options = dict(pair.removeprefix("backbone.").split("=") for pair in VIT[1::2])
    shape = IOShape(shots=2, time=64, receivers=16, depth=16, width=16)
    model = load_model("vit", options, shape=shape)
    norm = Normalization(vmin=1500.0, vmax=4500.0, data_min=-4.0, data_max=4.0)
    save_weights(model, tmp_path / "w.safetensors", metadata={"normalization": norm.to_dict()})
    gathers = _gathers(3)
    np.save(tmp_path / "g.npy", gathers)

    result = _run("--input", str(tmp_path / "g.npy"), "--out", str(tmp_path / "o"),
                  "--weights", str(tmp_path / "w.safetensors"))
    assert result.exit_code == 0, result.output
    assert "no normalisation" not in result.output
    v, attrs = read_velocity(tmp_path / "o" / "velocity.nc")
    assert attrs["normalization_source"] == f"{tmp_path / 'w.safetensors'} (metadata)"
    expected = predict(model, gathers, normalization=norm, device="cpu", progress=False)
    np.testing.assert_allclose(v, expected, rtol=1e-5, atol=1e-2)

"""The real ``fwi`` executable in subprocesses: exit codes, and which stream carries what.

click's test runner mixes stdout and stderr and runs in the test's process; here each
command runs as a user runs it, so a message printed on the wrong stream, a traceback
instead of an ``error:`` line, or a run whose adapter folder cannot reproduce its own
predictions is seen. Everything is tiny (the example plugin's 16 x 16 ``tiny-layers``
dataset, its convolutional physics, a one-block vit) so the whole module stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fwi_plugins.data.io import read_gathers, read_velocity
from fwi_plugins.specs import IOShape

EXECUTABLE = Path(sys.executable).with_name("fwi")
FWI = [str(EXECUTABLE)] if EXECUTABLE.is_file() else [sys.executable, "-m", "fwi_plugins"]

VIT = {"size": "tiny", "dim": "16", "depth": "1", "heads": "2", "decoder_dim": "8", "patch_time": "50",
       "patch_receiver": "4"}
BACKBONE = [a for k, v in VIT.items() for a in ("-o", f"backbone.{k}={v}")]
DATASET = ["--dataset", "tiny-layers", "-o", "dataset.size=16", "-o", "dataset.train=4", "-o", "dataset.val=2",
           "-o", "dataset.test=2"]
PHYSICS = ["--physics", "convolutional"]
FAST = ["-o", "epochs=1", "-o", "batch_size=4", "-o", "progress=false", "-o", "figures=false",
        "-o", "refine_samples=1", "-o", "refine_iterations=1", "-o", "n_misfit=1", "--device", "cpu"]


def fwi(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FWI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def assert_user_error(result: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    """Exit ``code``, an ``error:`` line naming ``needle`` on stderr, nothing of it on stdout.

    click reports a bad parameter value itself, as ``Error: Invalid value for ...`` after the usage.
    """
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.lower().startswith("error:")]
    assert errors and needle in errors[0], result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert "error:" not in result.stdout.lower()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder, a clean environment with a private cache, and a tiny vit's weights file."""
    import torch

    from fwi_plugins import api
    from fwi_plugins.weights import save_weights

    root = tmp_path_factory.mktemp("exe")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FWI_")}
    env.update(FWI_CACHE_DIR=str(root / "cache"), OMP_NUM_THREADS="1")
    torch.manual_seed(5)
    model = api.build_backbone("vit", VIT, shape=IOShape(shots=3, time=300, receivers=16, depth=16, width=16))
    save_weights(model, root / "foundation.safetensors")
    return root, env


@pytest.fixture(scope="module")
def finished_run(workspace):
    root, env = workspace
    result = fwi("run", "--backbone", "vit", "--peft", "lora", *PHYSICS, *DATASET, *BACKBONE, *FAST,
                 "--pretrained", str(root / "foundation.safetensors"), "--out", str(root / "job"), cwd=root, env=env)
    return root, env, result


def test_run_exits_0_with_the_summary_on_stdout(finished_run):
    root, _, result = finished_run
    assert result.returncode == 0, result.stderr
    assert "zero-shot" in result.stdout and "SSIM" in result.stdout
    assert "error:" not in result.stderr and "Traceback" not in result.stderr
    assert (root / "job" / "adapter" / "adapter_config.json").is_file()


def test_run_then_predict_with_its_adapter_reproduces_the_run(finished_run):
    """The adapter folder alone (with the foundation weights) gives the run's own predictions.

    The input holds the test gathers and the same gathers four times louder: the run's scale
    (fitted on its training gathers) must be applied to both, not one fitted on this input.
    """
    from fwi_plugins.data import Normalization
    from fwi_plugins.data.io import survey_from_attrs, write_gathers
    from fwi_plugins.engine.inference import load_model, predict

    root, env, run = finished_run
    assert run.returncode == 0, run.stderr
    job = root / "job"
    simulate = fwi("simulate", *DATASET, *PHYSICS, "--split", "test", "--out", str(root / "test.nc"),
                   "--no-progress", cwd=root, env=env)
    assert simulate.returncode == 0, simulate.stderr
    gathers, attrs = read_gathers(root / "test.nc")
    assert gathers.shape == (2, 3, 300, 16)
    both = np.concatenate([gathers, 4.0 * gathers])
    write_gathers(root / "both.nc", both, survey=survey_from_attrs(attrs))

    predict_run = fwi("predict", "--backbone", "vit", *BACKBONE, "--weights", str(root / "foundation.safetensors"),
                      "--adapter", str(job / "adapter"), "--input", str(root / "both.nc"), "--out",
                      str(root / "pred"), "--device", "cpu", "--quiet", cwd=root, env=env)
    assert predict_run.returncode == 0, predict_run.stderr
    assert "Traceback" not in predict_run.stderr
    predicted, pattrs = read_velocity(root / "pred" / "velocity.nc")
    adapted, _ = read_velocity(job / "predictions" / "adapted.nc")
    np.testing.assert_allclose(predicted[:2], adapted, rtol=0, atol=0.01)  # m/s
    recorded = json.loads((job / "metrics.json").read_text())["dataset"]["normalization"]
    model = load_model("vit", VIT, weights_path=root / "foundation.safetensors", adapter_dir=job / "adapter",
                       shape=IOShape(shots=3, time=300, receivers=16, depth=16, width=16))
    expected = predict(model, both, normalization=Normalization.from_dict(recorded), device="cpu", progress=False)
    np.testing.assert_allclose(predicted, expected, rtol=0, atol=0.01)
    assert pattrs["normalization_source"].endswith("normalization.json")
    # The scale fitted on the training gathers is what travels with the adapter, in full.
    saved = json.loads((job / "adapter" / "normalization.json").read_text())
    assert saved == recorded
    assert saved["data_min"] is not None and saved["data_max"] is not None and saved["data_min"] < saved["data_max"]


def test_refine_and_evaluate_on_the_run_outputs(finished_run):
    root, env, run = finished_run
    assert run.returncode == 0, run.stderr
    job = root / "job"
    if not (root / "test.nc").is_file():
        made = fwi("simulate", *DATASET, *PHYSICS, "--split", "test", "--out", str(root / "test.nc"),
                   "--no-progress", cwd=root, env=env)
        assert made.returncode == 0, made.stderr
    refined = fwi("refine", "--initial", str(job / "predictions" / "adapted.nc"), "--observed", str(root / "test.nc"),
                  *PHYSICS, "--iterations", "1", "--out", str(root / "refined"), "--no-progress", cwd=root, env=env)
    assert refined.returncode == 0, refined.stderr
    assert "Traceback" not in refined.stderr
    evaluated = fwi("evaluate", "--predicted", str(job / "predictions" / "adapted.nc"),
                    "--truth", str(job / "predictions" / "truth.nc"), "--json", cwd=root, env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    run_metrics = json.loads((job / "metrics.json").read_text())["adapted"]
    assert metrics["mae"] == pytest.approx(run_metrics["mae"], rel=1e-4)


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["run", "--backbone", "vitt", "--peft", "lora", *PHYSICS], 2, "Did you mean 'vit'"),
    (["run", "--backbone", "vit", "--peft", "lora", *PHYSICS, "-o", "epoch=3"], 2, "Did you mean 'epochs'"),
    (["run", "--backbone", "vit", "--peft", "lora"], 1, "--physics"),
    (["simulate", "--velocity", "missing.npy", "--out", "g.nc"], 1, "missing.npy"),
    (["simulate", "--dataset", "tiny-layers", "--out", "g.txt"], 2, "--out"),
    (["predict", "--backbone", "vit", "--input", "missing.npy", "--out", "o"], 1, "--input missing.npy"),
    (["evaluate", "--predicted", "missing.npy", "--truth", "missing.npy"], 1, "missing.npy"),
])
def test_user_errors_exit_nonzero_with_an_error_line_on_stderr(workspace, args, code, needle):
    root, env = workspace
    assert_user_error(fwi(*args, cwd=root, env=env), code, needle)


def test_traceback_only_when_asked(workspace):
    root, env = workspace
    args = ["simulate", "--velocity", "missing.npy", "--out", "g.nc"]
    asked = fwi(*args, cwd=root, env={**env, "FWI_TRACEBACK": "1"})
    assert asked.returncode == 1 and "Traceback" in asked.stderr and "error:" in asked.stderr

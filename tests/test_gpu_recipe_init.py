"""The GPU recipe's ``--init``, ``--maps`` and ``--lr``: continuing a foundation model in one call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device" / "pretrain_gpu.sh"
sys.path.insert(0, str(ROOT / "benchmarks" / "device"))

import pretrain_gpu  # noqa: E402

from fwi_plugins.errors import ConfigError  # noqa: E402


def options(*argv: str) -> dict:
    cfg = pretrain_gpu.settings(True)
    pretrain_gpu.apply_options(cfg, pretrain_gpu.parse_args(["--tiny", *argv]))
    return cfg


def test_maps_and_lr_change_the_plan_and_the_rate():
    cfg = options("--maps", "3", "--lr", "2e-4")
    assert cfg["plan"].n_train == 3 and cfg["plan"].shard == 3  # a shard never exceeds the family
    assert cfg["plan"].pieces()[0] == ("flatvel-a", "train", 0, 3)
    assert cfg["lr"] == 2e-4
    default = options()
    assert default["plan"].n_train == 4 and default["lr"] == 1e-3 and "init" not in default


def test_init_takes_the_backbone_options_stored_with_the_weights():
    shipped = ROOT / "src" / "fwi_plugins" / "weights" / "vit-tiny-openfwi.safetensors"
    cfg = options("--init", str(shipped.relative_to(ROOT)))  # relative paths are from the repository root
    assert cfg["init"] == str(shipped)
    assert cfg["backbone"]["size"] == "tiny" and cfg["backbone"]["patch_time"] == 50
    assert None not in cfg["backbone"].values()  # unset options stay the backbone's defaults
    assert cfg["name"] == "vit-tiny-openfwi-gpu"


@pytest.mark.parametrize(("argv", "message"), [
    (["--init", "no/such/weights.safetensors"], "--init: no weights file at"),
    (["--maps", "-1"], "--maps and --lr must not be negative"),
    (["--lr=-1e-3"], "--maps and --lr must not be negative"),
])
def test_bad_options_are_named(argv, message):
    with pytest.raises(ConfigError, match=message):
        options(*argv)


def test_init_refuses_weights_of_another_backbone(tmp_path):
    other = tmp_path / "inversionnet.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"backbone": "inversionnet"})
    with pytest.raises(ConfigError, match="holds no vit foundation.*'inversionnet'"):
        options("--init", str(other))


def test_a_missing_init_file_stops_the_script_without_a_traceback(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", str(SCRIPT), "--tiny", "--work", str(tmp_path / "w"), "--out",
                             str(tmp_path / "o"), "--init", str(tmp_path / "missing.safetensors")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert "pretrain_gpu: error: --init: no weights file at" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "w").exists() and not (tmp_path / "o").exists()  # nothing written


@pytest.mark.slow
def test_tiny_recipe_continues_from_init_weights(tmp_path):
    pytest.importorskip("fwi_torchwave")
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)

    def call(name: str, *extra: str, code: int = 0) -> subprocess.CompletedProcess:
        result = subprocess.run(["bash", str(SCRIPT), "--tiny", "--calls", "1", "--work", str(tmp_path / name / "w"),
                                 "--out", str(tmp_path / name / "out"), *extra],
                                capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == code, result.stdout[-3000:] + result.stderr[-3000:]
        assert code or "RECIPE COMPLETE" in result.stdout
        return result

    call("first")
    init = tmp_path / "first" / "w" / "pretrain" / "weights.safetensors"
    # A learning rate too small to move a weight: the result must be the init weights, not a fresh model.
    call("second", "--init", str(init), "--maps", "2", "--lr", "1e-12")
    card = json.loads((tmp_path / "second" / "out" / "model_card.json").read_text())
    assert card["init"] == str(init) and card["options"]["lr"] == 1e-12 and card["steps"] == 6
    assert card["recipe"]["corpus"]["train_maps"] == 2 * 8
    trained = run_weights(tmp_path / "second")
    start = load_file(str(init))
    assert trained.keys() == start.keys()
    assert all(torch.allclose(trained[k], start[k], atol=1e-6) for k in start)

    # Another work folder can train on the first one's corpus (--corpus), if the plan is the same.
    shared = str(tmp_path / "first" / "w" / "corpus")
    third = call("third", "--corpus", shared, "--init", str(init))
    assert "0 to build" in third.stdout and not (tmp_path / "third" / "w" / "corpus").exists()
    assert f"dataset.root={shared}" in third.stdout
    other = call("fourth", "--corpus", shared, "--maps", "2", code=1)
    assert "holds a corpus of another plan (differs in n_train" in other.stderr + other.stdout
    assert "Traceback" not in other.stderr


def run_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "w" / "pretrain" / "weights.safetensors"))

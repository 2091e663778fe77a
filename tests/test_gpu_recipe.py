"""The GPU recipe's --tiny mode on the CPU: two calls, the first stopping at a checkpoint, the second finishing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device" / "pretrain_gpu.sh"


def call(work: Path, out: Path, *extra: str) -> str:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    result = subprocess.run(["bash", str(SCRIPT), "--tiny", "--work", str(work), "--out", str(out), *extra],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def returned(out: Path) -> list[Path]:
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in files)
    return files


@pytest.mark.slow
def test_tiny_recipe_checkpoints_in_the_first_call_and_finishes_in_the_second(tmp_path):
    pytest.importorskip("fwi_torchwave")
    work = tmp_path / "work"

    first = call(work, tmp_path / "out1", "--train-minutes", "0.0001")
    assert "corpus: 16 of 16 pieces" in first and "RECIPE INCOMPLETE" in first
    assert (work / "pretrain" / "checkpoints" / "latest.json").is_file()
    names = {p.name for p in returned(tmp_path / "out1")}
    assert {"model.safetensors.index.json", "model_card.md", "pretrain_gpu.log"} <= names  # a snapshot

    second = call(work, tmp_path / "out2")
    assert "0 to build" in second and "resuming pretrain" in second and "RECIPE COMPLETE" in second
    out = tmp_path / "out2"
    names = {p.name for p in returned(out)}
    shards = sorted(n for n in names if n.startswith("model-"))
    assert len(shards) > 1 and shards[-1] == f"model-{len(shards):05d}-of-{len(shards):05d}.safetensors"
    card = json.loads((out / "model_card.json").read_text())
    assert card["complete"] and card["steps"] == 6
    calls = [c["did"] for c in card["recipe"]["calls"]]
    assert len(calls) == 2 and "corpus" in calls[0] and "training" in calls[1] and "complete" in calls[1]
    assert set(card["recipe"]["held_out_zero_shot"]) == {"curvefault-b", "salt"}
    assert "## GPU recipe" in (out / "model_card.md").read_text()
    assert "call 1" in (out / "pretrain_gpu.log").read_text()  # the log spans both calls

    from fwi_plugins import api

    model = api.build_backbone("vit", pretrained=str(out)).eval()  # the folder stands for its index
    reference = api.build_backbone("vit", pretrained=str(work / "pretrain" / "weights.safetensors")).eval()
    x = torch.randn(1, 2, 120, 16)
    assert torch.equal(model(x), reference(x))

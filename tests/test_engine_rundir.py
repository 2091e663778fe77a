"""Run directories: atomic writes, listing, resuming, and the terminal summary."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fwi_plugins.engine.jobs.rundir import RunDirectory, summary_table, to_jsonable
from fwi_plugins.errors import DataError


def test_write_and_read(tmp_path):
    run = RunDirectory(tmp_path / "lora-flat")
    run.write_json("config.json", {"backbone": "vit", "lr": np.float32(1e-3), "survey": (1, 2)})
    run.write_metrics({"adapted": {"mae": np.float64(0.02), "ssim": float("nan"), "n_samples": np.int64(4)}})
    run.write_text("notes/readme.txt", "hello")
    assert run.exists("notes/readme.txt") and not run.exists("missing.txt")
    assert run.read_json("config.json") == {"backbone": "vit", "lr": pytest.approx(1e-3), "survey": [1, 2]}
    # NaN is not JSON: it is written as null so other tools can read the file.
    assert run.read_metrics() == {"adapted": {"mae": 0.02, "ssim": None, "n_samples": 4}}
    json.loads((run.path / "metrics.json").read_text())


def test_metrics_merge_keeps_earlier_stages(tmp_path):
    run = RunDirectory(tmp_path / "r")
    run.write_metrics({"zero_shot": {"mae": 0.1}})
    run.write_metrics({"adapted": {"mae": 0.05}}, merge=True)
    assert set(run.read_metrics()) == {"zero_shot", "adapted"}
    run.write_metrics({"refined": {}})
    assert set(run.read_metrics()) == {"refined"}


def test_paths_stay_inside_and_missing_files_are_named(tmp_path):
    with pytest.raises(DataError, match="inside"):
        RunDirectory(tmp_path / "again").write_text("../outside.txt", "x")
    with pytest.raises(DataError, match="does not exist"):
        RunDirectory(tmp_path / "nope").read_metrics()


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    run = RunDirectory(tmp_path / "r")
    run.write_metrics({"mae": 1.0})
    real = Path.write_text

    def killed(path, text, *args, **kwargs):
        real(path, text[:3])
        raise RuntimeError("killed")

    monkeypatch.setattr(Path, "write_text", killed)
    with pytest.raises(RuntimeError):
        run.write_metrics({"mae": 2.0})
    monkeypatch.undo()
    assert run.read_metrics() == {"mae": 1.0}
    assert sorted(p.name for p in run.path.iterdir()) == ["metrics.json"]


def test_summary_table_by_stage():
    text = summary_table({
        "zero_shot": {"ssim": 0.61234, "mae": 0.2, "mae_ms": 300.04, "per_sample": {"mae": [1, 2]}},
        "adapted": {"ssim": 0.8, "mae": 0.1, "mae_ms": 150.0, "data_misfit": 0.00012},
        "run": "lora",
    })
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "zero_shot", "adapted"]
    assert set(lines[1]) <= {"-", " "}
    rows = {line.split("  ")[0].strip(): line.split()[-2:] for line in lines[2:]}
    assert [line.split("  ")[0].strip() for line in lines[2:]] == ["MAE", "SSIM", "MAE (m/s)",
                                                                   "data misfit (relative L2)"]
    assert rows["SSIM"] == ["0.6123", "0.8000"]
    assert rows["MAE (m/s)"] == ["300.0", "150.0"]
    assert rows["data misfit (relative L2)"] == ["-", "1.200e-04"]
    assert len({len(line) for line in lines[:2]}) == 1


def test_summary_table_flat():
    text = summary_table({"mae": 0.0131, "rmse": 0.0211, "ssim": 0.9895, "n_samples": 12, "note": "x"})
    assert text.splitlines()[2:] == ["MAE      0.0131", "RMSE     0.0211", "SSIM     0.9895",
                                     "samples      12"]


def test_to_jsonable_handles_numpy_and_torch():
    torch = pytest.importorskip("torch")
    data = to_jsonable({"a": np.arange(3), "b": torch.tensor([1.5]), "c": math.inf})
    assert data == {"a": [0, 1, 2], "b": [1.5], "c": None}

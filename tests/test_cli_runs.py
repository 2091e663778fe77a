"""``fwi runs``: run folders listed and compared from what the engine writes (config.json, metrics.json)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fwi_plugins.cli import main
from fwi_plugins.engine.jobs.runs import find_runs, read_run


def config(peft: str, *, command: str = "run", **options) -> dict:
    """A config.json as ``fwi run`` writes it (the keys fwi runs reads, and a few it does not)."""
    return {"command": command, "out": f"runs/vit-{peft}-salt", "argv": ["fwi", command],
            "options": {"epochs": 2, "lr": 0.002, "labels": "full", "pretrained": "default", **options},
            "backbone": {"name": "vit", "options": {"dim": 16, "depth": 1}},
            "peft": {"name": peft, "options": {"r": 4}},
            "physics": {"name": "deepwave", "options": {}},
            "dataset": {"name": "salt", "options": {"n_train": 8}}}


def metrics(zero_ssim: float, adapted_ssim: float, adapted_mae: float, *, steps: int = 40) -> dict:
    """A metrics.json as ``fwi run`` writes it (engine/jobs/run.py's _metrics and _write_run)."""
    stage = {"mae": 0.2, "rmse": 0.3, "ssim": zero_ssim, "mae_ms": 300.0, "rmse_ms": 450.0, "n_samples": 2}
    return {"zero_shot": stage, "adapted": {**stage, "ssim": adapted_ssim, "mae": adapted_mae,
                                            "mae_ms": adapted_mae * 1500.0},
            "training": {"history": [{"epoch": 0, "step": 0, "val_mae": 0.2}], "epochs": 2, "steps": steps,
                         "wall_time": 12.5, "resumed_from": 0, "best_epoch": 2},
            "refinement": {}, "parameters": {"trainable": 4210, "total": 145460, "fraction": 0.029},
            "pretrained": "default", "pretrained_digest": "abc",
            "dataset": {"name": "salt", "split_sizes": {"train": 8, "val": 2, "test": 2}},
            "hardware": {"device": "cpu"}, "seed": 0, "timing": {"data": 1.0, "total": 20.25}}


def write_run(folder: Path, config_data: dict, metrics_data: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config_data))
    if metrics_data is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics_data))
    (folder / "checkpoints" / "epoch-0001").mkdir(parents=True)
    return folder


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = tmp_path / "runs"
    write_run(base / "vit-lora-salt", config("lora"), metrics(0.60, 0.80, 0.10))
    write_run(base / "vit-full-salt", config("full", lr=0.001), metrics(0.60, 0.75, 0.12, steps=80))
    partial = write_run(base / "nested" / "vit-ia3-salt", config("ia3"))
    ckpt = partial / "checkpoints"
    (ckpt / "latest.json").write_text(json.dumps({"epoch": 1, "path": "epoch-0001"}))
    (ckpt / "epoch-0001" / "state.json").write_text(json.dumps({"epoch": 1, "step": 20, "wall_time": 6.0}))
    pretrain = {"validation": {"val_mae": 0.05}, "validation_by_dataset": {},
                "training": {"history": [], "epochs": 1, "steps": 10, "wall_time": 3.0, "complete": False},
                "parameters": 145460, "timing": {"total": 4.0}}
    write_run(base / "foundation", {**config("lora", command="pretrain"), "peft": None,
                                    "dataset": [{"name": "flatvel-a"}, {"name": "salt"}]}, pretrain)
    (base / "notes.txt").write_text("not a run")
    return base


def invoke(*args: str):
    return CliRunner().invoke(main, ["runs", *args], catch_exceptions=False)


def test_runs_lists_every_run_folder_below_runs_with_its_key_metrics(runs):
    result = invoke("--json")
    assert result.exit_code == 0, result.output
    listed = {Path(r["run"]).name: r for r in json.loads(result.output)}
    assert set(listed) == {"vit-lora-salt", "vit-full-salt", "vit-ia3-salt", "foundation"}
    lora = listed["vit-lora-salt"]
    assert (lora["backbone"], lora["peft"], lora["dataset"], lora["physics"]) == ("vit", "lora", "salt", "deepwave")
    assert (lora["zero_shot_ssim"], lora["adapted_ssim"], lora["adapted_mae"]) == (0.60, 0.80, 0.10)
    assert (lora["steps"], lora["epochs"], lora["train_time"], lora["wall_time"]) == (40, 2, 12.5, 20.25)
    assert lora["trainable"] == 4210 and lora["status"] == "complete"
    assert lora["settings"]["lr"] == 0.002 and lora["settings"]["peft.r"] == 4
    # No metrics.json: partial, with the steps its last checkpoint reached.
    ia3 = listed["vit-ia3-salt"]
    assert (ia3["status"], ia3["steps"], ia3["epochs"], ia3["adapted_ssim"]) == ("partial", 20, 1, None)
    # A pretraining stopped by its time budget is partial too; its datasets are listed together.
    foundation = listed["foundation"]
    assert (foundation["status"], foundation["dataset"], foundation["peft"]) == ("partial", "flatvel-a,salt", None)
    assert (foundation["val_mae"], foundation["trainable"], foundation["steps"]) == (0.05, 145460, 10)


def test_runs_table_has_one_line_per_run(runs):
    result = invoke()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["run", "backbone", "peft", "dataset"] and "status" in lines[0]
    lora = next(line for line in lines if "vit-lora-salt" in line)
    assert lora.split()[1:4] == ["vit", "lora", "salt"]
    assert "0.6000" in lora and "0.8000" in lora and "0.1000" in lora and lora.endswith("complete")
    assert next(line for line in lines if "vit-ia3-salt" in line).endswith("partial")
    assert len(lines) == 2 + 4


def test_compare_puts_runs_side_by_side_and_marks_differences(runs):
    lora, full = runs / "vit-lora-salt", runs / "vit-full-salt"
    result = invoke("compare", str(lora), str(full), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["runs"] == [str(lora), str(full)]
    rows = {row["key"]: row for row in data["rows"]}
    assert rows["adapted_ssim"] == {"key": "adapted_ssim", "label": "adapted SSIM", "values": [0.80, 0.75],
                                    "differs": True, "best": 0}
    assert rows["adapted_mae"]["best"] == 0 and rows["steps"]["values"] == [40, 80]
    assert rows["zero_shot_ssim"]["differs"] is False and rows["zero_shot_ssim"]["best"] is None
    assert rows["peft"]["values"] == ["lora", "full"] and rows["peft"]["differs"]
    # Settings: only those that differ, so the cause of a difference is in view.
    assert rows["settings.lr"]["values"] == [0.002, 0.001]
    assert "settings.epochs" not in rows and "settings.peft.r" not in rows
    table = invoke("compare", str(lora), str(full))
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == [str(lora), str(full)]
    ssim = next(line for line in lines if "adapted SSIM" in line)
    assert ssim.startswith("* ") and ssim.split()[-3:] == ["0.8000", "<", "0.7500"]
    zero = next(line for line in lines if "zero-shot SSIM" in line)
    assert zero.startswith("  ") and zero.split()[-2:] == ["0.6000", "0.6000"]
    assert any(line.startswith("* lr") for line in lines)


@pytest.mark.parametrize(("args", "needle"), [
    (["missing"], "missing: no such folder"),
    (["runs/notes.txt"], "runs/notes.txt: not a folder"),
    (["compare", "runs/vit-lora-salt", "runs/missing"], "runs/missing: no such run folder"),
    (["compare", "runs/vit-lora-salt", "runs/nested"], "runs/nested: not a run folder"),
])
def test_bad_paths_fail_naming_the_path_without_traceback(runs, args, needle):
    result = CliRunner().invoke(main, ["runs", *args])
    assert result.exit_code == 1, result.output
    assert needle in result.output and "Traceback" not in result.output


def test_unreadable_metrics_and_no_runs_folder(runs, tmp_path, monkeypatch):
    (runs / "vit-lora-salt" / "metrics.json").write_text("{not json")
    result = CliRunner().invoke(main, ["runs"])
    assert result.exit_code == 1 and "vit-lora-salt/metrics.json: not valid JSON" in result.output
    monkeypatch.chdir(tmp_path / "runs" / "nested" / "vit-ia3-salt" / "checkpoints")
    result = CliRunner().invoke(main, ["runs"])
    assert result.exit_code == 1 and "runs: no such folder" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke(str(empty)).output.startswith("no run folders in")
    assert json.loads(invoke(str(empty), "--json").output) == []


def test_a_run_folder_itself_is_listed_and_its_own_folders_are_not_searched(runs):
    assert find_runs([runs / "vit-lora-salt"]) == [runs / "vit-lora-salt"]
    (runs / "vit-lora-salt" / "checkpoints" / "config.json").write_text("{}")
    assert find_runs([runs / "vit-lora-salt"]) == [runs / "vit-lora-salt"]
    assert read_run(runs / "vit-lora-salt").fields["adapted_ssim"] == 0.80


def test_fwi_runs_does_not_import_torch(runs):
    code = ("import sys; from click.testing import CliRunner; from fwi_plugins.cli import main; "
            "r = CliRunner().invoke(main, ['runs', '--json']); assert r.exit_code == 0, r.output; "
            "print(len(r.output) > 0, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]

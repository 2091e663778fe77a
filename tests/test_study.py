"""``fwi study``: the smoke run end to end, the plan, resuming by task files, the refused plan, the
gap-closed and data-curve arithmetic, and bad options."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from fwi_plugins.study.report import data_curve, gap_closed, spread


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One ``fwi study --smoke`` for the module: (folder, the CLI's result, study.json)."""
    pytest.importorskip("deepwave")
    from click.testing import CliRunner

    from fwi_plugins.cli import main
    from fwi_plugins.manager import reset_plugin_manager

    root = tmp_path_factory.mktemp("study")
    patch = pytest.MonkeyPatch()
    patch.setenv("FWI_CACHE_DIR", str(root / "cache"))
    reset_plugin_manager()
    try:
        result = CliRunner().invoke(main, ["study", "--smoke", "--out", str(root / "smoke")])
    finally:
        patch.undo()
        reset_plugin_manager()
    assert result.exit_code == 0, result.output
    return root / "smoke", result, json.loads((root / "smoke" / "study.json").read_text())


def test_smoke_study_runs_every_stage_and_writes_its_report(smoke):
    folder, result, report = smoke
    assert report["missing"] == [] and report["options"]["smoke"]
    stages = sorted(r["stage"] for r in report["tasks"].values())
    # 1 zero-shot, 3 methods x 2 learning rates, 3 methods x 2 fractions x 2 seeds, 1 specialist
    assert stages.count("zero-shot") == 1 and stages.count("tune") == 6
    assert stages.count("test") == 12 and stages.count("specialist") == 1
    assert len(list((folder / "tasks").glob("*.json"))) == 20
    for name in ("study.md", "study_ssim_share.png", "study_data_curve.png", "plan.json"):
        assert (folder / name).is_file(), name
    rows = report["results"]["salt"]
    assert set(rows["methods"]) == {"scratch", "full", "lora"}
    assert set(rows["methods"]["lora"]) == {"1", "0.5"}
    assert "specialist (scratch" in result.output and "gap closed" in result.output
    assert report["command"].startswith("fwi study --smoke")


def test_learning_rates_are_chosen_on_validation_and_never_scored_on_test(smoke):
    _, _, report = smoke
    runs = report["tasks"].values()
    for method, choice in report["chosen_lr"]["salt"].items():
        scores = [row["val_ssim"] for row in choice["grid"]]
        assert len(scores) == 2 and choice["chosen"] == choice["grid"][int(np.argmax(scores))]["lr"]
        tuned = [r for r in runs if r["stage"] == "tune" and r["method"] == method]
        assert tuned and all("test" not in r for r in tuned)
        tested = [r for r in runs if r["stage"] == "test" and r["method"] == method]
        assert {r["lr"] for r in tested} == {choice["chosen"]}
        assert {r["seed"] for r in tested} == {0, 1}
    test_sha = report["targets"]["salt"]["test_sha256"]
    assert all(r["test"]["maps_sha256"] == test_sha for r in runs if "test" in r)


def test_mean_sd_and_gap_closed_come_from_the_task_files_as_by_hand(smoke):
    folder, _, report = smoke
    tasks = [json.loads(p.read_text()) for p in (folder / "tasks").glob("*.json")]
    zero = next(t for t in tasks if t["stage"] == "zero-shot")["test"]["ssim"]
    best = next(t for t in tasks if t["stage"] == "specialist")["test"]["ssim"]
    for method, fractions in report["results"]["salt"]["methods"].items():
        for row in fractions.values():
            ssims = [t["test"]["ssim"] for t in tasks
                     if t["stage"] == "test" and t["method"] == method and t["maps"] == row["maps"]]
            assert len(ssims) == 2
            mean = (ssims[0] + ssims[1]) / 2
            assert math.isclose(row["ssim"]["mean"], mean, rel_tol=1e-12)
            assert math.isclose(row["ssim"]["sd"], abs(ssims[0] - ssims[1]) / math.sqrt(2), rel_tol=1e-9)
            if best > zero:
                assert math.isclose(row["gap_closed"], (mean - zero) / (best - zero), rel_tol=1e-9)


def test_gap_closed_by_hand():
    # zero-shot 0.60, specialist 0.80: 0.70 closes half the gap, 0.55 loses a quarter of it.
    assert math.isclose(gap_closed(0.70, 0.60, 0.80), 0.5)
    assert math.isclose(gap_closed(0.55, 0.60, 0.80), -0.25)
    assert math.isclose(gap_closed(0.80, 0.60, 0.80), 1.0)
    assert gap_closed(0.70, 0.60, 0.60) is None  # a specialist no better than zero-shot: no gap
    assert gap_closed(None, 0.60, 0.80) is None


def test_the_data_curve_says_where_more_maps_stop_paying_off():
    def rows(*points):
        return {str(n): {"maps": n, "ssim": spread([s])} for n, s in points}

    curve = data_curve(rows((2, 0.50), (20, 0.60), (200, 0.601)), min_gain=0.002)
    assert curve["stops_paying_off_at"] == 20 and not curve["still_paying_off_at_most_maps"]
    assert [p["maps"] for p in curve["points"]] == [2, 20, 200]
    still = data_curve(rows((2, 0.50), (20, 0.60), (200, 0.65)), min_gain=0.002)
    assert still["stops_paying_off_at"] == 200 and still["still_paying_off_at_most_maps"]
    # a dip then a rise: 20 maps does not count as the end while 200 still gains on it
    dip = data_curve(rows((2, 0.50), (20, 0.49), (200, 0.55)), min_gain=0.002)
    assert dip["stops_paying_off_at"] == 200


def test_spread_is_the_mean_and_sample_standard_deviation():
    sp = spread([0.5, 0.7, 0.9])
    assert math.isclose(sp["mean"], 0.7) and math.isclose(sp["sd"], float(np.std([0.5, 0.7, 0.9], ddof=1)))
    assert spread([0.5])["sd"] is None


def test_a_second_invocation_skips_finished_tasks_and_runs_the_missing_ones(smoke, tmp_path, cli):
    folder = tmp_path / "resumed"
    shutil.copytree(smoke[0], folder)
    files = sorted((folder / "tasks").glob("*.json"))
    removed = [p for p in files if p.stem.startswith("test--salt--lora")] + \
        [p for p in files if p.stem.startswith("specialist")]
    kept = {p.name: p.read_text() for p in files if p not in removed}
    for p in removed:
        p.unlink()
    result = cli("study", "--smoke", "--out", str(folder))
    assert result.exit_code == 0, result.output
    assert "resuming: 7 of 7 runs already finished" in result.output
    assert f"resuming: {13 - len(removed)} of 13 runs already finished" in result.output
    after = {p.name: p.read_text() for p in (folder / "tasks").glob("*.json")}
    assert set(after) == set(kept) | {p.name for p in removed}
    assert all(after[name] == text for name, text in kept.items()), "a finished task was run again"


def test_a_different_plan_in_the_same_folder_is_refused(smoke, tmp_path, cli):
    folder = tmp_path / "other"
    shutil.copytree(smoke[0], folder)
    before = sorted(p.name for p in (folder / "tasks").iterdir())
    result = cli("study", "--smoke", "--seeds", "0", "--out", str(folder))
    assert result.exit_code == 2
    assert "holds a study with another plan" in result.output and "seeds" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (folder / "tasks").iterdir()) == before


def test_plan_only_prints_the_plan_and_runs_nothing(cli, tmp_path):
    result = cli("study", "--smoke", "--plan-only", "--out", str(tmp_path / "nothing"))
    assert result.exit_code == 0, result.output
    assert "plan: 20 runs (1 zero-shot, 6 learning-rate runs" in result.output
    assert "tune--salt--lora--f1--lr0.001--s0" in result.output
    assert not (tmp_path / "nothing").exists()
    as_json = json.loads(cli("study", "--plan-only", "--peft", "lora,full", "--dataset", "salt,curvefault-b",
                             "--seeds", "0,1,2", "--fractions", "1,0.1,0.01", "--json").output)
    assert as_json["estimate"]["counts"] == {"zero_shot": 2, "tune": 12, "test": 36, "specialist": 2}


@pytest.mark.parametrize(("args", "named"), [
    (["--peft", "lorra"], "--peft: unknown peft 'lorra'. Did you mean 'lora'?"),
    (["--dataset", "sallt"], "--dataset: unknown dataset 'sallt'"),
    (["--backbone", "vitt"], "--backbone: unknown backbone 'vitt'"),
    (["--seeds", "zero"], "--seeds: expected comma-separated ints"),
    (["--fractions", "2"], "--fractions must lie in (0, 1]"),
    (["--specialist-maps", "5", "--n-train", "10"], "--specialist-maps must be 0"),
    (["--peft-options", "lora.r"], "--peft-options: expected KEY=VALUE"),
])
def test_a_bad_option_is_named_without_a_traceback(cli, args, named):
    result = cli("study", "--plan-only", *args)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert "Traceback" not in result.output

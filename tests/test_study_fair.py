"""The fair study (benchmarks/study_fair.py): learning rates chosen on validation maps only, over the
whole grid, and the spread over seeds computed as numpy computes it."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SCRIPT = BENCHMARKS / "study_fair.py"


@pytest.fixture
def fair(monkeypatch):
    """The fair study's modules (they live beside the command, not in the package)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import study_fair_plan
    import study_fair_report

    return study_fair_plan, study_fair_report


def settings(plan, *, seeds=(0, 1, 2)):
    from study_plan import Settings

    base = Settings(foundation="f", foundation_sha256="0" * 64, targets=("salt", "curvefault-b"),
                    methods=("scratch", "full", "lora"), fractions=(1.0,), n_train=200, n_test=100, steps=78,
                    batch_size=16, lr=2e-3, lambda_ssim=1.0, warmup_steps=6, seed=0, physics_targets=(),
                    physics_method="", physics_fraction=0.0, physics_samples=0, lambda_physics="0",
                    labelfree_batch=1, misfit_samples=0, refine_iterations=0, refine_lr=0.0, refine_step="adam",
                    device="cpu", smoke=False)
    return plan.FairSettings(base=base, n_val=50, grid_whole=(3e-4, 1e-3, 3e-3), grid_peft=(1e-3, 3e-3, 1e-2),
                             seeds=seeds, scratch_cap=600, patience=8, val_every=1)


def test_the_learning_rate_of_the_highest_validation_ssim_is_chosen_whatever_the_mae_says(fair):
    plan, _ = fair
    rows = [{"lr": 1e-3, "val_ssim": 0.61, "val_mae_ms": 200.0}, {"lr": 3e-3, "val_ssim": 0.66, "val_mae_ms": 260.0},
            {"lr": 1e-2, "val_ssim": float("nan"), "val_mae_ms": 100.0}]
    assert plan.choose_lr(rows) == 3e-3
    assert plan.choose_lr(list(reversed(rows))) == 3e-3
    assert plan.choose_lr([]) is None


def test_the_plan_tries_every_grid_point_once_and_tests_the_chosen_rate_on_every_seed(fair):
    plan, _ = fair
    s = settings(plan)
    tuning = plan.tuning_plan(s)
    tried = {(t.target, t.method, t.lr) for t in tuning if t.stage == "tune"}
    assert tried == {(t, m, lr) for t in s.base.targets for m in s.base.methods for lr in s.grid(m)}
    assert all(t.seed == 0 for t in tuning) and len({t.key for t in tuning}) == len(tuning)
    chosen = {(t, m): s.grid(m)[1] for t in s.base.targets for m in s.base.methods}
    test = plan.test_plan(s, chosen)
    assert {(t.target, t.method, t.lr, t.seed) for t in test} == {
        (t, m, chosen[t, m], seed) for t in s.base.targets for m in s.base.methods for seed in s.seeds}
    assert test[0].converges and not any(t.converges for t in tuning)
    assert plan.estimate(s)["runs"] == len(tuning) + len(test)
    # A seed more keeps the runs already finished: seeds are in the keys, not in the fingerprint.
    assert settings(plan, seeds=(0, 1, 2, 3)).fingerprint() == s.fingerprint()


@pytest.mark.parametrize("values", [[0.61, 0.64, 0.60], [812.0, 790.5], [0.5]])
def test_the_spread_is_the_mean_and_sample_standard_deviation(fair, values):
    _, report = fair
    sp = report.spread(values)
    assert sp["mean"] == pytest.approx(np.mean(values))
    if len(values) > 1:
        assert sp["sd"] == pytest.approx(np.std(values, ddof=1))
    else:
        assert sp["sd"] is None
    assert sp["values"] == values and sp["n"] == len(values)


def digest(velocity: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(velocity, np.float32).tobytes()).hexdigest()[:16]


@pytest.mark.slow
def test_smoke_study_chooses_on_validation_maps_and_reports_the_spread_over_seeds(tmp_path):
    pytest.importorskip("deepwave")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(SCRIPT), "--smoke", "--targets", "salt", "--methods", "scratch,full,lora",
               "--work", str(tmp_path / "work"), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "study_fair.json").read_text())

    # The same command again resumes: every run is finished, none is run again.
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming: 7 of 7 runs already finished" in again.stdout
    assert "resuming: 6 of 6 runs already finished" in again.stdout
    assert json.loads((out / "study_fair.json").read_text())["runs"] == report["runs"]
    markdown = (out / "study_fair.md").read_text()
    runs = list(report["runs"].values())

    # The maps that must (validation) and must never (test) guide a choice, drawn independently.
    from fwi_plugins import api

    ds = api.load_dataset("salt", {"n_train": 8, "n_val": 3, "n_test": 5, "seed": 0})
    val_sha, test_sha = digest(ds.velocity("val")), digest(ds.velocity("test"))
    assert val_sha != test_sha

    s = report["settings"]
    chosen = {}
    for method in ("scratch", "full", "lora"):
        grid = s["grid_whole"] if method in ("scratch", "full") else s["grid_peft"]
        choice = report["lr_choice"]["targets"]["salt"][method]
        assert [row["lr"] for row in choice["grid"]] == grid and len(grid) == 2
        scores = [row["val_ssim"] for row in choice["grid"]]
        assert len(set(scores)) == len(scores), f"{method}: every learning rate scored the same: was it used?"
        assert choice["chosen"] == grid[int(np.argmax(scores))]
        chosen[method] = choice["chosen"]
        assert f"**{scores[grid.index(choice['chosen'])]:.4f} / " in markdown
        tuned = [r for r in runs if r["kind"] == "tune" and r["method"] == method]
        assert sorted(r["lr"] for r in tuned) == sorted(grid)
        for r in tuned:
            assert "test" not in r, "a tuning run was scored on the test maps"
            assert (r["validation"]["maps"], r["validation"]["maps_sha256"]) == (3, val_sha)

        tested = sorted((r for r in runs if r["kind"] == "test" and r["method"] == method), key=lambda r: r["seed"])
        assert [r["seed"] for r in tested] == s["seeds"] == [0, 1]
        assert all(r["lr"] == chosen[method] and r["test"]["maps_sha256"] == test_sha for r in tested)
        row = report["test"]["salt"][method]
        assert row["lr"] == chosen[method]
        for key in ("ssim", "mae_ms"):
            values = [r["test"]["metrics"][key] for r in tested]
            assert row[key]["values"] == values
            assert math.isclose(row[key]["mean"], np.mean(values), rel_tol=1e-12)
            assert math.isclose(row[key]["sd"], np.std(values, ddof=1), rel_tol=1e-12)
            assert f"{np.mean(values):.{4 if key == 'ssim' else 0}f} ± " in markdown

    for r in (r for r in runs if r["kind"] == "test" and r["method"] == "scratch"):
        history = r["validation_history"]
        assert r["validation_maps_sha256"] == val_sha, "scratch was stopped on maps other than the validation maps"
        assert r["steps"] <= r["cap"] == 6 and r["steps"] == history[-1]["step"]
        assert r["best_val_ssim"] == max(h["ssim"] for h in history)
        assert r["best_step"] == next(h["step"] for h in history if h["ssim"] == r["best_val_ssim"])
    assert len(report["foundation"]["sha256"]) == 64 and report["failed"] == []
    assert "study_fair.py --smoke --targets salt --methods scratch,full,lora" in report["command"]

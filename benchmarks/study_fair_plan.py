"""The fair study's plan: its settings, its runs, how a learning rate is chosen and what it all costs
(see ``study_fair.py``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from study_plan import Settings, schedule

WHOLE = ("scratch", "full")  # methods that train every weight; the others are PEFT methods


@dataclass(frozen=True)
class FairSettings:
    """Everything the fair study's runs depend on.

    ``base`` is the study's own ``Settings`` (foundation, sizes, steps, batch, warm-up, loss,
    PEFT options, device); each run replaces its ``lr`` and ``seed``. ``base.seed`` stays the
    seed of the targets' map draw, so every seed of a method sees the same maps.
    """

    base: Settings
    n_val: int
    grid_whole: tuple[float, ...]  # learning rates tried for scratch and full
    grid_peft: tuple[float, ...]  # learning rates tried for PEFT methods
    seeds: tuple[int, ...]
    scratch_cap: int  # most optimisation steps of a scratch run trained to convergence
    patience: int  # validations without a better validation SSIM before it stops
    val_every: int  # epochs between validations of that run

    def grid(self, method: str) -> tuple[float, ...]:
        return self.grid_whole if method in WHOLE else self.grid_peft

    @property
    def tune_seed(self) -> int:
        return self.seeds[0]

    def fingerprint(self) -> str:
        """What a finished run's result depends on besides its key (target, method, lr, seed).

        Targets, methods, grids and seeds are left out: adding a seed or a learning rate keeps the
        runs already finished.
        """
        base = {k: v for k, v in dataclasses.asdict(self.base).items()
                if k not in ("foundation", "targets", "methods", "lr")}
        values = {"base": base, "n_val": self.n_val, "scratch_cap": self.scratch_cap, "patience": self.patience,
                  "val_every": self.val_every}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FairTask:
    """One run. ``stage``: ``tune`` (a grid point, scored on validation maps), ``test`` (the chosen
    learning rate and a seed, scored on test maps; ``scratch`` trains to convergence there) or
    ``zero-shot`` (the foundation as it is, scored on both)."""

    stage: str
    target: str
    method: str = ""
    lr: float = 0.0
    seed: int = 0

    @property
    def key(self) -> str:
        return f"{self.stage}:{self.target}:{self.method}:{self.lr:g}:{self.seed}"

    @property
    def converges(self) -> bool:
        """A scratch run on test: trained to convergence with early stopping on validation SSIM."""
        return self.stage == "test" and self.method == "scratch"


def tuning_plan(s: FairSettings) -> list[FairTask]:
    """Stage 1: every method at every learning rate of its grid, one seed; whole-network runs first."""
    methods = sorted(s.base.methods, key=lambda m: m not in WHOLE)
    tasks = [FairTask("tune", target, method, lr, s.tune_seed)
             for method in methods for target in s.base.targets for lr in s.grid(method)]
    return tasks + [FairTask("zero-shot", target) for target in s.base.targets]


def test_plan(s: FairSettings, chosen: Mapping[tuple[str, str], float]) -> list[FairTask]:
    """Stage 2: every method with its chosen learning rate over the seeds; scratch (the longest) first."""
    methods = sorted(s.base.methods, key=lambda m: m != "scratch")
    return [FairTask("test", target, method, chosen[target, method], seed)
            for method in methods for target in s.base.targets if (target, method) in chosen for seed in s.seeds]


# -- choosing --------------------------------------------------------------------------------------
def grid_scores(s: FairSettings, results: Mapping[str, Mapping[str, Any]], target: str,
                method: str) -> list[dict[str, Any]]:
    """The validation scores of a method's grid on a target, in grid order (finished runs only)."""
    rows = []
    for lr in s.grid(method):
        run = results.get(FairTask("tune", target, method, lr, s.tune_seed).key)
        if run is not None:
            m = run["validation"]["metrics"]
            rows.append({"lr": lr, "val_ssim": m["ssim"], "val_mae": m["mae"], "val_mae_ms": m["mae_ms"]})
    return rows


def choose_lr(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """The learning rate of the highest validation SSIM (the first in grid order on a tie); ``None``
    without scores."""
    best = None
    for row in rows:
        if math.isfinite(row["val_ssim"]) and (best is None or row["val_ssim"] > best["val_ssim"]):
            best = row
    return None if best is None else float(best["lr"])


def choices(s: FairSettings, results: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """Each target's and method's chosen learning rate; a method whose grid has no finished run has none."""
    out = {}
    for target in s.base.targets:
        for method in s.base.methods:
            lr = choose_lr(grid_scores(s, results, target, method))
            if lr is not None:
                out[target, method] = lr
    return out


# -- cost -------------------------------------------------------------------------------------------
# Calibrated on this project's 2-core CPU machine, one thread per run, two runs side by side
# (vit tiny, OpenFWI geometry, 16 maps per step): benchmarks/results/study.json measured 0.82 s
# per step for whole-network training and 0.61-0.67 s for PEFT methods at 100 % of the maps,
# 1.9 s to predict and score 100 test maps; a few steps timed beside another job gave 1.0 s and
# 0.65 s, deepwave 0.22 s per simulated map. The whole-network figure takes the middle.
SECONDS_PER_STEP = {"whole": 0.9, "peft": 0.65}
SECONDS_PER_MAP_PREDICTED = 0.02
SECONDS_PER_RUN = 3.0  # fork, building the model, the training loop's start
SECONDS_PER_MAP_SIMULATED = 0.22


def estimate(s: FairSettings) -> dict[str, Any]:
    """Runs planned and the wall time they take on ``workers`` (every scratch run going to its cap)."""
    b = s.base
    per_step = min(b.batch_size, b.n_train) / 16

    def step_cost(method: str) -> float:
        return per_step * SECONDS_PER_STEP["whole" if method in WHOLE else "peft"]

    steps = schedule(b.n_train, b)["steps"]
    cap = schedule(b.n_train, dataclasses.replace(b, steps=s.scratch_cap))
    per_epoch = cap["steps"] / cap["epochs"]
    validations = math.ceil(cap["epochs"] / s.val_every)
    targets = len(b.targets)
    tune = sum(len(s.grid(m)) * (steps * step_cost(m) + SECONDS_PER_RUN + s.n_val * SECONDS_PER_MAP_PREDICTED)
               for m in b.methods) * targets
    scratch = ("scratch" in b.methods) * len(s.seeds) * targets * (
        cap["steps"] * step_cost("scratch") + validations * s.n_val * SECONDS_PER_MAP_PREDICTED + SECONDS_PER_RUN)
    test = sum(steps * step_cost(m) + SECONDS_PER_RUN + b.n_test * SECONDS_PER_MAP_PREDICTED
               for m in b.methods if m != "scratch") * len(s.seeds) * targets
    zero = targets * (SECONDS_PER_RUN + (s.n_val + b.n_test) * SECONDS_PER_MAP_PREDICTED)
    n_tune = sum(len(s.grid(m)) for m in b.methods) * targets
    n_scratch = ("scratch" in b.methods) * len(s.seeds) * targets
    return {"runs": n_tune + len(s.seeds) * len(b.methods) * targets + targets, "tune_runs": n_tune,
            "scratch_runs": n_scratch, "test_runs": len(s.seeds) * len(b.methods) * targets - n_scratch,
            "zero_shot_runs": targets, "steps_per_run": steps, "scratch_cap": cap["steps"],
            "steps_per_validation": per_epoch * s.val_every,
            "run_seconds": tune + scratch + test + zero, "scratch_seconds": scratch,
            "simulated_maps": targets * (b.n_train + s.n_val + b.n_test),
            "simulation_seconds": targets * (b.n_train + s.n_val + b.n_test) * SECONDS_PER_MAP_SIMULATED}


def estimate_text(e: Mapping[str, Any], workers: int) -> str:
    """The plan in a few lines, for the start of a run and the report."""
    wall = e["run_seconds"] / max(1, workers) / 60
    return (f"plan: {e['runs']} runs ({e['tune_runs']} learning-rate runs on validation maps, "
            f"{e['test_runs']} fine-tuning runs and {e['scratch_runs']} scratch runs to convergence on test maps, "
            f"{e['zero_shot_runs']} zero-shot); {e['steps_per_run']} steps per run, scratch up to "
            f"{e['scratch_cap']} steps with a validation every {e['steps_per_validation']:g} steps\n"
            f"estimate: about {wall:.0f} min on {workers} workers with every scratch run going to its cap "
            f"({e['scratch_seconds'] / max(1, workers) / 60:.0f} min of it the scratch runs; early stopping "
            f"shortens them), plus about {e['simulation_seconds'] / 60:.0f} min simulating "
            f"{e['simulated_maps']} maps' gathers where they are not cached")

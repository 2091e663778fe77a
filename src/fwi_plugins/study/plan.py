"""A study's runs (tasks), how a learning rate is chosen from them, and what they cost.

Stages, in the order they run:

* ``zero-shot``: the foundation as it is, scored on the validation and test maps;
* ``tune``: every method at every learning rate of its grid, the first seed, the largest
  fraction, the study's step budget, scored on validation maps;
* ``test``: every method at its chosen learning rate, every fraction and seed, scored on test
  maps (``scratch`` trained to convergence with early stopping on validation SSIM);
* ``specialist``: the foundation's architecture from scratch on ``specialist_maps`` target maps,
  to convergence, the first seed: the bound every method's gap closed is measured against.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .options import SCRATCH, WHOLE, StudyOptions

Results = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Task:
    """One run of the study; :attr:`id` names its result file and never changes for the same run."""

    stage: str
    target: str
    method: str = ""
    fraction: float = 1.0
    lr: float = 0.0
    seed: int = 0

    @property
    def id(self) -> str:
        if self.stage == "zero-shot":
            return f"zero-shot--{self.target}"
        return f"{self.stage}--{self.target}--{self.method}--f{self.fraction:g}--lr{self.lr:g}--s{self.seed}"

    @property
    def converges(self) -> bool:
        """Trained to convergence (early stopping on validation SSIM) rather than for the step budget."""
        return self.stage == "specialist" or (self.stage == "test" and self.method == SCRATCH)


def first_tasks(o: StudyOptions) -> list[Task]:
    """Zero-shot and the learning-rate grid: the runs that need no choice made before them."""
    tasks = [Task("zero-shot", t.key) for t in o.targets]
    methods = sorted(o.methods, key=lambda m: m not in WHOLE)
    return tasks + [Task("tune", t.key, m, o.tune_fraction, lr, o.tune_seed)
                    for m in methods for t in o.targets for lr in o.grid(m)]


def second_tasks(o: StudyOptions, chosen: Mapping[tuple[str, str], float]) -> list[Task]:
    """Every method at its chosen rate over fractions and seeds, then the specialists (longest first)."""
    methods = sorted(o.methods, key=lambda m: m != SCRATCH)
    tasks = [Task("test", t.key, m, f, chosen[t.key, m], seed) for m in methods for t in o.targets
             if (t.key, m) in chosen for f in sorted(o.fractions, reverse=True) for seed in o.seeds]
    for t in o.targets if o.specialist_maps else ():
        lr = specialist_lr(o, chosen, t.key)
        if lr is not None:
            tasks.append(Task("specialist", t.key, SCRATCH, 1.0, lr, o.tune_seed))
    return tasks


def specialist_lr(o: StudyOptions, chosen: Mapping[tuple[str, str], float], target: str) -> float | None:
    """The specialist's learning rate: scratch's chosen one, or the middle of the whole-network grid
    when scratch is not studied; ``None`` while scratch's choice is still to be made."""
    if SCRATCH in o.methods:
        return chosen.get((target, SCRATCH))
    grid = sorted(o.lr_whole)
    return grid[len(grid) // 2]


def all_tasks(o: StudyOptions, results: Results) -> list[Task]:
    return first_tasks(o) + second_tasks(o, choices(o, results))


# -- choosing ----------------------------------------------------------------------------------
def grid_scores(o: StudyOptions, results: Results, target: str, method: str) -> list[dict[str, Any]]:
    """Validation scores of ``method``'s grid on ``target``, in grid order (finished runs only)."""
    rows = []
    for lr in o.grid(method):
        run = results.get(Task("tune", target, method, o.tune_fraction, lr, o.tune_seed).id)
        if run is not None:
            m = run["validation"]
            rows.append({"lr": lr, "val_ssim": m["ssim"], "val_mae_ms": m["mae_ms"]})
    return rows


def choose_lr(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """The learning rate of the highest validation SSIM (the first in grid order on a tie)."""
    best = None
    for row in rows:
        if math.isfinite(row["val_ssim"]) and (best is None or row["val_ssim"] > best["val_ssim"]):
            best = row
    return None if best is None else float(best["lr"])


def choices(o: StudyOptions, results: Results) -> dict[tuple[str, str], float]:
    """Each (target, method)'s chosen learning rate; none for a method whose grid has no finished run."""
    out = {}
    for t in o.targets:
        for method in o.methods:
            lr = choose_lr(grid_scores(o, results, t.key, method))
            if lr is not None:
                out[t.key, method] = lr
    return out


# -- schedule and cost ---------------------------------------------------------------------------
def schedule(n_maps: int, steps: int, o: StudyOptions) -> dict[str, Any]:
    """Batch size, epochs and warm-up that give about ``steps`` optimisation steps on ``n_maps`` maps."""
    batch = min(o.batch_size, n_maps)
    per_epoch = math.ceil(n_maps / batch)
    epochs = max(1, round(steps / per_epoch))
    return {"batch_size": batch, "epochs": epochs, "steps": epochs * per_epoch, "per_epoch": per_epoch,
            "warmup_epochs": min(o.warmup_steps, epochs * per_epoch) / per_epoch}


# Measured on a 2-core CPU, one thread per run (vit tiny, OpenFWI geometry, 16 maps per step):
# 0.9 s per step training every weight, 0.65 s for PEFT methods, 0.02 s to predict and score a
# map, 3 s to build a run, 0.22 s to simulate a map's gathers with deepwave.
SECONDS_PER_STEP = {"whole": 0.9, "peft": 0.65}
SECONDS_PER_MAP = 0.02
SECONDS_PER_RUN = 3.0
SECONDS_PER_SIMULATION = 0.22


def estimate(o: StudyOptions) -> dict[str, Any]:
    """How many runs of each stage, and the CPU time they take with every converging run at its cap."""
    targets = len(o.targets)

    def train_cost(method: str, n: int, steps: int) -> float:
        plan = schedule(n, steps, o)
        per_step = plan["batch_size"] / 16 * SECONDS_PER_STEP["whole" if method in WHOLE else "peft"]
        return plan["steps"] * per_step + SECONDS_PER_RUN

    tune = sum(train_cost(m, o.maps(o.tune_fraction), o.steps) + o.n_val * SECONDS_PER_MAP
               for m in o.methods for _ in o.grid(m)) * targets
    test = 0.0
    for m in o.methods:
        for f in o.fractions:
            cap = o.scratch_cap if m == SCRATCH else o.steps
            test += train_cost(m, o.maps(f), cap) + o.n_test * SECONDS_PER_MAP
    test *= len(o.seeds) * targets
    specialist = targets * train_cost(SCRATCH, o.specialist_maps, o.specialist_cap) if o.specialist_maps else 0.0
    simulated = targets * (max(o.n_train, o.specialist_maps) + o.n_val + o.n_test)
    counts = {"zero_shot": targets, "tune": targets * sum(len(o.grid(m)) for m in o.methods),
              "test": targets * len(o.methods) * len(o.fractions) * len(o.seeds),
              "specialist": targets if o.specialist_maps else 0}
    return {"runs": sum(counts.values()), "counts": counts, "train_seconds": tune + test + specialist,
            "specialist_seconds": specialist, "simulated_maps": simulated,
            "simulation_seconds": simulated * SECONDS_PER_SIMULATION}


def estimate_text(e: Mapping[str, Any]) -> str:
    c = e["counts"]
    return (f"plan: {e['runs']} runs ({c['zero_shot']} zero-shot, {c['tune']} learning-rate runs on validation "
            f"maps, {c['test']} runs on test maps, {c['specialist']} specialist)\n"
            f"estimate: about {e['train_seconds'] / 60:.0f} min of one CPU core at OpenFWI size with every "
            f"converging run at its cap ({e['specialist_seconds'] / 60:.0f} min of it the specialists), plus "
            f"{e['simulation_seconds'] / 60:.0f} min simulating {e['simulated_maps']} maps where not cached")

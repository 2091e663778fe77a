"""The study's plan: its targets, settings and runs (see ``study.py``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PEFT_METHODS = ("lora", "adapter", "ia3", "loha", "lokr")


# -- targets --------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetSpec:
    """A target dataset: its registry name and options (sizes are filled in per study)."""

    key: str
    label: str
    dataset: str
    options: dict[str, Any]
    distribution: str  # "in" or "out"
    openfwi_family: str = ""


def target_specs(openfwi_dir: Path) -> dict[str, TargetSpec]:
    path = str(openfwi_dir)
    return {
        "openfwi-flatvel-a": TargetSpec("openfwi-flatvel-a", "OpenFWI FlatVel-A", "openfwi",
                                        {"path": path, "family": "flatvel-a"}, "in", "flatvel-a"),
        "openfwi-curvevel-a": TargetSpec("openfwi-curvevel-a", "OpenFWI CurveVel-A", "openfwi",
                                         {"path": path, "family": "curvevel-a"}, "in", "curvevel-a"),
        "flatvel-a": TargetSpec("flatvel-a", "generated flatvel-a", "flatvel-a", {}, "in"),
        "curvefault-b": TargetSpec("curvefault-b", "generated curvefault-b", "curvefault-b", {}, "out"),
        "salt": TargetSpec("salt", "generated salt", "salt", {}, "out"),
    }


@dataclass
class Target:
    """A loaded target: training, test and (when asked for) validation arrays, held by the parent and
    shared with forked runs."""

    spec: TargetSpec
    options: dict[str, Any]
    normalization: Any
    survey: Any
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    val_x: np.ndarray | None = None
    val_y: np.ndarray | None = None


# -- settings ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Everything a run depends on; its hash names the resumable task store."""

    foundation: str
    foundation_sha256: str
    targets: tuple[str, ...]
    methods: tuple[str, ...]
    fractions: tuple[float, ...]
    n_train: int
    n_test: int
    steps: int
    batch_size: int
    lr: float
    lambda_ssim: float
    warmup_steps: int
    seed: int
    physics_targets: tuple[str, ...]
    physics_method: str
    physics_fraction: float
    physics_samples: int
    lambda_physics: str
    labelfree_batch: int
    misfit_samples: int
    refine_iterations: int
    refine_lr: float
    refine_step: str
    device: str
    smoke: bool
    peft_options: str = ""

    def fingerprint(self) -> str:
        # The weights' content, not their path, identifies the foundation (shipping them moves the file).
        values = {k: v for k, v in dataclasses.asdict(self).items() if k != "foundation"}
        text = json.dumps(values, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def schedule(n_maps: int, settings: Settings) -> dict[str, Any]:
    """Batch size, epochs and warm-up that give ``settings.steps`` optimisation steps on ``n_maps`` maps."""
    batch = min(settings.batch_size, n_maps)
    per_epoch = math.ceil(n_maps / batch)
    epochs = max(1, round(settings.steps / per_epoch))
    return {"batch_size": batch, "epochs": epochs, "steps": epochs * per_epoch,
            "warmup_epochs": min(settings.warmup_steps, epochs * per_epoch) / per_epoch}


def peft_options(text: str) -> dict[str, dict[str, str]]:
    """``"lora.r=8,lora.alpha=16"`` -> ``{"lora": {"r": "8", "alpha": "16"}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        key, _, value = item.partition("=")
        method, _, name = key.partition(".")
        if not (method and name and value):
            raise SystemExit(f"--peft-options: expected METHOD.KEY=VALUE, got {item!r}")
        out.setdefault(method.strip(), {})[name.strip()] = value.strip()
    return out


def n_maps(fraction: float, n_train: int) -> int:
    return max(1, round(fraction * n_train))


# -- tasks ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One run: ``kind`` is zero-shot, grid (a method at a fraction), physics or label-free."""

    kind: str
    target: str
    method: str = ""
    fraction: float = 1.0
    anchor: bool = False  # the grid run that the physics comparison starts from

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.target}:{self.method}:{self.fraction:g}"


def plan(settings: Settings) -> list[Task]:
    """Every run, the most expensive first so that side-by-side workers finish together."""
    tasks: list[Task] = []
    for target in settings.physics_targets:
        tasks.append(Task("physics", target, settings.physics_method, settings.physics_fraction))
        tasks.append(Task("label-free", target, settings.physics_method, 1.0))
    for fraction in sorted(settings.fractions, reverse=True):
        for target in settings.targets:
            for method in settings.methods:
                anchor = (target in settings.physics_targets and method == settings.physics_method
                          and math.isclose(fraction, settings.physics_fraction))
                tasks.append(Task("grid", target, method, fraction, anchor))
    tasks += [Task("zero-shot", target) for target in settings.targets]
    return tasks


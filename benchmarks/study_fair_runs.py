"""The fair study's runs: one run in a forked process (see ``study_fair.py``).

A run is the study's own: ``study_runs.build_model`` builds it, ``study_runs.adapt`` trains it
for the study's step budget through ``engine.train.train``, ``study_runs.score`` scores it.
What is new is which maps score it and, for ``scratch`` on test, training to convergence:
``engine.train.train`` with the :class:`BestOnValidation` hook, which scores the validation maps
every few epochs, keeps the weights of the best validation SSIM and ends training when
``patience`` validations in a row did not beat it. (The engine's own ``select_best`` ranks
epochs by validation MAE and never stops early; the study ranks by SSIM, the metric that
chooses the learning rates and heads the report.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any

import numpy as np

from study_fair_plan import FairSettings, FairTask
from study_plan import Settings, Target, Task, schedule
from study_runs import TARGETS, PeakMemory, adapt, build_model, predict_velocity, score, train_options


def validation_view(target: Target) -> Target:
    """``target`` with its validation maps where scoring reads test maps: what tuning scores on."""
    if target.val_x is None or target.val_y is None or not len(target.val_y):
        raise ValueError(f"target {target.spec.key} was loaded without validation maps")
    return dataclasses.replace(target, test_x=target.val_x, test_y=target.val_y)


def maps_digest(velocity: np.ndarray) -> str:
    """A short hash of velocity maps (float32): which maps a score was computed on."""
    return hashlib.sha256(np.ascontiguousarray(velocity, np.float32).tobytes()).hexdigest()[:16]


def scored(model: Any, view: Target, device: str) -> dict[str, Any]:
    """``model`` scored on ``view``'s scoring maps (``test_x``/``test_y``), with which maps they were."""
    t0 = time.perf_counter()
    predicted = predict_velocity(model, view.test_x, view, device)
    metrics = score(predicted, view)
    return {"maps": int(len(view.test_y)), "maps_sha256": maps_digest(view.test_y),
            "metrics": {k: metrics[k] for k in ("mae", "rmse", "mae_ms", "rmse_ms", "ssim")},
            "time": time.perf_counter() - t0}


class Converged(Exception):
    """Raised by :class:`BestOnValidation` to end training: validation SSIM stopped improving."""


class BestOnValidation:
    """The ``fwi_epoch_end`` hook of a run trained to convergence (early stopping on validation SSIM).

    Every ``every`` epochs it scores ``view`` (validation maps), keeps the weights of the best
    SSIM so far, and raises :class:`Converged` after ``patience`` validations in a row without a
    better one. :meth:`restore` puts the kept weights back.
    """

    def __init__(self, model: Any, view: Target, *, patience: int, every: int, device: str) -> None:
        self.model, self.view, self.patience, self.every, self.device = model, view, patience, every, device
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.state: dict[str, Any] | None = None

    def __call__(self, hook: str, **kwargs: Any) -> None:
        if hook != "fwi_epoch_end" or kwargs["epoch"] % self.every:
            return
        from fwi_plugins.engine.checkpoint import selectable_state

        metrics = scored(self.model, self.view, self.device)["metrics"]
        self.history.append({"step": int(kwargs["metrics"]["step"]), "ssim": metrics["ssim"],
                             "mae_ms": metrics["mae_ms"]})
        if self.best is None or metrics["ssim"] > self.best["ssim"]:
            self.best, self.state = self.history[-1], selectable_state(self.model)
        elif len(self.history) - 1 - self.history.index(self.best) >= self.patience:
            raise Converged(f"no better validation SSIM in {self.patience} validations")

    def restore(self) -> None:
        if self.state is not None:
            self.model.load_state_dict(self.state, strict=False)
        self.model.eval()


def train_to_convergence(model: Any, target: Target, base: Settings, s: FairSettings,
                         device: str) -> dict[str, Any]:
    """Train ``model`` on every training map for at most ``s.scratch_cap`` steps (cosine schedule over the
    cap), stopping early on validation SSIM; ``model`` ends with the best validation's weights."""
    from fwi_plugins.engine.train import train
    from fwi_plugins.engine.train_data import TrainData

    plan_ = schedule(len(target.train_x), dataclasses.replace(base, steps=s.scratch_cap))
    monitor = BestOnValidation(model, validation_view(target), patience=s.patience, every=s.val_every,
                               device=device)
    t0 = time.perf_counter()
    try:
        train(model, TrainData(gathers=target.train_x, velocity=target.train_y), None,
              options=train_options(base, plan_), normalization=target.normalization, checkpoint_dir=None,
              stage="adapt", notify=monitor, device=device)
    except Converged:
        pass
    if monitor.best is None:
        raise ValueError(f"--val-every {s.val_every}: the cap's {plan_['epochs']} epochs hold no validation")
    monitor.restore()
    return {"n_train": int(len(target.train_x)), "batch_size": plan_["batch_size"], "cap": plan_["steps"],
            "steps": monitor.history[-1]["step"], "best_step": monitor.best["step"],
            "stopped_early": monitor.history[-1]["step"] < plan_["steps"], "best_val_ssim": monitor.best["ssim"],
            "validation_history": monitor.history, "validation_maps_sha256": maps_digest(monitor.view.test_y),
            "train_time": time.perf_counter() - t0}


def run_fair_task(task: FairTask, s: FairSettings) -> dict[str, Any]:
    """Train (or not) and score one run of the fair study; called in a forked process."""
    from fwi_plugins.engine.config import run_device

    started = time.perf_counter()
    device = run_device(s.base.device)
    meter = PeakMemory(device)
    target = TARGETS[task.target]
    base = dataclasses.replace(s.base, lr=task.lr or s.base.lr, seed=task.seed)
    out: dict[str, Any] = {"kind": task.stage, "target": task.target, "method": task.method or "foundation",
                           "fraction": 1.0, "lr": task.lr, "seed": task.seed, "device": device}
    model, out["trainable"], out["total"] = build_model(task.method or None, base, target)
    if task.stage == "zero-shot":
        out.update(steps=0, train_time=0.0, validation=scored(model, validation_view(target), device))
    elif task.converges:
        out.update(train_to_convergence(model, target, base, s, device))
    else:
        out.update(adapt(Task("grid", task.target, task.method, 1.0), base, target, model, None, device))
    if task.stage == "tune":
        out["validation"] = scored(model, validation_view(target), device)
    else:
        out["test"] = scored(model, target, device)
    out["metrics"] = out["validation" if task.stage == "tune" else "test"]["metrics"]
    out["peak_mib"] = meter.peak_mib()
    out["wall_time"] = time.perf_counter() - started
    return out


def progress_line(r: dict[str, Any]) -> str:
    m = r["metrics"]
    on = "val " if r["kind"] == "tune" else "test"
    extra = f"  stopped at {r['steps']} (best {r['best_step']})" if "best_step" in r else ""
    return (f"{r['kind']:<9} {r['target']:<18} {r['method']:<10} lr {r['lr']:<7g} seed {r['seed']}  "
            f"{on} SSIM {m['ssim']:.4f}  MAE {m['mae_ms']:.0f} m/s  train {r['train_time']:.0f} s{extra}")

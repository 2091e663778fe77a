"""One run of a study: build the network, train it (or not), score it; through ``fwi_plugins.api``.

A run trained to convergence (scratch on test maps, the specialist) is validated every
``val_every`` epochs on the validation maps, keeps the weights of its best validation SSIM and
stops after ``patience`` validations without a better one.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .data import NONE, Foundation, Target, maps_digest
from .options import SCRATCH, StudyOptions
from .plan import Task, schedule

FOUNDATION_SEED = 12345  # the random foundation of smoke runs: never a study seed's initialisation


def build_model(method: str | None, seed: int, o: StudyOptions, foundation: Foundation,
                target: Target) -> tuple[Any, int, int]:
    """The backbone (foundation weights unless ``scratch``) adapted by ``method``: (model, trainable, total)."""
    import torch

    from .. import api
    from ..adapted import count_parameters

    s = target.survey
    shape = api.IOShape(shots=s.n_shots, time=s.nt, receivers=s.n_receivers, depth=s.nz, width=s.nx)
    scratch = method == SCRATCH
    random_foundation = foundation.weights == NONE
    torch.manual_seed(seed if scratch else FOUNDATION_SEED)
    if scratch or random_foundation:
        pretrained = NONE if random_foundation else None
        model = api.build_backbone(foundation.backbone, foundation.options, shape=shape, pretrained=pretrained)
    else:
        model = api.build_backbone(foundation.backbone, o.backbone_options, shape=shape, pretrained=foundation.weights)
    if method is None:  # zero-shot: the foundation as it is
        return model, 0, count_parameters(model)[1]
    torch.manual_seed(seed + 1)
    name = "full" if scratch else method
    model = api.apply_peft(model, name, o.peft_options.get(name, {}), backbone=foundation.backbone)
    trainable, total = count_parameters(model)
    return model, trainable, total


def score(model: Any, gathers: np.ndarray, truth: np.ndarray, target: Target, device: str) -> dict[str, Any]:
    """OpenFWI's metrics of ``model`` on these maps (SSIM, MAE and RMSE, also in m/s), and which maps."""
    from .. import api

    predicted = api.predict(model, gathers, shaping="none", normalization=target.normalization, batch_size=16,
                            device=device, progress=False)
    predicted = np.clip(predicted, target.survey.vmin, target.survey.vmax).astype(np.float32)
    metrics = api.evaluate(predicted, truth, normalization=target.normalization)
    return {**{k: float(metrics[k]) for k in ("ssim", "mae", "mae_ms", "rmse", "rmse_ms")},
            "maps": int(len(truth)), "maps_sha256": maps_digest(truth)}


class Converged(Exception):
    """Raised by :class:`BestOnValidation` to end training: validation SSIM stopped improving."""


class BestOnValidation:
    """A ``notify`` for :func:`fwi_plugins.api.train`: early stopping on validation SSIM."""

    def __init__(self, model: Any, target: Target, *, patience: int, every: int, device: str) -> None:
        self.model, self.target, self.patience, self.every, self.device = model, target, patience, every, device
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.state: dict[str, Any] | None = None

    def __call__(self, hook: str, **kwargs: Any) -> None:
        if hook != "fwi_epoch_end" or kwargs["epoch"] % self.every:
            return
        m = score(self.model, self.target.val_x, self.target.val_y, self.target, self.device)
        self.history.append({"step": int(kwargs["metrics"]["step"]), "ssim": m["ssim"], "mae_ms": m["mae_ms"]})
        if self.best is None or m["ssim"] > self.best["ssim"]:
            self.best = self.history[-1]
            self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        elif len(self.history) - 1 - self.history.index(self.best) >= self.patience:
            raise Converged

    def restore(self) -> None:
        if self.state is not None:
            self.model.load_state_dict(self.state)
        self.model.eval()


def train_run(model: Any, task: Task, o: StudyOptions, target: Target, device: str) -> dict[str, Any]:
    """Train ``model`` in place for ``task``: the step budget, or to convergence; what the record keeps."""
    from .. import api

    if task.stage == "specialist":
        gathers, velocity = target.specialist_maps()
        cap = o.specialist_cap
    else:
        n = o.maps(task.fraction)
        gathers, velocity = target.train_x[:n], target.train_y[:n]
        cap = o.scratch_cap if task.converges else o.steps
    plan = schedule(len(velocity), cap, o)
    options = {"epochs": plan["epochs"], "batch_size": plan["batch_size"], "lr": task.lr,
               "warmup_epochs": plan["warmup_epochs"], "lambda_ssim": o.lambda_ssim, "seed": task.seed,
               "device": o.device, "progress": False}
    monitor = BestOnValidation(model, target, patience=o.patience, every=o.val_every, device=device)
    started = time.perf_counter()
    out: dict[str, Any] = {"n_train": int(len(velocity)), "batch_size": plan["batch_size"], "cap": plan["steps"]}
    if not task.converges:
        result = api.train(model, gathers, velocity, normalization=target.normalization, options=options,
                           device=device)
        return {**out, "steps": int(result.steps), "train_time": time.perf_counter() - started}
    try:
        api.train(model, gathers, velocity, normalization=target.normalization, options=options, notify=monitor,
                  device=device)
    except Converged:
        pass
    if monitor.best is None:
        raise ValueError(f"--val-every {o.val_every}: the {plan['epochs']} epochs of {task.id} hold no validation")
    monitor.restore()
    return {**out, "steps": monitor.history[-1]["step"], "best_step": monitor.best["step"],
            "stopped_early": monitor.history[-1]["step"] < plan["steps"], "best_val_ssim": monitor.best["ssim"],
            "validation_history": monitor.history, "train_time": time.perf_counter() - started}


def run_task(task: Task, o: StudyOptions, foundation: Foundation, target: Target) -> dict[str, Any]:
    """Build, train (or not) and score one task; its record."""
    from .. import api

    started = time.perf_counter()
    device = api.device_name(o.device)
    model, trainable, total = build_model(task.method or None, task.seed, o, foundation, target)
    out: dict[str, Any] = {"id": task.id, "stage": task.stage, "target": task.target,
                           "method": task.method or "zero-shot", "fraction": task.fraction, "lr": task.lr,
                           "seed": task.seed, "device": device, "trainable": trainable, "total": total,
                           "maps": 0 if task.stage == "zero-shot" else o.maps(task.fraction)}
    if task.stage != "zero-shot":
        out.update(train_run(model, task, o, target, device))
        out["maps"] = out["n_train"]
    if task.stage in ("zero-shot", "tune"):
        out["validation"] = score(model, target.val_x, target.val_y, target, device)
    if task.stage != "tune":
        out["test"] = score(model, target.test_x, target.test_y, target, device)
    out["wall_time"] = time.perf_counter() - started
    out["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return out


def progress_line(r: dict[str, Any]) -> str:
    """One line of a finished run for the terminal."""
    m = r.get("test") or r["validation"]
    on = "test" if "test" in r else "val "
    head = f"{r['stage']:<10} {r['target']:<14} {r['method']:<9}"
    if r["stage"] != "zero-shot":
        head += f" {r['maps']:>5} maps  lr {r['lr']:<7g} seed {r['seed']}"
    extra = f"  stopped at {r['steps']} (best {r['best_step']})" if "best_step" in r else ""
    return f"{head}  {on} SSIM {m['ssim']:.4f}  MAE {m['mae_ms']:.0f} m/s  {r['wall_time']:.0f} s{extra}"

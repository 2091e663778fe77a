"""The study's runs: one run in a forked process of its own, measured, and the parent that schedules them.

The parent fills ``TARGETS`` and ``FOUNDATION`` before it forks; each run reads them from there.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import resource
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import numpy as np

from study_plan import Settings, Target, Task, n_maps, peft_options, schedule

MIB = 1024 * 1024
Runner = Callable[[Any, Any], dict[str, Any]]


# -- measuring ----------------------------------------------------------------------------
def _status_mib(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class PeakMemory:
    """Peak memory a run adds: resident high-water mark over the start size (CPU), or CUDA's peak."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.cuda = device.startswith("cuda")
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated() / MIB
        else:
            self.start = _status_mib("VmRSS")

    def peak_mib(self) -> float:
        if self.cuda:
            import torch

            return torch.cuda.max_memory_allocated() / MIB - self.start
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 - self.start


# -- one run (in a forked process) -------------------------------------------------------------
TARGETS: dict[str, Target] = {}
FOUNDATION: dict[str, Any] = {}


def build_model(method: str | None, settings: Settings, target: Target) -> tuple[Any, int, int]:
    """The backbone (foundation weights unless ``scratch``) adapted by ``method``; (model, trainable, total)."""
    import torch

    from fwi_plugins import api
    from fwi_plugins.adapted import count_parameters
    from fwi_plugins.specs import IOShape

    survey = target.survey
    shape = IOShape(shots=survey.n_shots, time=survey.nt, receivers=survey.n_receivers,
                    depth=survey.nz, width=survey.nx)
    torch.manual_seed(settings.seed)
    scratch = method == "scratch"
    model = api.build_backbone(FOUNDATION["backbone"], FOUNDATION["backbone_options"], shape=shape,
                               pretrained=None if scratch else FOUNDATION["path"])
    if method is None:  # zero-shot: the foundation model as it is
        return model, 0, count_parameters(model)[1]
    torch.manual_seed(settings.seed + 1)
    name = "full" if scratch else method
    model = api.apply_peft(model, name, peft_options(settings.peft_options).get(name, {}),
                           backbone=FOUNDATION["backbone"])
    trainable, total = count_parameters(model)
    return model, trainable, total


def predict_velocity(model: Any, gathers: np.ndarray, target: Target, device: str) -> np.ndarray:
    from fwi_plugins.engine.validation import predict_unit

    unit = predict_unit(model, gathers, normalization=target.normalization, device=device, batch_size=16)
    velocity = target.normalization.velocity_from_unit(unit)
    return np.clip(velocity, target.survey.vmin, target.survey.vmax).astype(np.float32)


def score(predicted: np.ndarray, target: Target, *, physics: Any = None, k: int = 0,
          device: str = "cpu") -> dict[str, Any]:
    """OpenFWI metrics on every test map; data misfit and SSIM on the first ``k`` (physics comparison)."""
    from fwi_plugins.engine.evaluate import evaluate

    metrics = evaluate(predicted, target.test_y, normalization=target.normalization)
    if physics is not None and k:
        first = evaluate(predicted[:k], target.test_y[:k], normalization=target.normalization, physics=physics,
                         observed=target.test_x[:k], device=device)
        metrics["first_k"] = {key: first[key] for key in ("mae", "rmse", "ssim", "data_misfit", "physics_misfit")}
        metrics["first_k"]["k"] = k
    return metrics


def calibrate_lambda(model: Any, target: Target, physics: Any, settings: Settings, device: str) -> float:
    """lambda_physics: a number, or 'auto' = label L1 / physics misfit of the starting model on a few training maps.

    With 'auto' both terms weigh the same when adaptation starts.
    """
    if settings.lambda_physics != "auto":
        return float(settings.lambda_physics)
    import torch

    k = max(1, min(settings.misfit_samples, len(target.train_x)))
    velocity = predict_velocity(model, target.train_x[:k], target, device)
    norm = target.normalization
    label = float(np.abs(norm.velocity_to_unit(velocity) - norm.velocity_to_unit(target.train_y[:k])).mean())
    with torch.no_grad():
        simulated = physics.simulate(torch.from_numpy(velocity).to(device))
        misfit = float(physics.misfit(simulated, torch.from_numpy(target.train_x[:k]).to(device)))
    return label / max(misfit, 1e-12)


def run_task(task: Task, settings: Settings) -> dict[str, Any]:
    """Train (or not) and score one run; called in a forked process."""
    from fwi_plugins.engine.config import run_device

    started = time.perf_counter()
    device = run_device(settings.device)
    meter = PeakMemory(device)
    target = TARGETS[task.target]
    physics = _task_physics(task, settings, target, device)
    k = min(settings.misfit_samples, len(target.test_x))
    out: dict[str, Any] = {"kind": task.kind, "target": task.target, "method": task.method or "foundation",
                           "fraction": task.fraction, "device": device}

    model, trainable, total = build_model(task.method or None, settings, target)
    out.update(trainable=trainable, total=total)
    if task.kind == "zero-shot":
        t0 = time.perf_counter()
        predicted = predict_velocity(model, target.test_x, target, device)
        out["metrics"] = score(predicted, target, physics=physics, k=k, device=device)
        out["eval_time"] = time.perf_counter() - t0
        out["train_time"] = 0.0
        out["steps"] = 0
        out["example"] = predicted[0, 0].round().astype(np.int16).tolist()
        out["peak_mib"] = meter.peak_mib()
        out["wall_time"] = time.perf_counter() - started
        return out

    out.update(adapt(task, settings, target, model, physics, device))
    t0 = time.perf_counter()
    predicted = predict_velocity(model, target.test_x, target, device)
    scored_physics = physics if (task.kind != "grid" or task.anchor) else None
    out["metrics"] = score(predicted, target, physics=scored_physics, k=k, device=device)
    out["eval_time"] = time.perf_counter() - t0
    out["peak_mib"] = meter.peak_mib()
    out["example"] = predicted[0, 0].round().astype(np.int16).tolist()
    if task.anchor and k:
        out["refine"] = refine_predictions(predicted[:k], target, physics, settings, device)
    out["wall_time"] = time.perf_counter() - started
    return out


def _task_physics(task: Task, settings: Settings, target: Target, device: str) -> Any:
    """The deepwave physics on the target's survey when the run trains or scores with it, else ``None``."""
    from fwi_plugins import api

    physics_needed = task.kind in ("physics", "label-free") or task.anchor or (
        task.kind == "zero-shot" and task.target in settings.physics_targets)
    physics = api.build_physics("deepwave", survey=target.survey) if physics_needed else None
    if physics is not None and device != "cpu" and hasattr(physics, "to"):
        physics = physics.to(device) or physics
    return physics


def train_options(settings: Settings, plan_: dict[str, Any], *, labels: bool = True, lam: float = 0.0) -> Any:
    """The engine's ``TrainOptions`` of a run: ``settings`` on the schedule ``plan_`` (see ``schedule``)."""
    from fwi_plugins.engine.config import TrainOptions

    return TrainOptions(
        epochs=plan_["epochs"], batch_size=plan_["batch_size"], lr=settings.lr,
        warmup_epochs=plan_["warmup_epochs"], lambda_physics=lam,
        lambda_ssim=settings.lambda_ssim if labels else 0.0,
        physics_samples=settings.physics_samples if labels else 0,
        labels="full" if labels else "none", seed=settings.seed, device=settings.device, progress=False)


def adapt(task: Task, settings: Settings, target: Target, model: Any, physics: Any, device: str) -> dict[str, Any]:
    """Train ``model`` in place for the run (labels, labels + physics, or label-free); what the record keeps."""
    from fwi_plugins.engine.train import train
    from fwi_plugins.engine.train_data import TrainData

    out: dict[str, Any] = {}
    labels = task.kind != "label-free"
    if labels:
        n = n_maps(task.fraction, len(target.train_x))
        plan_ = schedule(n, settings)
    else:
        # One pass over as many unlabelled training gathers as the other runs take steps.
        n = min(len(target.train_x), settings.steps * settings.labelfree_batch)
        plan_ = schedule(n, dataclasses.replace(settings, batch_size=settings.labelfree_batch, steps=1))
    lam = 0.0
    if task.kind in ("physics", "label-free"):
        lam = calibrate_lambda(model, target, physics, settings, device)
        out["lambda_physics"] = lam
    options = train_options(settings, plan_, labels=labels, lam=lam)
    data = TrainData(gathers=target.train_x[:n], velocity=target.train_y[:n] if labels else None)
    result = train(model, data, None, options=options, normalization=target.normalization,
                   physics=physics if lam > 0 else None, checkpoint_dir=None, stage="adapt", device=device)
    out.update(n_train=n, batch_size=plan_["batch_size"], epochs=result.epochs, steps=result.steps,
               train_time=result.wall_time, final_loss=result.final.get("train_loss"))
    return out


def refine_predictions(initial: np.ndarray, target: Target, physics: Any, settings: Settings,
                       device: str) -> dict[str, Any]:
    """(d): physics-based FWI from the predictions, scored like the networks."""
    from fwi_plugins.engine.evaluate import evaluate
    from fwi_plugins.engine.refine import refine

    k = len(initial)
    t0 = time.perf_counter()
    outcome = refine(initial, target.test_x[:k], physics=physics, iterations=settings.refine_iterations,
                     lr=settings.refine_lr, step=settings.refine_step, vmin=target.survey.vmin,
                     vmax=target.survey.vmax, device=device, progress=False)
    elapsed = time.perf_counter() - t0
    refined = np.asarray(outcome.velocity, np.float32).reshape(initial.shape)
    metrics = evaluate(refined, target.test_y[:k], normalization=target.normalization, physics=physics,
                       observed=target.test_x[:k], device=device)
    return {"k": k, "iterations": settings.refine_iterations, "lr": settings.refine_lr, "step": settings.refine_step,
            "time": elapsed,
            "metrics": {key: metrics[key] for key in ("mae", "rmse", "ssim", "data_misfit", "physics_misfit")},
            "misfit_history": outcome.history, "example": refined[0, 0].round().astype(np.int16).tolist()}


def _child(task: Any, settings: Any, conn: Any, threads: int, runner: Runner) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        conn.send(("ok", runner(task, settings)))
    except BaseException:  # the parent records the failure and goes on with the other runs
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


# -- the parent --------------------------------------------------------------------------------
class TaskStore:
    """Finished runs on disk (atomic JSON), so an interrupted study resumes; tied to the settings."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.results: dict[str, dict[str, Any]] = {}
        self.sessions: list[float] = []  # wall time of earlier, interrupted sessions
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError:
                data = {}
            if data.get("fingerprint") == fingerprint:
                self.results = data.get("results", {})
                self.sessions = list(data.get("sessions", []))
        self.session_start = time.perf_counter()

    def _write(self, sessions: list[float]) -> None:
        from fwi_plugins.atomic import atomic_write_text

        atomic_write_text(self.path, json.dumps({"fingerprint": self.fingerprint, "sessions": sessions,
                                                 "results": self.results}))

    def elapsed(self) -> float:
        """Wall time of this session so far."""
        return time.perf_counter() - self.session_start

    def put(self, key: str, result: dict[str, Any]) -> None:
        self.results[key] = result
        self._write([*self.sessions, self.elapsed()])


def run_all(tasks: Sequence[Any], settings: Any, store: TaskStore, workers: int, threads: int, *,
            runner: Runner | None = None, describe: Callable[[dict[str, Any]], str] | None = None) -> None:
    """Run every task not yet in ``store``, ``workers`` forked processes at a time.

    ``runner(task, settings)`` runs one task in its forked process and returns its record
    (default: the study's ``run_task``); ``describe(record)`` is its progress line. Any task
    with a ``key`` and any settings the runner reads will do (``study_fair.py`` runs its own).
    """
    runner = runner or run_task
    describe = describe or _progress_line
    from tqdm.auto import tqdm

    todo = [t for t in tasks if t.key not in store.results]
    if len(todo) < len(tasks):
        print(f"resuming: {len(tasks) - len(todo)} of {len(tasks)} runs already finished", flush=True)
    ctx = multiprocessing.get_context("fork")
    running: dict[Any, tuple[Any, Any, float]] = {}
    bar = tqdm(total=len(todo), desc="study", unit="run", file=sys.stderr)
    queue = list(todo)
    while queue or running:
        while queue and len(running) < workers:
            task = queue.pop(0)
            receive, send = ctx.Pipe(duplex=False)
            process = ctx.Process(target=_child, args=(task, settings, send, threads, runner), daemon=True)
            process.start()
            send.close()
            running[receive] = (task, process, time.perf_counter())
        for conn in wait(list(running)):
            task, process, t0 = running.pop(conn)
            try:
                status, payload = conn.recv()
            except EOFError:
                status, payload = "error", f"the run's process ended without a result (exit code {process.exitcode})"
            process.join()
            if status == "ok":
                store.put(task.key, payload)
                line = describe(payload)
            else:
                line = f"FAILED {task.key}:\n{payload}"
            bar.write(f"[{time.perf_counter() - t0:6.0f} s] {line}")
            bar.update(1)
    bar.close()


def _progress_line(r: dict[str, Any]) -> str:
    m = r["metrics"]
    return (f"{r['kind']:<10} {r['target']:<18} {r['method']:<10} {r['fraction']:>5g}  MAE {m['mae']:.4f}  "
            f"SSIM {m['ssim']:.4f}  steps {r['steps']}  train {r['train_time']:.0f} s  peak +{r['peak_mib']:.0f} MiB")

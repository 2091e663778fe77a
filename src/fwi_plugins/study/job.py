"""``fwi study`` as a function: plan, run what is not finished, write study.json, study.md and figures."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import figures, text
from .data import Foundation, Target, load_target, resolve_foundation
from .options import StudyOptions
from .plan import Task, all_tasks, choices, estimate, first_tasks, second_tasks
from .report import findings, results_by_target, tuning
from .runs import progress_line, run_task
from .store import StudyFolder, dumps

Echo = Callable[[str], None]


def plan_summary(o: StudyOptions) -> dict[str, Any]:
    """The plan without running anything: options, run counts, estimate and the runs known in advance
    (the runs on test maps and the specialists wait for the learning rates the grid chooses)."""
    return {"options": o.plan_values(), "device": o.device, "estimate": estimate(o),
            "first_runs": [t.id for t in first_tasks(o)]}


def run_study(o: StudyOptions, out: Path, *, command: str = "", cache_dir: str | None = None,
              echo: Echo = print) -> dict[str, Any]:
    """Run every task of ``o`` not yet finished in ``out`` and write the report there; ``study.json``'s content."""
    started, session = time.strftime("%Y-%m-%d %H:%M:%S"), time.perf_counter()
    foundation = resolve_foundation(o)
    folder = StudyFolder(out, {"fingerprint": o.fingerprint(foundation.sha256), "options": o.plan_values(),
                               "weights_sha256": foundation.sha256}).open()
    targets: dict[str, Target] = {}

    def target(key: str) -> Target:
        if key not in targets:
            spec = next(t for t in o.targets if t.key == key)
            echo(f"loading {spec.label}: {o.n_train} training, {o.n_val} validation, {o.n_test} test maps")
            targets[key] = load_target(spec, o, foundation, cache_dir=cache_dir)
        return targets[key]

    failed = _run(first_tasks(o), o, foundation, folder, target, echo)
    for (key, method), lr in sorted(choices(o, folder.results()).items()):
        echo(f"chosen on validation SSIM: {key} {method} lr {lr:g}")
    failed += _run(second_tasks(o, choices(o, folder.results())), o, foundation, folder, target, echo)
    report = build_report(o, foundation, folder, targets, command=command, started=started,
                          session_seconds=time.perf_counter() - session)
    write_report(report, folder)
    if failed:
        echo(f"{len(failed)} run(s) failed: {', '.join(failed)}")
    return report


def _run(tasks: list[Task], o: StudyOptions, foundation: Foundation, folder: StudyFolder,
         target: Callable[[str], Target], echo: Echo) -> list[str]:
    """Run the tasks without a result file, in order; the ids of those that failed."""
    done = folder.results()
    todo = [t for t in tasks if t.id not in done]
    if len(todo) < len(tasks):
        echo(f"resuming: {len(tasks) - len(todo)} of {len(tasks)} runs already finished")
    failed = []
    for i, task in enumerate(todo, 1):
        try:
            record = run_task(task, o, foundation, target(task.target))
        except (ArithmeticError, RuntimeError, ValueError) as exc:  # the other runs still tell something
            echo(f"[{i}/{len(todo)}] FAILED {task.id}: {type(exc).__name__}: {exc}")
            failed.append(task.id)
            continue
        folder.put(task.id, record)
        echo(f"[{i}/{len(todo)}] {progress_line(record)}")
    return failed


def build_report(o: StudyOptions, foundation: Foundation, folder: StudyFolder, targets: Mapping[str, Target], *,
                 command: str, started: str, session_seconds: float) -> dict[str, Any]:
    """``study.json``: options, foundation, targets, chosen rates, results, data curves, findings, runs."""
    results = folder.results()
    planned = [t.id for t in all_tasks(o, results)]
    by_target = results_by_target(o, results)
    summaries = {k: t.summary() for k, t in targets.items()}
    for spec in o.targets:
        summaries.setdefault(spec.key, {"label": spec.label, "dataset": spec.dataset, "options": dict(spec.options)})
    labels = {k: v["label"] for k, v in summaries.items()}
    earlier = _earlier_sessions(folder)
    return {"format": "fwi-study-1", "command": command, "started": started, "options": o.plan_values(),
            "device": o.device, "hardware": _hardware(),
            "foundation": {"backbone": foundation.backbone, "weights": foundation.weights,
                           "path": _shown(foundation.path), "sha256": foundation.sha256,
                           "options": dict(foundation.options)},
            "targets": summaries, "estimate": estimate(o), "chosen_lr": tuning(o, results), "results": by_target,
            "findings": findings(o, by_target, labels), "missing": [i for i in planned if i not in results],
            "sessions": len(earlier) + 1, "session_times_s": [*earlier, session_seconds],
            "wall_time_s": sum(earlier) + session_seconds, "tasks": {i: results[i] for i in planned if i in results}}


def _earlier_sessions(folder: StudyFolder) -> list[float]:
    import json

    path = folder.path / "study.json"
    try:
        return [float(x) for x in json.loads(path.read_text()).get("session_times_s", [])]
    except (OSError, ValueError, AttributeError):
        return []


def write_report(report: Mapping[str, Any], folder: StudyFolder) -> None:
    folder.write("study.json", dumps(report))
    folder.write("study.md", text.markdown(report))
    if report["results"] and any(r["methods"] or r["zero_shot"] for r in report["results"].values()):
        figures.ssim_against_share(report, folder.path / "study_ssim_share.png")
        figures.ssim_against_maps(report, folder.path / "study_data_curve.png")


def _shown(path: str) -> str:
    """``path`` relative to the working folder when inside it (a report should not name the machine)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _hardware() -> dict[str, Any]:
    import torch

    return {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}

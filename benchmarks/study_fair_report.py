"""The fair study's report: chosen learning rates, scratch convergence, test results with their spread
over seeds, and findings, computed from the finished runs that ``study_fair.py`` hands in."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fwi_plugins.atomic import atomic_write_text
from study_fair_plan import FairSettings, FairTask, choices, grid_scores
from study_fair_text import fair_markdown, fair_terminal
from study_format import foundation_json


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (n - 1 in the denominator; ``None`` for one value) and the values."""
    vals = [float(v) for v in values]
    return {"mean": statistics.fmean(vals) if vals else None,
            "sd": statistics.stdev(vals) if len(vals) > 1 else None, "n": len(vals), "values": vals}


def build_fair_report(context: Mapping[str, Any], results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The report as JSON, Markdown and terminal text."""
    s: FairSettings = context["settings"]
    chosen = choices(s, results)
    tuning = _tuning(s, results, chosen)
    test = _test(s, results, chosen)
    convergence = _convergence(s, results, chosen)
    labels = {k: v["label"] for k, v in context["targets"].items()}
    findings = _findings(s, test, tuning, convergence, labels)
    foundation = {**foundation_json(context["foundation"]), "sha256": s.base.foundation_sha256}
    json_out = {
        "settings": dataclasses.asdict(s), "foundation": foundation, "targets": context["targets"],
        "skipped": context["skipped"], "failed": context["failed"], "hardware": _hardware(),
        "workers": context["workers"], "threads_per_run": context["threads_per_run"], "started": context["started"],
        "wall_time_s": context["wall_time"], "sessions": context["sessions"], "data_time_s": context["load_time"],
        "command": context["command"], "plan": context["plan"],
        "lr_choice": {"criterion": "highest validation SSIM", "seed": s.tune_seed, "steps": context["plan"][
            "steps_per_run"], "targets": tuning},
        "scratch_convergence": convergence, "test": test, "findings": findings, "runs": dict(results),
    }
    report = {"json": json_out, "labels": labels, "settings": s}
    report["markdown"] = fair_markdown(report)
    report["terminal"] = fair_terminal(report)
    return report


def write_fair_outputs(report: Mapping[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "study_fair.md", report["markdown"])
    atomic_write_text(out / "study_fair.json", json.dumps(report["json"], indent=1, allow_nan=False,
                                                          default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def _hardware() -> dict[str, Any]:
    import os
    import platform

    import torch

    return {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


# -- tables ----------------------------------------------------------------------------------------
def _tuning(s: FairSettings, results: Mapping[str, Mapping[str, Any]],
            chosen: Mapping[tuple[str, str], float]) -> dict[str, Any]:
    """Per target and method: every grid point's validation scores and the learning rate chosen."""
    out: dict[str, Any] = {}
    for target in s.base.targets:
        out[target] = {}
        for method in s.base.methods:
            rows = grid_scores(s, results, target, method)
            for row in rows:
                run = results[FairTask("tune", target, method, row["lr"], s.tune_seed).key]
                row.update(val_maps=run["validation"]["maps"], val_maps_sha256=run["validation"]["maps_sha256"],
                           train_time=run["train_time"])
            grid = list(s.grid(method))
            lr = chosen.get((target, method))
            edge = lr is not None and len(grid) > 1 and lr in (min(grid), max(grid))
            out[target][method] = {"chosen": lr, "grid": rows, "at_grid_edge": edge}
    return out


def _test(s: FairSettings, results: Mapping[str, Mapping[str, Any]],
          chosen: Mapping[tuple[str, str], float]) -> dict[str, Any]:
    """Per target and method at its chosen learning rate: spread over seeds of the test scores."""
    out: dict[str, Any] = {}
    for target in s.base.targets:
        out[target] = {}
        zero = results.get(FairTask("zero-shot", target).key)
        if zero is not None:
            m = zero["test"]["metrics"]
            out[target]["foundation"] = {"lr": None, "seeds": [], "ssim": spread([m["ssim"]]),
                                         "mae_ms": spread([m["mae_ms"]]), "mae": spread([m["mae"]]),
                                         "trainable": 0, "total": zero["total"], "steps": spread([0]),
                                         "train_time": spread([0.0]), "test_maps": zero["test"]["maps"]}
        for method in s.base.methods:
            if (target, method) not in chosen:
                continue
            lr = chosen[target, method]
            runs = [(seed, results.get(FairTask("test", target, method, lr, seed).key)) for seed in s.seeds]
            done = [(seed, r) for seed, r in runs if r is not None]
            if not done:
                continue
            out[target][method] = {
                "lr": lr, "seeds": [seed for seed, _ in done],
                **{k: spread([r["test"]["metrics"][k] for _, r in done]) for k in ("ssim", "mae_ms", "mae")},
                "trainable": done[0][1]["trainable"], "total": done[0][1]["total"],
                "steps": spread([r["steps"] for _, r in done]),
                "train_time": spread([r["train_time"] for _, r in done]),
                "peak_mib": max(r["peak_mib"] for _, r in done), "test_maps": done[0][1]["test"]["maps"]}
    return out


def _convergence(s: FairSettings, results: Mapping[str, Mapping[str, Any]],
                 chosen: Mapping[tuple[str, str], float]) -> dict[str, Any]:
    """Per target: how far each seed's scratch run went, where its best validation was, and the
    validation SSIM of the tuning run at the study's budget (same learning rate, first seed)."""
    out: dict[str, Any] = {}
    for target in s.base.targets:
        lr = chosen.get((target, "scratch"))
        if lr is None:
            continue
        tuned = results.get(FairTask("tune", target, "scratch", lr, s.tune_seed).key)
        rows = []
        for seed in s.seeds:
            r = results.get(FairTask("test", target, "scratch", lr, seed).key)
            if r is not None:
                rows.append({"seed": seed, "steps": r["steps"], "best_step": r["best_step"], "cap": r["cap"],
                             "stopped_early": r["stopped_early"], "best_val_ssim": r["best_val_ssim"],
                             "validations": len(r["validation_history"]), "train_time": r["train_time"]})
        out[target] = {"lr": lr, "budget_steps": tuned["steps"] if tuned else None,
                       "budget_val_ssim": tuned["validation"]["metrics"]["ssim"] if tuned else None, "seeds": rows}
    return out


# -- findings --------------------------------------------------------------------------------------
def _findings(s: FairSettings, test: Mapping[str, Any], tuning: Mapping[str, Any], convergence: Mapping[str, Any],
              labels: Mapping[str, str]) -> list[str]:
    """What the numbers say, in sentences computed from them (nothing here is fixed in advance)."""
    lines: list[str] = []
    for target, rows in test.items():
        label = labels.get(target, target)
        trained = {m: r for m, r in rows.items() if m != "foundation" and r["ssim"]["mean"] is not None}
        if not trained:
            continue
        best = max(trained, key=lambda m: trained[m]["ssim"]["mean"])
        lines.append(f"{label}: best mean test SSIM {trained[best]['ssim']['mean']:.4f} with {best}"
                     + _spread_text(trained[best]["ssim"]))
        if "scratch" in trained and best != "scratch":
            lines.append(f"{label}: {best} against scratch trained to convergence: "
                         + _difference(trained[best]["ssim"], trained["scratch"]["ssim"]))
        others = [m for m in trained if m not in (best, "scratch")]
        if others:
            runner_up = max(others, key=lambda m: trained[m]["ssim"]["mean"])
            lines.append(f"{label}: {best} against {runner_up}: "
                         + _difference(trained[best]["ssim"], trained[runner_up]["ssim"]))
        if "foundation" in rows:
            zero = rows["foundation"]["ssim"]["mean"]
            lines.append(f"{label}: the foundation zero-shot scores {zero:.4f}; {best} adds "
                         f"{trained[best]['ssim']['mean'] - zero:+.4f}")
        lines += _convergence_lines(convergence.get(target), label)
        edges = [m for m, t in tuning.get(target, {}).items() if t["at_grid_edge"]]
        if edges:
            lines.append(f"{label}: the learning rate chosen for {', '.join(edges)} is at the edge of its grid; "
                         f"the best one may lie beyond it")
    return lines


def _spread_text(sp: Mapping[str, Any]) -> str:
    return f" (± {sp['sd']:.4f} over {sp['n']} seeds)" if sp["sd"] is not None else " (one seed)"


def _difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """``a`` minus ``b`` in SSIM, and whether it exceeds twice its standard error over seeds."""
    diff = a["mean"] - b["mean"]
    if a["sd"] is None or b["sd"] is None:
        return f"{diff:+.4f} SSIM (one seed: no spread to compare with)"
    se = math.sqrt(a["sd"] ** 2 / a["n"] + b["sd"] ** 2 / b["n"])
    verdict = "larger than" if abs(diff) > 2 * se else "within"
    return f"{diff:+.4f} SSIM, {verdict} twice its standard error over seeds ({2 * se:.4f})"


def _convergence_lines(c: Mapping[str, Any] | None, label: str) -> list[str]:
    if not c or not c["seeds"]:
        return []
    rows = c["seeds"]
    early = sum(r["stopped_early"] for r in rows)
    best_steps = ", ".join(str(r["best_step"]) for r in rows)
    line = (f"{label}: scratch stopped early in {early} of {len(rows)} seeds; its best validation came at steps "
            f"{best_steps} (cap {rows[0]['cap']})")
    if c["budget_val_ssim"] is not None:
        mean_best = statistics.fmean(r["best_val_ssim"] for r in rows)
        line += (f"; validation SSIM {c['budget_val_ssim']:.4f} after the study's {c['budget_steps']} steps, "
                 f"{mean_best:.4f} at its best")
    if early < len(rows):
        line += "; a run that reached the cap may not have converged"
    return [line]

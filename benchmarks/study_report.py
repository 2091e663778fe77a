"""The study's report: tables, ratios, findings, figures and the README's results block.

Everything here is computed from the measured runs that ``benchmarks/study.py`` hands in;
the only fixed numbers are OpenFWI's published InversionNet figures, quoted for comparison.
The numbers are gathered here; ``study_text.py`` writes them out as text, ``study_figures.py``
plots them, and ``study_format.py`` holds what both share.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fwi_plugins.atomic import atomic_write_text
from study_figures import figure_examples, figure_physics, figure_ssim
from study_format import (INVERSIONNET, OPENFWI_TRAIN_MAPS, README_END, README_START, Results, foundation_json,
                          method_label, pct)
from study_text import markdown_report, readme_block, terminal_report


def _row_metrics(run: Mapping[str, Any] | None) -> dict[str, Any]:
    if run is None:
        return {}
    m = run["metrics"]
    return {"mae": m["mae"], "rmse": m["rmse"], "mae_ms": m["mae_ms"], "rmse_ms": m["rmse_ms"], "ssim": m["ssim"]}


# -- the report ------------------------------------------------------------------------------------
def build_report(context: Mapping[str, Any], results: Mapping[str, Mapping[str, Any]],
                 tasks: Sequence[Any]) -> dict[str, Any]:
    """Tables, ratios and findings as Markdown, terminal text, JSON and figure data."""
    s = context["settings"]
    r = Results(results)
    targets = list(s["targets"])
    methods = list(s["methods"])
    fractions = sorted(s["fractions"], reverse=True)
    peft = [m for m in methods if m not in ("scratch", "full")]
    labels = {k: v["label"] for k, v in context["targets"].items()}

    rows = _grid_rows(r, targets, methods, fractions)
    ratios = _ratios_to_full(r, targets, methods, fractions)
    findings = _findings(r, targets, methods, peft, fractions, labels, context)
    physics = _physics(r, s, labels)
    openfwi = _openfwi(r, targets, methods, peft, labels)
    json_out = {
        "settings": s, "foundation": foundation_json(context["foundation"]), "targets": {
            k: {kk: vv for kk, vv in v.items() if kk != "truth_example"} for k, v in context["targets"].items()},
        "skipped": context["skipped"], "failed": context["failed"], "hardware": context["hardware"],
        "workers": context["workers"], "threads_per_run": context["threads_per_run"], "started": context["started"],
        "wall_time_s": context["wall_time"], "data_time_s": context["load_time"], "command": context["command"],
        "rows": rows, "ratios_to_full": ratios, "physics": physics, "openfwi_comparison": openfwi,
        "findings": findings["lines"], "runs": _runs_json(results),
    }
    report = {"json": json_out, "context": context, "results": r, "rows": rows, "ratios": ratios,
              "physics": physics, "openfwi": openfwi, "findings": findings, "targets": targets,
              "methods": methods, "fractions": fractions, "labels": labels}
    report["markdown"] = markdown_report(report)
    report["terminal"] = terminal_report(report)
    report["readme"] = readme_block(report)
    return report


def _grid_rows(r: Results, targets: Sequence[str], methods: Sequence[str],
               fractions: Sequence[float]) -> list[dict[str, Any]]:
    """The main grid, a row per run: the foundation zero-shot first, then each fraction and method."""
    rows: list[dict[str, Any]] = []
    for target in targets:
        zs = r.zero_shot(target)
        if zs is not None:
            rows.append({"target": target, "method": "foundation", "fraction": 0.0, "n_train": 0, "steps": 0,
                         **_row_metrics(zs), "trainable": 0, "total": zs["total"], "peak_mib": zs["peak_mib"],
                         "train_time": 0.0, "wall_time": zs["wall_time"]})
        for fraction in fractions:
            for method in methods:
                run = r.grid(target, method, fraction)
                if run is None:
                    continue
                rows.append({"target": target, "method": method, "fraction": fraction, "n_train": run["n_train"],
                             "batch_size": run["batch_size"], "epochs": run["epochs"], "steps": run["steps"],
                             **_row_metrics(run), "trainable": run["trainable"], "total": run["total"],
                             "peak_mib": run["peak_mib"], "train_time": run["train_time"],
                             "wall_time": run["wall_time"]})
    return rows


def _ratios_to_full(r: Results, targets: Sequence[str], methods: Sequence[str],
                    fractions: Sequence[float]) -> list[dict[str, Any]]:
    """Each method against full fine-tuning at the same target and fraction."""
    ratios = []
    for target in targets:
        for fraction in fractions:
            full = r.grid(target, "full", fraction)
            if full is None:
                continue
            for method in [m for m in methods if m != "full"]:
                run = r.grid(target, method, fraction)
                if run is None:
                    continue
                ratios.append({
                    "target": target, "fraction": fraction, "method": method,
                    "ssim_minus_full": run["metrics"]["ssim"] - full["metrics"]["ssim"],
                    "mae_over_full": run["metrics"]["mae"] / full["metrics"]["mae"],
                    "trainable_over_full": run["trainable"] / max(1, full["trainable"]),
                    "peak_over_full": run["peak_mib"] / full["peak_mib"] if full["peak_mib"] > 0 else float("nan"),
                    "time_over_full": run["train_time"] / full["train_time"] if full["train_time"] > 0 else float("nan"),
                })
    return ratios


def _runs_json(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Every run's record without its example maps (a refinement's included)."""
    return {k: {kk: vv for kk, vv in v.items() if kk != "example"
                and not (kk == "refine" and isinstance(vv, dict))} | (
                {"refine": {kk: vv for kk, vv in v["refine"].items() if kk != "example"}} if "refine" in v else {})
            for k, v in results.items()}


def _best(r: Results, target: str, methods: Sequence[str], fraction: float) -> tuple[str | None, float]:
    best, value = None, -math.inf
    for m in methods:
        run = r.grid(target, m, fraction)
        if run is not None and run["metrics"]["ssim"] > value:
            best, value = m, run["metrics"]["ssim"]
    return best, value


def _findings(r: Results, targets: Sequence[str], methods: Sequence[str], peft: Sequence[str],
              fractions: Sequence[float], labels: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, Any]:
    lines: list[str] = []
    dist = {k: v["distribution"] for k, v in context["targets"].items()}
    tally = {"in": [0, 0], "out": [0, 0]}
    lora_tally = {"in": [0, 0], "out": [0, 0]}
    vs_scratch = [0, 0]
    for target in targets:
        for fraction in fractions:
            full = r.grid(target, "full", fraction)
            best_peft, best_value = _best(r, target, peft, fraction)
            overall, overall_value = _best(r, target, methods, fraction)
            if overall is not None:
                lines.append(f"{labels[target]}, {pct(fraction)}: best SSIM {overall_value:.4f} by "
                             f"{method_label(overall)}"
                             + (f"; full fine-tuning {full['metrics']['ssim']:.4f}, best PEFT "
                                f"({method_label(best_peft)}) {best_value:.4f}"
                                if full is not None and best_peft else ""))
            if full is not None and best_peft is not None:
                tally[dist[target]][1] += 1
                tally[dist[target]][0] += best_value >= full["metrics"]["ssim"]
            lora = r.grid(target, "lora", fraction)
            if full is not None and lora is not None:
                lora_tally[dist[target]][1] += 1
                lora_tally[dist[target]][0] += lora["metrics"]["ssim"] >= full["metrics"]["ssim"]
            scratch = r.grid(target, "scratch", fraction)
            if scratch is not None and full is not None:
                vs_scratch[1] += 1
                vs_scratch[0] += full["metrics"]["ssim"] > scratch["metrics"]["ssim"]
    summary = []
    for where, name in (("in", "in distribution"), ("out", "out of distribution")):
        won, total = tally[where]
        if total:
            summary.append(f"{name}, the best PEFT method matched or beat full fine-tuning in SSIM in {won} of "
                           f"{total} target x fraction cells")
        won, total = lora_tally[where]
        if total:
            summary.append(f"{name}, LoRA alone matched or beat full fine-tuning in {won} of {total}")
    for method in methods:
        above, total = 0, 0
        for target in targets:
            zs = r.zero_shot(target)
            for fraction in fractions:
                run = r.grid(target, method, fraction)
                if zs is not None and run is not None:
                    total += 1
                    above += run["metrics"]["ssim"] > zs["metrics"]["ssim"]
        if total:
            summary.append(f"{method_label(method)} ended above the zero-shot foundation model's SSIM in {above} of "
                           f"{total} cells")
    if vs_scratch[1]:
        summary.append(f"fine-tuning the foundation model beat training from scratch (same steps) in "
                       f"{vs_scratch[0]} of {vs_scratch[1]} cells")
    return {"lines": summary + lines, "summary": summary, "cells": lines, "tally": tally,
            "lora_tally": lora_tally, "vs_scratch": vs_scratch}


def _physics(r: Results, s: Mapping[str, Any], labels: Mapping[str, str]) -> list[dict[str, Any]]:
    rows = []
    method, fraction = s["physics_method"], s["physics_fraction"]
    for target in s["physics_targets"]:
        variants = [
            ("zero-shot", "zero-shot foundation", r.zero_shot(target), None),
            ("a", f"(a) label-only {method_label(method)}, {pct(fraction)} labels", r.grid(target, method, fraction),
             None),
            ("b", "(b) (a) + physics misfit", r.get("physics", target, method, fraction), None),
            ("c", "(c) label-free: physics misfit only, no labels", r.get("label-free", target, method, 1.0), None),
        ]
        anchor = r.grid(target, method, fraction)
        for key, name, run, _ in variants:
            if run is None:
                continue
            first = run["metrics"].get("first_k", {})
            rows.append({"target": target, "variant": key, "name": name, "data_misfit": first.get("data_misfit"),
                         "ssim_k": first.get("ssim"), "mae_k": first.get("mae"), "k": first.get("k"),
                         "ssim_all": run["metrics"]["ssim"], "mae_all": run["metrics"]["mae"],
                         "time": run.get("train_time", 0.0) + (run.get("eval_time", 0.0) if key == "zero-shot" else 0.0),
                         "steps": run.get("steps", 0), "n_train": run.get("n_train", 0),
                         "lambda_physics": run.get("lambda_physics"),
                         "labels_used": 0 if key in ("zero-shot", "c") else run.get("n_train", 0)})
        if anchor is not None and "refine" in anchor:
            ref = anchor["refine"]
            m = ref["metrics"]
            rows.append({"target": target, "variant": "d",
                         "name": f"(d) (a) refined: {ref['iterations']} FWI iterations",
                         "data_misfit": m["data_misfit"], "ssim_k": m["ssim"], "mae_k": m["mae"], "k": ref["k"],
                         "ssim_all": None, "mae_all": None, "time": ref["time"], "steps": ref["iterations"],
                         "n_train": anchor.get("n_train", 0), "lambda_physics": None,
                         "labels_used": anchor.get("n_train", 0)})
    return rows


def _openfwi(r: Results, targets: Sequence[str], methods: Sequence[str], peft: Sequence[str],
             labels: Mapping[str, str]) -> list[dict[str, Any]]:
    rows = []
    for target, ref in INVERSIONNET.items():
        if target not in targets:
            continue
        rows.append({"target": target, "who": f"InversionNet (OpenFWI), {OPENFWI_TRAIN_MAPS:,} maps", **ref})
        zs = r.zero_shot(target)
        if zs is not None:
            rows.append({"target": target, "who": "ours: zero-shot foundation", **_row_metrics(zs)})
        for method in methods:
            run = r.grid(target, method, 1.0)
            if run is not None:
                rows.append({"target": target, "who": f"ours: {method_label(method)}, {run['n_train']} maps",
                             **_row_metrics(run)})
    return rows



# -- writing ------------------------------------------------------------------------------------------
def rewrite_readme(readme: Path, block: str) -> bool:
    """Replace the README's results block (markers included); False if the markers are missing."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(text):
        return False
    atomic_write_text(readme, pattern.sub(lambda _: block, text, count=1))
    return True


def write_outputs(report: Mapping[str, Any], out: Path, *, readme: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    from fwi_plugins.engine.rundir import to_jsonable

    atomic_write_text(out / "study.json", json.dumps(to_jsonable(report["json"]), indent=1) + "\n")
    atomic_write_text(out / "study.md", report["markdown"])
    figure_ssim(report, out / "study_ssim.png")
    figure_examples(report, out / "study_examples.png")
    figure_physics(report, out / "study_physics.png")
    if readme is not None:
        if not rewrite_readme(readme, report["readme"]):
            print(f"{readme} has no {README_START} ... {README_END} block; left unchanged")

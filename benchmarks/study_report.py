"""The study's report: tables, ratios, findings, figures and the README's results block.

Everything here is computed from the measured runs that ``benchmarks/study.py`` hands in;
the only fixed numbers are OpenFWI's published InversionNet figures, quoted for comparison.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fwi_plugins.io_utils import atomic_path, atomic_write_text

# OpenFWI (Deng et al., NeurIPS 2022), InversionNet with L1 loss on the full data: 24,000
# training maps per Vel family, evaluated on 6,000 test maps. MAE / RMSE on [-1, 1], SSIM.
INVERSIONNET = {
    "openfwi-flatvel-a": {"mae": 0.0131, "rmse": 0.0211, "ssim": 0.9895},
    "openfwi-curvevel-a": {"mae": 0.0685, "rmse": 0.1273, "ssim": 0.8074},
}
OPENFWI_TRAIN_MAPS = 24_000
OPENFWI_TEST_MAPS = 6_000

README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"

METHOD_LABELS = {"scratch": "from scratch", "full": "full fine-tuning", "lora": "LoRA", "adapter": "adapter",
                 "ia3": "IA3", "loha": "LoHa", "lokr": "LoKr", "foundation": "zero-shot (foundation)"}


def _ssim_term(settings: dict) -> str:
    weight = settings.get("lambda_ssim", 0.0)
    return f" + {weight:g} x (1 - SSIM)" if weight else ""


def _label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def _pct(fraction: float) -> str:
    return f"{100 * fraction:g} %"


def _f(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _params(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} M"
    if n >= 1_000:
        return f"{n / 1e3:.1f} k"
    return str(n)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _maps(n: int) -> str:
    return _plural(n, "map")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _plain_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = []
    for j, row in enumerate(cells):
        out.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


# -- gathering ----------------------------------------------------------------------------------
class Results:
    """Lookup of finished runs by (kind, target, method, fraction)."""

    def __init__(self, results: Mapping[str, Mapping[str, Any]]) -> None:
        self.by_key = dict(results)

    def get(self, kind: str, target: str, method: str = "", fraction: float = 1.0) -> Mapping[str, Any] | None:
        return self.by_key.get(f"{kind}:{target}:{method}:{fraction:g}")

    def grid(self, target: str, method: str, fraction: float) -> Mapping[str, Any] | None:
        return self.get("grid", target, method, fraction)

    def zero_shot(self, target: str) -> Mapping[str, Any] | None:
        return self.get("zero-shot", target)


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

    # Main grid rows, ratios and findings.
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

    findings = _findings(r, targets, methods, peft, fractions, labels, context)
    physics = _physics(r, s, labels)
    openfwi = _openfwi(r, targets, methods, peft, labels)

    json_out = {
        "settings": s, "foundation": _foundation_json(context["foundation"]), "targets": {
            k: {kk: vv for kk, vv in v.items() if kk != "truth_example"} for k, v in context["targets"].items()},
        "skipped": context["skipped"], "failed": context["failed"], "hardware": context["hardware"],
        "workers": context["workers"], "threads_per_run": context["threads_per_run"], "started": context["started"],
        "wall_time_s": context["wall_time"], "data_time_s": context["load_time"], "command": context["command"],
        "rows": rows, "ratios_to_full": ratios, "physics": physics, "openfwi_comparison": openfwi,
        "findings": findings["lines"],
        "runs": {k: {kk: vv for kk, vv in v.items() if kk != "example"
                     and not (kk == "refine" and isinstance(vv, dict))} | (
                    {"refine": {kk: vv for kk, vv in v["refine"].items() if kk != "example"}} if "refine" in v else {})
                 for k, v in results.items()},
    }
    report = {"json": json_out, "context": context, "results": r, "rows": rows, "ratios": ratios,
              "physics": physics, "openfwi": openfwi, "findings": findings, "targets": targets,
              "methods": methods, "fractions": fractions, "labels": labels}
    report["markdown"] = _markdown(report)
    report["terminal"] = _terminal(report)
    report["readme"] = _readme_block(report)
    return report


def _foundation_json(f: Mapping[str, Any]) -> dict[str, Any]:
    card = f.get("card") or {}
    keep = ("name", "command", "seed", "steps", "epochs", "wall_time_s", "hardware", "parameters",
            "validation", "validation_by_dataset", "data")
    return {"path": f["path"], "backbone": f["backbone"], "backbone_options": f["backbone_options"],
            "card": {k: card[k] for k in keep if k in card}}


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
                lines.append(f"{labels[target]}, {_pct(fraction)}: best SSIM {overall_value:.4f} by "
                             f"{_label(overall)}" + (f"; full fine-tuning {full['metrics']['ssim']:.4f}, best PEFT "
                                                    f"({_label(best_peft)}) {best_value:.4f}"
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
            summary.append(f"{_label(method)} ended above the zero-shot foundation model's SSIM in {above} of "
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
            ("a", f"(a) label-only {_label(method)}, {_pct(fraction)} labels", r.grid(target, method, fraction), None),
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
                rows.append({"target": target, "who": f"ours: {_label(method)}, {run['n_train']} maps",
                             **_row_metrics(run)})
    return rows


# -- text -----------------------------------------------------------------------------------------------
def _grid_table(report: Mapping[str, Any], target: str, markdown: bool) -> list[str]:
    header = ["fraction (maps)", "method", "MAE", "RMSE", "MAE m/s", "RMSE m/s", "SSIM", "trainable",
              "peak MiB", "train s"]
    rows = []
    for row in report["rows"]:
        if row["target"] != target:
            continue
        share = row["trainable"] / row["total"] if row["total"] else 0.0
        frac = "–" if row["method"] == "foundation" else f"{_pct(row['fraction'])} ({row['n_train']})"
        rows.append([frac, _label(row["method"]), _f(row.get("mae")), _f(row.get("rmse")), _f(row.get("mae_ms"), 1),
                     _f(row.get("rmse_ms"), 1), _f(row.get("ssim")),
                     f"{_params(row['trainable'])} ({100 * share:.2f} %)" if row["trainable"] else "0",
                     f"{row['peak_mib']:.0f}", f"{row['train_time']:.0f}"])
    return _table(header, rows, "llrrrrrrrr") if markdown else _plain_table(header, rows)


def _ratio_table(report: Mapping[str, Any], markdown: bool) -> list[str]:
    header = ["target", "fraction", "method", "SSIM - full", "MAE / full", "trainable / full", "peak mem / full",
              "train time / full"]
    rows = [[report["labels"][q["target"]], _pct(q["fraction"]), _label(q["method"]), f"{q['ssim_minus_full']:+.4f}",
             f"{q['mae_over_full']:.2f}", f"{q['trainable_over_full']:.4f}", f"{q['peak_over_full']:.2f}",
             f"{q['time_over_full']:.2f}"] for q in report["ratios"]]
    return _table(header, rows, "lllrrrrr") if markdown else _plain_table(header, rows)


def _physics_table(report: Mapping[str, Any], markdown: bool) -> list[str]:
    header = ["target", "variant", "labelled maps", "data misfit", "SSIM (k maps)", "MAE (k maps)",
              "SSIM (all test)", "time s"]
    rows = []
    for p in report["physics"]:
        rows.append([report["labels"][p["target"]], p["name"], p["labels_used"], _f(p["data_misfit"]),
                     _f(p["ssim_k"]), _f(p["mae_k"]), _f(p["ssim_all"]), f"{p['time']:.0f}"])
    return _table(header, rows, "llrrrrrr") if markdown else _plain_table(header, rows)


def _openfwi_table(report: Mapping[str, Any], markdown: bool) -> list[str]:
    header = ["target", "model", "MAE", "RMSE", "SSIM"]
    rows = [[report["labels"][o["target"]], o["who"], _f(o.get("mae")), _f(o.get("rmse")), _f(o.get("ssim"))]
            for o in report["openfwi"]]
    return _table(header, rows, "llrrr") if markdown else _plain_table(header, rows)


def _physics_findings(report: Mapping[str, Any]) -> list[str]:
    out = []
    by_target: dict[str, dict[str, Mapping[str, Any]]] = {}
    for p in report["physics"]:
        by_target.setdefault(p["target"], {})[p["variant"]] = p
    for target, v in by_target.items():
        a = v.get("a")
        if a is None:
            continue
        name = report["labels"][target]
        for key, what in (("b", "the physics term (b)"), ("c", "label-free adaptation (c)"), ("d", "refinement (d)")):
            x = v.get(key)
            if x is None or x["data_misfit"] is None or a["data_misfit"] is None:
                continue
            ref = a if key != "c" else v.get("zero-shot", a)
            against = "(a)" if key != "c" else "zero-shot"
            out.append(f"{name}: {what} changed the data misfit from {ref['data_misfit']:.4f} to "
                       f"{x['data_misfit']:.4f} ({100 * (x['data_misfit'] / ref['data_misfit'] - 1):+.1f} %) and "
                       f"SSIM on the same {x['k']} maps from {ref['ssim_k']:.4f} to {x['ssim_k']:.4f} against "
                       f"{against}, in {x['time']:.0f} s")
    return out


def _physics_compact(report: Mapping[str, Any]) -> list[str]:
    """One line per out-of-distribution target: what (b), (c) and (d) changed in data misfit and SSIM."""
    out = []
    by_target: dict[str, dict[str, Mapping[str, Any]]] = {}
    for p in report["physics"]:
        by_target.setdefault(p["target"], {})[p["variant"]] = p
    for target, v in by_target.items():
        parts = []
        for key, what, base in (("b", "+ physics", "a"), ("c", "label-free", "zero-shot"), ("d", "refinement", "a")):
            x, ref = v.get(key), v.get(base)
            if x is None or ref is None or x["data_misfit"] is None or ref["data_misfit"] is None:
                continue
            parts.append(f"{what} {100 * (x['data_misfit'] / ref['data_misfit'] - 1):+.0f} % data misfit, "
                         f"SSIM {x['ssim_k'] - ref['ssim_k']:+.3f} ({x['time']:.0f} s)")
        if parts:
            out.append(f"Physics, {report['labels'][target]} (first {v['a']['k'] if 'a' in v else '?'} test maps, "
                       f"against label-only or zero-shot): " + "; ".join(parts))
    return out


def _markdown(report: Mapping[str, Any]) -> str:
    c, s = report["context"], report["context"]["settings"]
    f = _foundation_json(c["foundation"])
    card = f["card"]
    lines = ["# The study: training from scratch, full fine-tuning and PEFT of the foundation model", "",
             f"Generated by `benchmarks/study.py` on {c['started']}; {c['wall_time'] / 60:.1f} min of wall time "
             f"on {c['hardware']['cpu_count']} CPU cores ({c['workers']} runs side by side, "
             f"{c['threads_per_run']} thread each; {c['hardware']['platform']}, torch {c['hardware']['torch']})"
             + (f", in {c['sessions']} sessions (interrupted and resumed)" if c.get("sessions", 1) > 1 else "") + ".",
             "", "Reproduce:", "", "```", c["command"], "```", ""]
    if s["smoke"]:
        lines += ["**Smoke run**: random weights, a few maps and steps; these numbers mean nothing.", ""]
    lines += ["## Setup", ""]
    found = f"`{f['path']}`: `{f['backbone']}` {json.dumps(f['backbone_options'])}"
    if card:
        data = ", ".join(d["name"] for d in card.get("data", []))
        hw = card.get("hardware", {})
        lines.append(f"* **Foundation model**: {found}; {card.get('parameters', 0):,} parameters, pretrained with "
                     f"`{card.get('command', '')}` on {data} ({card.get('steps')} steps, "
                     f"{card.get('wall_time_s', 0) / 60:.0f} min on {hw.get('gpu') or hw.get('cpu', '')}).")
    else:
        lines.append(f"* **Foundation model**: {found}.")
    tgt = c["targets"]
    lines.append("* **Targets**: " + "; ".join(
        f"{v['label']} ({'in' if v['distribution'] == 'in' else 'out of'} distribution; "
        f"{v['train_maps']} training, {v['test_maps']} test maps)" for v in tgt.values()) + ".")
    lines.append("  The OpenFWI targets use the real velocity maps (training maps from the train zip, test maps "
                 "from the test zip) with gathers simulated by the `deepwave` physics at OpenFWI geometry "
                 "(5 shots, 1000 samples at 1 ms, 70 receivers, 15 Hz Ricker). \"In distribution\" means the "
                 "foundation model was pretrained on the family's generated counterpart (this package's own "
                 "generators, calibrated against OpenFWI maps); the OpenFWI maps themselves were never seen.")
    if card and card.get("data"):
        seen = {d["name"] for d in card["data"]}
        both = [v["openfwi_family"] for v in tgt.values() if v.get("openfwi_family")]
        lines.append("  Generated counterparts of the OpenFWI targets in the pretraining data (per the model "
                     "card): " + ", ".join(f"`{fam}` {'yes' if fam in seen else 'no'}" for fam in both) + ".")
        held = [v["dataset"] for v in tgt.values() if v["dataset"] != "openfwi" and v["dataset"] not in seen]
        if held:
            lines.append(f"  Not in the foundation model's pretraining data (per its model card): "
                         f"{', '.join(f'`{h}`' for h in held)}.")
    for why in c["skipped"].values():
        lines.append(f"* **Skipped**: {why}")
    fr = ", ".join(f"{_pct(x)} = {_maps(max(1, round(x * s['n_train'])))}"
                   for x in sorted(s["fractions"], reverse=True) if x < 1)
    lines += [
        f"* **Fractions**: 100 % = the first {s['n_train']} training maps of the target; {fr}.",
        f"* **Training**: every run takes the same {s['steps']} AdamW optimisation steps (batch {s['batch_size']}, or "
        f"every map when a fraction has fewer; {_plural(s['warmup_steps'], 'warm-up step')} then cosine decay; learning rate "
        f"{s['lr']:g} for every method, not tuned per method), L1 label loss, seed {s['seed']}, through "
        f"`engine.train.train`. No validation split and no model selection: the weights after the last step are "
        f"scored on the test maps, so no test map guides any choice.",
        "* **Methods**: `scratch` is the same backbone from its random initialisation with every weight trained; "
        "the others start from the foundation weights (`full` trains every weight; PEFT methods train their "
        "adapters plus the output head, the PEFT plugins' default; options pinned by the study: "
        f"`{s.get('peft_options') or 'none'}`, the rest each plugin's defaults). The comparison is at equal adaptation "
        "compute: the scratch model gets the same few steps, far from training to convergence, and the "
        "foundation model's own pretraining cost (in its model card) is not counted against it.",
        "* **Metrics**: OpenFWI's definitions (`engine.metrics`): MAE and RMSE on the [-1, 1] scale and in m/s, "
        "SSIM on maps rescaled to [0, 1] with an 11-pixel window, over every test map.",
        "* **Peak memory**: each run is a forked process of its own; the column is the rise of its peak resident "
        "set (`ru_maxrss`) over its resident size when the run started (a forked process's high-water mark starts "
        "there), so it holds what the run added: weights, activations, gradients, optimiser state, batches.",
        "* **Time**: training wall time of the run; runs went side by side on the cores, so times include that "
        "sharing.", ""]

    lines += ["## Results", "",
              "SSIM against the share of training data (the dashed line is the foundation model zero-shot):", "",
              "![SSIM against training data](study_ssim.png)", ""]
    for target in report["targets"]:
        lines += [f"### {report['labels'][target]}", ""] + _grid_table(report, target, True) + [""]
    lines += ["### Findings", ""] + [f"* {_cap(x)}." for x in report["findings"]["summary"]] + [""]
    lines += ["One seed, one learning rate for every method and 100 test maps per target: differences of a "
              "hundredth in SSIM were not tested against another seed. At this budget the foundation model "
              "zero-shot is a strong baseline; compare every row with it.", ""]
    lines += [f"* {x}." for x in report["findings"]["cells"]] + [""]
    lines += ["### Ratios to full fine-tuning (same target and fraction)", ""] + _ratio_table(report, True) + [""]
    lines += ["Test maps of each target (first test map; methods at "
              f"{_pct(_example_fraction(report))} of the training data):", "",
              "![example predictions](study_examples.png)", ""]

    if report["physics"]:
        lines += ["## Physics (out of distribution)", "",
                  f"At {_pct(s['physics_fraction'])} of the labels with `{s['physics_method']}`: (a) label-only "
                  f"fine-tuning (the run above), (b) the same plus lambda x the physics misfit "
                  f"(lambda {'set so that both terms are equal when adaptation starts' if s['lambda_physics'] == 'auto' else s['lambda_physics']}"
                  f"; {_maps(s['physics_samples'])} of each step simulated), (c) label-free adaptation from the "
                  f"foundation model with the physics misfit alone on unlabelled training gathers "
                  f"({s['steps']} steps of {_maps(s['labelfree_batch'])}, each gather seen once), and (d) physics-based FWI "
                  f"(`engine.refine`, {s['refine_iterations']} iterations, step {s['refine_lr']:g} of the velocity "
                  f"range) starting from (a)'s predictions. Data misfit is the relative L2 distance between "
                  f"gathers simulated from the prediction and the observed ones, on the first "
                  f"{s['misfit_samples']} test maps (refinement costs a simulation per map and iteration); SSIM "
                  f"is given on those maps and on every test map. Time: training (a-c) or refinement (d).", ""]
        lines += _physics_table(report, True) + [""]
        lam = {p["target"]: p["lambda_physics"] for p in report["physics"] if p.get("lambda_physics")}
        if lam:
            lines += ["lambda used in (b) and (c): " + ", ".join(f"{report['labels'][t]} {v:.3g}"
                                                                for t, v in lam.items()) + ".", ""]
        lines += [f"* {x}." for x in _physics_findings(report)] + ["", "![physics](study_physics.png)", ""]

    if report["openfwi"]:
        lines += ["## Beside OpenFWI's published InversionNet", ""] + _openfwi_table(report, True) + [""]
        full_rows = [row for row in report["rows"] if row["method"] != "foundation" and row["fraction"] == 1.0]
        best_time = max((row["train_time"] for row in full_rows), default=0.0)
        epochs = max((row["epochs"] for row in full_rows), default=0)
        lines += [
            f"The scales differ by orders of magnitude, so this is orientation, not a contest. InversionNet was "
            f"trained on {OPENFWI_TRAIN_MAPS:,} maps per family for many epochs on GPUs and scored on "
            f"{OPENFWI_TEST_MAPS:,} test maps. Here each target has {s['n_train']} training maps "
            f"({100 * s['n_train'] / OPENFWI_TRAIN_MAPS:.1f} % of that), {s['steps']} steps of at most "
            f"{s['batch_size']} maps (each map seen {epochs} times at 100 %), at most {best_time / 60:.1f} min of training on one CPU core, a "
            f"{_params(report['rows'][0]['total']) if report['rows'] else '?'}-parameter `vit` tiny, and "
            f"{s['n_test']} test maps from OpenFWI's test file. The foundation model was pretrained on generated "
            f"families (its own flatvel/curvevel generators, calibrated against OpenFWI maps), never on OpenFWI "
            f"maps.", ""]
    if c["failed"]:
        lines += ["## Runs without a result (failed, or not run)", ""] + [f"* `{k}`" for k in c["failed"]] + [""]
    lines += ["All figures are in `study.json` beside this file."]
    return "\n".join(lines) + "\n"


def _terminal(report: Mapping[str, Any]) -> str:
    lines = []
    for target in report["targets"]:
        lines += ["", report["labels"][target]] + _grid_table(report, target, False)
    lines += ["", "ratios to full fine-tuning"] + _ratio_table(report, False)
    if report["physics"]:
        lines += ["", "physics (out of distribution)"] + _physics_table(report, False)
    if report["openfwi"]:
        lines += ["", "beside OpenFWI's InversionNet"] + _openfwi_table(report, False)
    lines += [""] + report["findings"]["summary"] + _physics_findings(report)
    return "\n".join(lines)


def _readme_block(report: Mapping[str, Any]) -> str:
    c, s = report["context"], report["context"]["settings"]
    fractions = report["fractions"]
    header = ["method", "trainable"] + [report["labels"][t] for t in report["targets"]]
    rows = []
    r: Results = report["results"]
    zs_cells = []
    for t in report["targets"]:
        zs = r.zero_shot(t)
        zs_cells.append(_f(zs["metrics"]["ssim"], 3) if zs else "–")
    rows.append([_label("foundation"), "0"] + zs_cells)
    for method in report["methods"]:
        cells, trainable = [], None
        for t in report["targets"]:
            values = []
            for fr in fractions:
                run = r.grid(t, method, fr)
                values.append(_f(run["metrics"]["ssim"], 3) if run else "–")
                if run is not None:
                    trainable = run["trainable"] / run["total"]
            cells.append(" / ".join(values))
        rows.append([_label(method), f"{100 * trainable:.1f} %" if trainable is not None else "–"] + cells)
    frac_text = " / ".join(f"{_pct(x)}" for x in fractions)
    lines = [README_START,
             f"`benchmarks/study.py` adapts the foundation model (`{c['foundation']['path']}`, `vit` "
             f"{c['foundation']['backbone_options'].get('size', '')}) to real OpenFWI families (in distribution) "
             f"and generated families held out of pretraining (out of distribution), with {frac_text} of {s['n_train']} training maps and {s['steps']} steps per run "
             f"(loss: L1{_ssim_term(s)}), "
             f"on {c['hardware']['cpu_count']} CPU cores in {c['wall_time'] / 60:.0f} min. Test SSIM "
             f"(OpenFWI definition) at {frac_text} of the training maps:", ""]
    lines += _table(header, rows, "lr" + "r" * len(report["targets"]))
    lines += [""] + [f"* {_cap(x)}." for x in report["findings"]["summary"]]
    lines += [f"* {x}." for x in _physics_compact(report)]
    lines += ["", "![SSIM against training data](benchmarks/results/study_ssim.png)", "",
              "MAE, RMSE, memory, time, the physics comparison (physics-consistent fine-tuning, label-free "
              "adaptation, refinement) and OpenFWI's published InversionNet figures beside ours, with how the "
              "scales differ: [benchmarks/results/study.md](benchmarks/results/study.md). Reproduce:", "",
              "```bash", c["command"], "```", README_END]
    return "\n".join(lines)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _example_fraction(report: Mapping[str, Any]) -> float:
    fractions = report["fractions"]
    return 0.1 if any(math.isclose(f, 0.1) for f in fractions) else fractions[0]


# -- figures -----------------------------------------------------------------------------------------
def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def figure_ssim(report: Mapping[str, Any], path: Path) -> Path:
    r: Results = report["results"]
    targets = report["targets"]
    fig = _figure(3.4 * len(targets), 3.4)
    axes = fig.subplots(1, len(targets), squeeze=False)[0]
    for ax, target in zip(axes, targets, strict=True):
        for method in report["methods"]:
            points = [(fr, r.grid(target, method, fr)) for fr in report["fractions"]]
            points = [(100 * fr, run["metrics"]["ssim"]) for fr, run in points if run is not None]
            if points:
                x, y = zip(*sorted(points), strict=True)
                style = "--o" if method == "scratch" else "-o"
                ax.plot(x, y, style, label=_label(method), markersize=4)
        zs = r.zero_shot(target)
        if zs is not None:
            ax.axhline(zs["metrics"]["ssim"], color="grey", linestyle=":", label="zero-shot")
        ax.set_xscale("log")
        ax.set_xlabel("training maps used (%)")
        ax.set_title(report["labels"][target], fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test SSIM")
    axes[-1].legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def figure_examples(report: Mapping[str, Any], path: Path) -> Path | None:
    r: Results = report["results"]
    fraction = _example_fraction(report)
    targets = report["targets"]
    columns = ["truth", "foundation", *report["methods"]]
    fig = _figure(1.55 * len(columns) + 0.6, 1.6 * len(targets) + 0.4)
    axes = fig.subplots(len(targets), len(columns), squeeze=False)
    image = None
    for i, target in enumerate(targets):
        for j, col in enumerate(columns):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if col == "truth":
                data = report["context"]["targets"][target]["truth_example"]
            elif col == "foundation":
                run = r.zero_shot(target)
                data = run["example"] if run else None
            else:
                run = r.grid(target, col, fraction)
                data = run["example"] if run else None
            if data is not None:
                image = ax.imshow(np.asarray(data, np.float32), vmin=1500, vmax=4500, cmap="viridis")
            if i == 0:
                ax.set_title(_label(col) if col != "foundation" else "zero-shot", fontsize=8)
            if j == 0:
                ax.set_ylabel(report["labels"][target], fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="m/s")
    fig.suptitle(f"first test map; fine-tuned on {_pct(fraction)} of the training maps", fontsize=9)
    return _save(fig, path)


def figure_physics(report: Mapping[str, Any], path: Path) -> Path | None:
    rows = report["physics"]
    if not rows:
        return None
    targets = list(dict.fromkeys(p["target"] for p in rows))
    fig = _figure(4.2 * len(targets), 5.0)
    axes = fig.subplots(2, len(targets), squeeze=False)
    for j, target in enumerate(targets):
        mine = [p for p in rows if p["target"] == target and p["data_misfit"] is not None]
        names = [p["variant"] for p in mine]
        x = np.arange(len(mine))
        axes[0, j].bar(x, [p["data_misfit"] for p in mine], color="tab:blue")
        axes[1, j].bar(x, [p["ssim_k"] for p in mine], color="tab:green")
        for ax in axes[:, j]:
            ax.set_xticks(x, names)
            ax.grid(axis="y", alpha=0.3)
        for xi, p in zip(x, mine, strict=True):
            axes[0, j].annotate(f"{p['time']:.0f} s", (xi, p["data_misfit"]), ha="center", va="bottom", fontsize=7)
        axes[0, j].set_title(report["labels"][target], fontsize=10)
        lo = min(p["ssim_k"] for p in mine)
        axes[1, j].set_ylim(max(0.0, lo - 0.1), 1.0)
    axes[0, 0].set_ylabel("data misfit (relative L2)")
    axes[1, 0].set_ylabel(f"SSIM (first {rows[0]['k']} test maps)")
    fig.suptitle("zero-shot; (a) label-only; (b) + physics; (c) label-free; (d) (a) refined. Labels: time.",
                 fontsize=8)
    return _save(fig, path)


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

"""The study report as text: the Markdown report, the terminal summary and the README's results block."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from study_format import (OPENFWI_TEST_MAPS, OPENFWI_TRAIN_MAPS, README_END, README_START, Results, capitalised,
                          example_fraction, fmt, foundation_json, maps_text, markdown_table, method_label,
                          params_text, pct, plain_table, plural, ssim_term)


def _grid_table(report: Mapping[str, Any], target: str, markdown: bool) -> list[str]:
    header = ["fraction (maps)", "method", "MAE", "RMSE", "MAE m/s", "RMSE m/s", "SSIM", "trainable",
              "peak MiB", "train s"]
    rows = []
    for row in report["rows"]:
        if row["target"] != target:
            continue
        share = row["trainable"] / row["total"] if row["total"] else 0.0
        frac = "–" if row["method"] == "foundation" else f"{pct(row['fraction'])} ({row['n_train']})"
        rows.append([frac, method_label(row["method"]), fmt(row.get("mae")), fmt(row.get("rmse")),
                     fmt(row.get("mae_ms"), 1), fmt(row.get("rmse_ms"), 1), fmt(row.get("ssim")),
                     f"{params_text(row['trainable'])} ({100 * share:.2f} %)" if row["trainable"] else "0",
                     f"{row['peak_mib']:.0f}", f"{row['train_time']:.0f}"])
    return markdown_table(header, rows, "llrrrrrrrr") if markdown else plain_table(header, rows)


def _ratio_table(report: Mapping[str, Any], markdown: bool) -> list[str]:
    header = ["target", "fraction", "method", "SSIM - full", "MAE / full", "trainable / full", "peak mem / full",
              "train time / full"]
    rows = [[report["labels"][q["target"]], pct(q["fraction"]), method_label(q["method"]),
             f"{q['ssim_minus_full']:+.4f}", f"{q['mae_over_full']:.2f}", f"{q['trainable_over_full']:.4f}", f"{q['peak_over_full']:.2f}",
             f"{q['time_over_full']:.2f}"] for q in report["ratios"]]
    return markdown_table(header, rows, "lllrrrrr") if markdown else plain_table(header, rows)


def _physics_table(report: Mapping[str, Any], markdown: bool) -> list[str]:
    header = ["target", "variant", "labelled maps", "data misfit", "SSIM (k maps)", "MAE (k maps)",
              "SSIM (all test)", "time s"]
    rows = []
    for p in report["physics"]:
        rows.append([report["labels"][p["target"]], p["name"], p["labels_used"], fmt(p["data_misfit"]),
                     fmt(p["ssim_k"]), fmt(p["mae_k"]), fmt(p["ssim_all"]), f"{p['time']:.0f}"])
    return markdown_table(header, rows, "llrrrrrr") if markdown else plain_table(header, rows)


def _openfwi_table(report: Mapping[str, Any], markdown: bool) -> list[str]:
    header = ["target", "model", "MAE", "RMSE", "SSIM"]
    rows = [[report["labels"][o["target"]], o["who"], fmt(o.get("mae")), fmt(o.get("rmse")), fmt(o.get("ssim"))]
            for o in report["openfwi"]]
    return markdown_table(header, rows, "llrrr") if markdown else plain_table(header, rows)


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


def markdown_report(report: Mapping[str, Any]) -> str:
    c, s = report["context"], report["context"]["settings"]
    lines = _md_header(c, s) + _md_setup(c, s) + _md_results(report)
    if report["physics"]:
        lines += _md_physics(report, s)
    if report["openfwi"]:
        lines += _md_openfwi(report, s)
    if c["failed"]:
        lines += ["## Runs without a result (failed, or not run)", ""] + [f"* `{k}`" for k in c["failed"]] + [""]
    lines += ["All figures are in `study.json` beside this file."]
    return "\n".join(lines) + "\n"


def _md_header(c: Mapping[str, Any], s: Mapping[str, Any]) -> list[str]:
    """Title, when and where the study ran, and the command that reproduces it."""
    lines = ["# The study: training from scratch, full fine-tuning and PEFT of the foundation model", "",
             f"Generated by `benchmarks/study.py` on {c['started']}; {c['wall_time'] / 60:.1f} min of wall time "
             f"on {c['hardware']['cpu_count']} CPU cores ({c['workers']} runs side by side, "
             f"{c['threads_per_run']} thread each; {c['hardware']['platform']}, torch {c['hardware']['torch']})"
             + (f", in {c['sessions']} sessions (interrupted and resumed)" if c.get("sessions", 1) > 1 else "") + ".",
             "", "Reproduce:", "", "```", c["command"], "```", ""]
    if s["smoke"]:
        lines += ["**Smoke run**: random weights, a few maps and steps; these numbers mean nothing.", ""]
    return lines


def _md_setup(c: Mapping[str, Any], s: Mapping[str, Any]) -> list[str]:
    """The setup: foundation model, targets, fractions, training, methods, metrics, memory and time."""
    f = foundation_json(c["foundation"])
    card = f["card"]
    lines = ["## Setup", ""]
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
    fr = ", ".join(f"{pct(x)} = {maps_text(max(1, round(x * s['n_train'])))}"
                   for x in sorted(s["fractions"], reverse=True) if x < 1)
    lines += [
        f"* **Fractions**: 100 % = the first {s['n_train']} training maps of the target; {fr}.",
        f"* **Training**: every run takes the same {s['steps']} AdamW optimisation steps (batch {s['batch_size']}, or "
        f"every map when a fraction has fewer; {plural(s['warmup_steps'], 'warm-up step')} then cosine decay; learning rate "
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
    return lines


def _md_results(report: Mapping[str, Any]) -> list[str]:
    """The main grid per target, the findings, the ratios to full fine-tuning and the example maps."""
    lines = ["## Results", "",
             "SSIM against the share of training data (the dashed line is the foundation model zero-shot):", "",
             "![SSIM against training data](study_ssim.png)", ""]
    for target in report["targets"]:
        lines += [f"### {report['labels'][target]}", ""] + _grid_table(report, target, True) + [""]
    lines += ["### Findings", ""] + [f"* {capitalised(x)}." for x in report["findings"]["summary"]] + [""]
    lines += ["One seed, one learning rate for every method and 100 test maps per target: differences of a "
              "hundredth in SSIM were not tested against another seed. At this budget the foundation model "
              "zero-shot is a strong baseline; compare every row with it.", ""]
    lines += [f"* {x}." for x in report["findings"]["cells"]] + [""]
    lines += ["### Ratios to full fine-tuning (same target and fraction)", ""] + _ratio_table(report, True) + [""]
    lines += ["Test maps of each target (first test map; methods at "
              f"{pct(example_fraction(report))} of the training data):", "",
              "![example predictions](study_examples.png)", ""]
    return lines


def _md_physics(report: Mapping[str, Any], s: Mapping[str, Any]) -> list[str]:
    """The physics comparison (a)-(d) on the out-of-distribution targets."""
    lines = ["## Physics (out of distribution)", "",
             f"At {pct(s['physics_fraction'])} of the labels with `{s['physics_method']}`: (a) label-only "
             f"fine-tuning (the run above), (b) the same plus lambda x the physics misfit "
             f"(lambda {'set so that both terms are equal when adaptation starts' if s['lambda_physics'] == 'auto' else s['lambda_physics']}"
             f"; {maps_text(s['physics_samples'])} of each step simulated), (c) label-free adaptation from the "
             f"foundation model with the physics misfit alone on unlabelled training gathers "
             f"({s['steps']} steps of {maps_text(s['labelfree_batch'])}, each gather seen once), and (d) physics-based FWI "
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
    return lines


def _md_openfwi(report: Mapping[str, Any], s: Mapping[str, Any]) -> list[str]:
    """The study's OpenFWI rows beside the published InversionNet, with how far apart the scales are."""
    lines = ["## Beside OpenFWI's published InversionNet", ""] + _openfwi_table(report, True) + [""]
    full_rows = [row for row in report["rows"] if row["method"] != "foundation" and row["fraction"] == 1.0]
    best_time = max((row["train_time"] for row in full_rows), default=0.0)
    epochs = max((row["epochs"] for row in full_rows), default=0)
    lines += [
        f"The scales differ by orders of magnitude, so this is orientation, not a contest. InversionNet was "
        f"trained on {OPENFWI_TRAIN_MAPS:,} maps per family for many epochs on GPUs and scored on "
        f"{OPENFWI_TEST_MAPS:,} test maps. Here each target has {s['n_train']} training maps "
        f"({100 * s['n_train'] / OPENFWI_TRAIN_MAPS:.1f} % of that), {s['steps']} steps of at most "
        f"{s['batch_size']} maps (each map seen {epochs} times at 100 %), at most {best_time / 60:.1f} min of training on one CPU core, a "
        f"{params_text(report['rows'][0]['total']) if report['rows'] else '?'}-parameter `vit` tiny, and "
        f"{s['n_test']} test maps from OpenFWI's test file. The foundation model was pretrained on generated "
        f"families (its own flatvel/curvevel generators, calibrated against OpenFWI maps), never on OpenFWI "
        f"maps.", ""]
    return lines


def terminal_report(report: Mapping[str, Any]) -> str:
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


def readme_block(report: Mapping[str, Any]) -> str:
    c, s = report["context"], report["context"]["settings"]
    fractions = report["fractions"]
    header = ["method", "trainable"] + [report["labels"][t] for t in report["targets"]]
    rows = []
    r: Results = report["results"]
    zs_cells = []
    for t in report["targets"]:
        zs = r.zero_shot(t)
        zs_cells.append(fmt(zs["metrics"]["ssim"], 3) if zs else "–")
    rows.append([method_label("foundation"), "0"] + zs_cells)
    for method in report["methods"]:
        cells, trainable = [], None
        for t in report["targets"]:
            values = []
            for fr in fractions:
                run = r.grid(t, method, fr)
                values.append(fmt(run["metrics"]["ssim"], 3) if run else "–")
                if run is not None:
                    trainable = run["trainable"] / run["total"]
            cells.append(" / ".join(values))
        rows.append([method_label(method), f"{100 * trainable:.1f} %" if trainable is not None else "–"] + cells)
    frac_text = " / ".join(f"{pct(x)}" for x in fractions)
    lines = [README_START,
             f"`benchmarks/study.py` adapts the foundation model (`{c['foundation']['path']}`, `vit` "
             f"{c['foundation']['backbone_options'].get('size', '')}) to real OpenFWI families (in distribution) "
             f"and generated families held out of pretraining (out of distribution), with {frac_text} of {s['n_train']} training maps and {s['steps']} steps per run "
             f"(loss: L1{ssim_term(s)}), "
             f"on {c['hardware']['cpu_count']} CPU cores in {c['wall_time'] / 60:.0f} min. Test SSIM "
             f"(OpenFWI definition) at {frac_text} of the training maps:", ""]
    lines += markdown_table(header, rows, "lr" + "r" * len(report["targets"]))
    lines += [""] + [f"* {capitalised(x)}." for x in report["findings"]["summary"]]
    lines += [f"* {x}." for x in _physics_compact(report)]
    lines += ["", "![SSIM against training data](benchmarks/results/study_ssim.png)", "",
              "MAE, RMSE, memory, time, the physics comparison (physics-consistent fine-tuning, label-free "
              "adaptation, refinement) and OpenFWI's published InversionNet figures beside ours, with how the "
              "scales differ: [benchmarks/results/study.md](benchmarks/results/study.md). Reproduce:", "",
              "```bash", c["command"], "```", README_END]
    return "\n".join(lines)


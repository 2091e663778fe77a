"""The study's numbers, computed from the finished tasks: chosen learning rates, mean ± sd over seeds,
trainable share, the share of the zero-shot -> specialist gap each method closes, and the data curve."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from .options import StudyOptions
from .plan import Results, Task, choices, grid_scores, specialist_lr


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (``None`` for one value), count and the values."""
    vals = [float(v) for v in values]
    return {"mean": statistics.fmean(vals) if vals else None, "sd": statistics.stdev(vals) if len(vals) > 1 else None,
            "n": len(vals), "values": vals}


def gap_closed(ssim: float | None, zero_shot: float | None, specialist: float | None) -> float | None:
    """The share of the gap from zero-shot to the specialist that ``ssim`` closes: 0 at zero-shot, 1 at the
    specialist, negative below zero-shot. ``None`` when a number is missing or the specialist does not beat
    zero-shot (there is no gap to close)."""
    if ssim is None or zero_shot is None or specialist is None or specialist <= zero_shot:
        return None
    return (ssim - zero_shot) / (specialist - zero_shot)


def tuning(o: StudyOptions, results: Results) -> dict[str, Any]:
    """Per target and method: every grid point's validation scores and the learning rate chosen."""
    chosen = choices(o, results)
    out: dict[str, Any] = {}
    for t in o.targets:
        out[t.key] = {}
        for method in o.methods:
            lr = chosen.get((t.key, method))
            grid = o.grid(method)
            edge = lr is not None and len(grid) > 1 and lr in (min(grid), max(grid))
            out[t.key][method] = {"chosen": lr, "grid": grid_scores(o, results, t.key, method), "at_grid_edge": edge}
    return out


def _test_metrics(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {k: spread([r["test"][k] for r in runs]) for k in ("ssim", "mae_ms")}


def _bounds(o: StudyOptions, results: Results, target: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The zero-shot and specialist rows of ``target`` (``None`` where not finished)."""
    zero = results.get(Task("zero-shot", target).id)
    zero_row = None if zero is None else {"maps": 0, "trainable": 0, "total": zero["total"], "trainable_share": 0.0,
                                          **_test_metrics([zero])}
    lr = specialist_lr(o, choices(o, results), target) if o.specialist_maps else None
    spec = None if lr is None else results.get(Task("specialist", target, "scratch", 1.0, lr, o.tune_seed).id)
    spec_row = None if spec is None else {
        "maps": spec["maps"], "lr": lr, "trainable": spec["trainable"], "total": spec["total"],
        "trainable_share": spec["trainable"] / spec["total"], "steps": spec["steps"], "best_step": spec["best_step"],
        "stopped_early": spec["stopped_early"], "train_time": spec["train_time"], **_test_metrics([spec])}
    return zero_row, spec_row


def _method_rows(o: StudyOptions, results: Results, target: str, zero: float | None,
                 best: float | None) -> dict[str, Any]:
    """Per method and fraction: mean ± sd over seeds, trainable share, chosen rate and gap closed."""
    chosen = choices(o, results)
    out: dict[str, Any] = {}
    for method in o.methods:
        if (target, method) not in chosen:
            continue
        lr, rows = chosen[target, method], {}
        for f in sorted(o.fractions, reverse=True):
            runs = [r for seed in o.seeds if (r := results.get(Task("test", target, method, f, lr, seed).id))]
            if not runs:
                continue
            metrics = _test_metrics(runs)
            rows[f"{f:g}"] = {"maps": o.maps(f), "lr": lr, "seeds": [r["seed"] for r in runs],
                              "trainable": runs[0]["trainable"], "total": runs[0]["total"],
                              "trainable_share": runs[0]["trainable"] / runs[0]["total"], **metrics,
                              "gap_closed": gap_closed(metrics["ssim"]["mean"], zero, best),
                              "steps": spread([r["steps"] for r in runs]),
                              "train_time": spread([r["train_time"] for r in runs])}
        out[method] = rows
    return out


def data_curve(rows: Mapping[str, Mapping[str, Any]], min_gain: float) -> dict[str, Any]:
    """SSIM against training maps for one method, and where adapting stops paying off: the fewest maps
    beyond which no larger number of maps raises mean SSIM by ``min_gain`` or more."""
    points = sorted(({"maps": r["maps"], "ssim": r["ssim"]["mean"], "sd": r["ssim"]["sd"]} for r in rows.values()),
                    key=lambda p: p["maps"])
    stops = None
    for i, p in enumerate(points):
        if all(q["ssim"] - p["ssim"] < min_gain for q in points[i + 1:]):
            stops = p["maps"]
            break
    still = bool(points) and len(points) > 1 and stops == points[-1]["maps"]
    return {"points": points, "stops_paying_off_at": stops, "still_paying_off_at_most_maps": still}


def results_by_target(o: StudyOptions, results: Results) -> dict[str, Any]:
    """Everything the report tables show, per target."""
    out: dict[str, Any] = {}
    for t in o.targets:
        zero, spec = _bounds(o, results, t.key)
        z = zero["ssim"]["mean"] if zero else None
        s = spec["ssim"]["mean"] if spec else None
        methods = _method_rows(o, results, t.key, z, s)
        out[t.key] = {"zero_shot": zero, "specialist": spec, "methods": methods,
                      "gap": None if z is None or s is None else s - z,
                      "data_curve": {m: data_curve(rows, o.min_gain) for m, rows in methods.items() if rows}}
    return out


def findings(o: StudyOptions, by_target: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    """What the numbers say, in sentences computed from them."""
    lines: list[str] = []
    for key, r in by_target.items():
        label = labels.get(key, key)
        top = f"{max(o.fractions):g}"
        trained = {m: rows[top] for m, rows in r["methods"].items() if top in rows}
        if trained:
            best = max(trained, key=lambda m: trained[m]["ssim"]["mean"])
            lines.append(f"{label}: best mean test SSIM at {trained[best]['maps']} maps is "
                         f"{trained[best]['ssim']['mean']:.4f}, with {best}")
        if r["specialist"] is not None and r["zero_shot"] is not None:
            lines.append(_gap_line(label, r, trained))
        for method, curve in r["data_curve"].items():
            if len(curve["points"]) > 1:
                where = ("still pays off at the most maps tried" if curve["still_paying_off_at_most_maps"]
                         else f"stops paying off at {curve['stops_paying_off_at']} maps")
                lines.append(f"{label}: {method} {where} (gain under {o.min_gain:g} SSIM beyond it)")
    return lines


def _gap_line(label: str, r: Mapping[str, Any], trained: Mapping[str, Any]) -> str:
    spec, zero = r["specialist"], r["zero_shot"]
    head = (f"{label}: zero-shot {zero['ssim']['mean']:.4f}, specialist ({spec['maps']} maps from scratch) "
            f"{spec['ssim']['mean']:.4f}")
    if r["gap"] is None or r["gap"] <= 0:
        return head + "; the specialist does not beat zero-shot, so no gap is measured"
    closed = {m: row["gap_closed"] for m, row in trained.items() if row["gap_closed"] is not None}
    if not closed:
        return head
    best = max(closed, key=lambda m: closed[m])
    return head + f"; {best} closes {100 * closed[best]:.0f} % of the gap"

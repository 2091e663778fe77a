"""The study report's figures: SSIM against training data, example predictions and the physics comparison."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fwi_plugins.atomic import atomic_path
from study_format import Results, example_fraction, method_label, pct


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
                ax.plot(x, y, style, label=method_label(method), markersize=4)
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
    fraction = example_fraction(report)
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
                ax.set_title(method_label(col) if col != "foundation" else "zero-shot", fontsize=8)
            if j == 0:
                ax.set_ylabel(report["labels"][target], fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="m/s")
    fig.suptitle(f"first test map; fine-tuned on {pct(fraction)} of the training maps", fontsize=9)
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


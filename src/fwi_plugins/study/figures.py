"""The study's two figures: test SSIM against trainable share, and against the number of training maps."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _axes(n: int) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.6), squeeze=False)
    return fig, axes[0]


def _bounds(ax: Any, r: Mapping[str, Any]) -> None:
    if r["zero_shot"]:
        ax.axhline(r["zero_shot"]["ssim"]["mean"], color="grey", ls="--", lw=1, label="zero-shot")
    if r["specialist"]:
        ax.axhline(r["specialist"]["ssim"]["mean"], color="black", ls=":", lw=1,
                   label=f"specialist ({r['specialist']['maps']} maps)")


def ssim_against_share(j: Mapping[str, Any], path: Path) -> Path:
    """Per target, each method at the most maps: test SSIM (± sd) against its trainable share."""
    fig, axes = _axes(len(j["results"]))
    for ax, (key, r) in zip(axes, j["results"].items(), strict=True):
        for method, rows in r["methods"].items():
            row = max(rows.values(), key=lambda x: x["maps"], default=None)
            if row is None:
                continue
            ax.errorbar(100 * row["trainable_share"], row["ssim"]["mean"], yerr=row["ssim"]["sd"] or 0, fmt="o",
                        capsize=3, label=method)
        _bounds(ax, r)
        ax.set(xscale="log", xlabel="trainable share (%)", ylabel="test SSIM", title=j["targets"][key]["label"])
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def ssim_against_maps(j: Mapping[str, Any], path: Path) -> Path:
    """Per target, each method's data curve: test SSIM (± sd) against the number of training maps."""
    fig, axes = _axes(len(j["results"]))
    for ax, (key, r) in zip(axes, j["results"].items(), strict=True):
        for method, curve in r["data_curve"].items():
            pts = curve["points"]
            ax.errorbar([p["maps"] for p in pts], [p["ssim"] for p in pts], yerr=[p["sd"] or 0 for p in pts],
                        marker="o", capsize=3, label=method)
        _bounds(ax, r)
        if r["specialist"]:
            ax.plot([r["specialist"]["maps"]], [r["specialist"]["ssim"]["mean"]], "k*", ms=10)
        ax.set(xscale="log", xlabel="training maps of the target", ylabel="test SSIM",
               title=j["targets"][key]["label"])
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path

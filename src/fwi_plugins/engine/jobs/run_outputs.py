"""What ``fwi run`` leaves in its run directory besides the configuration and metrics.

::

    adapter/           the adapter in peft's layout (+ normalization.json)
    predictions/*.nc   truth, zero-shot, adapted and refined velocity (netCDF)
    figures/*.png      velocity side by side, gathers, loss and misfit curves

and the summary table it prints at the end.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...atomic import atomic_dir
from ..notify import Notify

if TYPE_CHECKING:
    from torch import nn

    from ...data import Normalization, SeismicDataset
    from ...physics import Physics

__all__ = ["SHOWN", "print_summary", "write_figures", "write_outputs"]

# The metrics of the summary table (metrics.json holds them all).
SHOWN = ("mae", "rmse", "ssim", "mae_ms", "data_misfit")


def write_outputs(out: Path, *, adapted: nn.Module, ds: SeismicDataset, physics: Physics,
                  normalization: Normalization, predictions: Mapping[str, np.ndarray | None],
                  history: list[dict[str, Any]], refine_history: Any, test_x: np.ndarray, figures: bool,
                  notify: Notify, device: str, about: Mapping[str, Any] | None = None) -> None:
    """Write the adapter, the test predictions (calling ``fwi_predictions_ready`` for each) and the figures.

    Args:
        out: the run directory.
        adapted: the adapted network.
        ds: the dataset (name, survey).
        physics: simulates the gathers of the final prediction for the gathers figure.
        normalization: the input scale, saved with the adapter.
        predictions: ``{"truth"|"zero-shot"|"adapted"|"refined": velocity or None}``.
        history: the training history, for the loss figure.
        refine_history: the refinement's misfit per iteration, or ``None``.
        test_x: the test gathers the predictions were made from.
        figures: draw the figures.
        notify: the lifecycle notifier.
        device: where to simulate.
        about: the run's metrics (``metrics.json``), described in the adapter's README.
    """
    from ...adapted import save_adapted
    from ...data.io import write_velocity

    with atomic_dir(out / "adapter") as tmp:
        save_adapted(adapted, tmp)
        # The input scale travels with the adapter: predicting with it needs the same scaling.
        (tmp / "normalization.json").write_text(json.dumps(normalization.to_dict(), indent=2) + "\n")
        # The run's own description, in place of the empty model-card template peft writes.
        (tmp / "README.md").write_text(adapter_readme(adapted, ds.name, about or {}))
    attrs = {"dataset": ds.name, "split": "test", "generator": "fwi run"}
    for stage, velocity in predictions.items():
        if velocity is None:
            continue
        path = write_velocity(out / "predictions" / f"{stage}.nc", velocity, dx=ds.survey.dx,
                              attrs={**attrs, "stage": stage})
        if stage != "truth":
            notify("fwi_predictions_ready", run_dir=out, stage=stage, path=path, predictions=velocity)
    if figures:
        write_figures(out / "figures", ds=ds, physics=physics, predictions=predictions, history=history,
                      refine_history=refine_history, test_x=test_x, device=device)


def adapter_readme(adapted: nn.Module, dataset: str, about: Mapping[str, Any]) -> str:
    """A README for the adapter folder: what was adapted, on what, how well, and how to use it."""
    from ...specs import METHOD_ATTRIBUTE

    method = getattr(adapted, METHOD_ATTRIBUTE, None) or "the PEFT method in adapter_config.json"
    params = about.get("parameters", {})
    lines = [f"# Adapter: {method} on `{dataset}`", "",
             f"Written by `fwi run`: the foundation `{about.get('pretrained', '?')}` (state digest "
             f"`{str(about.get('pretrained_digest') or 'none')[:12]}`) adapted with `{method}` on the `{dataset}` "
             f"dataset."]
    if params:
        lines.append(f"Trainable parameters: {params.get('trainable', 0):,} of {params.get('total', 0):,} "
                     f"({100 * params.get('fraction', 0.0):.2f} %).")
    for stage in ("zero_shot", "adapted"):
        scores = about.get(stage)
        if scores:
            lines.append(f"Test {stage.replace('_', '-')}: SSIM {scores['ssim']:.4f}, MAE {scores['mae_ms']:.0f} m/s.")
    lines += ["", "Use it:", "", "```bash",
              "fwi predict --backbone BACKBONE --adapter THIS_FOLDER --input gathers.sgy --out predictions/",
              "```", "", "`normalization.json` is the input scale the adapter was trained with; the run's "
              "`config.toml` (the folder above) says everything else.", ""]
    return "\n".join(lines)


def write_figures(fig_dir: Path, *, ds: SeismicDataset, physics: Physics,
                  predictions: Mapping[str, np.ndarray | None], history: list[dict[str, Any]],
                  refine_history: Any, test_x: np.ndarray, device: str) -> None:
    """Velocity side by side, loss curves, the refinement's misfit and observed against simulated gathers.

    A figure that fails is a warning: it must never cost the finished run its results.
    """
    from .. import figures as fig

    try:
        fig.velocity_comparison(fig_dir / "velocity.png", dict(predictions), dx=ds.survey.dx,
                                vmin=ds.survey.vmin, vmax=ds.survey.vmax, title=f"{ds.name}: test samples")
        if history:
            keys = ("train_loss", "train_label_loss", "train_physics_loss", "val_mae", "val_misfit")
            fig.loss_curves(fig_dir / "loss.png", [{k: h[k] for k in ("epoch", *keys) if k in h} for h in history],
                            title="adaptation")
        if refine_history:
            fig.misfit_history(fig_dir / "refine_misfit.png", refine_history)
        best = predictions.get("refined")
        if best is None:
            best = predictions.get("adapted")
        if best is not None and len(best):
            import torch

            with torch.no_grad():
                v = torch.from_numpy(np.ascontiguousarray(best[:1])).to(device)
                simulated = physics.simulate(v).detach().cpu().numpy()
            fig.gather_comparison(fig_dir / "gathers.png", test_x[:1], simulated, survey=ds.survey,
                                  title="observed vs simulated from the final prediction (sample 0, shot 0)")
    except Exception as exc:  # a figure must never cost the finished run its results
        # stacklevel 4: the warning names run(), which called the writing of its outputs.
        warnings.warn(f"figures were not all written: {exc}", UserWarning, stacklevel=4)


def print_summary(stages: Mapping[str, Mapping[str, Any]], out: Path, extra: str = "") -> None:
    """Print the :data:`SHOWN` metrics of each stage as a table, ``extra``, and the run directory."""
    from .rundir import summary_table

    shown = {name: {key: v for key, v in m.items() if key in SHOWN} for name, m in stages.items()}
    print(summary_table(shown))
    if extra:
        print(extra)
    print(f"run directory: {out}")

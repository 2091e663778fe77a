"""One run's TensorBoard log: event files in ``RUN_DIR/tensorboard/``.

Tags, grouped by stage so that TensorBoard shows one section per stage:

* ``{stage}/step/{name}``: ``fwi_train_step`` figures (loss, label_loss, physics_loss, lr,
  samples_per_s) at the optimisation step;
* ``{stage}/epoch/{name}``: ``fwi_epoch_end`` figures (train_loss, val_mae, ...) at the step
  the epoch ended on, so they line up with the step curves;
* ``predictions/{stage}``: the first test predictions as an image, when ``fwi_predictions_ready``
  reports them;
* ``final/{section}/{metric}``: the headline metrics of ``metrics.json`` at the last step,
  also the metrics of the hyper-parameter table;
* ``config`` (text) and the hyper-parameters: the run's resolved configuration.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FOLDER", "RunLog", "flat_config", "final_metrics", "prediction_image"]

FOLDER = "tensorboard"
_COMPONENTS = ("backbone", "peft", "dataset", "physics")
_FINAL_SECTIONS = ("zero_shot", "adapted", "adapted_on_refined", "refined", "validation")
_FINAL_KEYS = ("ssim", "mae", "rmse", "mae_ms", "rmse_ms", "data_misfit", "val_mae", "val_mae_ms", "val_misfit")
_IMAGE_SAMPLES = 4
_IMAGE_SIZE = 128  # small maps are scaled up by a whole factor to about this many pixels


def _scalars(metrics: Mapping[str, Any], skip: tuple[str, ...] = ()) -> Iterator[tuple[str, float]]:
    for key, value in metrics.items():
        if key in skip or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            yield key, float(value)


def _hparam(value: Any) -> bool | int | float | str:
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def flat_config(config: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """The configuration as TensorBoard hyper-parameters: the command, each component's name and
    options (``backbone``, ``backbone.dim``, ...) and the training options."""
    flat: dict[str, bool | int | float | str] = {}
    if "command" in config:
        flat["command"] = _hparam(config["command"])
    for kind in _COMPONENTS:
        entries = config.get(kind)
        entries = [entries] if isinstance(entries, Mapping) else list(entries or [])
        entries = [e for e in entries if isinstance(e, Mapping)]
        if not entries:
            continue
        flat[kind] = ",".join(str(e.get("name", "?")) for e in entries)
        if len(entries) == 1:
            for key, value in (entries[0].get("options") or {}).items():
                flat[f"{kind}.{key}"] = _hparam(value)
    for key, value in (config.get("options") or {}).items():
        flat[key] = _hparam(value)
    return flat


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The headline figures of ``metrics.json`` as ``final/{section}/{metric}`` scalars."""
    final: dict[str, float] = {}
    for section in _FINAL_SECTIONS:
        values = metrics.get(section)
        if isinstance(values, Mapping):
            final.update({f"final/{section}/{k}": v for k, v in _scalars(values) if k in _FINAL_KEYS})
    training = metrics.get("training")
    if isinstance(training, Mapping):
        final.update({f"final/training/{k}": v for k, v in _scalars(training) if k in ("steps", "wall_time")})
    return final


def prediction_image(predictions: Any, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """The first velocity maps of ``predictions`` ``(N, 1, Z, X)`` side by side, coloured, ``(H, W, 3)`` uint8.

    Colours span ``vmin``..``vmax`` m/s (the dataset's range) so stages compare; without them,
    the maps' own range.
    """
    from matplotlib import colormaps

    maps = np.asarray(predictions, dtype=np.float64)
    maps = maps.reshape(-1, *maps.shape[-2:])[:_IMAGE_SAMPLES]
    lo = float(np.nanmin(maps)) if vmin is None else vmin
    hi = float(np.nanmax(maps)) if vmax is None else vmax
    unit = np.clip((maps - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    scale = max(1, _IMAGE_SIZE // max(maps.shape[1:]))
    unit = unit.repeat(scale, axis=1).repeat(scale, axis=2)
    rgb = colormaps["viridis"](np.nan_to_num(unit))[..., :3]
    gap = np.ones((rgb.shape[1], max(2, scale), 3))  # white between maps
    parts = [part for m in rgb for part in (m, gap)][:-1]
    rgb = np.concatenate(parts, axis=1)
    return (rgb * 255).round().astype(np.uint8)


class RunLog:
    """The TensorBoard writer of one run directory.

    Args:
        run_dir: the run directory; events go to ``run_dir/tensorboard``.
        config: the resolved configuration (``None`` when training reports without a run).
    """

    def __init__(self, run_dir: str | Path, config: Mapping[str, Any] | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.path = Path(run_dir) / FOLDER
        self.writer = SummaryWriter(log_dir=str(self.path))
        self.config = dict(config or {})
        self.step = 0
        if self.config:
            text = json.dumps(self.config, indent=2, default=str)
            # Indented by four spaces: TensorBoard renders the text as markdown, this keeps it verbatim.
            self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)

    def train_step(self, stage: str, step: int, metrics: Mapping[str, Any]) -> None:
        for key, value in _scalars(metrics, skip=("epoch",)):
            self.writer.add_scalar(f"{stage}/step/{key}", value, step)
        self.step = max(self.step, int(step))

    def epoch_end(self, stage: str, epoch: int, metrics: Mapping[str, Any]) -> None:
        step = int(metrics.get("step", epoch))
        for key, value in _scalars(metrics, skip=("epoch", "step")):
            self.writer.add_scalar(f"{stage}/epoch/{key}", value, step)
        self.step = max(self.step, step)

    def predictions(self, stage: str, predictions: Any) -> None:
        options = self.config.get("dataset", {})
        options = options.get("options", {}) if isinstance(options, Mapping) else {}
        vmin, vmax = options.get("vmin"), options.get("vmax")
        both = isinstance(vmin, (int, float)) and isinstance(vmax, (int, float))
        image = prediction_image(predictions, vmin if both else None, vmax if both else None)
        self.writer.add_image(f"predictions/{stage}", image, self.step, dataformats="HWC")

    def finish(self, metrics: Mapping[str, Any]) -> None:
        """Write the final metrics and the hyper-parameters, then flush and close the files."""
        try:
            final = final_metrics(metrics)
            for tag, value in final.items():
                self.writer.add_scalar(tag, value, self.step)
            if self.config:
                from torch.utils.tensorboard.summary import hparams

                # SummaryWriter.add_hparams would open a folder of its own inside this one; write the
                # three summaries it writes into this run's file instead, as it does.
                for summary in hparams(flat_config(self.config), final):
                    self.writer._get_file_writer().add_summary(summary, self.step)
        finally:
            self.close()

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()

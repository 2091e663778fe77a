"""A plugin that observes runs through the lifecycle hooks and keeps a CSV log.

Load it for one command with ``--plugin``::

    fwi run --backbone vit --peft lora --physics deepwave --plugin examples/observer_plugin.py

or install it as an entry point in the ``fwi_plugins`` group to observe every run.
The log goes to ``<run_dir>/observer.csv``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from fwi_plugins import hookimpl


def _append(run_dir: Path, row: list[object]) -> None:
    path = Path(run_dir) / "observer.csv"
    with path.open("a", newline="") as handle:
        csv.writer(handle).writerow(row)


@hookimpl
def fwi_run_started(run_dir, config):
    _append(run_dir, ["started", config.get("command", "?")])


@hookimpl
def fwi_epoch_end(run_dir, stage, epoch, metrics):
    _append(run_dir, ["epoch", stage, epoch, *(f"{k}={v:.4g}" for k, v in sorted(metrics.items())
                                                if isinstance(v, (int, float)))])


@hookimpl
def fwi_predictions_ready(run_dir, stage, path, predictions):
    _append(run_dir, ["predictions", stage, path or "", f"{predictions.min():.0f}..{predictions.max():.0f} m/s"])


@hookimpl
def fwi_run_finished(run_dir, metrics):
    _append(run_dir, ["finished"])

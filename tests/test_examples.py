"""The example scripts run, and say what they claim to show."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np

from fwi_plugins.manager import FWIPluginManager

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refine_example_cuts_the_data_misfit():
    summary = load("refine_prediction").main(["--small", "--iterations", "8"])
    assert summary["data_misfit_reduction"] > 0.3
    assert 0 <= summary["ssim_after"] <= 1


def test_lora_adapters_example_round_trips(tmp_path, capsys):
    load("lora_adapters").main(["--out", str(tmp_path / "adapters")])
    out = capsys.readouterr().out
    assert "merged model matches the adapted one: True" in out
    assert (tmp_path / "adapters" / "adapter_config.json").is_file()


def test_observer_plugin_logs_the_lifecycle(tmp_path):
    manager = FWIPluginManager(autoload=False).load_all()
    manager.load_plugin(str(EXAMPLES / "observer_plugin.py"))
    manager.notify("fwi_run_started", run_dir=tmp_path, config={"command": "run"})
    manager.notify("fwi_epoch_end", run_dir=tmp_path, stage="adapt", epoch=1, metrics={"train_loss": 0.25})
    manager.notify("fwi_predictions_ready", run_dir=tmp_path, stage="adapted", path=None,
                   predictions=np.array([1500.0, 4500.0]))
    manager.notify("fwi_run_finished", run_dir=tmp_path, metrics={})
    rows = list(csv.reader((tmp_path / "observer.csv").open()))
    assert [r[0] for r in rows] == ["started", "epoch", "predictions", "finished"]
    assert rows[1] == ["epoch", "adapt", "1", "train_loss=0.25"]
    assert rows[2][-1] == "1500..4500 m/s"

"""The example scripts run, and say what they claim to show."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

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


def test_field_line_example_runs_segy_to_segy_at_small_size(tmp_path):
    from fwi_plugins.data.io import read_gathers, read_velocity

    out = tmp_path / "line"
    summary = load("field_line").main(["--size", "small", "--out", str(out), "--steps", "2", "--iterations", "2"])
    gathers, attrs = read_gathers(out / "line.sgy")
    assert gathers.shape == (1, 6, 300, 80)
    for name in ("zero_shot/velocity.sgy", "adapted.sgy", "refined.sgy"):
        velocity, meta = read_velocity(out / name)
        assert velocity.shape == (1, 1, 30, 80) and meta["dx"] == 10.0, name
        assert np.all((velocity >= 1500) & (velocity <= 4500)), name
    for png in ("velocity.png", "wavelet.png", "zero_shot/velocity.png", "refine/misfit.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    history = json.loads((out / "refine" / "history.json").read_text())
    assert history["settings"]["physics_options"]["wavelet"] == "estimate"
    assert history["final_misfit"] < history["initial_misfit"]
    # The recording's 12 Hz, 40-degree source, 5,000 times the Ricker, is found in shape and scale.
    assert summary["wavelet_correlation"] > 0.9
    assert 0.5 < summary["wavelet_amplitude_ratio"] < 1.5
    assert 0.6 < abs(summary["gain"]) / 5000.0 < 1.6
    assert json.loads((out / "summary.json").read_text()) == pytest.approx(summary, nan_ok=True)

"""fwi-tensorboard through the front door: installed, discovered by ``fwi run``, read back by TensorBoard.

These tests need ``pip install -e plugins/fwi-tensorboard`` (the Makefile does it): the run
loads the plugin from its entry point, as users get it, and TensorBoard's own reader
(``EventAccumulator``) parses what it wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fwi_plugins.cli import main
from fwi_plugins.manager import FWIPluginManager

from fwi_tensorboard import plugin
from fwi_tensorboard.log import FOLDER, flat_config, prediction_image

# A linear stand-in physics: the tiny run needs one, and Deepwave is another plugin's.
STANDIN = textwrap.dedent('''
    from fwi_plugins import PhysicsSpec, hookimpl


    class LinearPhysics:
        def __init__(self, options, *, survey):
            import torch

            self.survey, self.version = survey, "linear-1"
            g = torch.Generator().manual_seed(7)
            self.kernel = torch.randn(survey.n_shots, survey.nt, survey.nz, generator=g) / survey.nz ** 0.5
            self.columns = torch.tensor([int(round(r[1])) for r in survey.receivers])

        def simulate(self, velocity):
            import torch

            v = (velocity[:, 0, :, self.columns] - 3000.0) / 1000.0
            return torch.einsum("stz,bzr->bstr", self.kernel, v)

        def misfit(self, predicted, observed):
            return (predicted - observed).square().mean()


    @hookimpl
    def fwi_physics():
        yield PhysicsSpec(name="linear-test", factory=LinearPhysics, description="linear stand-in physics")
''')

TINY = ["-o", "backbone.size=tiny", "-o", "backbone.dim=16", "-o", "backbone.depth=1", "-o", "backbone.heads=2",
        "-o", "backbone.decoder_dim=8", "-o", "backbone.patch_receiver=4",
        "-o", "dataset.n_train=8", "-o", "dataset.n_val=2", "-o", "dataset.n_test=2", "-o", "dataset.nz=16",
        "-o", "dataset.nx=16", "-o", "dataset.survey=small",
        "-o", "epochs=2", "-o", "batch_size=4", "-o", "progress=false", "-o", "figures=false",
        "-o", "refine_samples=1", "-o", "refine_iterations=1", "-o", "n_misfit=1", "--device", "cpu"]


def writer_threads() -> set:
    """The live background threads of TensorBoard event writers (``close()`` ends its writer's)."""
    return {t for t in threading.enumerate() if type(t).__name__ == "_AsyncWriterThread" and t.is_alive()}


def read_events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def scalars(accumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def test_entry_point_registers_the_observer_hooks():
    manager = FWIPluginManager().load_all()
    info = next(i for i in manager.plugin_infos() if i.name == "tensorboard")
    assert (info.distribution, info.status) == ("fwi-tensorboard", "loaded")
    assert manager.listens("fwi_train_step") and manager.listens("fwi_epoch_end")


def test_registration_imports_neither_torch_nor_tensorboard():
    code = ("import sys, fwi_tensorboard.plugin; "
            "print(sorted(m for m in ('torch', 'tensorboard') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture
def tiny_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = writer_threads()
    (tmp_path / "standins.py").write_text(STANDIN)
    out = tmp_path / "runs" / "tiny"
    result = CliRunner().invoke(main, ["run", "--plugin", "standins.py", "--backbone", "vit", "--peft", "lora",
                                       "--physics", "linear-test", "--pretrained", "none", *TINY,
                                       "-o", "log_every_steps=1", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # The run's end flushed and closed its writer: no writer thread of it is left with events in its queue.
    assert writer_threads() - before == set()
    return out


def test_a_tiny_fwi_run_leaves_events_tensorboard_reads(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    events = read_events(tiny_run / FOLDER)
    tags = events.Tags()
    # Per-step scalars: 8 samples in batches of 4 over 2 epochs, reported at every step.
    losses = scalars(events, "adapt/step/loss")
    assert [step for step, _ in losses] == [1, 2, 3, 4]
    assert all(np.isfinite(v) and v > 0 for _, v in losses)
    assert [s for s, _ in scalars(events, "adapt/step/lr")] == [1, 2, 3, 4]
    assert all(v > 0 for _, v in scalars(events, "adapt/step/samples_per_s"))
    assert "adapt/step/label_loss" in tags["scalars"]
    # Per-epoch metrics, at the step each epoch ended on, equal to metrics.json's history.
    history = [h for h in metrics["training"]["history"] if "train_loss" in h]
    for key in ("train_loss", "val_mae"):
        logged = scalars(events, f"adapt/epoch/{key}")
        assert [s for s, _ in logged] == [h["step"] for h in history]
        assert [v for _, v in logged] == pytest.approx([h[key] for h in history], rel=1e-6)
    # Final metrics and hyper-parameters, written at run end (after the last flush, before closing).
    assert scalars(events, "final/adapted/ssim")[0][1] == pytest.approx(metrics["adapted"]["ssim"], rel=1e-6)
    assert scalars(events, "final/refined/mae")[0][1] == pytest.approx(metrics["refined"]["mae"], rel=1e-6)
    assert set(events.PluginTagToContent("hparams")) >= {"_hparams_/experiment", "_hparams_/session_start_info"}
    # The first predictions of each stage as images, and the configuration as text.
    assert {"predictions/zero-shot", "predictions/adapted", "predictions/refined"} <= set(tags["images"])
    image = events.Images("predictions/adapted")[0]
    assert image.step == 4 and image.height >= 64 and image.width > image.height  # two maps side by side
    config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"name": "lora"' in config and '"epochs": 2' in config


def test_hooks_called_directly_write_what_they_are_given(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = {"command": "pretrain", "options": {"lr": 0.001, "augment": ""},
              "backbone": {"name": "vit", "options": {"dim": 32}}, "dataset": [{"name": "a"}, {"name": "b"}]}
    plugin.fwi_run_started(run_dir=run_dir, config=config)
    for step in (10, 20):
        plugin.fwi_train_step(run_dir=run_dir, stage="pretrain", step=step,
                              metrics={"loss": step / 100, "lr": 1e-3, "samples_per_s": 50.0, "epoch": 1})
    plugin.fwi_epoch_end(run_dir=run_dir, stage="pretrain", epoch=1,
                         metrics={"epoch": 1, "step": 20, "train_loss": 0.15, "val_mae": float("nan")})
    plugin.fwi_predictions_ready(run_dir=tmp_path / "elsewhere", stage="predict", path=None,
                                 predictions=np.zeros((1, 1, 4, 4)))
    plugin.fwi_run_finished(run_dir=run_dir, metrics={"validation": {"val_mae": 0.1},
                                                      "training": {"steps": 20, "wall_time": 3.0}})
    events = read_events(run_dir / FOLDER)
    assert scalars(events, "pretrain/step/loss") == [(10, pytest.approx(0.1)), (20, pytest.approx(0.2))]
    assert "pretrain/step/epoch" not in events.Tags()["scalars"]
    assert scalars(events, "pretrain/epoch/train_loss") == [(20, pytest.approx(0.15))]
    assert "pretrain/epoch/val_mae" not in events.Tags()["scalars"]  # NaN is left out, not drawn
    assert scalars(events, "final/validation/val_mae") == [(20, pytest.approx(0.1))]
    assert not (tmp_path / "elsewhere").exists()  # fwi predict's folder is not a run this plugin logs
    assert flat_config(config) == {"command": "pretrain", "backbone": "vit", "backbone.dim": 32, "dataset": "a,b",
                                   "lr": 0.001, "augment": ""}
    assert plugin._RUNS == {}


def test_prediction_image_spans_the_velocity_range():
    maps = np.stack([np.full((1, 8, 8), 1500.0), np.full((1, 8, 8), 4500.0)])
    image = prediction_image(maps, 1500.0, 4500.0)
    assert image.dtype == np.uint8 and image.shape[0] == 128 and image.shape[2] == 3
    assert not np.array_equal(image[0, 0], image[0, -1])  # the two ends of the colour map

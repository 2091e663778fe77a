"""Prediction in batches from lazily read inputs, and building a model to predict with."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fwi_plugins.data import Normalization
from fwi_plugins.engine.inference import load_model, predict, resolve_device
from fwi_plugins.errors import DataError, OptionError
from fwi_plugins.specs import IOShape

N, S, T, R, Z, X = 7, 2, 12, 10, 6, 5


class CornerNet(nn.Module):
    """Returns the first shot's top-left corner as the 'normalised velocity'."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.shape[0])
        assert not self.training
        return self.scale * x[:, :1, :Z, :X]


class SliceLog:
    """An array that records which samples were read, to prove it is never read whole."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape = array.shape
        self.reads: list[tuple[int, int]] = []

    def __getitem__(self, item: slice) -> np.ndarray:
        assert isinstance(item, slice)
        start, stop, _ = item.indices(self.shape[0])
        self.reads.append((start, stop))
        return self.array[item]


def _gathers(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.9, 0.9, size=(N, S, T, R)).astype(np.float32)


def test_predict_batches_and_scales_to_ms():
    g = _gathers()
    lazy = SliceLog(g)
    model = CornerNet().train()
    norm = Normalization(vmin=1500.0, vmax=4500.0)
    out = predict(model, lazy, velocity_from_unit=norm.velocity_from_unit, batch_size=3, device="cpu",
                  progress=False)
    assert out.shape == (N, 1, Z, X) and out.dtype == np.float32
    np.testing.assert_allclose(out, (g[:, :1, :Z, :X] + 1) * 1500 + 1500, rtol=1e-6)
    assert lazy.reads == [(0, 3), (3, 6), (6, 7)]
    assert model.seen == [3, 3, 1]
    assert model.training, "the model's mode is restored"


def test_predict_applies_the_normalization_to_raw_gathers():
    raw = _gathers() * 50
    norm = Normalization(vmin=1500.0, vmax=4500.0).fit_gathers(raw)
    out = predict(CornerNet(), raw, normalization=norm, batch_size=4, device="cpu", progress=False)
    unit = norm.gathers_to_unit(raw)[:, :1, :Z, :X]
    np.testing.assert_allclose(out, norm.velocity_from_unit(unit), rtol=1e-5)


def test_a_given_normalization_wins_over_the_one_the_weights_carry():
    # A network fine-tuned from shipped weights still carries their normalisation; predicting with
    # the run's own (another velocity range, another gathers range) must use the run's, in and out.
    from pathlib import Path

    from fwi_plugins.pretrained import PretrainedConfig, attach

    raw = _gathers() * 50
    weights = Normalization(vmin=1500.0, vmax=4500.0, data_min=-1.0, data_max=1.0)
    run = Normalization(vmin=1000.0, vmax=5500.0).fit_gathers(raw)
    model = attach(CornerNet(), PretrainedConfig(source="default", path=Path("w.safetensors"), normalization=weights))
    out = predict(model, raw, normalization=run, batch_size=4, device="cpu", progress=False)
    np.testing.assert_allclose(out, run.velocity_from_unit(run.gathers_to_unit(raw)[:, :1, :Z, :X]), rtol=1e-5)


def test_predict_reads_a_memmap_in_batches(tmp_path):
    path = tmp_path / "g.npy"
    np.save(path, _gathers())
    mm = np.load(path, mmap_mode="r", allow_pickle=False)
    out = predict(CornerNet(), mm, velocity_from_unit=lambda u: u * 1000 + 3000, batch_size=2, device="cpu",
                  progress=False)
    np.testing.assert_allclose(out, np.asarray(mm)[:, :1, :Z, :X] * 1000 + 3000, rtol=1e-6)


def test_predict_rejects_bad_input():
    model = CornerNet()
    kw = dict(velocity_from_unit=lambda u: u, device="cpu", progress=False)
    with pytest.raises(DataError, match=r"\(N, shot, time, receiver\)"):
        predict(model, np.zeros((S, T, R), np.float32), **kw)
    bad = _gathers()
    bad[5, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match=r"samples 4\.\.5 hold 1 NaN"):
        predict(model, bad, batch_size=2, **kw)
    with pytest.raises(OptionError, match="batch_size"):
        predict(model, _gathers(), batch_size=0, **kw)
    with pytest.raises(TypeError, match="velocity_from_unit"):
        predict(model, _gathers(), device="cpu", progress=False)


def test_resolve_device():
    assert resolve_device("auto").type in ("cpu", "cuda")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(OptionError, match="expected auto"):
        resolve_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(OptionError, match="not available"):
            resolve_device("cuda")


TINY = IOShape(shots=2, time=64, receivers=16, depth=16, width=16)
TINY_VIT = {"size": "tiny", "dim": 32, "depth": 1, "heads": 2, "decoder_dim": 8, "patch_time": 16,
            "patch_receiver": 4}


def test_load_model_builds_a_registered_backbone_in_eval_mode():
    model = load_model("vit", TINY_VIT, shape=TINY)
    assert not model.training
    out = predict(model, np.zeros((3, 2, 64, 16), np.float32), normalization=Normalization.openfwi().fit_gathers(
        np.array([-1.0, 1.0])), batch_size=2, device="cpu", progress=False)
    assert out.shape == (3, 1, 16, 16) and np.isfinite(out).all()


def test_load_model_names_missing_files(tmp_path):
    with pytest.raises(DataError, match="weights file .*missing.safetensors"):
        load_model("vit", TINY_VIT, tmp_path / "missing.safetensors", shape=TINY)
    with pytest.raises(DataError, match="adapter directory"):
        load_model("vit", TINY_VIT, adapter_dir=tmp_path / "nope", shape=TINY)


def test_load_model_restores_weights_and_adapter(tmp_path):
    from fwi_plugins import api
    from fwi_plugins.adapted import save_adapted
    from fwi_plugins.weights import save_weights

    torch.manual_seed(0)
    base = load_model("vit", TINY_VIT, shape=TINY)
    save_weights(base, tmp_path / "base.safetensors")
    adapted = api.apply_peft(base, "adapter", backbone="vit")
    with torch.no_grad():
        for p in adapted.parameters():
            if p.requires_grad:  # the adapter's own weights start as an identity; move them off it
                p.add_(0.05 * torch.randn_like(p))
    save_adapted(adapted, tmp_path / "adapter")

    restored = load_model("vit", TINY_VIT, tmp_path / "base.safetensors", tmp_path / "adapter", shape=TINY)
    plain = load_model("vit", TINY_VIT, tmp_path / "base.safetensors", shape=TINY)
    x = np.random.default_rng(0).normal(size=(2, 2, 64, 16)).astype(np.float32)
    kw = dict(velocity_from_unit=lambda u: u, device="cpu", progress=False)
    expected = predict(adapted, x, **kw)
    np.testing.assert_allclose(predict(restored, x, **kw), expected, rtol=1e-5, atol=1e-6)
    assert np.abs(predict(plain, x, **kw) - expected).max() > 1e-4

"""The training loss equals its formula, and a resumed run with dropout equals an uninterrupted one.

The label loss of ``fwi run`` is ``L1 + lambda_ssim * (1 - SSIM)`` on the normalised maps,
SSIM taken on the ``[0, 1]`` scale with OpenFWI's window (Gaussian, 11 cells, sigma 1.5,
C1 = 0.01^2, C2 = 0.03^2, zero padding). The reference here is written from that definition
in numpy; the loop's first step reports the loss of the untouched network, which the test
evaluates itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fwi_plugins.engine.training import train as T
from fwi_plugins.engine.training.losses import ssim_torch
from fwi_plugins.engine.training.data import TrainData
from fwi_plugins.engine.options import TrainOptions

torch.set_num_threads(1)

S, NT, R, Z, X = 2, 12, 6, 14, 12


class Scale:
    """velocity 1500..4500 m/s <-> [-1, 1]; gathers halved."""

    vmin, vmax = 1500.0, 4500.0

    def velocity_to_unit(self, v):
        return (v - 3000.0) / 1500.0

    def velocity_from_unit(self, u):
        return u * 1500.0 + 3000.0

    def gathers_to_unit(self, d):
        return d * 0.5


class Net(nn.Module):
    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Linear(S * NT * R, 48)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(48, Z * X)

    def forward(self, x):
        return torch.tanh(self.head(self.drop(torch.relu(self.body(x.flatten(1)))))).view(-1, 1, Z, X)


def build(seed: int = 0, dropout: float = 0.0) -> Net:
    torch.manual_seed(seed)
    return Net(dropout)


def data(n: int, seed: int = 0) -> TrainData:
    rng = np.random.default_rng(seed)
    v = rng.uniform(1500, 4500, size=(n, 1, Z, X)).astype(np.float32)
    d = rng.normal(size=(n, S, NT, R)).astype(np.float32)
    return TrainData(gathers=d, velocity=v)


def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of (N, 1, Z, X) maps in [0, 1], written out cell by cell."""
    x = np.arange(11) - 5.0
    g = np.exp(-x**2 / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()

    def blur(img: np.ndarray) -> np.ndarray:
        padded = np.pad(img, 5)
        out = np.zeros_like(img)
        for i in range(img.shape[0]):
            for j in range(img.shape[1]):
                out[i, j] = (padded[i:i + 11, j:j + 11] * window).sum()
        return out

    c1, c2 = 0.01**2, 0.03**2
    values = []
    for p, t in zip(a[:, 0].astype(np.float64), b[:, 0].astype(np.float64)):
        mp, mt = blur(p), blur(t)
        vp, vt, cov = blur(p * p) - mp**2, blur(t * t) - mt**2, blur(p * t) - mp * mt
        values.append(((2 * mp * mt + c1) * (2 * cov + c2) / ((mp**2 + mt**2 + c1) * (vp + vt + c2))).mean())
    return float(np.mean(values))


@pytest.mark.parametrize("lambda_ssim", [0.0, 0.5, 2.0])
def test_first_step_loss_is_l1_plus_lambda_times_one_minus_ssim(lambda_ssim):
    train = data(6)
    model = build()
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(train.gathers) * 0.5).numpy().astype(np.float64)
    truth = (train.velocity.astype(np.float64) - 3000.0) / 1500.0
    l1 = np.abs(pred - truth).mean()
    ssim = reference_ssim(pred / 2 + 0.5, truth / 2 + 0.5)
    assert 0.0 < ssim < 0.9, "a random network is far from the truth: the test needs 1 - SSIM well above 0"
    expected = l1 + lambda_ssim * (1.0 - ssim)

    options = TrainOptions(epochs=1, batch_size=6, lr=1e-3, warmup_epochs=0, device="cpu", progress=False,
                           lambda_ssim=lambda_ssim)
    result = T.train(model, train, None, options=options, normalization=Scale())
    record = result.history[-1]
    # One step over the whole batch: the reported loss is the starting network's.
    assert record["train_label_loss"] == pytest.approx(expected, rel=1e-5)
    assert record["train_loss"] == pytest.approx(expected, rel=1e-5)


def test_ssim_metric_equals_the_written_out_definition():
    from fwi_plugins.engine.metrics import ssim

    rng = np.random.default_rng(3)
    truth = rng.random((2, 1, 13, 17))
    pred = np.clip(truth + 0.2 * rng.standard_normal(truth.shape), 0, 1)
    assert ssim(pred, truth) == pytest.approx(reference_ssim(pred, truth), rel=1e-6)
    assert float(ssim_torch(torch.from_numpy(pred), torch.from_numpy(truth))) == \
        pytest.approx(reference_ssim(pred, truth), rel=1e-6)


class Stop(Exception):
    pass


def test_resume_with_dropout_matches_the_uninterrupted_run(tmp_path):
    """Dropout draws from the global generator: only per-epoch re-seeding makes a resume exact."""
    train, val = data(12), data(4, 1)
    # No selection of the best epoch: the final weights must be those the last epochs made.
    options = TrainOptions(epochs=4, batch_size=4, lr=3e-3, device="cpu", progress=False, select_best=False)
    whole = build(dropout=0.5)
    T.train(whole, train, val, options=options, normalization=Scale(), checkpoint_dir=tmp_path / "a")

    def stop_after_2(hook, **kw):
        if kw["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        T.train(build(dropout=0.5), train, val, options=options, normalization=Scale(),
                checkpoint_dir=tmp_path / "b", notify=stop_after_2)
    # A new process would start with another generator state: draw some numbers first.
    torch.rand(1000)
    again = build(seed=7, dropout=0.5)
    resumed = T.train(again, train, val, options=options, normalization=Scale(), checkpoint_dir=tmp_path / "b")
    assert resumed.resumed_from == 2
    for (name, a), b in zip(whole.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    # Dropout really acted: without it the same training ends elsewhere.
    plain = build(dropout=0.0)
    T.train(plain, train, val, options=options, normalization=Scale())
    assert not torch.equal(plain.head.weight, whole.head.weight)

"""One training step of a tiny ``vit`` under bfloat16 autocast against the same step in float32.

The shipped weights were trained with ``TrainOptions.amp`` on a GPU, where the engine's
``autocast`` helper runs the network under ``torch.autocast("cuda", bfloat16)``; on any other
device the helper does nothing. So that the bf16 path is tested on CPU, these tests replace the
helper the training loop uses with one that opens ``torch.autocast("cpu", bfloat16)`` when
``amp`` is set, and run the engine's own ``train`` for one step, which takes the forward under
autocast, the ``float()`` of the prediction, the loss, backward, clipping and the AdamW update
exactly as on the GPU. CPU autocast casts the same matrix products and convolutions to bf16 as
CUDA autocast does; kernels and accumulation orders differ, so the numbers are the CPU's.

The planted error the tolerances must see is the loss taken inside autocast: SSIM's variances
(E[p^2] - E[p]^2) then cancel in bf16, and the loss moves by 3e-2 to 2e-1. Two milder slips
stay within them and are not tested: casting the network's output to bf16 changes nothing under
autocast (its last layer already returns bf16), and rounding the labels to bf16 moves the loss
by at most about 5e-3 and the gradient by 3e-2, as much as autocast itself does on some seeds.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest
import torch

from fwi_plugins import api
from fwi_plugins.data import Normalization
from fwi_plugins.engine.training import loop as engine_loop
from fwi_plugins.engine.options import TrainOptions
from fwi_plugins.engine.training.train import train
from fwi_plugins.engine.training.data import TrainData
from fwi_plugins.specs import IOShape

SHAPE = IOShape(shots=2, time=64, receivers=16, depth=16, width=16)
VIT = {"size": "tiny", "dim": 32, "depth": 2, "heads": 2, "decoder_dim": 8}
#: Measured over seeds 0-4 (L1 + SSIM loss), bf16 against float32: loss relative error at most
#: 1.7e-4, gradient relative L2 error at most 5.2e-3, update cosine similarity at least 0.997
#: (AdamW's first update is close to lr x sign(gradient), so it compares signs and the gradient
#: compares sizes). The loss taken under autocast: at least 3.4e-2, 0.29 and at most 0.96.
LOSS_RTOL = 2e-3
GRADIENT_RTOL = 3e-2
UPDATE_COSINE = 0.99


@dataclasses.dataclass
class Step:
    loss: float
    gradient: torch.Tensor
    update: torch.Tensor


def training_data(n: int = 8, seed: int = 0) -> tuple[TrainData, Normalization]:
    """Gathers of a few dipping events with amplitudes up to about 20 (raw, as a solver gives them)
    and two-layer velocity labels; the normalisation fitted on those gathers."""
    rng = np.random.default_rng(seed)
    t = np.arange(SHAPE.time)[None, None, :, None]
    offset = np.abs(np.arange(SHAPE.receivers) - SHAPE.receivers // 2)[None, None, None, :]
    gathers = 0.01 * rng.standard_normal((n, SHAPE.shots, SHAPE.time, SHAPE.receivers))
    for _ in range(4):
        t0, dip = rng.uniform(5, 60, (n, 1, 1, 1)), rng.uniform(-1.5, 1.5, (n, 1, 1, 1))
        gathers += rng.uniform(-20, 20, (n, 1, 1, 1)) * np.exp(-(((t - t0 - dip * offset) / 2.0) ** 2))
    top, bottom = rng.uniform(1800, 2800, (n, 1, 1, 1)), rng.uniform(3000, 4200, (n, 1, 1, 1))
    interface = rng.integers(3, SHAPE.depth - 3, (n, 1, 1, 1))
    velocity = np.where(np.arange(SHAPE.depth)[None, None, :, None] < interface, top, bottom)
    velocity = velocity * np.ones((1, 1, 1, SHAPE.width))
    data = TrainData(gathers=gathers.astype(np.float32), velocity=velocity.astype(np.float32))
    return data, Normalization(vmin=1500.0, vmax=4500.0).fit_gathers(data.gathers)


def cpu_autocast(device, enabled):
    """The engine's ``autocast`` helper, with CPU autocast where the real one has none."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def one_step(*, amp: bool, seed: int = 0) -> Step:
    """A fresh tiny ``vit`` trained by the engine for one step (a whole batch, constant learning rate)."""
    data, normalization = training_data(seed=seed)
    torch.manual_seed(seed)
    model = api.build_backbone("vit", VIT, shape=SHAPE)
    before = [p.detach().clone() for p in model.parameters()]
    options = TrainOptions(epochs=1, batch_size=len(data), lr=1e-3, warmup_epochs=0, lambda_ssim=1.0,
                           device="cpu", progress=False, amp=amp, seed=seed)
    result = train(model, data, None, options=options, normalization=normalization)
    assert result.steps == 1
    params = list(model.parameters())
    # The loop zeroes gradients before backward, so after one step they are that step's (clipped).
    assert all(p.grad is not None for p in params)
    return Step(loss=float(result.history[-1]["train_loss"]),
                gradient=torch.cat([p.grad.flatten() for p in params]),
                update=torch.cat([(p.detach() - b).flatten() for p, b in zip(params, before)]))


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


def disagreements(reference: Step, other: Step) -> list[str]:
    """What differs beyond the tolerances between a float32 step and a bf16 one (empty: they agree)."""
    found = []
    loss_error = abs(other.loss - reference.loss) / abs(reference.loss)
    if not loss_error < LOSS_RTOL:
        found.append(f"loss {other.loss:.6g} vs {reference.loss:.6g} (relative error {loss_error:.2e})")
    gradient_error = float((other.gradient - reference.gradient).norm() / reference.gradient.norm())
    if not gradient_error < GRADIENT_RTOL:
        found.append(f"gradient relative L2 error {gradient_error:.2e}")
    if not cosine(other.update, reference.update) > UPDATE_COSINE:
        found.append(f"update cosine similarity {cosine(other.update, reference.update):.5f}")
    return found


@pytest.fixture
def bf16_on_cpu(monkeypatch):
    monkeypatch.setattr(engine_loop, "autocast", cpu_autocast)


def test_the_engine_helper_enables_autocast_on_cuda_only():
    from fwi_plugins.engine.device import autocast

    assert isinstance(autocast("cpu", True), contextlib.nullcontext)
    assert isinstance(autocast("cuda", False), contextlib.nullcontext)


@pytest.mark.parametrize("seed", [0, 1])
def test_bf16_step_agrees_with_float32(bf16_on_cpu, seed):
    reference = one_step(amp=False, seed=seed)
    mixed = one_step(amp=True, seed=seed)
    assert mixed.loss != reference.loss, "autocast changed nothing: the bf16 path did not run"
    assert not disagreements(reference, mixed)


def test_a_loss_taken_under_autocast_is_caught(bf16_on_cpu, monkeypatch):
    reference = one_step(amp=False)
    engine_loss = engine_loop.batch_loss

    def loss_in_bf16(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return engine_loss(*args, **kwargs)

    monkeypatch.setattr(engine_loop, "batch_loss", loss_in_bf16)
    planted = one_step(amp=True)
    assert len(disagreements(reference, planted)) == 3, disagreements(reference, planted)

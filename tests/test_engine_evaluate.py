"""evaluate(): velocity metrics and the data misfit through a physics object."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fwi_plugins.data import Normalization
from fwi_plugins.engine.evaluate import evaluate, simulate
from fwi_plugins.errors import DataError


class LinearPhysics:
    """Gathers proportional to velocity, so relative data misfits are known exactly."""

    version = "test"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def simulate(self, velocity: torch.Tensor) -> torch.Tensor:
        self.calls.append(velocity.shape[0])
        # (B, 1, Z, X) -> (B, shot=2, time=Z, receiver=X)
        return torch.cat([velocity, -velocity], dim=1) / 1000.0

    def misfit(self, predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        return (predicted - observed).square().mean()


def _truth(n: int = 5) -> np.ndarray:
    return np.random.default_rng(0).uniform(2000, 4000, size=(n, 1, 8, 9)).astype(np.float32)


def test_velocity_metrics_with_and_without_normalization():
    truth = _truth()
    plain = evaluate(truth + 300.0, truth)
    assert plain["mae"] == pytest.approx(0.2, rel=1e-6) and plain["mae_ms"] == pytest.approx(300.0, rel=1e-6)
    assert "data_misfit" not in plain and plain["n_samples"] == 5
    wide = evaluate(truth + 300.0, truth, normalization=Normalization(vmin=1000.0, vmax=7000.0))
    assert wide["mae"] == pytest.approx(0.1, rel=1e-6) and wide["mae_ms"] == pytest.approx(300.0, rel=1e-6)
    assert evaluate(truth, truth, vmin=1000, vmax=7000)["ssim"] == pytest.approx(1.0)


def test_data_misfit_through_physics():
    truth = _truth()
    physics = LinearPhysics()
    observed = simulate(physics, truth, device="cpu")
    physics.calls.clear()
    m = evaluate(truth * 1.1, truth, physics=physics, observed=observed, batch_size=2, device="cpu",
                 per_sample=True)
    assert m["data_misfit"] == pytest.approx(0.1, rel=1e-5)
    assert m["per_sample"]["data_misfit"] == pytest.approx([0.1] * 5, rel=1e-5)
    assert physics.calls == [2, 2, 1]
    expected = float(np.mean(np.square(simulate(physics, truth * 1.1, device="cpu") - observed)))
    assert m["physics_misfit"] == pytest.approx(expected, rel=1e-5)
    assert m["ssim"] < 1


def test_label_free_evaluation_gives_only_the_data_misfit():
    truth = _truth(3)
    physics = LinearPhysics()
    observed = simulate(physics, truth, device="cpu")
    m = evaluate(truth, None, physics=physics, observed=observed, device="cpu")
    assert m["data_misfit"] == pytest.approx(0.0, abs=1e-7)
    assert "mae" not in m and m["n_samples"] == 3


def test_evaluate_rejects_incomplete_or_mismatched_input():
    truth = _truth(3)
    physics = LinearPhysics()
    with pytest.raises(DataError, match="both physics and observed"):
        evaluate(truth, truth, physics=physics)
    with pytest.raises(DataError, match="nothing to evaluate"):
        evaluate(truth, None)
    with pytest.raises(DataError, match="N = 3"):
        evaluate(truth, truth, physics=physics, observed=np.zeros((2, 2, 8, 9)), device="cpu")
    with pytest.raises(DataError, match="this survey"):
        evaluate(truth, truth, physics=physics, observed=np.zeros((3, 5, 8, 9)), device="cpu")
    with pytest.raises(DataError, match="must match"):
        evaluate(truth, truth[:, :, :4])

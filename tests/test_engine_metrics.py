"""OpenFWI metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fwi_plugins.engine import metrics
from fwi_plugins.errors import DataError


def _maps(n: int = 3, z: int = 12, x: int = 14, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(1500.0, 4500.0, size=(n, 1, z, x)).astype(np.float32)


def _ssim_by_loops(a: np.ndarray, b: np.ndarray, size: int = 11, sigma: float = 1.5) -> float:
    """SSIM of two (Z, X) maps, every window sum written out, zero outside the map."""
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    w = np.outer(g, g)
    half = size // 2
    z, x = a.shape
    pa = np.zeros((z + 2 * half, x + 2 * half))
    pb = np.zeros_like(pa)
    pa[half:half + z, half:half + x] = a
    pb[half:half + z, half:half + x] = b
    total = 0.0
    for i in range(z):
        for j in range(x):
            wa = pa[i:i + size, j:j + size]
            wb = pb[i:i + size, j:j + size]
            mu_a, mu_b = (w * wa).sum(), (w * wb).sum()
            va = (w * wa * wa).sum() - mu_a**2
            vb = (w * wb * wb).sum() - mu_b**2
            cov = (w * wa * wb).sum() - mu_a * mu_b
            c1, c2 = 0.01**2, 0.03**2
            total += ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return total / (z * x)


def test_identical_maps_score_perfectly():
    v = _maps()
    m = metrics.velocity_metrics(v, v.copy())
    assert m["mae"] == 0 and m["rmse"] == 0 and m["mae_ms"] == 0 and m["rmse_ms"] == 0
    assert m["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert m["n_samples"] == 3


def test_constant_offset_gives_analytic_errors():
    truth = _maps()
    m = metrics.velocity_metrics(truth + 150.0, truth)
    # 150 m/s is 0.1 on the [-1, 1] scale of 1500-4500 m/s.
    assert m["mae_ms"] == pytest.approx(150.0, rel=1e-6)
    assert m["rmse_ms"] == pytest.approx(150.0, rel=1e-6)
    assert m["mae"] == pytest.approx(0.1, rel=1e-6)
    assert m["rmse"] == pytest.approx(0.1, rel=1e-6)


def test_dataset_rmse_is_root_of_pixel_mean_not_mean_of_roots():
    truth = np.full((2, 1, 4, 4), 3000.0)
    pred = truth.copy()
    pred[0] += 300.0
    m = metrics.velocity_metrics(pred, truth, per_sample=True)
    assert m["mae_ms"] == pytest.approx(150.0)
    assert m["rmse_ms"] == pytest.approx(math.sqrt(0.5 * 300.0**2))
    assert m["per_sample"]["rmse_ms"] == pytest.approx([300.0, 0.0])
    assert m["per_sample"]["mae"] == pytest.approx([0.2, 0.0])
    assert metrics.rmse(pred, truth, reduction="none") == pytest.approx([300.0, 0.0])


def test_unit_scale_round_trip():
    v = _maps()
    u = metrics.to_unit(v)
    assert u.min() >= -1 and u.max() <= 1
    assert metrics.to_unit(1500.0) == -1 and metrics.to_unit(4500.0) == 1
    np.testing.assert_allclose(metrics.from_unit(u), v, rtol=1e-6)


def test_ssim_matches_the_written_out_definition():
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, size=(9, 13))
    b = np.clip(a + rng.normal(0, 0.2, size=a.shape), 0, 1)
    assert metrics.ssim(a, b) == pytest.approx(_ssim_by_loops(a, b), rel=1e-10)


def test_ssim_of_constant_maps_matches_closed_form():
    # Two constant maps: each pixel's score depends only on the window mass w inside the map.
    a, b, z, x = 0.3, 0.6, 8, 15
    g = metrics.gaussian_window()

    def mass(n: int) -> np.ndarray:
        return np.array([sum(g[k] for k in range(11) if 0 <= i + k - 5 < n) for i in range(n)])

    w = np.outer(mass(z), mass(x))
    c1, c2 = 0.01**2, 0.03**2
    expected = ((2 * a * b * w**2 + c1) * (2 * a * b * w * (1 - w) + c2)
                / (((a * a + b * b) * w**2 + c1) * ((a * a + b * b) * w * (1 - w) + c2))).mean()
    got = metrics.ssim(np.full((1, 1, z, x), a), np.full((1, 1, z, x), b))
    assert got == pytest.approx(expected, rel=1e-10)
    assert got < 1


def test_ssim_matches_padded_conv2d_reference():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = np.random.default_rng(7)
    a = rng.uniform(0, 1, size=(2, 1, 20, 20))
    b = np.clip(a + rng.normal(0, 0.1, size=a.shape), 0, 1)
    g = torch.tensor(metrics.gaussian_window())
    w = torch.outer(g, g)[None, None]
    ta, tb = torch.tensor(a), torch.tensor(b)

    def conv(t):
        return F.conv2d(t, w, padding=5)

    mu1, mu2 = conv(ta), conv(tb)
    s1, s2, s12 = conv(ta * ta) - mu1**2, conv(tb * tb) - mu2**2, conv(ta * tb) - mu1 * mu2
    ref = ((2 * mu1 * mu2 + 1e-4) * (2 * s12 + 9e-4)) / ((mu1**2 + mu2**2 + 1e-4) * (s1 + s2 + 9e-4))
    assert metrics.ssim(a, b) == pytest.approx(float(ref.mean()), rel=1e-10)
    np.testing.assert_allclose(metrics.ssim(a, b, reduction="none"), ref.mean(dim=(1, 2, 3)).numpy(), rtol=1e-10)


def test_ssim_falls_as_noise_grows():
    v = metrics.to_unit(_maps(n=2, z=30, x=30)) / 2 + 0.5
    rng = np.random.default_rng(1)
    scores = [metrics.ssim(v + rng.normal(0, s, v.shape), v) for s in (0.01, 0.05, 0.2)]
    assert 1 > scores[0] > scores[1] > scores[2]


def test_relative_l2():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(3, 2, 50, 7))
    assert metrics.relative_l2(1.1 * obs, obs) == pytest.approx(0.1)
    assert metrics.relative_l2(np.zeros_like(obs), obs) == pytest.approx(1.0)
    assert metrics.relative_l2(obs, obs, reduction="none") == pytest.approx([0, 0, 0])
    silent = np.zeros((1, 1, 4, 4))
    assert metrics.relative_l2(silent, silent) == 0


def test_shape_mismatch_is_a_data_error_naming_both_shapes():
    with pytest.raises(DataError, match=r"\(2, 1, 4, 4\).*\(2, 1, 4, 5\)"):
        metrics.mae(np.zeros((2, 1, 4, 4)), np.zeros((2, 1, 4, 5)))
    with pytest.raises(DataError, match="shape"):
        metrics.ssim(np.zeros((2, 1, 4, 4)), np.zeros((1, 1, 4, 4)))
    with pytest.raises(DataError):
        metrics.relative_l2(np.zeros((2, 3)), np.zeros((2, 4)))


def test_summarize_formats_known_keys():
    line = metrics.summarize({"mae": 0.0131, "rmse": 0.0211, "ssim": 0.9895, "mae_ms": 19.64})
    assert line == "MAE 0.0131 | RMSE 0.0211 | SSIM 0.9895 | MAE 19.6 m/s"

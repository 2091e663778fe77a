"""Training augmentations of the gathers: each against an independent reference, and in the training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fwi_plugins import options as opt
from fwi_plugins.engine.training import augment as A
from fwi_plugins.engine.training import train as T
from fwi_plugins.engine.options import PretrainOptions, RunOptions, TrainOptions
from fwi_plugins.errors import ConfigError, OptionError
from fwi_plugins.wavelet import phase_rotate, ricker

from fwi_plugins.engine.training.data import TrainData
from torch import nn

torch.set_num_threads(1)

# -- tiny models, as tests/test_engine_train.py builds them -----------------------------------
S, TT, R, Z, X = 2, 12, 6, 6, 6


class UnitScale:
    """Velocity 1500-4500 m/s to [-1, 1]; gathers halved."""

    vmin, vmax = 1500.0, 4500.0

    def velocity_to_unit(self, v):
        return (v - 1500.0) * (2.0 / 3000.0) - 1.0

    def velocity_from_unit(self, u):
        return (u + 1.0) * 1500.0 + 1500.0

    def gathers_to_unit(self, d):
        return d * 0.5


class LinearPhysics:
    """A fixed linear forward map."""

    version = "test-1"

    class survey:  # noqa: N801 - mimics the Survey attributes the loop reads
        vmin, vmax = 1500.0, 4500.0

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(123)
        self.operator = torch.randn(Z * X, S * TT * R, generator=g) / (Z * X) ** 0.5

    def simulate(self, velocity):
        flat = (velocity.reshape(len(velocity), -1) - 3000.0) / 1000.0
        return (flat @ self.operator.to(velocity.device)).reshape(-1, S, TT, R)

    def misfit(self, predicted, observed):
        return (predicted - observed).square().mean()


class DropNet(nn.Module):
    """A small network with dropout, so a resume that loses the random state shows in the weights."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.head, self.drop = nn.Linear(S * TT * R, 32), nn.Linear(32, Z * X), nn.Dropout(0.3)

    def forward(self, x):
        return torch.tanh(self.head(self.drop(torch.relu(self.body(x.flatten(1)))))).view(-1, 1, Z, X)


def make_data(n: int, seed: int = 0) -> TrainData:
    rng = np.random.default_rng(seed)
    top = rng.uniform(1800, 2800, size=(n, 1, 1, 1))
    bottom = rng.uniform(3000, 4200, size=(n, 1, 1, 1))
    depth = rng.integers(1, Z - 1, size=(n, 1, 1, 1))
    v = (np.where(np.arange(Z)[None, None, :, None] < depth, top, bottom) * np.ones((1, 1, 1, X))).astype(np.float32)
    with torch.no_grad():
        d = LinearPhysics().simulate(torch.from_numpy(v)).numpy().astype(np.float32)
    return TrainData(gathers=d, velocity=v)


def build(seed: int = 0) -> DropNet:
    torch.manual_seed(seed)
    return DropNet()


def opts(**kw) -> TrainOptions:
    return TrainOptions(**{**dict(epochs=3, batch_size=4, lr=3e-3, warmup_epochs=0.5, device="cpu", progress=False),
                           **kw})


def params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}

DT, NT = 1e-3, 1000


def ricker_gathers(n: int = 1, dtype=torch.float64) -> torch.Tensor:
    """``(n, 1, NT, 1)``: the trained wavelet, a 15 Hz Ricker peaking at 0.1 s, as one trace per sample."""
    trace = ricker(np.arange(NT) * DT, 15.0, 0.1)
    return torch.from_numpy(np.tile(trace, (n, 1))).to(dtype).view(n, 1, NT, 1)


def numpy_band(trace: np.ndarray, peak_hz: float, eps: float) -> np.ndarray:
    """``trace`` through ``|W|^2 / (|W|^2 + eps max|W|^2)``, ``W`` the rfft of a sampled Ricker (numpy only)."""
    n_fft = 2 * trace.size
    w = ricker(np.arange(n_fft) * DT, peak_hz, 0.5)  # 0.5 s: every Ricker of 6-25 Hz whole inside n_fft
    power = np.abs(np.fft.rfft(w)) ** 2
    band = power / (power + eps * power.max())
    return np.fft.irfft(np.fft.rfft(trace, n=n_fft) * band, n=n_fft)[: trace.size]


def gen(seed: int = 0, step: int = 0) -> torch.Generator:
    return A.augment_generator(seed, step, 0, "cpu")


def rms(x: torch.Tensor) -> torch.Tensor:
    return x.double().square().mean(dim=(1, 2, 3)).sqrt()


# -- each augmentation against a reference ---------------------------------------------------
def test_band_matches_the_shaping_band_computed_with_numpy():
    x = ricker_gathers(2)
    peaks, eps = [8.0, 20.0], [1e-2, 1e-4]
    out = A.band_filter(x, torch.tensor(peaks), torch.tensor(eps), dt=DT)
    for i in range(2):
        expected = numpy_band(x[i, 0, :, 0].numpy(), peaks[i], eps[i])
        assert np.allclose(out[i, 0, :, 0].numpy(), expected, atol=1e-9 * np.abs(expected).max() + 1e-12)
    # Not the identity: an 8 Hz wavelet shaped to 15 Hz lacks the high band, and the trace shows it.
    assert float((out[0] - x[0]).abs().max()) > 0.05
    spectrum_in = np.abs(np.fft.rfft(x[0, 0, :, 0].numpy(), n=2 * NT))
    spectrum_out = np.abs(np.fft.rfft(out[0, 0, :, 0].numpy(), n=2 * NT))
    f = np.fft.rfftfreq(2 * NT, DT)
    assert spectrum_out[np.argmin(abs(f - 40))] < 0.5 * spectrum_in[np.argmin(abs(f - 40))]


def test_band_keeps_float32_and_its_shape():
    x = ricker_gathers(1, torch.float32).expand(1, 3, NT, 4).contiguous()
    out = A.band_filter(x, 12.0, 1e-3, dt=DT)
    assert out.shape == x.shape and out.dtype == torch.float32
    expected = numpy_band(x[0, 0, :, 0].double().numpy(), 12.0, 1e-3)
    assert np.allclose(out[0, 2, :, 3].numpy(), expected, atol=1e-5)


def test_phase_rotation_matches_the_wavelet_module():
    x = ricker_gathers(2)
    out = A.rotate_phase(x, torch.tensor([90.0, -30.0]))
    for i, degrees in enumerate((90.0, -30.0)):
        expected = phase_rotate(x[i, 0, :, 0].numpy(), degrees)
        assert np.allclose(out[i, 0, :, 0].numpy(), expected, atol=1e-12)
    # 90 degrees turns the zero-phase Ricker antisymmetric about its peak.
    trace = out[0, 0, :, 0].numpy()
    assert np.allclose(trace[100 - 30:100], -trace[100 + 30:100:-1], atol=1e-3)


def test_dead_traces_zero_the_stated_share_and_nothing_else():
    x = torch.randn(3, 5, 20, 70, generator=torch.Generator().manual_seed(1))
    out = A.drop_traces(x, torch.tensor([0.1, 0.002, 0.05]), generator=gen())
    dead = (out == 0).all(dim=2)  # (B, S, R)
    assert dead.sum(dim=(1, 2)).tolist() == [35, 1, 18]  # round(share * 5 * 70), at least one
    assert torch.equal(out[~dead.unsqueeze(2).expand_as(x)], x[~dead.unsqueeze(2).expand_as(x)])
    with_column = A.drop_traces(x, 0.02, generator=gen(), column=torch.tensor([3, -1, 69]))
    dead = (with_column == 0).all(dim=2)
    assert dead[0, :, 3].all() and dead[2, :, 69].all()
    assert 7 <= int(dead[0].sum()) <= 7 + 5 and int(dead[1].sum()) == 7
    kept = ~dead.unsqueeze(2).expand_as(x)
    assert torch.equal(with_column[kept], x[kept])


def test_dead_through_augment_gathers_stays_within_its_share():
    x = torch.randn(16, 5, 8, 70, generator=torch.Generator().manual_seed(2))
    out = A.augment_gathers(x, "dead", prob=1.0, generator=gen(3))
    dead = (out == 0).all(dim=2)
    counts = dead.sum(dim=(1, 2))
    assert bool(((counts >= 4) & (counts <= 35 + 5)).all()), counts  # 1-10 % of 350, plus one column of 5
    kept = ~dead.unsqueeze(2).expand_as(x)
    assert torch.equal(out[kept], x[kept])


def test_gain_scales_each_sample():
    x = torch.randn(8, 2, 10, 6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(A.scale(x, 2.0), x * 2.0)
    out = A.augment_gathers(x, "gain", prob=0.0, generator=gen())  # gain does not depend on prob
    ratio = (out / x).flatten(1)
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-6)
    assert bool(((ratio[:, 0] >= 0.8 - 1e-6) & (ratio[:, 0] <= 1.25 + 1e-6)).all())
    assert ratio[:, 0].std() > 0.01


@pytest.mark.parametrize("band_peak_hz", [0.0, 10.0])
def test_noise_has_the_stated_rms_level(band_peak_hz):
    x = ricker_gathers(2, torch.float32).expand(2, 3, NT, 8).contiguous() * torch.tensor([1.0, 50.0]).view(2, 1, 1, 1)
    out = A.add_noise(x, torch.tensor([0.05, 0.02]), generator=gen(), band_peak_hz=band_peak_hz, dt=DT)
    assert out.dtype == torch.float32
    level = (rms(out - x) / rms(x)).tolist()
    assert level == pytest.approx([0.05, 0.02], rel=1e-4)
    noise = (out - x)[0].double().numpy()
    spectrum = np.abs(np.fft.rfft(noise, axis=1)) ** 2
    high = spectrum[:, np.fft.rfftfreq(NT, DT) > 60].sum() / spectrum.sum()
    assert high > 0.8 if band_peak_hz == 0 else high < 1e-3  # white, or in a 10 Hz Ricker's band


def test_linear_events_are_coherent_pulses_of_bounded_amplitude():
    x = torch.zeros(2, 3, 500, 20, dtype=torch.float64)
    out = A.add_linear_events(x, torch.tensor([1.0, 0.0]), generator=gen(), dt=DT)
    assert float(out[0].abs().max()) > 0.1 and float(out[0].abs().max()) <= 3.0
    assert torch.equal(out[1], x[1])  # amplitude 0: nothing


def test_all_keeps_shape_dtype_device_and_is_reproducible():
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(6, 2, 64, 7, dtype=dtype, generator=torch.Generator().manual_seed(4))
        a = A.augment_gathers(x, "all", prob=0.7, generator=gen(5, 2))
        b = A.augment_gathers(x, "all", prob=0.7, generator=gen(5, 2))
        c = A.augment_gathers(x, "all", prob=0.7, generator=gen(5, 3))
        assert a.shape == x.shape and a.dtype == dtype and a.device == x.device == torch.device("cpu")
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert torch.isfinite(a).all()
    assert A.augment_gathers(x, "", prob=1.0, generator=gen()) is x


def test_samples_left_alone_are_bit_identical():
    x = torch.randn(32, 2, 40, 5, generator=torch.Generator().manual_seed(6))
    out = A.augment_gathers(x, "band,phase,noise,dead", prob=0.0, generator=gen())
    assert torch.equal(out, x)
    out = A.augment_gathers(x, "band,phase,noise,dead", prob=0.3, generator=gen())
    same = (out == x).flatten(1).all(dim=1)
    assert 0 < int(same.sum()) < 32  # (1 - 0.3)^4 of the samples untouched, the others altered


@pytest.mark.gpu
def test_augmentations_run_on_the_gpu_generator():
    assert torch.cuda.is_available(), "this test needs CUDA"
    x = torch.randn(4, 5, 1000, 70, device="cuda")
    out = A.augment_gathers(x, "all", prob=1.0, generator=A.augment_generator(0, 0, 0, x.device))
    assert out.device == x.device and out.dtype == x.dtype and torch.isfinite(out).all()


# -- the options -------------------------------------------------------------------------------
def test_options_name_the_augmentations_and_refuse_unknown_ones():
    assert TrainOptions().augment == "" and opt.describe(PretrainOptions) and opt.describe(RunOptions)
    assert {"augment", "augment_prob"} <= {i.name for i in opt.describe(PretrainOptions)}
    assert {"augment", "augment_prob"} <= {i.name for i in opt.describe(RunOptions)}
    from fwi_plugins.engine.options import augment_names

    assert augment_names("all") == augment_names(" gain, Band,phase ,noise,dead,") == A.AUGMENTATIONS
    assert augment_names("noise,band") == ("band", "noise") and augment_names("") == ()
    with pytest.raises(ValueError, match=r"option 'augment'.*'bnad'.*Did you mean 'band'.*band, phase, noise"):
        TrainOptions(augment="band,bnad")
    with pytest.raises(OptionError, match="augment"):
        opt.parse(PretrainOptions, {"augment": "blur"}, owner="pretrain")
    with pytest.raises(ValueError, match="augment_prob"):
        TrainOptions(augment="band", augment_prob=1.5)
    assert opt.parse(RunOptions, {"augment": "all", "augment_prob": "0.25"}).augment_prob == 0.25


# -- in the training loop ---------------------------------------------------------------------
def scores(history):
    return [{k: v for k, v in h.items() if k != "epoch_time"} for h in history]


def test_training_with_augmentations_differs_and_without_is_untouched(monkeypatch):
    data, val = make_data(12), make_data(4, 1)
    plain = T.train(build(), data, val, options=opts(), normalization=UnitScale())
    augmented = T.train(build(), data, val, options=opts(augment="all"), normalization=UnitScale())
    assert augmented.complete and len(augmented.history) == len(plain.history)
    assert scores(augmented.history)[0] == scores(plain.history)[0]  # epoch 0: the starting network
    assert all(a["train_loss"] != p["train_loss"] for a, p in zip(augmented.history[1:], plain.history[1:]))

    # augment="" never reaches the augmentations: the history is the one training had before them.
    def refuse(*args, **kwargs):
        raise AssertionError("augment_gathers called without augmentations")

    monkeypatch.setattr(A, "augment_gathers", refuse)
    empty = T.train(build(), data, val, options=opts(augment=""), normalization=UnitScale())
    assert scores(empty.history) == scores(plain.history)


def test_network_sees_augmented_gathers_and_the_physics_term_clean_ones(monkeypatch):
    import fwi_plugins.engine.training.loop as loop_module

    data = make_data(8)
    seen_by_net, seen_by_loss = [], []
    original = loop_module.batch_loss

    def record_loss(pred, x_raw, *args, **kwargs):
        seen_by_loss.append(x_raw.clone())
        return original(pred, x_raw, *args, **kwargs)

    monkeypatch.setattr(loop_module, "batch_loss", record_loss)
    model = build()
    model.register_forward_pre_hook(lambda module, inputs: seen_by_net.append(inputs[0].clone()) if module.training
                                    else None)
    T.train(model, data, None, options=opts(epochs=1, batch_size=8, augment="all", augment_prob=1.0,
                                            lambda_physics=0.5),
            normalization=UnitScale(), physics=LinearPhysics())
    clean = torch.from_numpy(data.gathers)
    assert len(seen_by_loss) == 1 and torch.equal(seen_by_loss[0], clean)
    assert not torch.allclose(seen_by_net[-1], UnitScale().gathers_to_unit(clean))


def test_changing_augment_is_another_training_for_resuming(tmp_path):
    data = make_data(8)
    T.train(build(), data, None, options=opts(epochs=1), normalization=UnitScale(), checkpoint_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match="augment"):
        T.train(build(), data, None, options=opts(epochs=1, augment="band"), normalization=UnitScale(),
                checkpoint_dir=tmp_path / "a")
    T.train(build(), data, None, options=opts(epochs=1, augment="all"), normalization=UnitScale(),
            checkpoint_dir=tmp_path / "b")
    for other in (dict(augment=""), dict(augment="band"), dict(augment="all", augment_prob=0.9)):
        with pytest.raises(ConfigError, match="augment"):
            T.train(build(), data, None, options=opts(epochs=1, **other), normalization=UnitScale(),
                    checkpoint_dir=tmp_path / "b")
    # The same set spelled otherwise is the same training (finished: nothing left to train).
    again = T.train(build(), data, None, options=opts(epochs=1, augment="gain,dead,noise,phase,band"),
                    normalization=UnitScale(), checkpoint_dir=tmp_path / "b")
    assert again.resumed_from == 1


def test_augmented_training_resumes_bit_identically(tmp_path):
    data, val = make_data(12), make_data(4, 1)
    options = dict(epochs=2, augment="all", augment_prob=0.7)
    torch.manual_seed(0)
    whole = DropNet()
    expected = T.train(whole, data, val, options=opts(**options), normalization=UnitScale(),
                       checkpoint_dir=tmp_path / "a")
    calls, result = 0, None
    while result is None or not result.complete:
        torch.manual_seed(0 if calls == 0 else calls + 100)
        model = DropNet()
        result = T.train(model, data, val, options=opts(max_minutes=1e-9, **options), normalization=UnitScale(),
                         checkpoint_dir=tmp_path / "b")
        calls += 1
        assert calls <= 6
    for k, v in params(whole).items():
        assert torch.equal(v, params(model)[k]), k
    assert scores(result.history) == scores(expected.history)

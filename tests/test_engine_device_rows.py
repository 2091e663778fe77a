"""Device-resident training data: batches taken on the device, never through the host, and mirroring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from fwi_plugins.engine.training import loop as loop_module
from fwi_plugins.engine.training import train as T
from fwi_plugins.engine.options import TrainOptions
from fwi_plugins.engine.training.mirror import check_mirror_symmetric, mirror_asymmetry, mirror_data
from fwi_plugins.data.rows import RowStack
from fwi_plugins.engine.training.data import DeviceRows, TrainData, upsample_traces
from fwi_plugins.errors import DataError
from fwi_plugins.survey import Survey

torch.set_num_threads(1)

S, NT, R, Z, X = 3, 16, 7, 6, 7


class UnitScale:
    vmin, vmax = 1500.0, 4500.0

    def velocity_to_unit(self, v):
        return (v - self.vmin) * (2.0 / (self.vmax - self.vmin)) - 1.0

    def velocity_from_unit(self, u):
        return (u + 1.0) * (0.5 * (self.vmax - self.vmin)) + self.vmin

    def gathers_to_unit(self, d):
        return d * 0.5


class LinearPhysics:
    version = "test-1"

    class survey:  # noqa: N801 - the attributes the loop reads
        vmin, vmax = 1500.0, 4500.0

    def __init__(self) -> None:
        self.operator = torch.randn(Z * X, S * NT * R, generator=torch.Generator().manual_seed(5)) / math.sqrt(Z * X)

    def simulate(self, velocity):
        return (((velocity.reshape(len(velocity), -1) - 3000.0) / 1000.0) @ self.operator).reshape(-1, S, NT, R)

    def misfit(self, predicted, observed):
        return (predicted - observed).square().mean()


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Linear(S * NT * R, 32), nn.Linear(32, Z * X)

    def forward(self, x):
        return torch.tanh(self.head(torch.relu(self.body(x.flatten(1))))).view(-1, 1, Z, X)


def make_data(n: int, seed: int = 0) -> TrainData:
    rng = np.random.default_rng(seed)
    v = rng.uniform(1800, 4200, size=(n, 1, Z, X)).astype(np.float32)
    with torch.no_grad():
        d = LinearPhysics().simulate(torch.from_numpy(v)).numpy().astype(np.float32)
    return TrainData(gathers=d, velocity=v)


def run(data: TrainData, **kw) -> tuple[list[dict], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = TinyNet()
    options = TrainOptions(**{**dict(epochs=2, batch_size=4, lr=3e-3, device="cpu", progress=False,
                                     lambda_physics=0.5, augment="gain,noise"), **kw})
    result = T.train(model, data, None, options=options, normalization=UnitScale(), physics=LinearPhysics())
    history = [{k: v for k, v in h.items() if k != "epoch_time"} for h in result.history]
    return history, {k: v.detach().clone() for k, v in model.state_dict().items()}


def no_host_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way a batch could travel through numpy raises."""
    def refuse(*args, **kwargs):
        raise AssertionError("a training step on device-resident data copied through the host")

    monkeypatch.setattr(loop_module, "take_rows", refuse)
    monkeypatch.setattr(torch, "from_numpy", refuse)
    monkeypatch.setattr(torch.Tensor, "numpy", refuse)  # .numpy(), np.asarray(tensor)
    monkeypatch.setattr(DeviceRows, "__getitem__", refuse)  # the rows' own host copy


def assert_same_training(a: tuple[list[dict], dict], b: tuple[list[dict], dict]) -> None:
    assert len(a[0]) == len(b[0])
    for ha, hb in zip(a[0], b[0], strict=True):
        assert ha.keys() == hb.keys()
        for key in ha:
            assert ha[key] == pytest.approx(hb[key], rel=1e-6, abs=1e-7), key
    for key, value in a[1].items():
        torch.testing.assert_close(value, b[1][key], rtol=1e-6, atol=1e-7)


def test_device_resident_training_never_copies_through_the_host_and_matches_the_numpy_path(monkeypatch):
    data = make_data(10)
    numpy_run = run(data)
    device_data = data.to_device("cpu")
    assert device_data.on_device and not data.on_device
    with monkeypatch.context() as m:
        no_host_copies(m)
        device_run = run(device_data)
    assert_same_training(numpy_run, device_run)
    # Label-free (no velocity taken) too.
    assert_same_training(run(data, labels="none"), run(device_data, labels="none"))


def test_the_host_copy_guard_catches_a_numpy_batch(monkeypatch):
    # The guard itself: the numpy path does copy through take_rows, and is caught.
    with monkeypatch.context() as m:
        no_host_copies(m)
        with pytest.raises(AssertionError, match="copied through the host"):
            run(make_data(8))


def test_device_rows_decimated_in_float16_rebuild_full_traces():
    t = np.arange(200) * 1e-3
    # Band-limited traces: a 15 Hz Ricker at several delays, far below the 4 ms Nyquist (125 Hz).
    delays = np.random.default_rng(0).uniform(0.05, 0.15, size=(6, 2, 1, 5))
    arg = (np.pi * 15.0 * (t[None, None, :, None] - delays)) ** 2
    full = ((1 - 2 * arg) * np.exp(-arg)).astype(np.float32)
    rows = DeviceRows.from_array(RowStack([full[:4], full[4:]]), device="cpu", dtype=torch.float16, decimation=4,
                                 block=3)
    assert rows.stored.shape == (6, 2, 50, 5) and rows.stored.dtype == torch.float16 and rows.shape == full.shape
    taken = rows.take(torch.tensor([5, 0, 2]))
    assert taken.dtype == torch.float32 and taken.shape == (3, 2, 200, 5)
    error = np.linalg.norm(taken.numpy() - full[[5, 0, 2]]) / np.linalg.norm(full[[5, 0, 2]])
    assert error < 5e-3
    np.testing.assert_allclose(rows[[5, 0, 2]], taken.numpy())  # the host copy validation reads
    plain = torch.from_numpy(full)
    torch.testing.assert_close(upsample_traces(plain, 1, 200), plain)


def test_device_rows_refuse_to_become_a_host_array_and_mixed_data_is_refused():
    data = make_data(4)
    rows = data.to_device("cpu")
    with pytest.raises(TypeError, match="take"):
        np.asarray(rows.gathers)
    with pytest.raises(DataError, match="both be DeviceRows or neither"):
        TrainData(gathers=rows.gathers, velocity=data.velocity)
    with pytest.raises(DataError, match="nt 300 does not fit"):
        DeviceRows(torch.zeros(2, 1, 50, 3), decimation=4, nt=300)


def symmetric_survey(nx: int = 7) -> Survey:
    return Survey(nz=6, nx=nx, dx=10.0, nt=NT, dt=0.002, sources=((0.0, 0.0), (0.0, (nx - 1) / 2), (0.0, nx - 1)),
                  receivers=tuple((0.0, float(x)) for x in range(nx)))


def test_mirroring_refuses_openfwi_survey_naming_its_positions():
    survey = Survey.openfwi()
    assert mirror_asymmetry(survey.sources, survey.nx) == pytest.approx(1.0)
    with pytest.raises(DataError, match=r"sources at columns 0, 17, 34, 52, 69 .*35.*off by up to 1 cells"):
        check_mirror_symmetric(survey)
    check_mirror_symmetric(survey, tolerance=1.0)  # a tolerance of a cell lets it through, knowingly
    check_mirror_symmetric(symmetric_survey())
    skewed = Survey(**{**symmetric_survey().to_dict(), "receivers": [(0.0, float(x)) for x in range(6)]})
    with pytest.raises(DataError, match="receivers at columns 0, 1, 2, 3, 4, 5"):
        check_mirror_symmetric(skewed)


@pytest.mark.parametrize("where", ["host", "device"])
def test_mirrored_rows_are_the_samples_flipped(where):
    data = make_data(5)
    source = data if where == "host" else data.to_device("cpu")
    mirrored = mirror_data(source, symmetric_survey())
    assert len(mirrored) == 10
    g, v = data.gathers, data.velocity
    for rows in ([1, 4], [6, 9], [0, 7]):
        want_g = np.stack([g[i] if i < 5 else g[i - 5][::-1, :, ::-1] for i in rows])
        want_v = np.stack([v[i] if i < 5 else v[i - 5][:, :, ::-1] for i in rows])
        if where == "host":
            got_g, got_v = mirrored.gathers[np.array(rows)], mirrored.velocity[np.array(rows)]
        else:
            got_g = mirrored.gathers.take(torch.tensor(rows)).numpy()
            got_v = mirrored.velocity.take(torch.tensor(rows)).numpy()
        np.testing.assert_array_equal(got_g, want_g)
        np.testing.assert_array_equal(got_v, want_v)
    with pytest.raises(DataError, match="symmetric"):
        mirror_data(source, Survey(**{**symmetric_survey().to_dict(), "sources": [(0.0, 0.0), (0.0, 2.0), (0.0, 6.0)]}))


def test_mirrored_training_is_the_same_on_the_host_and_on_the_device(monkeypatch):
    data = make_data(6)
    host = run(mirror_data(data, symmetric_survey()))
    device_data = mirror_data(data.to_device("cpu"), symmetric_survey())
    with monkeypatch.context() as m:
        no_host_copies(m)
        device = run(device_data)
    assert_same_training(host, device)


def test_deepwave_gathers_of_a_mirrored_map_are_the_gathers_with_shots_and_receivers_reversed():
    from fwi_plugins import api

    nx = 21
    survey = Survey(nz=16, nx=nx, dx=10.0, nt=300, dt=0.002,
                    sources=((0.0, 0.0), (0.0, (nx - 1) / 2), (0.0, nx - 1)),
                    receivers=tuple((0.0, float(x)) for x in range(nx)), pml_width=10)
    check_mirror_symmetric(survey)
    physics = api.build_physics("deepwave", survey=survey)
    rng = np.random.default_rng(3)
    # An asymmetric map: a dipping interface and a fast lens on one side.
    z, x = np.mgrid[0:16, 0:nx]
    v = np.where(z > 5 + 0.3 * x, 3200.0, 2000.0) + 800.0 * np.exp(-((z - 11) ** 2 + (x - 15) ** 2) / 6.0)
    v = (v + rng.uniform(-50, 50, v.shape)).astype(np.float32)[None, None]
    with torch.no_grad():
        d = physics.simulate(torch.from_numpy(v)).numpy()
        d_mirrored = physics.simulate(torch.from_numpy(np.ascontiguousarray(v[..., ::-1]))).numpy()
    assert d.shape == (1, 3, 300, nx) and np.abs(d).max() > 0
    np.testing.assert_allclose(d_mirrored, d[:, ::-1, :, ::-1], rtol=0, atol=1e-5 * np.abs(d).max())
    # The same survey with the middle source half a cell off is not symmetric: mirroring is refused.
    shifted = Survey(**{**survey.to_dict(), "sources": [(0.0, 0.0), (0.0, 9.0), (0.0, nx - 1)]})
    with pytest.raises(DataError, match="sources at columns 0, 9, 20"):
        check_mirror_symmetric(shifted)

"""SeismicDataset, Normalization and the simulation cache, with a cheap deterministic physics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fwi_plugins.data import Normalization, SeismicDataset
from fwi_plugins.data.cache import CacheWarning, cached_gathers, default_cache_dir
from fwi_plugins.errors import DataError, UnknownNameError
from fwi_plugins.survey import Survey


class FakePhysics:
    """Follows the Physics contract: gathers are a smooth function of the velocity under each receiver."""

    name = "fake"

    def __init__(self, survey: Survey, version: str = "1") -> None:
        self.survey = survey
        self.version = version
        self.calls = 0
        self.simulated = 0

    def simulate(self, velocity):
        import torch

        self.calls += 1
        self.simulated += velocity.shape[0]
        s = self.survey
        cols = torch.tensor([int(x) for _, x in s.receivers])
        under = velocity[:, 0][:, :, cols].mean(dim=1)  # (B, R)
        t = torch.arange(s.nt, dtype=velocity.dtype)[:, None]
        shot = torch.arange(s.n_shots, dtype=velocity.dtype)[:, None, None]
        return torch.sin(t[None, None] * under[:, None, None, :] / 1e5 + shot[None]) * (1 + shot[None])

    def misfit(self, predicted, observed):
        return (predicted - observed).square().mean()


@pytest.fixture
def survey():
    return Survey.small(nz=12, nx=12, nt=30, n_sources=2)


def _dataset(survey, n=(6, 2, 3), seed=0):
    rng = np.random.default_rng(seed)
    vel = {s: rng.uniform(1500, 4500, (k, 1, 12, 12)).astype(np.float32) for s, k in zip(("train", "val", "test"), n)}
    return SeismicDataset("toy", survey=survey, velocity=vel, attrs={"generator": "toy", "seed": seed})


# -- Normalization -------------------------------------------------------------
def test_normalization_velocity_maps_range_to_unit_and_back():
    norm = Normalization.openfwi()
    v = np.array([1500.0, 3000.0, 4500.0])
    np.testing.assert_allclose(norm.velocity_to_unit(v), [-1, 0, 1])
    np.testing.assert_allclose(norm.velocity_from_unit(norm.velocity_to_unit(v)), v)


def test_normalization_velocity_back_to_ms_uses_its_own_range():
    # A model trained on 1000-5500 m/s (not OpenFWI's 1500-4500) predicts in that range.
    norm = Normalization(vmin=1000.0, vmax=5500.0)
    np.testing.assert_allclose(norm.velocity_from_unit(np.array([-1.0, 0.0, 1.0])), [1000.0, 3250.0, 5500.0])


def test_normalization_gathers_is_openfwi_log_minmax_and_invertible():
    g = np.array([-26.95, 0.0, 3.0, 52.77])
    norm = Normalization.openfwi().fit_gathers(g)
    unit = norm.gathers_to_unit(g)
    np.testing.assert_allclose(unit[[0, -1]], [-1, 1], atol=1e-12)
    lo, hi = -np.log1p(26.95), np.log1p(52.77)
    np.testing.assert_allclose(unit[2], 2 * (np.log1p(3.0) - lo) / (hi - lo) - 1)
    np.testing.assert_allclose(norm.gathers_from_unit(unit), g, rtol=1e-10, atol=1e-12)
    assert Normalization.from_dict(json.loads(json.dumps(norm.to_dict()))) == norm


def test_normalization_keeps_torch_tensors_torch():
    import torch

    norm = Normalization(vmin=1000, vmax=5000, data_min=-2.0, data_max=2.0)
    t = torch.tensor([1000.0, 5000.0])
    out = norm.velocity_to_unit(t)
    assert isinstance(out, torch.Tensor)
    assert torch.allclose(out, torch.tensor([-1.0, 1.0]))
    assert isinstance(norm.gathers_to_unit(torch.tensor([0.5])), torch.Tensor)


def test_unfitted_gathers_scale_says_how_to_fit():
    with pytest.raises(DataError, match="not fitted"):
        Normalization.openfwi().gathers_to_unit(np.zeros(3))
    with pytest.raises(UnknownNameError, match="vmin"):
        Normalization.from_dict({"vmn": 1})


# -- SeismicDataset ------------------------------------------------------------
def test_dataset_contract(survey):
    ds = _dataset(survey)
    assert ds.has_labels and ds.split_sizes == {"train": 6, "val": 2, "test": 3}
    assert ds.velocity("val").shape == (2, 1, 12, 12) and ds.velocity("val").dtype == np.float32
    with pytest.raises(UnknownNameError, match="Did you mean 'train'"):
        ds.velocity("trian")
    with pytest.raises(DataError, match="no recorded gathers.*physics"):
        ds.gathers("train")


def test_gathers_only_dataset_has_no_labels(survey):
    g = np.zeros((2, survey.n_shots, survey.nt, survey.n_receivers), np.float32)
    ds = SeismicDataset("field", survey=survey, gathers={"test": g})
    assert not ds.has_labels
    assert ds.gathers("test").shape == g.shape
    with pytest.raises(DataError, match="no velocity"):
        ds.velocity("test")


def test_dataset_rejects_mismatched_recorded_gathers(survey):
    g = np.zeros((2, survey.n_shots + 1, survey.nt, survey.n_receivers), np.float32)
    ds = SeismicDataset("bad", survey=survey, gathers={"test": g})
    with pytest.raises(DataError, match="survey expects"):
        ds.gathers("test")


def test_lazy_velocity_is_validated_for_units(survey):
    ds = SeismicDataset("kms", survey=survey, velocity={"train": lambda: np.full((2, 1, 12, 12), 2.5)},
                        split_sizes={"train": 2})
    with pytest.raises(DataError, match="km/s"):
        ds.velocity("train")


# -- cache -----------------------------------------------------------------------
def test_simulation_is_cached_and_fits_normalization_on_train(survey, tmp_path):
    ds = _dataset(survey)
    physics = FakePhysics(survey)
    test = ds.gathers("test", physics, cache_dir=tmp_path, progress=False)
    # Asking for test fitted the scale on the training split, not on test.
    assert physics.simulated == 3 + 6
    train = ds.gathers("train")
    assert ds.normalization.data_min == pytest.approx(float(train.min()))
    assert test.shape == (3, survey.n_shots, survey.nt, survey.n_receivers)
    # A fresh dataset object with the same content hits the cache: no simulation at all.
    again = _dataset(survey)
    physics2 = FakePhysics(survey)
    np.testing.assert_array_equal(again.gathers("test", physics2, cache_dir=tmp_path, progress=False), test)
    assert physics2.simulated == 0


def test_cache_key_covers_physics_version_survey_and_content(survey, tmp_path):
    vel = _dataset(survey).velocity("train")
    ident = {"generator": "toy"}
    cached_gathers(vel, FakePhysics(survey), ident, cache_dir=tmp_path, progress=False)
    for physics, v, idn in [
        (FakePhysics(survey, version="2"), vel, ident),
        (FakePhysics(Survey.small(nz=12, nx=12, nt=30, n_sources=3)), vel, ident),
        (FakePhysics(survey), vel + 1, ident),
        (FakePhysics(survey), vel, {"generator": "toy", "seed": 1}),
    ]:
        cached_gathers(v, physics, idn, cache_dir=tmp_path, progress=False)
        assert physics.simulated == vel.shape[0]
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 5


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FWI_CACHE_DIR", str(tmp_path / "envcache"))
    assert default_cache_dir() == tmp_path / "envcache"
    monkeypatch.delenv("FWI_CACHE_DIR")
    assert "fwi-plugins" in str(default_cache_dir())


@pytest.mark.parametrize("damage", ["flip", "truncate", "no-record", "shape"])
def test_corrupt_cache_entry_is_detected_warned_and_rebuilt(survey, tmp_path, damage):
    vel = _dataset(survey).velocity("train")
    physics = FakePhysics(survey)
    good = cached_gathers(vel, physics, {}, cache_dir=tmp_path, progress=False)
    (entry,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    (npy,) = entry.glob("part-*.npy")
    record = npy.with_suffix(".json")
    if damage == "flip":
        raw = bytearray(npy.read_bytes())
        raw[-5] ^= 0xFF
        npy.write_bytes(bytes(raw))
    elif damage == "truncate":
        npy.write_bytes(npy.read_bytes()[:200])
    elif damage == "no-record":
        record.unlink()  # an interrupted write: data there, record not yet
    else:
        np.save(npy, good[:, :1])
    physics2 = FakePhysics(survey)
    with pytest.warns(CacheWarning, match="corrupt"):
        rebuilt = cached_gathers(vel, physics2, {}, cache_dir=tmp_path, progress=False)
    assert physics2.simulated == vel.shape[0]
    np.testing.assert_array_equal(rebuilt, good)
    physics3 = FakePhysics(survey)
    cached_gathers(vel, physics3, {}, cache_dir=tmp_path, progress=False)
    assert physics3.simulated == 0


def test_interrupted_simulation_resumes_from_finished_parts(survey, tmp_path, monkeypatch):
    import fwi_plugins.data.cache as cache

    monkeypatch.setattr(cache, "PART_SIZE", 2)
    vel = np.random.default_rng(3).uniform(1500, 4500, (5, 1, 12, 12)).astype(np.float32)

    class Interrupting(FakePhysics):
        def simulate(self, velocity):
            if self.simulated >= 4:
                raise KeyboardInterrupt
            return super().simulate(velocity)

    with pytest.raises(KeyboardInterrupt):
        cached_gathers(vel, Interrupting(survey), {}, cache_dir=tmp_path, progress=False, batch_size=2)
    physics = FakePhysics(survey)
    out = cached_gathers(vel, physics, {}, cache_dir=tmp_path, progress=False, batch_size=2)
    assert physics.simulated == 1  # only the last part was left
    np.testing.assert_array_equal(out, cached_gathers(vel, FakePhysics(survey), {}, cache_dir=tmp_path / "b",
                                                      progress=False))
    assert not list(tmp_path.rglob("*.part"))


def test_unstable_physics_output_is_an_error(survey, tmp_path):
    class Exploding(FakePhysics):
        def simulate(self, velocity):
            return super().simulate(velocity) * float("nan")

    with pytest.raises(DataError, match="unstable"):
        cached_gathers(_dataset(survey).velocity("val"), Exploding(survey), {}, cache_dir=tmp_path, progress=False)

"""The training loop: schedule, checkpoints, resume, seeds, label-free adaptation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from fwi_plugins.engine.training import train as T
from fwi_plugins.engine.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from fwi_plugins.engine.training.losses import ssim_torch
from fwi_plugins.engine.training.loop import lr_factor
from fwi_plugins.data.rows import RowStack
from fwi_plugins.engine.training.data import TrainData, WeightedShardSampler
from fwi_plugins.engine.training.validation import predict_unit
from fwi_plugins.engine.options import TrainOptions
from fwi_plugins.errors import ConfigError, DataError

torch.set_num_threads(1)

S, NT, R, Z, X = 2, 12, 6, 6, 6


class UnitScale:
    """Stand-in for the dataset Normalization: velocity 1500-4500 m/s to [-1, 1]."""

    vmin, vmax = 1500.0, 4500.0

    def velocity_to_unit(self, v):
        return (v - self.vmin) * (2.0 / (self.vmax - self.vmin)) - 1.0

    def velocity_from_unit(self, u):
        return (u + 1.0) * (0.5 * (self.vmax - self.vmin)) + self.vmin

    def gathers_to_unit(self, d):
        return d * 0.5


class LinearPhysics:
    """A fixed linear forward map: differentiable, cheap, with an exact answer."""

    version = "test-1"

    class survey:  # noqa: N801 - mimics the Survey attributes the loop reads
        vmin, vmax = 1500.0, 4500.0

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(123)
        self.operator = torch.randn(Z * X, S * NT * R, generator=g) / math.sqrt(Z * X)

    def simulate(self, velocity):
        flat = (velocity.reshape(len(velocity), -1) - 3000.0) / 1000.0
        return (flat @ self.operator.to(velocity.device)).reshape(-1, S, NT, R)

    def misfit(self, predicted, observed):
        return (predicted - observed).square().mean()


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(S * NT * R, 32)
        self.head = nn.Linear(32, Z * X)

    def forward(self, x):
        return torch.tanh(self.head(torch.relu(self.body(x.flatten(1))))).view(-1, 1, Z, X)


def make_data(n: int, seed: int = 0) -> TrainData:
    # Two-layer models: a family a network can learn from a handful of samples.
    rng = np.random.default_rng(seed)
    top = rng.uniform(1800, 2800, size=(n, 1, 1, 1))
    bottom = rng.uniform(3000, 4200, size=(n, 1, 1, 1))
    depth = rng.integers(1, Z - 1, size=(n, 1, 1, 1))
    v = np.where(np.arange(Z)[None, None, :, None] < depth, top, bottom) * np.ones((1, 1, 1, X))
    v = v.astype(np.float32)
    physics = LinearPhysics()
    with torch.no_grad():
        d = physics.simulate(torch.from_numpy(v)).numpy().astype(np.float32)
    return TrainData(gathers=d, velocity=v)


def build(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet()


def opts(**kw) -> TrainOptions:
    base = dict(epochs=3, batch_size=4, lr=3e-3, warmup_epochs=0.5, device="cpu", progress=False)
    base.update(kw)
    return TrainOptions(**base)


def params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_lr_schedule_warms_up_then_decays_to_min():
    f = [lr_factor(s, total_steps=10, warmup_steps=2, min_ratio=0.1) for s in range(10)]
    assert f[0] == pytest.approx(0.5) and f[1] == pytest.approx(1.0)
    assert f[2] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[2:], f[3:]))
    assert lr_factor(10, total_steps=10, warmup_steps=2, min_ratio=0.1) == pytest.approx(0.1)


def test_training_reduces_label_loss_and_calls_hooks(tmp_path):
    data, val = make_data(16), make_data(8, seed=1)
    calls = []
    model = build()
    result = T.train(model, data, val, options=opts(epochs=4), normalization=UnitScale(),
                     checkpoint_dir=tmp_path / "ckpt", run_dir=tmp_path,
                     notify=lambda hook, **kw: calls.append((hook, kw)))
    # Epoch 0 is the validation of the starting network (for select_best).
    assert [h["epoch"] for h in result.history] == [0, 1, 2, 3, 4]
    assert "train_loss" not in result.history[0] and "val_mae" in result.history[0]
    assert result.history[-1]["train_loss"] < result.history[1]["train_loss"]
    assert "val_mae" in result.history[-1] and "val_mae_ms" in result.history[-1]
    assert [c[0] for c in calls if c[0] != "fwi_train_step"] == ["fwi_epoch_end"] * 4
    assert calls[-1][1]["stage"] == "adapt" and calls[-1][1]["epoch"] == 4
    assert result.steps == 4 * 4
    # Only the last epoch folder is kept, and the pointer names it.
    assert json.loads((tmp_path / "ckpt" / "latest.json").read_text())["path"] == "epoch-0004"
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("epoch-*")) == ["epoch-0004"]


def test_train_step_hook_reports_every_n_steps_with_window_means(tmp_path):
    calls = []
    result = T.train(build(), make_data(16), None, options=opts(epochs=3, log_every_steps=5), normalization=UnitScale(),
                     run_dir=tmp_path, notify=lambda hook, **kw: calls.append((hook, kw)))
    steps = [kw for hook, kw in calls if hook == "fwi_train_step"]
    assert result.steps == 12 and [kw["step"] for kw in steps] == [5, 10]
    first = steps[0]
    assert first["stage"] == "adapt" and first["run_dir"] == tmp_path
    assert set(first["metrics"]) == {"loss", "label_loss", "lr", "samples_per_s", "epoch"}
    assert first["metrics"]["epoch"] == 2 and steps[1]["metrics"]["epoch"] == 3  # 4 steps per epoch
    assert first["metrics"]["samples_per_s"] > 0 and first["metrics"]["lr"] > 0
    # Step 5 is the first of epoch 2: its window holds that one step, whose loss is the label loss.
    assert first["metrics"]["loss"] == pytest.approx(first["metrics"]["label_loss"])
    epoch_1 = result.history[1]["train_loss"]
    assert first["metrics"]["loss"] < epoch_1 * 1.5


def test_train_step_hook_with_physics_and_switched_off():
    calls = []
    physics = LinearPhysics()
    T.train(build(), make_data(8), None, options=opts(epochs=1, batch_size=2, log_every_steps=2, lambda_physics=0.1),
            normalization=UnitScale(), physics=physics, notify=lambda hook, **kw: calls.append((hook, kw)))
    steps = [kw for hook, kw in calls if hook == "fwi_train_step"]
    assert [kw["step"] for kw in steps] == [2, 4] and "physics_loss" in steps[0]["metrics"]
    assert steps[0]["run_dir"] is None
    calls.clear()
    T.train(build(), make_data(8), None, options=opts(epochs=1, batch_size=2, log_every_steps=0),
            normalization=UnitScale(), notify=lambda hook, **kw: calls.append((hook, kw)))
    assert "fwi_train_step" not in [c[0] for c in calls]


def test_train_step_reports_are_not_prepared_when_no_plugin_implements_the_hook(monkeypatch):
    from fwi_plugins import hookimpl
    from fwi_plugins.engine.training import loop as L
    from fwi_plugins.manager import FWIPluginManager, PluginLoadWarning

    prepared = []
    real = L._report_step
    monkeypatch.setattr(L, "_report_step", lambda *a: (prepared.append(1), real(*a)))
    manager = FWIPluginManager(autoload=False).load_all()
    T.train(build(), make_data(8), None, options=opts(epochs=1, log_every_steps=1), normalization=UnitScale(),
            notify=manager.notify)
    assert prepared == []

    class Broken:
        @hookimpl
        def fwi_train_step(self, step):
            raise RuntimeError(f"observer broke at {step}")

    manager.register(Broken(), name="broken")
    with pytest.warns(PluginLoadWarning, match="observer broke at 1"):
        result = T.train(build(), make_data(8), None, options=opts(epochs=1, log_every_steps=1),
                         normalization=UnitScale(), notify=manager.notify)
    assert len(prepared) == 2 and result.steps == 2  # the raising observer did not stop training


def test_same_seed_same_result():
    a, b = build(), build()
    ra = T.train(a, make_data(12), make_data(4, 1), options=opts(), normalization=UnitScale())
    rb = T.train(b, make_data(12), make_data(4, 1), options=opts(), normalization=UnitScale())
    for k, v in params(a).items():
        assert torch.equal(v, params(b)[k])
    assert ra.history[-1]["val_mae"] == rb.history[-1]["val_mae"]
    c = build()
    T.train(c, make_data(12), None, options=opts(seed=1), normalization=UnitScale())
    assert any(not torch.equal(v, params(c)[k]) for k, v in params(a).items())


class Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    data, val = make_data(12), make_data(4, 1)
    whole = build()
    expected = T.train(whole, data, val, options=opts(epochs=4), normalization=UnitScale(),
                       checkpoint_dir=tmp_path / "a")

    def stop_after_epoch_2(hook, **kw):
        if kw["epoch"] == 2:
            raise Interrupt

    first = build()
    with pytest.raises(Interrupt):
        T.train(first, data, val, options=opts(epochs=4), normalization=UnitScale(),
                checkpoint_dir=tmp_path / "b", notify=stop_after_epoch_2)
    assert latest_checkpoint(tmp_path / "b").name == "epoch-0002"
    # A fresh process: new model object, different initial weights even; the checkpoint wins.
    again = build(seed=99)
    resumed = T.train(again, data, val, options=opts(epochs=4), normalization=UnitScale(),
                      checkpoint_dir=tmp_path / "b")
    assert resumed.resumed_from == 2
    for k, v in params(whole).items():
        assert torch.equal(v, params(again)[k]), k
    assert resumed.history == [dict(h, epoch_time=r["epoch_time"]) if "epoch_time" in h else h
                               for h, r in zip(expected.history, resumed.history)]
    assert resumed.best_epoch == expected.best_epoch
    assert resumed.steps == expected.steps


def test_finished_checkpoint_is_not_trained_again(tmp_path):
    data = make_data(8)
    model = build()
    T.train(model, data, None, options=opts(epochs=2), normalization=UnitScale(), checkpoint_dir=tmp_path)
    state = params(model)
    other = build(seed=5)
    result = T.train(other, data, None, options=opts(epochs=2), normalization=UnitScale(), checkpoint_dir=tmp_path)
    assert result.resumed_from == 2 and len(result.history) == 2
    for k, v in state.items():
        assert torch.equal(v, params(other)[k])


def test_resume_with_changed_settings_is_refused(tmp_path):
    data = make_data(8)
    T.train(build(), data, None, options=opts(epochs=1), normalization=UnitScale(), checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match="batch_size"):
        T.train(build(), data, None, options=opts(epochs=1, batch_size=2), normalization=UnitScale(),
                checkpoint_dir=tmp_path)


def test_half_written_checkpoint_is_ignored(tmp_path):
    data = make_data(8)
    T.train(build(), data, None, options=opts(epochs=1), normalization=UnitScale(), checkpoint_dir=tmp_path)
    # A folder without its state file is what a kill during a non-atomic write would leave.
    broken = tmp_path / "epoch-0002"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"garbage")
    assert latest_checkpoint(tmp_path).name == "epoch-0001"
    # Temporary files of an interrupted atomic write never look like checkpoints.
    assert not list(tmp_path.glob(".*.part"))


def test_checkpoint_never_pickles(tmp_path):
    model = build()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, S, NT, R)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path, epoch=1, model=model, optimizer=opt, state={"step": 1})
    assert sorted(p.name for p in path.iterdir()) == ["model.safetensors", "optimizer.safetensors", "state.json"]
    fresh = build(seed=3)
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    load_checkpoint(path, model=fresh, optimizer=opt2)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"][0]["betas"] == s2["param_groups"][0]["betas"]
    for pid, st in s1["state"].items():
        for key, value in st.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(s2["state"][pid][key]))


def test_label_free_adaptation_reduces_data_misfit():
    physics = LinearPhysics()
    data, val = make_data(16), make_data(8, 1)
    unlabelled = TrainData(gathers=data.gathers, velocity=None)
    model = build()
    before = _misfit(model, val, physics)
    result = T.train(model, unlabelled, TrainData(gathers=val.gathers, velocity=None),
                     options=opts(epochs=10, labels="none", lambda_physics=1.0, physics_samples=0, lr=1e-2),
                     normalization=UnitScale(), physics=physics)
    after = _misfit(model, val, physics)
    assert after < 0.3 * before, (before, after)
    assert "val_misfit" in result.final and "val_mae" not in result.final
    assert result.final["val_misfit"] == pytest.approx(after, rel=1e-4)


def _misfit(model, data, physics):
    unit = predict_unit(model, data.gathers, normalization=UnitScale())
    v = UnitScale().velocity_from_unit(torch.from_numpy(unit))
    return float(physics.misfit(physics.simulate(v), torch.from_numpy(data.gathers)))


def test_physics_term_joins_the_label_loss():
    physics = LinearPhysics()
    result = T.train(build(), make_data(8), None, options=opts(epochs=1, lambda_physics=0.5),
                     normalization=UnitScale(), physics=physics)
    h = result.history[-1]
    assert h["train_loss"] == pytest.approx(h["train_label_loss"] + 0.5 * h["train_physics_loss"], rel=1e-5)


def test_weighted_mixture_sampling_follows_weights():
    data = make_data(10)
    weights = np.array([1.0] * 5 + [0.0] * 5)
    sampler = WeightedShardSampler(weights, 40, rank=0, world_size=1, seed=0)
    assert all(i < 5 for i in sampler)
    shards = [list(WeightedShardSampler(np.ones(10), 9, rank=r, world_size=2, seed=0)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 5
    mixed = TrainData(gathers=data.gathers, velocity=data.velocity, weights=weights)
    result = T.train(build(), mixed, None, options=opts(epochs=1), normalization=UnitScale(), samples_per_epoch=12)
    assert result.steps == 3


def test_missing_labels_or_parameters_fail_clearly():
    data = make_data(4)
    with pytest.raises(ConfigError, match="labels"):
        T.train(build(), TrainData(gathers=data.gathers), None, options=opts(), normalization=UnitScale())
    frozen = build()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(ConfigError, match="trainable"):
        T.train(frozen, data, None, options=opts(), normalization=UnitScale())
    with pytest.raises(ConfigError, match="physics"):
        T.train(build(), data, None, options=opts(lambda_physics=1.0), normalization=UnitScale())
    with pytest.raises(DataError):
        TrainData(gathers=data.gathers, velocity=data.velocity[:2])


def test_row_stack_reads_rows_across_parts_without_concatenating():
    a, b = np.arange(12.0).reshape(3, 2, 2), np.arange(12.0, 20.0).reshape(2, 2, 2)
    stack = RowStack([a, b])
    whole = np.concatenate([a, b])
    assert len(stack) == 5 and stack.shape == (5, 2, 2) and stack.ndim == 3
    for index in ([4, 0, 3], [1], np.arange(5)):
        assert np.array_equal(stack[np.asarray(index)], whole[np.asarray(index)])
    assert np.array_equal(stack[1:4], whole[1:4])
    with pytest.raises(DataError):
        RowStack([a, np.zeros((1, 3, 2))])
    data = make_data(8)
    stacked = TrainData(gathers=RowStack([data.gathers[:5], data.gathers[5:]]),
                          velocity=RowStack([data.velocity[:5], data.velocity[5:]]))
    m1, m2 = build(), build()
    T.train(m1, data, data, options=opts(epochs=1), normalization=UnitScale())
    T.train(m2, stacked, stacked, options=opts(epochs=1), normalization=UnitScale())
    for k, v in params(m1).items():
        assert torch.equal(v, params(m2)[k])


def test_select_best_keeps_the_starting_network_when_training_only_hurts(tmp_path):
    data, val = make_data(8), make_data(4, 1)
    model = build()
    start = params(model)
    result = T.train(model, data, val, options=opts(epochs=2, lr=5.0, warmup_epochs=0), normalization=UnitScale(),
                     checkpoint_dir=tmp_path)
    assert result.best_epoch == 0
    assert result.final["epoch"] == 0
    for k, v in start.items():
        assert torch.equal(v, params(model)[k]), k
    # The selected weights travel with the checkpoint: a finished run reloads to the same choice.
    assert (latest_checkpoint(tmp_path) / "best.safetensors").is_file()
    again = build(seed=4)
    T.train(again, data, val, options=opts(epochs=2, lr=5.0, warmup_epochs=0), normalization=UnitScale(),
            checkpoint_dir=tmp_path)
    trainable = {n for n, p in again.named_parameters() if p.requires_grad}
    for k in trainable:
        assert torch.equal(start[k], params(again)[k]), k
    without = build()
    T.train(without, data, val, options=opts(epochs=2, lr=5.0, warmup_epochs=0, select_best=False),
            normalization=UnitScale())
    assert any(not torch.equal(v, params(without)[k]) for k, v in start.items())


def test_torch_ssim_matches_the_metric_and_has_gradients():
    from fwi_plugins.engine.metrics import ssim

    rng = np.random.default_rng(0)
    truth = rng.random((3, 1, 20, 24)).astype(np.float32)
    noisy = np.clip(truth + 0.1 * rng.standard_normal(truth.shape), 0, 1).astype(np.float32)
    pred = torch.from_numpy(noisy).requires_grad_(True)
    value = ssim_torch(pred, torch.from_numpy(truth))
    assert float(value.detach()) == pytest.approx(ssim(noisy, truth), abs=1e-5)
    assert float(ssim_torch(torch.from_numpy(truth), torch.from_numpy(truth))) == pytest.approx(1.0, abs=1e-6)
    value.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_structural_term_joins_the_label_loss():
    data = make_data(8)
    plain = T.train(build(), data, None, options=opts(epochs=1), normalization=UnitScale())
    both = T.train(build(), data, None, options=opts(epochs=1, lambda_ssim=0.5), normalization=UnitScale())
    # Same start, same first batch: the structural term (1 - SSIM > 0) adds to the L1 loss.
    assert both.history[-1]["train_label_loss"] > plain.history[-1]["train_label_loss"]
    with pytest.raises(ValueError, match="lambda_ssim"):
        opts(lambda_ssim=-1.0)


# -- step and wall-time budgets ------------------------------------------------------------
class DropNet(TinyNet):
    """TinyNet with dropout, so a resume that loses the random state shows in the weights."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        hidden = self.drop(torch.relu(self.body(x.flatten(1))))
        return torch.tanh(self.head(hidden)).view(-1, 1, Z, X)


def test_time_budget_stops_within_an_epoch_and_the_same_call_resumes_bit_identically(tmp_path):
    data, val = make_data(12), make_data(4, 1)
    torch.manual_seed(0)
    whole = DropNet()
    expected = T.train(whole, data, val, options=opts(epochs=2), normalization=UnitScale(),
                       checkpoint_dir=tmp_path / "a")
    assert expected.complete and expected.steps == 6

    # A budget spent at once: every call makes one step, checkpoints within the epoch and stops.
    calls, result = 0, None
    while result is None or not result.complete:
        # The first call starts where the uninterrupted run did; later ones from other weights,
        # which the checkpoint must override.
        torch.manual_seed(0 if calls == 0 else calls + 100)
        model = DropNet()
        result = T.train(model, data, val, options=opts(epochs=2, max_minutes=1e-9), normalization=UnitScale(),
                         checkpoint_dir=tmp_path / "b")
        calls += 1
        assert calls <= 6
    assert calls == 6 and result.steps == 6
    for k, v in params(whole).items():
        assert torch.equal(v, params(model)[k]), k
    assert [{k: v for k, v in h.items() if k != "epoch_time"} for h in result.history] == \
        [{k: v for k, v in h.items() if k != "epoch_time"} for h in expected.history]


def test_checkpoints_within_an_epoch_are_taken_and_resumed(tmp_path):
    data = make_data(12)
    T.train(build(), data, None, options=opts(epochs=1, max_minutes=1e-9), normalization=UnitScale(),
            checkpoint_dir=tmp_path)
    found = latest_checkpoint(tmp_path)
    assert found.name == "epoch-0000-step-00000001"
    state = json.loads((found / "state.json").read_text())
    assert state["partial"] == {"epoch": 1, "batch": 1, "sums": state["partial"]["sums"]}
    assert (found / "rng.safetensors").is_file()


def test_max_steps_ends_training_and_the_schedule_there(tmp_path):
    data = make_data(12)  # 3 steps per epoch
    result = T.train(build(), data, None, options=opts(epochs=5, max_steps=4, warmup_epochs=2 / 3),
                     normalization=UnitScale(), checkpoint_dir=tmp_path)
    assert (result.steps, result.epochs, result.complete) == (4, 2, True)
    # Warm-up of 2 steps, cosine over the remaining 2: the 4th step (index 3) is half-way down.
    assert result.history[-1]["lr"] == pytest.approx(3e-3 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    again = T.train(build(), data, None, options=opts(epochs=5, max_steps=4, warmup_epochs=2 / 3),
                    normalization=UnitScale(), checkpoint_dir=tmp_path)
    assert again.steps == 4 and len(again.history) == 2


class CachedLinearPhysics(LinearPhysics):
    """The linear physics with the survey the simulation cache keys on."""

    name = "linear-cached"

    class survey:  # noqa: N801 - mimics the Survey attributes the cache and the loop read
        vmin, vmax = 1500.0, 4500.0
        nz, nx, n_shots, nt, n_receivers = Z, X, S, NT, R

        @staticmethod
        def to_dict():
            return {"nz": Z, "nx": X, "shots": S, "nt": NT, "receivers": R}


class RowsRead(RowStack):
    """A RowStack that remembers the most rows read from it at once."""

    def __init__(self, parts) -> None:
        super().__init__(parts)
        self.largest = 0

    def __getitem__(self, index):
        rows = super().__getitem__(index)
        self.largest = max(self.largest, len(rows))
        return rows


def test_training_on_memory_mapped_cache_parts_reads_batches_and_matches_in_memory(tmp_path, monkeypatch):
    import warnings

    import fwi_plugins.data.cache as cache

    monkeypatch.setattr(cache, "PART_SIZE", 3)
    physics = CachedLinearPhysics()

    def mapped(v, split):
        g = cache.cached_gathers(v, physics, {"split": split}, cache_dir=tmp_path, progress=False, mmap=True)
        assert len(g.parts) == math.ceil(len(v) / 3)
        assert all(isinstance(p, np.memmap) and not p.flags.writeable for p in g.parts)
        return RowsRead([g])

    train_v, val_v = make_data(8).velocity, make_data(6, 1).velocity
    train_g, val_g = mapped(train_v, "train"), mapped(val_v, "val")
    options = opts(epochs=2, lambda_physics=0.5, eval_batch_size=2)
    m1, m2 = build(), build()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about non-writable arrays (a memory map's rows)
        r1 = T.train(m1, TrainData(gathers=train_g, velocity=train_v), TrainData(gathers=val_g, velocity=val_v),
                     options=options, normalization=UnitScale(), physics=physics)
    # One batch at a time, validation included: never the whole split at once.
    assert 0 < train_g.largest <= options.batch_size and 0 < val_g.largest <= options.eval_batch_size
    r2 = T.train(m2, TrainData(gathers=train_g[:], velocity=train_v), TrainData(gathers=val_g[:], velocity=val_v),
                 options=options, normalization=UnitScale(), physics=physics)
    for k, v in params(m1).items():
        assert torch.equal(v, params(m2)[k])
    def scores(history):
        return [{k: v for k, v in h.items() if k != "epoch_time"} for h in history]

    assert scores(r1.history) == scores(r2.history) and "val_misfit" in r1.history[-1]

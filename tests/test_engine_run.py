"""The main job and pretraining, end to end at tiny sizes, through a fresh plugin registry.

A stand-in physics (a fixed linear map, registered as a plugin) keeps these fast and
independent of the wave-equation plugin; the real deepwave path is exercised by the
slow test at the end.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from fwi_plugins import PhysicsSpec, hookimpl
from fwi_plugins.engine.config import Component, RunConfig, load_config
from fwi_plugins.errors import ConfigError, OptionError
from fwi_plugins.manager import FWIPluginManager

torch.set_num_threads(1)

TINY_VIT = {"size": "tiny", "dim": "16", "depth": "1", "heads": "2", "decoder_dim": "8", "patch_time": "50",
            "patch_receiver": "4"}
TINY_DATA = {"n_train": "8", "n_val": "2", "n_test": "4", "nz": "16", "nx": "16", "survey": "small"}


class LinearPhysics:
    """Each trace is a fixed random mix of the velocity column under its receiver."""

    def __init__(self, options, *, survey) -> None:
        self.survey = survey
        self.version = "linear-1"
        g = torch.Generator().manual_seed(7)
        self.kernel = torch.randn(survey.n_shots, survey.nt, survey.nz, generator=g) / math.sqrt(survey.nz)
        self.columns = torch.tensor([int(round(r[1])) for r in survey.receivers])

    def simulate(self, velocity):
        v = (velocity[:, 0, :, self.columns] - 3000.0) / 1000.0  # (B, Z, R)
        return torch.einsum("stz,bzr->bstr", self.kernel.to(velocity.device), v)

    def misfit(self, predicted, observed):
        return (predicted - observed).square().mean()


class StandIns:
    @hookimpl
    def fwi_physics(self):
        yield PhysicsSpec(name="linear-test", factory=LinearPhysics, description="linear stand-in physics")


@pytest.fixture
def manager(tmp_path, monkeypatch):
    monkeypatch.setenv("FWI_CACHE_DIR", str(tmp_path / "cache"))
    m = FWIPluginManager(autoload=False).load_all()
    m.register(StandIns(), name="stand-ins")
    m._registry = None
    return m


def run_config(tmp_path, **options) -> RunConfig:
    base = {"epochs": 2, "batch_size": 4, "lr": 3e-3, "device": "cpu", "progress": False, "n_misfit": 2,
            "refine_samples": 1, "refine_iterations": 2, "figures": False, "pretrained": "none"}
    base.update(options)
    return RunConfig(command="run", out=str(tmp_path / "run"), options=base, components={
        "backbone": (Component("vit", TINY_VIT),), "peft": (Component("lora", {"r": "2"}),),
        "physics": (Component("linear-test"),), "dataset": (Component("flatvel-a", TINY_DATA),)})


def test_run_writes_a_complete_run_directory(tmp_path, manager):
    from fwi_plugins.engine.jobs.run import run

    calls = []
    config = run_config(tmp_path, figures=True, pretrained="none")
    metrics = run(config, get_spec=manager.get, notify=lambda hook, **kw: calls.append((hook, kw)),
                  summary=False)
    out = tmp_path / "run"
    for name in ("config.toml", "config.json", "metrics.json", "adapter/adapter_config.json",
                 "adapter/normalization.json", "predictions/truth.nc", "predictions/zero-shot.nc",
                 "predictions/adapted.nc", "predictions/refined.nc", "figures/velocity.png", "figures/loss.png",
                 "figures/gathers.png", "checkpoints/latest.json"):
        assert (out / name).is_file(), name
    assert list((out / "adapter").glob("*.safetensors"))
    readme = (out / "adapter" / "README.md").read_text()  # the run's own, not peft's empty model card
    assert "lora" in readme and "flatvel-a" in readme and "Model Card" not in readme
    assert f"SSIM {metrics['adapted']['ssim']:.4f}" in readme
    assert not list(out.rglob("*.part"))
    on_disk = json.loads((out / "metrics.json").read_text())
    for stage in ("zero_shot", "adapted", "refined", "adapted_on_refined"):
        assert {"mae", "rmse", "ssim", "mae_ms"} <= set(on_disk[stage]), stage
    assert "data_misfit" in on_disk["adapted"] and on_disk["adapted"]["n_misfit"] == 2
    assert on_disk["refined"]["n_samples"] == 1
    assert metrics["adapted"]["ssim"] == on_disk["adapted"]["ssim"]
    assert 0 < metrics["parameters"]["trainable"] < metrics["parameters"]["total"]
    assert metrics["pretrained"] == "none"
    hooks = [c[0] for c in calls]
    assert hooks[0] == "fwi_run_started" and hooks[-1] == "fwi_run_finished"
    assert hooks.count("fwi_epoch_end") == 2
    assert sorted(kw["stage"] for h, kw in calls if h == "fwi_predictions_ready") == ["adapted", "refined",
                                                                                      "zero-shot"]
    # The written configuration runs again as it is, and finds its finished training.
    again = load_config(out / "config.toml")
    assert again.resolve(manager.get).config.to_dict() == json.loads((out / "config.json").read_text())
    metrics2 = run(again, get_spec=manager.get, summary=False)
    assert metrics2["training"]["resumed_from"] == 2
    assert metrics2["adapted"] == metrics["adapted"]


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, manager):
    from fwi_plugins.engine.jobs.run import run

    whole = run(run_config(tmp_path / "whole", epochs=3, refine_samples=0), get_spec=manager.get, summary=False)

    def kill_after_first_epoch(hook, **kw):
        if hook == "fwi_epoch_end" and kw["epoch"] == 1:
            raise KeyboardInterrupt

    config = run_config(tmp_path / "killed", epochs=3, refine_samples=0)
    with pytest.raises(KeyboardInterrupt):
        run(config, get_spec=manager.get, notify=kill_after_first_epoch, summary=False)
    out = tmp_path / "killed" / "run"
    assert (out / "checkpoints" / "epoch-0001" / "state.json").is_file()
    assert not (out / "metrics.json").exists() and not list(out.rglob("*.part"))
    resumed = run(config, get_spec=manager.get, summary=False)
    assert resumed["training"]["resumed_from"] == 1
    assert resumed["adapted"] == whole["adapted"]
    assert resumed["training"]["history"][-1]["train_loss"] == whole["training"]["history"][-1]["train_loss"]


def test_a_run_resumes_only_from_the_foundation_weights_it_started_from(tmp_path, manager):
    """Weights replaced under the same path (a new shipped foundation) must not resume an old adapter."""
    from fwi_plugins.engine.jobs.start import io_shape, resolve
    from fwi_plugins.engine.jobs.run import run
    from fwi_plugins.weights import save_weights

    resolved = resolve(run_config(tmp_path), manager.get)
    survey = resolved.spec("dataset").load()(resolved.component_option("dataset")).survey
    torch.manual_seed(3)
    foundation = resolved.spec("backbone").load()(resolved.component_option("backbone"), shape=io_shape(survey))
    path = tmp_path / "foundation.safetensors"
    save_weights(foundation, path)
    config = run_config(tmp_path, pretrained=str(path), epochs=1, refine_samples=0)
    first = run(config, get_spec=manager.get, summary=False)
    assert len(first["pretrained_digest"]) == 64  # recorded with the metrics
    assert run(config, get_spec=manager.get, summary=False)["training"]["resumed_from"] == 1  # same weights
    with torch.no_grad():
        next(foundation.parameters()).add_(0.01)  # one tensor changed, the file's name kept
    save_weights(foundation, path)
    with pytest.raises(ConfigError, match="started from other weights.*Use another output directory"):
        run(config, get_spec=manager.get, summary=False)
    elsewhere = run(config.with_updates(out=str(tmp_path / "new")), get_spec=manager.get, summary=False)
    assert elsewhere["training"]["resumed_from"] == 0 and elsewhere["zero_shot"] != first["zero_shot"]
    assert elsewhere["pretrained_digest"] != first["pretrained_digest"]


def test_same_seed_same_metrics(tmp_path, manager):
    from fwi_plugins.engine.jobs.run import run

    a = run(run_config(tmp_path / "a", refine_samples=0), get_spec=manager.get, summary=False)
    b = run(run_config(tmp_path / "b", refine_samples=0), get_spec=manager.get, summary=False)
    assert a["adapted"] == b["adapted"] and a["zero_shot"] == b["zero_shot"]


def test_adaptation_improves_on_zero_shot(tmp_path, manager):
    from fwi_plugins.engine.jobs.run import run

    metrics = run(run_config(tmp_path, epochs=6, lr=5e-3, refine_samples=0, n_misfit=0, select_best=False),
                  get_spec=manager.get,
                  summary=False)
    assert metrics["adapted"]["mae"] < metrics["zero_shot"]["mae"]


def test_label_free_run_reduces_data_misfit(tmp_path, manager):
    from fwi_plugins.engine.jobs.run import run

    # Full fine-tuning: at this tiny size a rank-2 LoRA learns too little in six epochs to show.
    config = run_config(tmp_path, labels="none", lambda_physics=1.0, physics_samples=0, epochs=6, lr=5e-3,
                        refine_samples=0, n_misfit=4).with_updates(components={"peft": [Component("full")]})
    metrics = run(config, get_spec=manager.get, summary=False)
    assert metrics["training"]["best_epoch"] > 0
    assert metrics["adapted"]["data_misfit"] < metrics["zero_shot"]["data_misfit"]
    assert "val_misfit" in metrics["training"]["history"][-1]


def test_changed_config_in_an_existing_run_dir_is_refused(tmp_path, manager):
    from fwi_plugins.engine.jobs.run import run

    run(run_config(tmp_path, epochs=1, refine_samples=0), get_spec=manager.get, summary=False)
    with pytest.raises(ConfigError, match="options.epochs"):
        run(run_config(tmp_path, epochs=2, refine_samples=0), get_spec=manager.get, summary=False)


def test_labels_needed_but_missing_fails_before_training(tmp_path, manager, monkeypatch):
    from fwi_plugins.engine.jobs import run as run_module

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr("fwi_plugins.engine.training.train.train", no_training)
    with pytest.raises(OptionError, match="lambda_physics"):
        run_config(tmp_path, labels="none").resolve(manager.get)
    with pytest.raises(Exception, match="epochs"):
        run_module.run(run_config(tmp_path, epochs=0), get_spec=manager.get, summary=False)
    assert not (tmp_path / "run").exists()


def test_pretrain_mixture_writes_weights_and_model_card(tmp_path, manager):
    from fwi_plugins.engine.jobs.pretrain import pretrain
    from fwi_plugins.engine.training.data import mixture_weights
    from fwi_plugins.engine.jobs.run import run

    config = RunConfig(command="pretrain", out=str(tmp_path / "pre"), components={
        "backbone": (Component("vit", TINY_VIT),), "physics": (Component("linear-test"),),
        "dataset": (Component("flatvel-a", TINY_DATA), Component("curvevel-a", TINY_DATA))},
        options={"epochs": 2, "batch_size": 4, "device": "cpu", "progress": False, "weights": "1,3",
                 "samples_per_epoch": 8})
    metrics = pretrain(config, get_spec=manager.get, summary=False)
    out = tmp_path / "pre"
    for name in ("weights.safetensors", "model_card.md", "model_card.json", "config.toml", "metrics.json"):
        assert (out / name).is_file(), name
    card = json.loads((out / "model_card.json").read_text())
    assert [d["name"] for d in card["data"]] == ["flatvel-a", "curvevel-a"]
    assert card["data"][1]["sampling_share"] == pytest.approx(0.75)
    assert card["steps"] == 4 and card["seed"] == 0 and card["hardware"]["device"] == "cpu"
    assert set(card["validation_by_dataset"]) == {"flatvel-a", "curvevel-a"}
    assert "val_mae" in metrics["validation"]
    text = (out / "model_card.md").read_text()
    assert "flatvel-a" in text and "Reproduce" in text
    from safetensors import safe_open

    with safe_open(str(out / "weights.safetensors"), framework="pt") as f:
        meta = f.metadata()
    assert meta["backbone"] == "vit" and "normalization" in meta

    w = mixture_weights([2, 6], (1.0, 1.0))
    assert w[:2].sum() == pytest.approx(0.5) and w.sum() == pytest.approx(1.0)

    # A run naming only the backbone builds it the way the weights were trained.
    from fwi_plugins.engine.jobs.start import resolve

    weights = str(out / "weights.safetensors")
    bare = run_config(tmp_path, pretrained=weights).with_updates(components={"backbone": [Component("vit")]})
    assert resolve(bare, manager.get).config.components["backbone"][0].options["dim"] == 16
    other = bare.with_updates(components={"backbone": [Component("inversionnet")]})
    with pytest.raises(ConfigError, match="backbone 'vit'"):
        resolve(other, manager.get)

    # The foundation weights feed the main job, with the normalisation they were trained with.
    metrics = run(run_config(tmp_path, pretrained=str(out / "weights.safetensors"), epochs=1, refine_samples=0),
                  get_spec=manager.get, summary=False)
    assert metrics["pretrained"].endswith("weights.safetensors")
    assert metrics["dataset"]["normalization"] == json.loads(meta["normalization"])


@pytest.mark.slow
def test_main_job_with_deepwave_at_tiny_size(tmp_path, monkeypatch):
    pytest.importorskip("deepwave")
    from fwi_plugins.engine.jobs.run import run

    monkeypatch.setenv("FWI_CACHE_DIR", str(tmp_path / "cache"))
    manager = FWIPluginManager().load_all()  # entry points too: deepwave is a plugin distribution
    if "deepwave" not in manager.components("physics"):
        pytest.skip("the fwi-deepwave plugin is not installed")
    config = run_config(tmp_path, epochs=2).with_updates(components={"physics": [Component("deepwave")]})
    metrics = run(config, get_spec=manager.get, summary=False)
    assert np.isfinite(metrics["refined"]["data_misfit"])


def test_default_weights_of_a_backbone_that_ships_none_warn_and_start_from_scratch(manager):
    from fwi_plugins.engine.jobs.run import load_foundation

    spec = manager.get("backbone", "inversionnet")
    assert not spec.pretrained
    with pytest.warns(UserWarning, match="ships no pretrained weights"):
        assert load_foundation(object(), spec, "default") == {"source": "none", "metadata": {}, "digest": "",
                                                              "config": None}


# -- fwi pretrain -o init=...: pretraining continues from given weights, on their scale --
def pretrain_config(out, **options) -> RunConfig:
    base = {"epochs": 1, "batch_size": 4, "device": "cpu", "progress": False, "samples_per_epoch": 4,
            "select_best": False}
    base.update(options)
    return RunConfig(command="pretrain", out=str(out), options=base, components={
        "backbone": (Component("vit", TINY_VIT),), "physics": (Component("linear-test"),),
        "dataset": (Component("flatvel-a", TINY_DATA),)})


def test_init_starts_from_the_given_weights_and_keeps_their_normalisation(tmp_path, manager):
    from fwi_plugins.engine.jobs.pretrain import pretrain

    pretrain(pretrain_config(tmp_path / "first"), get_spec=manager.get, summary=False)
    first = str(tmp_path / "first" / "weights.safetensors")
    with safe_open(first, framework="pt") as f:
        first_norm = json.loads(f.metadata()["normalization"])

    # lr ~ 0: a continued pretraining that starts from `first` must end (almost) where it began,
    # and one that starts from random weights must not.
    pretrain(pretrain_config(tmp_path / "cont", init=first, lr=1e-12, weight_decay=0.0), get_spec=manager.get,
             summary=False)
    pretrain(pretrain_config(tmp_path / "fresh", lr=1e-12, weight_decay=0.0, seed=5), get_spec=manager.get,
             summary=False)
    a = load_file(first)
    cont = load_file(str(tmp_path / "cont" / "weights.safetensors"))
    fresh = load_file(str(tmp_path / "fresh" / "weights.safetensors"))
    assert all((a[k] - cont[k]).abs().max() < 1e-6 for k in a)
    assert any((a[k] - fresh[k]).abs().max() > 1e-3 for k in a)

    with safe_open(str(tmp_path / "cont" / "weights.safetensors"), framework="pt") as f:
        assert json.loads(f.metadata()["normalization"]) == first_norm
    card = json.loads((tmp_path / "cont" / "model_card.json").read_text())
    assert card["init"] == first
    assert "Initialised from the weights" in (tmp_path / "cont" / "model_card.md").read_text()


def test_init_that_does_not_fit_names_the_option(tmp_path, manager):
    from fwi_plugins.engine.jobs.pretrain import pretrain

    with pytest.raises(ConfigError, match="option 'init'.*does not exist"):
        pretrain(pretrain_config(tmp_path / "x", init=str(tmp_path / "nothing.safetensors")), get_spec=manager.get,
                 summary=False)
    pretrain(pretrain_config(tmp_path / "first"), get_spec=manager.get, summary=False)
    wider = dict(TINY_VIT, dim="32")
    config = pretrain_config(tmp_path / "y", init=str(tmp_path / "first" / "weights.safetensors"))
    config = config.with_updates(components={"backbone": [Component("vit", wider)]})
    with pytest.raises(ConfigError, match="option 'init'.*does not fit"):
        pretrain(config, get_spec=manager.get, summary=False)


# -- self-training (labels="self") ------------------------------------------------------------
# Targets are the network's predictions refined by FWI, kept only where refinement explained the
# data better, and the rounds resume without refining again. The targets are checked against
# refine() called directly and the misfits against the squared residual computed here.


def self_config(tmp_path, **options) -> RunConfig:
    base = {"labels": "self", "self_rounds": 2, "self_samples": 4, "self_keep": 0.0, "epochs": 2,
            "refine_iterations": 3, "refine_lr": 0.02, "refine_samples": 0}
    base.update(options)
    return run_config(tmp_path, **base)


def squared_residual(physics, velocity, observed) -> np.ndarray:
    with torch.no_grad():
        simulated = physics.simulate(torch.from_numpy(velocity)).numpy()
    return ((simulated - observed) ** 2).mean(axis=(1, 2, 3))


def test_round_targets_are_refined_predictions_kept_where_the_misfit_fell(tmp_path):
    from fwi_plugins.data import Normalization
    from fwi_plugins.engine.options import RunOptions
    from fwi_plugins.engine.refinement.refine import refine
    from fwi_plugins.engine.training.self_training import refine_options, round_targets
    from fwi_plugins.survey import Survey

    survey = Survey.small(nz=16, nx=16)
    physics = LinearPhysics({}, survey=survey)
    rng = np.random.default_rng(0)
    truth = rng.uniform(2000, 4000, (6, 1, 16, 16)).astype(np.float32)
    with torch.no_grad():
        gathers = physics.simulate(torch.from_numpy(truth)).numpy()
    normalization = Normalization(vmin=survey.vmin, vmax=survey.vmax).fit_gathers(gathers)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(16 * 16), torch.nn.Tanh(),
                                torch.nn.Unflatten(1, (1, 16, 16)))
    opts = RunOptions(refine_iterations=4, refine_lr=0.05, self_keep=0.3, device="cpu", progress=False)
    indices = np.array([1, 3, 4])
    targets = round_targets(model, gathers, indices, physics=physics, normalization=normalization, opts=opts,
                            device="cpu", progress=False)

    from fwi_plugins.engine.training.validation import predict_unit

    predicted = np.clip(normalization.velocity_from_unit(
        predict_unit(model, gathers[indices], normalization=normalization)), survey.vmin, survey.vmax)
    expected = refine(predicted, gathers[indices], physics=physics, progress=False,
                      **refine_options(opts, survey.vmin, survey.vmax)).velocity
    np.testing.assert_allclose(targets.velocity, expected, rtol=0, atol=1e-3)
    before = squared_residual(physics, predicted.astype(np.float32), gathers[indices])
    after = squared_residual(physics, expected, gathers[indices])
    np.testing.assert_allclose(targets.misfit_before, before, rtol=1e-4)
    np.testing.assert_allclose(targets.misfit_after, after, rtol=1e-4)
    np.testing.assert_array_equal(targets.keep, after <= 0.7 * before)
    np.testing.assert_array_equal(targets.indices, indices)


def test_self_training_run_adapts_in_rounds_and_resumes_without_refining_again(tmp_path, manager,
                                                                               monkeypatch):
    from fwi_plugins.engine.training import self_training
    from fwi_plugins.engine.jobs.run import run

    metrics = run(self_config(tmp_path), get_spec=manager.get, summary=False)
    out = tmp_path / "run"
    rounds = metrics["self_training"]
    assert [r["round"] for r in rounds] == [0, 1]
    for r in rounds:
        saved = np.load(out / "self-training" / f"round-{r['round']}.npz")
        assert r["refined"] == len(saved["indices"]) == 4
        assert r["kept"] == int(saved["keep"].sum())
        assert r["misfit_after"] < r["misfit_before"]
    assert not np.array_equal(np.load(out / "self-training" / "round-0.npz")["indices"],
                              np.load(out / "self-training" / "round-1.npz")["indices"])
    assert [h["round"] for h in metrics["training"]["history"] if h["epoch"] > 0] == [0, 1]
    # Without labels the validation split is scored by the data misfit, so selection works in each round.
    assert all("val_misfit" in h for h in metrics["training"]["history"])
    assert metrics["training"]["best_epoch"] is not None
    assert json.loads((out / "metrics.json").read_text())["self_training"] == rounds

    def no_refinement(*args, **kwargs):
        raise AssertionError("a finished round was refined again")

    monkeypatch.setattr(self_training, "round_targets", no_refinement)
    again = run(self_config(tmp_path), get_spec=manager.get, summary=False)
    assert again["adapted"] == metrics["adapted"]


def test_self_training_options_are_checked(tmp_path, manager):
    from fwi_plugins.engine.config import Component

    with pytest.raises(OptionError, match="self_keep"):
        self_config(tmp_path, self_keep=1.0).resolve(manager.get)
    with pytest.raises(OptionError, match="self_samples"):
        self_config(tmp_path, self_samples=0).resolve(manager.get)
    no_physics = self_config(tmp_path)
    components = dict(no_physics.components)
    components.pop("physics")
    with pytest.raises(ConfigError, match="physics"):
        RunConfig(command="run", out=no_physics.out, options=no_physics.options,
                  components=components).resolve(manager.get)
    pretrain = RunConfig(command="pretrain", out=str(tmp_path / "pre"), options={"labels": "self"},
                         components={"backbone": (Component("vit", {"size": "tiny"}),),
                                     "physics": (Component("linear-test"),),
                                     "dataset": (Component("flatvel-a", {}),)})
    with pytest.raises(OptionError, match="only fwi run"):
        pretrain.resolve(manager.get)


def test_pretrain_mixture_keeps_each_family_of_a_repeated_dataset(tmp_path, manager):
    """Two families of one dataset (two OpenFWI families, or one generator with two seeds) are
    validated and listed apart, not the second under the first's name."""
    from fwi_plugins.engine.jobs.pretrain import pretrain

    other_seed = dict(TINY_DATA, seed="7")
    config = pretrain_config(tmp_path / "pre").with_updates(components={"dataset": [
        Component("flatvel-a", TINY_DATA), Component("flatvel-a", other_seed)]})
    metrics = pretrain(config, get_spec=manager.get, summary=False)
    per_family = metrics["validation_by_dataset"]
    assert list(per_family) == ["flatvel-a#1", "flatvel-a#2"]
    # Different maps validate differently: each entry is its own family's, not a copy.
    assert per_family["flatvel-a#1"]["mae"] != per_family["flatvel-a#2"]["mae"]
    card = json.loads((tmp_path / "pre" / "model_card.json").read_text())
    assert [d["name"] for d in card["data"]] == ["flatvel-a#1", "flatvel-a#2"]
    with safe_open(str(tmp_path / "pre" / "weights.safetensors"), framework="pt") as f:
        assert json.loads(f.metadata()["datasets"]) == ["flatvel-a#1", "flatvel-a#2"]


def test_dataset_labels_name_openfwi_families_by_their_family_option():
    from types import SimpleNamespace

    from fwi_plugins.engine.jobs.pretrain_outputs import dataset_labels

    def dataset(name, **options):
        return SimpleNamespace(name=name, attrs={"options": options})

    labels = dataset_labels([dataset("salt"), dataset("openfwi", family="flatvel-a"),
                             dataset("openfwi", family="curvevel-a"), dataset("openfwi", family="curvevel-a")])
    assert labels == ["salt", "openfwi:flatvel-a", "openfwi:curvevel-a#3", "openfwi:curvevel-a#4"]


def test_pretrain_trains_and_validates_on_memory_mapped_cache_parts(tmp_path, manager, monkeypatch):
    from fwi_plugins.engine.training import train as train_module
    from fwi_plugins.engine.jobs.pretrain import pretrain

    seen = {}
    real_train = train_module.train

    def spy(model, train_data, val_data, **kwargs):
        seen["train"], seen["val"] = train_data, val_data
        return real_train(model, train_data, val_data, **kwargs)

    monkeypatch.setattr(train_module, "train", spy)
    config = pretrain_config(tmp_path / "pre").with_updates(components={"dataset": [
        Component("flatvel-a", TINY_DATA), Component("curvevel-a", TINY_DATA)]})
    metrics = pretrain(config, get_spec=manager.get, summary=False)
    for split, data in seen.items():
        # Simulated gathers stay in the cache's files: every part is a read-only memory map.
        assert len(data.gathers.parts) == 2, split
        assert all(isinstance(p, np.memmap) and not p.flags.writeable for p in data.gathers.parts), split
    assert set(metrics["validation_by_dataset"]) == {"flatvel-a", "curvevel-a"}
    assert np.isfinite(metrics["validation"]["val_mae"])

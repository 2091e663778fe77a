"""Engine configuration: option validation, files, resolution against the registry."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fwi_plugins import options as opt
from fwi_plugins.engine.config import Component, RunConfig, load_config, run_device
from fwi_plugins.engine.options import PretrainOptions, RunOptions, TrainOptions
from fwi_plugins.settings_files import to_toml
from fwi_plugins.errors import ConfigError, OptionError, UnknownNameError


@dataclasses.dataclass(frozen=True, kw_only=True)
class SizeOptions:
    size: str = opt.option("tiny", "network size", choices=("tiny", "small"))
    depth: int = opt.option(2, "layers")


@dataclasses.dataclass(frozen=True)
class FakeSpec:
    name: str
    options: type | None = None
    requires: tuple[str, ...] = ()

    def parse_options(self, values):
        return opt.parse(self.options, values, owner=f"x {self.name}")

    def missing_requirements(self):
        return list(self.requires)


REGISTRY = {
    "backbone": {"vit": FakeSpec("vit", SizeOptions)},
    "peft": {"lora": FakeSpec("lora"), "broken": FakeSpec("broken", requires=("not_a_module",))},
    "physics": {"deepwave": FakeSpec("deepwave")},
    "dataset": {"flatvel-a": FakeSpec("flatvel-a"), "curvevel-a": FakeSpec("curvevel-a")},
}


def get_spec(kind, name):
    key = name.lower().replace("_", "-")
    if key not in REGISTRY[kind]:
        raise UnknownNameError(kind, name, REGISTRY[kind])
    return REGISTRY[kind][key]


def run_config(**options) -> RunConfig:
    return RunConfig(command="run", components={
        "backbone": (Component("vit", {"size": "tiny"}),), "peft": (Component("lora"),),
        "physics": (Component("deepwave"),), "dataset": (Component("flatvel-a"),)}, options=options)


def test_defaults_are_valid_and_documented():
    for cls in (TrainOptions, RunOptions, PretrainOptions):
        cls()
        for info in opt.describe(cls):
            assert info.help, info.name


@pytest.mark.parametrize(("key", "value"), [
    ("epochs", "0"), ("batch_size", "-1"), ("lr", "0"), ("lr", "abc"), ("weight_decay", "-1"),
    ("labels", "some"), ("device", "tpu"), ("train_fraction", "1.5"), ("refine_samples", "-2"),
    ("warmup_epochs", "nan"), ("min_lr_ratio", "2"), ("pretrained", " "), ("refine_frequencies", "5,-1"),
    ("lambda_ssim", "-1"), ("refine_step", "newton"), ("refine_smooth", "inf"), ("refine_mute", "-1"),
    ("refine_mute", "1.5"), ("refine_depth_power", "nan"), ("refine_tv", "-0.1"), ("refine_prior", "inf"),
    ("refine_time_limit", "-5"),
])
def test_bad_run_option_fails_naming_the_key(key, value):
    with pytest.raises(OptionError, match=key):
        run_config(**{key: value}).resolve(get_spec)


def test_refine_shaping_options_default_to_the_rule_and_reach_refine():
    from fwi_plugins.engine.training.self_training import refine_options

    default = run_config().resolve(get_spec).options
    assert default.refine_step == "lbfgs"
    assert refine_options(default, 1500.0, 4500.0) == {
        "iterations": 10, "lr": 0.01, "step": "lbfgs", "smooth": None, "mute": None, "depth_power": None,
        "tv": None, "prior": 0.0, "time_limit": None, "frequencies": None, "vmin": 1500.0, "vmax": 4500.0}
    given = run_config(refine_step="adam", refine_smooth="1.5", refine_mute="2", refine_depth_power="0.5",
                       refine_tv="0", refine_prior="0.1", refine_time_limit="30").resolve(get_spec).options
    assert {k: v for k, v in refine_options(given, 1500.0, 4500.0).items() if k not in ("vmin", "vmax")} == {
        "iterations": 10, "lr": 0.01, "step": "adam", "smooth": 1.5, "mute": 2, "depth_power": 0.5, "tv": 0.0,
        "prior": 0.1, "time_limit": 30.0, "frequencies": None}
    # "none" on the command line means the rule's own value again.
    assert run_config(refine_smooth="none", refine_mute="none").resolve(get_spec).options.refine_mute is None


def test_label_free_needs_physics_weight():
    with pytest.raises(OptionError, match="lambda_physics"):
        run_config(labels="none").resolve(get_spec)
    resolved = run_config(labels="none", lambda_physics="1").resolve(get_spec)
    assert resolved.options.labels == "none" and resolved.options.lambda_physics == 1.0


def test_unknown_keys_say_did_you_mean():
    with pytest.raises(UnknownNameError, match="Did you mean 'epochs'"):
        run_config(epoch="3").resolve(get_spec)
    with pytest.raises(UnknownNameError, match="Did you mean 'options'"):
        RunConfig.from_dict({"command": "run", "option": {}})
    with pytest.raises(UnknownNameError, match="Did you mean 'vit'"):
        dataclasses.replace(run_config(), components={**run_config().components,
                                                      "backbone": (Component("vitt"),)}).resolve(get_spec)
    with pytest.raises(UnknownNameError, match="Did you mean 'size'"):
        run_config().with_updates(component_options={"backbone": {"sise": "tiny"}}).resolve(get_spec)


def test_bad_component_option_and_missing_dependency():
    with pytest.raises(OptionError, match="size"):
        run_config().with_updates(component_options={"backbone": {"size": "huge"}}).resolve(get_spec)
    with pytest.raises(Exception, match="pip install not_a_module"):
        run_config().with_updates(components={"peft": [Component("broken")]}).resolve(get_spec)


def test_missing_and_extra_components():
    cfg = run_config()
    no_peft = dataclasses.replace(cfg, components={k: v for k, v in cfg.components.items() if k != "peft"})
    with pytest.raises(ConfigError, match="'peft' is missing"):
        no_peft.resolve(get_spec)
    two = cfg.with_updates(components={"dataset": [Component("flatvel-a"), Component("curvevel-a")]})
    with pytest.raises(ConfigError, match="one dataset"):
        two.resolve(get_spec)
    with pytest.raises(ConfigError, match="no peft is chosen"):
        no_peft.with_updates(component_options={"peft": {"r": "4"}})


def test_resolution_fills_every_option_and_canonical_names():
    cfg = run_config(epochs="3").with_updates(components={"dataset": [Component("FlatVel_A")]})
    resolved = cfg.resolve(get_spec)
    assert resolved.config.components["dataset"][0].name == "flatvel-a"
    assert resolved.config.components["backbone"][0].options == {"size": "tiny", "depth": 2}
    assert resolved.config.options["epochs"] == 3
    assert set(resolved.config.options) == {f.name for f in dataclasses.fields(RunOptions)}
    assert resolved.spec("backbone").name == "vit"
    assert resolved.component_option("backbone") == SizeOptions()


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_save_load_round_trip(tmp_path, suffix):
    resolved = run_config(epochs="2", lambda_physics="0.5").resolve(get_spec).config
    resolved = dataclasses.replace(resolved, out=str(tmp_path / "run"), argv=("fwi", "run"))
    path = resolved.save(tmp_path / f"config{suffix}")
    loaded = load_config(path)
    expected = resolved.to_dict()
    if suffix == ".toml":  # TOML has no null: a None option reads back as "none", which parses to None again
        expected["options"] = {k: "none" if v is None else v for k, v in expected["options"].items()}
    assert loaded.to_dict() == expected
    assert loaded.resolve(get_spec).config.to_dict() == resolved.to_dict()
    assert not resolved.diff(loaded)


def test_pretrain_config_keeps_several_datasets(tmp_path):
    cfg = RunConfig(command="pretrain", components={
        "backbone": (Component("vit"),),
        "dataset": (Component("flatvel-a"), Component("curvevel-a", {})),
    }, options={"weights": "1,3"})
    resolved = cfg.resolve(get_spec)
    assert resolved.options.weights == (1.0, 3.0)
    text = to_toml(resolved.config.to_dict())
    assert text.count("[[dataset]]") == 2
    again = load_config(resolved.config.save(tmp_path / "c.toml"))
    assert [c.name for c in again.components["dataset"]] == ["flatvel-a", "curvevel-a"]
    with pytest.raises(ConfigError, match="weights"):
        dataclasses.replace(cfg, options={"weights": "1,2,3"}).resolve(get_spec)
    with pytest.raises(ConfigError, match="takes no peft"):
        cfg.with_updates(components={"peft": [Component("lora")]}).resolve(get_spec)


def test_relative_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "cfgs"
    folder.mkdir()
    (folder / "c.json").write_text(json.dumps({"command": "run", "out": "out",
                                               "options": {"pretrained": "./w.safetensors"}}))
    monkeypatch.chdir(tmp_path)
    cfg = load_config(folder / "c.json")
    assert cfg.out == str(folder / "out")
    assert cfg.options["pretrained"] == str(folder / "w.safetensors")


def test_bad_files_fail_clearly(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("command = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="'command'"):
        RunConfig.from_dict({"command": "train"})
    with pytest.raises(ConfigError, match="backbone.options"):
        RunConfig.from_dict({"backbone": {"name": "vit", "options": 3}})
    with pytest.raises(ConfigError, match=".yaml"):
        run_config().save(tmp_path / "c.yaml")


def test_diff_names_changed_keys():
    a = run_config(epochs=2).resolve(get_spec).config
    b = run_config(epochs=3, device="cpu").resolve(get_spec).config
    assert a.diff(b) == ["options.epochs"]


def test_device_resolution():
    assert run_device("cpu") == "cpu"
    assert run_device("auto") in ("cpu", "cuda")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(OptionError, match="device"):
            run_device("cuda")

"""PEFT contract tests over every registered (backbone, method) pair.

A method or backbone is held to these the moment it registers: trainable parameters are
exactly those that receive gradients, counts add up, a saved adapter reloaded onto a
freshly built backbone gives identical outputs, and methods that hold several adapters
switch and merge them correctly.
"""

from __future__ import annotations

import json

import pytest
import torch

from fwi_plugins import adapted
from fwi_plugins.errors import FWIError, OptionError
from fwi_plugins.manager import FWIPluginManager
from fwi_plugins.testing import TINY_SHAPE

_REGISTRY = FWIPluginManager().load_all()
BACKBONES = sorted(_REGISTRY.components("backbone"))
METHODS = sorted(_REGISTRY.components("peft"))
PAIRS = [(b, m) for b in BACKBONES for m in METHODS]
IDS = [f"{b}-{m}" for b, m in PAIRS]


def _x(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, TINY_SHAPE.shots, TINY_SHAPE.time, TINY_SHAPE.receivers, generator=g)


def backbone(name: str):
    spec = FWIPluginManager().load_all().get("backbone", name)
    torch.manual_seed(0)
    return spec, spec.load()(spec.parse_options(dict(spec.example_options)), shape=TINY_SHAPE)


def adapt(bname: str, mname: str, model=None):
    manager = FWIPluginManager().load_all()
    bspec, built = backbone(bname)
    mspec = manager.get("peft", mname)
    options = mspec.parse_options(dict(mspec.example_options))
    return mspec.load()(model if model is not None else built, options, targets=bspec.peft_targets,
                        head=bspec.head)


def train_steps(model, steps: int = 2, seed: int = 3) -> None:
    """A few optimiser steps, so every adapter differs from its initial state."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-2)
    model.train()
    target = torch.rand(2, 1, TINY_SHAPE.depth, TINY_SHAPE.width, generator=torch.Generator().manual_seed(seed))
    for _ in range(steps):
        opt.zero_grad()
        (model(_x()) - target).square().mean().backward()
        opt.step()
    model.eval()


@pytest.mark.parametrize(("bname", "mname"), PAIRS, ids=IDS)
def test_gradients_reach_exactly_the_trainable_parameters(bname, mname):
    model = adapt(bname, mname)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "the method trains nothing"
    y = model(_x())
    assert y.shape == (2, 1, TINY_SHAPE.depth, TINY_SHAPE.width)
    y.square().mean().backward()
    got = {n for n, p in model.named_parameters() if p.grad is not None}
    assert got == trainable


@pytest.mark.parametrize(("bname", "mname"), PAIRS, ids=IDS)
def test_parameter_counts(bname, mname):
    _, base = backbone(bname)
    base_total = sum(p.numel() for p in base.parameters())
    model = adapt(bname, mname)
    trainable, total = adapted.count_parameters(model)
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert total == sum(p.numel() for p in model.parameters())
    assert total >= base_total
    if mname == "full":
        assert trainable == total == base_total
    else:
        assert 0 < trainable < base_total


@pytest.mark.parametrize(("bname", "mname"), PAIRS, ids=IDS)
def test_save_and_load_give_identical_outputs(bname, mname, tmp_path):
    _, pristine = backbone(bname)
    pristine.eval()
    with torch.no_grad():
        before = pristine(_x())
    model = adapt(bname, mname)
    train_steps(model)
    with torch.no_grad():
        after = model(_x())
    assert not torch.allclose(after, before), "training changed nothing"
    adapted.save_adapted(model, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    _, fresh = backbone(bname)
    loaded = adapted.load_adapted(fresh, tmp_path / "adapter")
    loaded.eval()
    with torch.no_grad():
        again = loaded(_x())
    # Equal up to rounding: identical weights, but kernels may pick other code paths.
    assert torch.allclose(again, after, atol=1e-6, rtol=0)
    assert adapted.count_parameters(loaded)[0] == 0, "loaded for inference: nothing trains"


@pytest.mark.parametrize(("bname", "mname"), PAIRS, ids=IDS)
def test_several_adapters_switch_and_merge(bname, mname, tmp_path):
    model = adapt(bname, mname)
    if not adapted.supports_adapters(model):
        with pytest.raises(OptionError):
            adapted.add_adapter(model, "second")
        return
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    train_steps(model, seed=3)
    with torch.no_grad():
        first = model(_x())
    adapted.add_adapter(model, "second")
    assert adapted.active_adapter(model) == "default"
    assert set(adapted.adapter_names(model)) == {"default", "second"}
    adapted.set_adapter(model, "second")
    # Only the active adapter trains; the shared backbone never does.
    train_steps(model, seed=4)
    with torch.no_grad():
        second = model(_x())
    assert not torch.allclose(first, second)
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), f"{n} of the shared backbone changed"
    adapted.set_adapter(model, "default")
    with torch.no_grad():
        assert torch.allclose(model(_x()), first, atol=1e-6)

    adapted.save_adapted(model, tmp_path / "both")
    _, fresh = backbone(bname)
    loaded = adapted.load_adapted(fresh, tmp_path / "both").eval()
    assert set(adapted.adapter_names(loaded)) == {"default", "second"}
    adapted.set_adapter(loaded, "second")
    with torch.no_grad():
        assert torch.allclose(loaded(_x()), second, atol=1e-6)

    adapted.set_adapter(model, "second")
    merged = adapted.merge_and_unload(model).eval()
    assert not adapted.is_peft_model(merged)
    with torch.no_grad():
        assert torch.allclose(merged(_x()), second, atol=1e-5)
    with pytest.raises(OptionError, match="no adapter"):
        adapted.set_adapter(loaded, "third")


@pytest.mark.parametrize("size", ["tiny", "base"])
def test_lora_on_vit_trains_under_one_percent(size):
    """With its defaults, on the shipped foundation's size (tiny) and at base size."""
    from fwi_plugins import api

    model = api.build_backbone("vit", {"size": size})
    model = api.apply_peft(model, "lora", {}, backbone="vit")
    trainable, total = adapted.count_parameters(model)
    assert trainable / total < 0.01, trainable / total


def test_identity_at_start():
    """LoRA, IA3 and bottleneck adapters start as the backbone itself."""
    for mname in ("lora", "ia3", "adapter", "loha", "lokr"):
        _, base = backbone("vit")
        base.eval()
        with torch.no_grad():
            expected = base(_x())
        model = adapt("vit", mname).eval()
        with torch.no_grad():
            assert torch.allclose(model(_x()), expected, atol=1e-6), mname


def test_frozen_trains_only_the_head_and_keeps_norm_statistics():
    model = adapt("inversionnet", "frozen")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.deconv6.") for n in trainable)
    stats = model.model.convblock1.layers[1].running_mean.clone()
    train_steps(model)
    assert torch.equal(model.model.convblock1.layers[1].running_mean, stats)


def test_options_and_errors():
    manager = FWIPluginManager().load_all()
    lora = manager.get("peft", "lora")
    o = lora.parse_options({"r": "4", "alpha": "8", "targets": "qkv,fc1", "train_head": "false"})
    assert (o.r, o.alpha, o.targets, o.train_head) == (4, 8.0, ("qkv", "fc1"), False)
    with pytest.raises(OptionError, match="r must be positive"):
        lora.parse_options({"r": "0"})
    with pytest.raises(OptionError, match="matches"):
        adapt_with("vit", "lora", {"targets": "nope"})
    model = adapt_with("vit", "lora", {"targets": "fc1,fc2", "train_head": "false"})
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(".mlp.fc" in n and "lora_" in n for n in names)
    assert manager.get("peft", "houlsby").name == "adapter"


def adapt_with(bname, mname, values):
    manager = FWIPluginManager().load_all()
    bspec, model = backbone(bname)
    mspec = manager.get("peft", mname)
    return mspec.load()(model, mspec.parse_options(values), targets=bspec.peft_targets, head=bspec.head)


def test_peft_layout_is_peft_loadable(tmp_path):
    from peft import PeftModel

    model = adapt("vit", "lora")
    train_steps(model)
    adapted.save_adapted(model, tmp_path / "a")
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["modules_to_save"] == ["head"]
    _, fresh = backbone("vit")
    direct = PeftModel.from_pretrained(fresh, str(tmp_path / "a")).eval()
    with torch.no_grad():
        assert torch.allclose(direct(_x()), model(_x()), atol=1e-6, rtol=0)


def test_load_errors_are_clear(tmp_path):
    _, fresh = backbone("vit")
    with pytest.raises(FWIError, match="adapter_config.json is missing"):
        adapted.load_adapted(fresh, tmp_path)
    model = adapt("vit", "adapter")
    adapted.save_adapted(model, tmp_path / "ad")
    spec = FWIPluginManager().load_all().get("backbone", "vit")
    other = spec.load()(spec.parse_options({**spec.example_options, "dim": 32}), shape=TINY_SHAPE)
    with pytest.raises(FWIError, match="does not fit"):
        adapted.load_adapted(other, tmp_path / "ad")
    with pytest.raises(OptionError, match="not adapted"):
        adapted.add_adapter(fresh, "x")

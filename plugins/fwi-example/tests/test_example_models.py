"""tinyunet and frozen-encoder, checked on what they promise beyond the generic contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fwi_example.frozen import apply, encoder_modules
from fwi_example.options import FrozenEncoderOptions, TinyUNetOptions
from fwi_example.unet import build
from fwi_plugins import IOShape
from fwi_plugins.errors import OptionError

SHAPE = IOShape(shots=3, time=40, receivers=12, depth=16, width=16)


def _unet(shape: IOShape = SHAPE, **options) -> nn.Module:
    torch.manual_seed(0)
    return build(TinyUNetOptions(base_channels=4, **options), shape=shape)


@pytest.mark.parametrize("levels", [1, 3])
def test_tinyunet_handles_odd_grids(levels):
    shape = IOShape(shots=2, time=37, receivers=9, depth=11, width=13)
    y = _unet(shape, levels=levels)(torch.randn(2, 2, 37, 9))
    assert y.shape == (2, 1, 11, 13)
    assert y.abs().max() < 1.0  # tanh output: the normalised velocity scale


def test_tinyunet_rejects_a_wrong_number_of_shots():
    with pytest.raises(ValueError, match="3 shots"):
        _unet()(torch.randn(1, 5, 40, 12))


def test_tinyunet_peft_targets_are_its_convolutions():
    from fwi_example.plugin import fwi_backbones

    spec = next(iter(fwi_backbones()))
    model = _unet(levels=2)
    hits = [m for name, m in model.named_modules() if name.rpartition(".")[2] in spec.peft_targets]
    # Two convolutions per block: 2 encoder + 1 bottleneck + 2 decoder blocks.
    assert len(hits) == 10 and all(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in hits)
    assert isinstance(model.get_submodule(spec.head[0]), nn.Conv2d)


def _trainable_roots(model: nn.Module) -> set[str]:
    return {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}


def test_default_rule_freezes_encoder_and_bottleneck_of_tinyunet():
    model = apply(_unet(), None, targets=("conv1", "conv2"), head=("head",))
    assert _trainable_roots(model) == {"decoder", "head"}
    model(torch.randn(2, 3, 40, 12)).square().mean().backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name


def test_prefixes_choose_the_encoder_explicitly():
    model = apply(_unet(), FrozenEncoderOptions(prefixes=("encoder",)), head=("head",))
    assert _trainable_roots(model) == {"bottleneck", "decoder", "head"}
    with pytest.raises(OptionError, match="'decoder.9' name no module.*encoder, bottleneck, decoder, head"):
        apply(_unet(), FrozenEncoderOptions(prefixes=("decoder.9",)), head=("head",))


def test_fraction_one_trains_only_the_head_and_nothing_left_is_an_error():
    model = apply(_unet(), FrozenEncoderOptions(fraction=1.0), head=("head",))
    assert _trainable_roots(model) == {"head"}
    with pytest.raises(OptionError, match="leaves nothing to train"):
        apply(_unet(), FrozenEncoderOptions(fraction=1.0), head=())


def test_default_rule_looks_inside_a_single_wrapper_and_skips_parameterless_modules():
    body = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    model = nn.Sequential()
    model.add_module("body", body)
    model.add_module("head", nn.Linear(4, 1))
    # Three layers with parameters under the wrapper: half, rounded up, is two.
    assert encoder_modules(model, head=("head",)) == ["body.0", "body.2"]


def test_frozen_batch_norm_keeps_its_running_statistics():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 1, 1))
    apply(model, FrozenEncoderOptions(prefixes=("0", "1")), head=())
    before = model[1].running_mean.clone()
    model.train()
    model(torch.randn(2, 1, 8, 8) + 3.0)
    assert torch.equal(model[1].running_mean, before)


def test_frozen_encoder_saves_in_its_own_format(tmp_path):
    """Saving is the method's own: what was frozen travels with the weights and is frozen again on load."""
    import json

    from fwi_plugins import api
    from fwi_plugins.adapted import load_adapted, save_adapted

    model = api.apply_peft(_unet(), "frozen-encoder", backbone="tinyunet")
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1)
    model.eval()
    folder = save_adapted(model, tmp_path / "adapter")
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["fwi_method"] == "frozen-encoder" and config["frozen"] == encoder_modules(_unet(), head=("head",))
    x = torch.randn(2, 3, 40, 12)
    loaded = load_adapted(_unet(), folder).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert not any(p.requires_grad for p in loaded.parameters())
    again = load_adapted(_unet(), folder, trainable=True)
    assert {n for n, p in again.named_parameters() if p.requires_grad} == set(config["trainable"])
    frozen_norms = [m for n, m in again.named_modules() if isinstance(m, nn.BatchNorm2d)
                    and any(n.startswith(r + ".") for r in config["frozen"])]
    assert all(m._forward_pre_hooks for m in frozen_norms)

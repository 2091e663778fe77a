"""The contract checks of ``fwi_plugins.testing`` reject what their messages say they reject."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fwi_plugins import PeftMethodSpec
from fwi_plugins.testing import TinyNet, check_peft_method

TINYNET_PARAMETERS = (2 * 8 * 9 + 8) + (16 * 32 + 32) + (32 * 16 + 16) + (128 * 256 + 256)


class Padded(nn.Module):
    """The network, all of it trainable, plus ``extra`` trainable weights that do nothing."""

    def __init__(self, model: nn.Module, extra: int) -> None:
        super().__init__()
        self.model = model
        self.unused = nn.Parameter(torch.zeros(extra)) if extra else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y if self.unused is None else y + 0.0 * self.unused.sum()


def padding_method(extra: int) -> PeftMethodSpec:
    def apply(model, options=None, *, targets=(), head=()):
        return Padded(model, extra)

    return PeftMethodSpec(name=f"pad-{extra}", factory=apply, description="trains the network and more")


def test_tinynet_size_from_its_layer_shapes():
    assert sum(p.numel() for p in TinyNet.build().parameters()) == TINYNET_PARAMETERS


def test_a_method_may_train_the_whole_network():
    check_peft_method(padding_method(0))


@pytest.mark.parametrize("extra", [1, TINYNET_PARAMETERS // 4])
def test_a_method_training_more_than_the_network_has_fails(extra):
    with pytest.raises(AssertionError, match="more than the network has"):
        check_peft_method(padding_method(extra))

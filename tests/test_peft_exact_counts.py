"""What each PEFT method trains on the shipped configurations, counted by hand from layer shapes.

The expected numbers are written from the architectures (widths, kernel sizes, depths)
and each method's published parameterisation, never by walking the adapted network, so a
dropped target module, a changed rank or a head that stops training changes the count.
The LoRA update is checked against its formula ``W x + (alpha / r) B A x``.
"""

from __future__ import annotations

import pytest
import torch

from fwi_plugins import api
from fwi_plugins.adapted import count_parameters
from fwi_plugins.specs import IOShape

torch.set_num_threads(1)

OPENFWI = IOShape()  # 5 shots x 1000 samples x 70 receivers -> 70 x 70 cells

# vit tiny as shipped (vit-tiny-openfwi.json): width 192, 6 blocks, MLP 4x, patches 50 x 7,
# decoder 64 -> 32 channels, head a 3x3 convolution to one channel.
DIM, DEPTH, HIDDEN, DECODER = 192, 6, 4 * 192, 64
PATCH_INPUTS = OPENFWI.shots * 50 * 7


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def conv(n_in: int, n_out: int, kh: int, kw: int) -> int:
    return n_in * n_out * kh * kw + n_out


VIT_HEAD = conv(DECODER // 2, 1, 3, 3)
VIT_BLOCK = 2 * 2 * DIM + linear(DIM, 3 * DIM) + linear(DIM, DIM) + linear(DIM, HIDDEN) + linear(HIDDEN, DIM)
VIT_DECODER = (linear(DIM, DECODER) + conv(DECODER, DECODER, 3, 3) + conv(DECODER, DECODER // 2, 3, 3)
               + conv(DECODER // 2, DECODER // 2, 3, 3))
VIT_TOTAL = linear(PATCH_INPUTS, DIM) + DEPTH * VIT_BLOCK + 2 * DIM + VIT_DECODER + VIT_HEAD

# The attention linears vit offers PEFT methods: (in, out) of qkv and proj.
ATTENTION = [(DIM, 3 * DIM), (DIM, DIM)]


def lora_count(r: int, layers) -> int:
    """A (r x in) and B (out x r) per adapted linear."""
    return sum(r * (n_in + n_out) for n_in, n_out in layers)


def lokr_count(r: int) -> int:
    """LoKr with the most square split: W1 (out_a x in_a) in full, W2 = (out_b x r)(r x in_b).

    576 = 24 x 24 and 192 = 12 x 16; W2's factors are low-rank because r = 8 is below
    half of their larger side.
    """
    qkv = 24 * 12 + 24 * r + r * 16
    proj = 12 * 12 + 16 * r + r * 16
    return qkv + proj


EXPECTED_VIT = {
    # LoRA rank 4 on qkv and proj of every block, head trained in full.
    "lora": DEPTH * lora_count(4, ATTENTION) + VIT_HEAD,
    # IA3: one scale per output feature of qkv and proj (neither is a feed-forward layer).
    "ia3": DEPTH * (3 * DIM + DIM) + VIT_HEAD,
    # LoHa rank 8: two Hadamard factors, each (out x r)(r x in).
    "loha": DEPTH * 2 * lora_count(8, ATTENTION) + VIT_HEAD,
    "lokr": DEPTH * lokr_count(8) + VIT_HEAD,
    # Bottlenecks after every block: 192 -> 192 / 8 -> 192, with biases.
    "adapter": DEPTH * (linear(DIM, DIM // 8) + linear(DIM // 8, DIM)) + VIT_HEAD,
    "full": VIT_TOTAL,
    "frozen": VIT_HEAD,
}

def test_vit_tiny_has_the_parameters_its_layer_shapes_give():
    model = api.build_backbone("vit", {"size": "tiny"}, shape=OPENFWI)
    assert VIT_TOTAL == 3_083_041  # as the shipped model card records
    assert sum(p.numel() for p in model.parameters()) == VIT_TOTAL


@pytest.mark.parametrize("method", sorted(EXPECTED_VIT))
def test_trainable_parameters_of_each_method_on_the_shipped_vit(method):
    model = api.build_backbone("vit", {"size": "tiny"}, shape=OPENFWI)
    adapted = api.apply_peft(model, method, {}, backbone="vit")
    trainable, total = count_parameters(adapted)
    assert trainable == EXPECTED_VIT[method]
    # Every method but full and frozen adds what it trains beside the frozen network
    # (peft's modules_to_save and the adapter method keep the original head too).
    assert total == VIT_TOTAL + (0 if method in ("full", "frozen") else trainable)


def test_lora_default_trains_0_90_percent_of_the_shipped_vit():
    """The README's figure: 27,937 of 3,110,978 parameters."""
    model = api.apply_peft(api.build_backbone("vit", {"size": "tiny"}, shape=OPENFWI), "lora", {}, backbone="vit")
    trainable, total = count_parameters(model)
    assert (trainable, total) == (27_937, 3_110_978)
    assert round(100 * trainable / total, 2) == 0.90


# InversionNet at OpenFWI widths: (in, out, kh, kw) of every Conv2d its PEFT targets name,
# encoder then the decoder's refining convolutions (the ConvTranspose2d upsamplers are not targets).
INVERSIONNET_TARGETS = [
    (5, 32, 7, 1), (32, 64, 3, 1), (64, 64, 3, 1), (64, 64, 3, 1), (64, 64, 3, 1), (64, 128, 3, 1),
    (128, 128, 3, 1), (128, 128, 3, 3), (128, 128, 3, 3), (128, 256, 3, 3), (256, 256, 3, 3),
    (256, 256, 3, 3), (256, 256, 3, 3), (256, 512, 8, 9),
    (512, 512, 3, 3), (256, 256, 3, 3), (128, 128, 3, 3), (64, 64, 3, 3), (32, 32, 3, 3),
]
INVERSIONNET_HEAD = conv(32, 1, 3, 3) + 2  # the output convolution and its BatchNorm's scale and shift


def test_lora_and_frozen_on_inversionnet_at_openfwi_widths():
    # LoRA on a convolution: A is a (r, in, kh, kw) convolution, B a 1x1 one back to out channels.
    expected = {"lora": sum(4 * (i * kh * kw + o) for i, o, kh, kw in INVERSIONNET_TARGETS) + INVERSIONNET_HEAD,
                "frozen": INVERSIONNET_HEAD}
    for method, count in expected.items():
        model = api.build_backbone("inversionnet", {}, shape=OPENFWI)
        adapted = api.apply_peft(model, method, {}, backbone="inversionnet")
        assert count_parameters(adapted)[0] == count, method


@pytest.mark.parametrize(("options", "scale"), [({"r": 2, "alpha": 3.0}, 1.5),
                                                ({"r": 4, "alpha": 3.0, "rslora": True}, 1.5)])
def test_lora_update_is_alpha_over_r_times_b_a(options, scale):
    from fwi_plugins.testing import TINY_SHAPE

    torch.manual_seed(0)
    model = api.build_backbone("vit", {"size": "tiny", "dim": 32, "depth": 1, "heads": 2, "decoder_dim": 8},
                               shape=TINY_SHAPE)
    base = model.blocks[0].attn.qkv
    weight, bias = base.weight.detach().clone(), base.bias.detach().clone()
    adapted = api.apply_peft(model, "lora", options, backbone="vit")
    layer = dict(adapted.named_modules())["base_model.model.blocks.0.attn.qkv"]
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    assert a.shape == (options["r"], 32) and b.shape == (96, options["r"])
    with torch.no_grad():
        b.normal_()  # B starts at zero; any value shows the scaling
    x = torch.randn(3, 32)
    expected = x @ weight.T + bias + scale * (x @ a.detach().T @ b.detach().T)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)

"""Registration of the built-in backbones (``vit`` and ``inversionnet``).

Nothing here imports torch: factories are ``"module:function"`` strings.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..hookspecs import hookimpl
from ..specs import BackboneSpec
from .backbone_options import InversionNetOptions, ViTOptions

#: Shipped weights live in ``fwi_plugins/weights/<file>.safetensors``; a name maps to a file stem.
_VIT_WEIGHTS: dict[str, str] = {"default": "vit-tiny-openfwi", "vit-tiny-openfwi": "vit-tiny-openfwi"}


def shipped(files: dict[str, str]) -> dict[str, str]:
    """``name -> "fwi_plugins:weights/<file>.safetensors"`` for files shipped with the package."""
    return {name: f"fwi_plugins:weights/{stem}.safetensors" for name, stem in files.items()}


@hookimpl
def fwi_backbones() -> Iterator[BackboneSpec]:
    yield BackboneSpec(
        name="vit",
        factory="fwi_plugins.builtins.vit:build",
        description="Vision Transformer: time x receiver patches, fused attention, conv decoder",
        aliases=("vision-transformer",),
        options=ViTOptions,
        example_options={"size": "tiny", "dim": 48, "depth": 2, "heads": 4, "decoder_dim": 16},
        # Attention only: LoRA of rank r then trains about r / (2 * dim) of each block.
        peft_targets=("qkv", "proj"),
        head=("head",),
        pretrained=shipped(_VIT_WEIGHTS),
    )
    yield BackboneSpec(
        name="inversionnet",
        factory="fwi_plugins.builtins.inversionnet:build",
        description="OpenFWI InversionNet convolutional encoder-decoder",
        options=InversionNetOptions,
        example_options={"dim1": 4, "dim2": 8, "dim3": 8, "dim4": 16, "dim5": 16},
        # Every Conv2d of the encoder and decoder blocks; not the ConvTranspose2d upsamplers
        # (no peft tuner handles them) and not the head, which is trained in full instead.
        peft_targets=(r"(convblock\d+(_\d+)?|deconv\d+_2)\.layers\.0",),
        head=("deconv6",),
        pretrained={},
    )

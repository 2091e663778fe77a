"""Registration of the example components.

fwi-plugins imports this module through the entry point ``example`` in the group
``fwi_plugins`` (see pyproject.toml). It must stay cheap: it imports only the spec
classes and the option dataclasses, and names each factory as a ``"module:function"``
string, so torch is imported only when one of these components is actually built.
"""

from __future__ import annotations

from collections.abc import Iterator

from fwi_plugins import BackboneSpec, DatasetSpec, PeftMethodSpec, PhysicsSpec, hookimpl

from .options import ConvolutionalOptions, FrozenEncoderOptions, TinyLayersOptions, TinyUNetOptions


@hookimpl
def fwi_backbones() -> Iterator[BackboneSpec]:
    """The ``tinyunet`` backbone."""
    yield BackboneSpec(
        name="tinyunet",
        factory="fwi_example.unet:build",
        description="small U-Net: gathers resampled onto the velocity grid, 1-4 levels, tanh output",
        options=TinyUNetOptions,
        # Every 3x3 convolution of every block; peft matches these as name suffixes.
        peft_targets=("conv1", "conv2"),
        head=("head",),
        # What contract checks build: the smallest network that still has every part.
        example_options={"base_channels": 4, "levels": 2},
    )


@hookimpl
def fwi_peft_methods() -> Iterator[PeftMethodSpec]:
    """The ``frozen-encoder`` PEFT method."""
    yield PeftMethodSpec(
        name="frozen-encoder",
        factory="fwi_example.frozen:apply",
        description="freeze the encoder half of the network, train the decoder and head in full",
        options=FrozenEncoderOptions,
        # Saving is the method's own: what it froze travels with the weights.
        saver="fwi_example.frozen:save",
        loader="fwi_example.frozen:load",
    )


@hookimpl
def fwi_datasets() -> Iterator[DatasetSpec]:
    """The ``tiny-layers`` dataset."""
    yield DatasetSpec(
        name="tiny-layers",
        factory="fwi_example.layers:load",
        description="seeded flat 2-3 layer velocity models on a small grid (32 x 32); gathers are simulated",
        options=TinyLayersOptions,
    )


@hookimpl
def fwi_physics() -> Iterator[PhysicsSpec]:
    """The ``convolutional`` physics."""
    yield PhysicsSpec(
        name="convolutional",
        factory="fwi_example.convolutional:build",
        description="1D normal-incidence convolutional model (cheap, differentiable); l2 or envelope misfit, "
                    "among others",
        options=ConvolutionalOptions,
    )

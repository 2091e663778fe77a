"""Registration: declares the ``torchwave`` physics without importing torch."""

from __future__ import annotations

from collections.abc import Iterator

from fwi_plugins import PhysicsSpec, hookimpl

from .options import TorchwaveOptions


@hookimpl
def fwi_physics() -> Iterator[PhysicsSpec]:
    yield PhysicsSpec(
        name="torchwave",
        factory="fwi_torchwave.physics:build",
        description="2D constant-density acoustic wave equation in pure torch (Deepwave's scheme), "
                    "differentiable, batched, CUDA-ready",
        requires=("torch",),
        options=TorchwaveOptions,
    )

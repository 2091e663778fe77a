"""Registration: declares the ``deepwave`` physics without importing deepwave or torch."""

from __future__ import annotations

from collections.abc import Iterator

from fwi_plugins import PhysicsSpec, hookimpl

from .options import DeepwaveOptions


@hookimpl
def fwi_physics() -> Iterator[PhysicsSpec]:
    yield PhysicsSpec(
        name="deepwave",
        factory="fwi_deepwave.physics:build",
        description="2D constant-density acoustic wave equation (Deepwave), differentiable",
        requires=("deepwave",),
        options=DeepwaveOptions,
    )

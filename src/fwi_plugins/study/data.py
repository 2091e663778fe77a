"""The foundation a study adapts and the target maps it adapts to, loaded through the public API."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .options import StudyOptions, TargetSpec

NONE = "none"


@dataclass(frozen=True)
class Foundation:
    """The weights every method but scratch starts from.

    ``weights`` is what :func:`fwi_plugins.api.build_backbone` takes (``"none"``: the backbone's
    default architecture from a fixed random initialisation, for smoke runs); ``options`` the
    architecture scratch is built with; ``normalization`` the input scale the weights learned
    (every target is seen through it), ``None`` when they do not record one.
    """

    backbone: str
    weights: str
    path: str
    sha256: str
    options: Mapping[str, Any]
    normalization: Any = None


def resolve_foundation(o: StudyOptions) -> Foundation:
    """Read the foundation's weights header: where they are, their digest and architecture."""
    from .. import api
    from ..pretrained import read_config

    if o.weights.strip().lower() == NONE:
        return Foundation(o.backbone, NONE, NONE, NONE, dict(o.backbone_options))
    spec = api.get_spec("backbone", o.backbone)
    config = read_config(spec, o.weights)  # type: ignore[arg-type]
    return Foundation(o.backbone, o.weights, str(config.path), file_sha256(config.path),
                      {**config.options, **o.backbone_options}, config.normalization)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def maps_digest(velocity: np.ndarray) -> str:
    """A short hash of velocity maps: which maps a score was computed on."""
    return hashlib.sha256(np.ascontiguousarray(velocity, np.float32).tobytes()).hexdigest()[:16]


@dataclass
class Target:
    """A loaded target: training, validation and test arrays, and the specialist's training maps
    (loaded when a specialist first needs them)."""

    spec: TargetSpec
    survey: Any
    normalization: Any
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    load_specialist: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None
    _specialist: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def specialist_maps(self) -> tuple[np.ndarray, np.ndarray]:
        if self._specialist is None:
            if self.load_specialist is None:
                raise ValueError(f"target {self.spec.key} was loaded without specialist maps")
            self._specialist = self.load_specialist()
        return self._specialist

    def summary(self) -> dict[str, Any]:
        return {"label": self.spec.label, "dataset": self.spec.dataset, "options": dict(self.spec.options),
                "train_maps": len(self.train_y), "val_maps": len(self.val_y), "test_maps": len(self.test_y),
                "val_sha256": maps_digest(self.val_y), "test_sha256": maps_digest(self.test_y)}


def _dataset(spec: TargetSpec, o: StudyOptions, n_train: int, foundation: Foundation) -> Any:
    from .. import api

    options = {**spec.options, "n_train": n_train, "n_val": o.n_val, "n_test": o.n_test, "seed": o.data_seed}
    ds = api.load_dataset(spec.dataset, options)
    if foundation.normalization is not None:
        # The network learned its input scale in pretraining; every target is seen through it.
        ds.set_normalization(foundation.normalization)
    return ds


def load_target(spec: TargetSpec, o: StudyOptions, foundation: Foundation, *, cache_dir: str | None = None,
                progress: bool = True) -> Target:
    """The target's arrays, gathers simulated with the study's physics (cached where the dataset caches)."""
    from .. import api

    ds = _dataset(spec, o, o.n_train, foundation)
    physics = api.build_physics(o.physics, survey=ds.survey)

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        return ds.gathers(name, physics, cache_dir=cache_dir, progress=progress), ds.velocity(name)

    def specialist() -> tuple[np.ndarray, np.ndarray]:
        big = _dataset(spec, o, o.specialist_maps, foundation)
        return (big.gathers("train", api.build_physics(o.physics, survey=big.survey), cache_dir=cache_dir,
                            progress=progress), big.velocity("train"))

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = split("train"), split("val"), split("test")
    return Target(spec=spec, survey=ds.survey, normalization=ds.normalization, train_x=train_x, train_y=train_y,
                  val_x=val_x, val_y=val_y, test_x=test_x, test_y=test_y,
                  load_specialist=specialist if o.specialist_maps else None)

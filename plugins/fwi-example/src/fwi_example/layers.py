"""The ``tiny-layers`` dataset: seeded flat layered velocity models, gathers simulated.

Each model has two or three horizontal layers whose velocity increases with depth, as
compaction makes it do in most sedimentary basins. Interfaces lie at least three cells
apart so every layer is resolved. Only velocity is stored: the framework simulates the
gathers with whichever physics the run uses (``--physics``), and caches them.

The models are drawn from one random generator seeded by ``seed``, split after drawing,
so a split's models depend only on the options, never on which split is asked for first.
"""

from __future__ import annotations

import numpy as np

from fwi_plugins import Survey
from fwi_plugins.data import Normalization, SeismicDataset

from .options import TinyLayersOptions

#: Velocity range of the models, m/s; also the normalisation range.
VMIN, VMAX = 1500.0, 4500.0
#: Thinnest layer, in cells.
MIN_THICKNESS = 3


def layered_models(n: int, size: int, *, max_layers: int = 3, seed: int = 0) -> np.ndarray:
    """Draw ``n`` flat layered models.

    Args:
        n: number of models.
        size: grid points in depth and in x.
        max_layers: 2 or 3; each model has between 2 and ``max_layers`` layers.
        seed: seed of the random generator.

    Returns:
        ``(n, 1, size, size)`` float32 velocity in m/s, increasing with depth.
    """
    rng = np.random.default_rng(seed)
    models = np.empty((n, 1, size, size), np.float32)
    for i in range(n):
        n_layers = int(rng.integers(2, max_layers + 1))
        # Interface depths: distinct, sorted, at least MIN_THICKNESS cells from each other and the edges.
        candidates = np.arange(MIN_THICKNESS, size - MIN_THICKNESS + 1)
        while True:
            tops = np.sort(rng.choice(candidates, size=n_layers - 1, replace=False))
            if n_layers == 2 or np.diff(tops).min() >= MIN_THICKNESS:
                break
        velocities = np.sort(rng.uniform(VMIN, VMAX, size=n_layers))
        column = np.full(size, velocities[0], np.float32)
        for top, v in zip(tops, velocities[1:]):
            column[top:] = v
        models[i, 0] = column[:, None]
    return models


def load(options: TinyLayersOptions | None) -> SeismicDataset:
    """Factory of the ``tiny-layers`` dataset (see :class:`~fwi_plugins.DatasetSpec`)."""
    options = options or TinyLayersOptions()
    survey = Survey.small(nz=options.size, nx=options.size, vmin=VMIN, vmax=VMAX)
    sizes = {"train": options.train, "val": options.val, "test": options.test}
    models = layered_models(sum(sizes.values()), options.size, max_layers=options.max_layers, seed=options.seed)
    velocity, start = {}, 0
    for split, n in sizes.items():
        if n:
            velocity[split] = models[start : start + n]
        start += n
    return SeismicDataset(
        "tiny-layers",
        survey=survey,
        velocity=velocity,
        normalization=Normalization(vmin=VMIN, vmax=VMAX),
        # Provenance, and part of the simulation cache key: other options, other models.
        attrs={"generator": "fwi_example.layers.layered_models", "seed": options.seed,
               "max_layers": options.max_layers, "size": options.size, "split_sizes": sizes},
        split_sizes=sizes,
    )

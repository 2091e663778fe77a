"""What the training loop trains on: arrays (in memory or memory-mapped), and the order it draws them in.

Each process of a distributed job draws its own shard of every epoch: a shuffled
permutation (``DistributedSampler``) or, for a dataset mixture with per-sample weights,
a weighted draw with replacement that every rank makes alike and strides through.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ..data.rows import RowStack
from ..errors import DataError
from .distributed import DistInfo

__all__ = ["EpochSampler", "RowStack", "TrainData", "WeightedShardSampler", "epoch_sampler"]


@dataclass
class TrainData:
    """Arrays the loop trains or validates on; the loop reads them one batch of rows at a time.

    Attributes:
        gathers: raw gathers ``(N, S, T, R)`` float32 (normalised per batch on the device), a
            numpy array or a :class:`~fwi_plugins.data.rows.RowStack` of several (memory-mapped
            cache parts, for pretraining).
        velocity: velocity ``(N, 1, Z, X)`` in m/s (array or :class:`RowStack`), or ``None``
            without labels.
        weights: per-sample sampling weights (a dataset mixture), or ``None`` for uniform
            shuffling without replacement.
    """

    gathers: np.ndarray | RowStack
    velocity: np.ndarray | RowStack | None = None
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.gathers.ndim != 4:
            raise DataError(f"training gathers must be (N, S, T, R), got shape {self.gathers.shape}")
        n = len(self.gathers)
        if self.velocity is not None and (self.velocity.ndim != 4 or len(self.velocity) != n):
            raise DataError(f"training velocity must be (N, 1, Z, X) with N={n}, got shape {self.velocity.shape}")
        if self.weights is not None and len(self.weights) != n:
            raise DataError(f"sampling weights must give one value per sample ({n}), got {len(self.weights)}")

    def __len__(self) -> int:
        return len(self.gathers)


class EpochSampler(Protocol):
    """The sample order of one process: reproducible per epoch, this rank's share of it."""

    def set_epoch(self, epoch: int) -> None: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[int]: ...


class WeightedShardSampler(torch.utils.data.Sampler[int]):
    """Weighted sampling with replacement, reproducible per epoch and sharded by rank.

    ``DistributedSampler`` covers uniform shuffling; a dataset mixture needs weights, so
    every rank draws the same global sequence from ``(seed, epoch)`` and keeps its stride.
    """

    def __init__(self, weights: np.ndarray, num_samples: int, *, rank: int, world_size: int, seed: int) -> None:
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.per_rank = math.ceil(num_samples / world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        total = self.per_rank * self.world_size
        order = torch.multinomial(self.weights, total, replacement=True, generator=g)
        return iter(order[self.rank::self.world_size].tolist())


def epoch_sampler(data: TrainData, samples_per_epoch: int | None, *, info: DistInfo, seed: int) -> EpochSampler:
    """This process's sampler: weighted draws of ``samples_per_epoch`` (default: all) samples for
    data with weights, else a shuffled shard of every sample."""
    if data.weights is not None:
        return WeightedShardSampler(data.weights, samples_per_epoch or len(data), rank=info.rank,
                                    world_size=info.world_size, seed=seed)
    return torch.utils.data.DistributedSampler(
        range(len(data)), num_replicas=info.world_size, rank=info.rank, shuffle=True,  # type: ignore[arg-type]
        seed=seed, drop_last=False)

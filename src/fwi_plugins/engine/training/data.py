"""What the training loop trains on: arrays (in memory or memory-mapped), and the order it draws them in.

Each process of a distributed job draws its own shard of every epoch: a shuffled
permutation (``DistributedSampler``) or, for a dataset mixture with per-sample weights,
a weighted draw with replacement that every rank makes alike and strides through.

On a GPU the arrays can live on the device (:class:`DeviceRows`, :meth:`TrainData.to_device`):
a batch is then indexed where it is, with no copy to the host and back. The gathers may be
held in float16 and every k-th time sample, and are rebuilt to float32 at full length on the
device (:func:`upsample_traces`), as the GPU recipe's corpus stores them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ...data.rows import RowStack
from ...errors import ConfigError, DataError
from .distributed import DistInfo

__all__ = ["DeviceRows", "EpochSampler", "TrainData", "WeightedShardSampler", "epoch_sampler", "mixture_weights",
           "upsample_traces"]


def upsample_traces(stored: torch.Tensor, decimation: int, nt: int) -> torch.Tensor:
    """Full-rate float32 traces ``(..., T, R)`` from every-``decimation``-th samples, on their device.

    Band-limited (FFT) interpolation: the stored trace is mirrored (so that its periodic
    continuation has no jump), moved to the frequency domain, zero-padded and brought back at
    ``decimation`` times the rate; the first ``nt`` samples are kept.
    """
    x = stored.float().transpose(-1, -2)  # (..., R, Td)
    if decimation == 1:
        return x[..., :nt].transpose(-1, -2).contiguous()
    mirrored = torch.cat([x, x.flip(-1)], dim=-1)
    n = mirrored.shape[-1]
    spectrum = torch.fft.rfft(mirrored)
    spectrum = torch.nn.functional.pad(spectrum, (0, n * decimation // 2 + 1 - spectrum.shape[-1]))
    full = torch.fft.irfft(spectrum, n=n * decimation) * decimation
    return full[..., :nt].transpose(-1, -2).contiguous()


class DeviceRows:
    """Samples held as one torch tensor on the training device, indexed there a batch at a time.

    Args:
        stored: ``(N, ...)`` samples, any float dtype (float16 halves the memory).
        decimation: the stored time axis (axis 2 of ``(N, S, T, R)`` gathers) holds every
            ``decimation``-th sample; :meth:`take` rebuilds the full rate (:func:`upsample_traces`).
        nt: the full-rate number of time samples (default: ``decimation`` times the stored).
        mirror_axes: when given, the rows are ``2N``: row ``N + i`` is row ``i`` flipped along these
            axes of the batch (see :func:`fwi_plugins.engine.training.mirror.mirror_data`); nothing is copied.

    ``take`` returns float32 tensors on the device; indexing with numpy rows (``rows[idx]``,
    what validation's :func:`~fwi_plugins.data.rows.take_rows` does) returns a host copy.
    """

    def __init__(self, stored: torch.Tensor, *, decimation: int = 1, nt: int | None = None,
                 mirror_axes: tuple[int, ...] = ()) -> None:
        if not isinstance(stored, torch.Tensor) or stored.ndim < 2 or not stored.is_floating_point():
            raise DataError(f"DeviceRows needs a floating-point tensor of samples (N, ...), got {stored!r:.80}")
        if decimation < 1 or (decimation > 1 and stored.ndim != 4):
            raise DataError(f"DeviceRows: decimation must be >= 1 and applies to (N, S, T, R) gathers; got "
                            f"decimation {decimation} for shape {tuple(stored.shape)}")
        tail = tuple(stored.shape[1:])
        if stored.ndim == 4:
            nt = nt if nt is not None else tail[1] * decimation
            if not (tail[1] - 1) * decimation < nt <= tail[1] * decimation:
                raise DataError(f"DeviceRows: nt {nt} does not fit {tail[1]} stored samples every {decimation}")
            tail = (tail[0], nt, tail[2])
        self.stored, self.decimation, self.mirror_axes = stored, decimation, tuple(mirror_axes)
        self.shape: tuple[int, ...] = (len(stored) * (2 if self.mirror_axes else 1), *tail)
        self.dtype = np.dtype(np.float32)

    @classmethod
    def from_array(cls, array: Any, *, device: str | torch.device, dtype: torch.dtype = torch.float32,
                   decimation: int = 1, block: int = 1024) -> DeviceRows:
        """``array``'s rows (a numpy array or a :class:`RowStack`) sent to ``device`` a block at a time,
        stored as ``dtype`` and every ``decimation``-th time sample: never the whole array in float32 at once."""
        n = len(array)
        nt = array.shape[2] if array.ndim == 4 else None
        tail = list(array.shape[1:])
        keep = (slice(None), slice(None), slice(None, None, decimation)) if decimation > 1 else (slice(None),)
        if decimation > 1:
            tail[1] = len(range(0, tail[1], decimation))
        stored = torch.empty((n, *tail), dtype=dtype, device=device)
        for start in range(0, n, block):
            rows = np.ascontiguousarray(array[start:start + block])
            stored[start:start + len(rows)] = torch.as_tensor(rows)[keep].to(device=device, dtype=dtype)
        return cls(stored, decimation=decimation, nt=nt)

    @property
    def device(self) -> torch.device:
        return self.stored.device

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return self.stored.numel() * self.stored.element_size()

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (f"DeviceRows(shape={self.shape}, stored={tuple(self.stored.shape)} {self.stored.dtype} on "
                f"{self.device}, decimation={self.decimation}, mirror_axes={self.mirror_axes})")

    def take(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``rows`` (a 1-D integer tensor) as float32 at full length, on the rows' device."""
        n = len(self.stored)
        source = rows.to(self.device, torch.long)
        if self.mirror_axes:
            flipped, source = source >= n, source % n
        batch = self.stored.index_select(0, source)
        if self.decimation > 1:
            batch = upsample_traces(batch, self.decimation, self.shape[2])
        else:
            batch = batch.float()
        if self.mirror_axes:
            # Every row computed both ways: no host sync to ask which rows are mirrored.
            mask = flipped.view(-1, *([1] * (batch.ndim - 1)))
            batch = torch.where(mask, batch.flip(self.mirror_axes), batch)
        return batch

    def __getitem__(self, index: Any) -> np.ndarray:
        # A host copy, for readers of numpy rows (validation); training calls take().
        rows = np.arange(len(self))[index]
        with torch.no_grad():
            return self.take(torch.as_tensor(np.atleast_1d(rows), device=self.device)).cpu().numpy()[
                0 if np.ndim(rows) == 0 else slice(None)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(f"DeviceRows of {self.nbytes / 2**20:.0f} MiB on {self.device} do not turn into a host "
                        f"array implicitly; take(rows) indexes them on the device, rows[idx] copies some out")

    def min(self) -> float:
        """The smallest stored value (before any rebuilding to full rate)."""
        return float(self.stored.min())

    def max(self) -> float:
        """The largest stored value (before any rebuilding to full rate)."""
        return float(self.stored.max())


@dataclass
class TrainData:
    """Arrays the loop trains or validates on; the loop reads them one batch of rows at a time.

    Attributes:
        gathers: raw gathers ``(N, S, T, R)`` float32 (normalised per batch on the device), a
            numpy array or a :class:`~fwi_plugins.data.rows.RowStack` of several (memory-mapped
            cache parts, for pretraining), or :class:`DeviceRows` already on the training device.
        velocity: velocity ``(N, 1, Z, X)`` in m/s (array or :class:`RowStack`, or
            :class:`DeviceRows` when the gathers are), or ``None`` without labels.
        weights: per-sample sampling weights (a dataset mixture), or ``None`` for uniform
            shuffling without replacement.
    """

    gathers: np.ndarray | RowStack | DeviceRows
    velocity: np.ndarray | RowStack | DeviceRows | None = None
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.velocity is not None and isinstance(self.gathers, DeviceRows) != isinstance(self.velocity, DeviceRows):
            raise DataError("training gathers and velocity must both be DeviceRows or neither (a batch is taken "
                            "from both in one place); use TrainData.to_device")
        if self.gathers.ndim != 4:
            raise DataError(f"training gathers must be (N, S, T, R), got shape {self.gathers.shape}")
        n = len(self.gathers)
        if self.velocity is not None and (self.velocity.ndim != 4 or len(self.velocity) != n):
            raise DataError(f"training velocity must be (N, 1, Z, X) with N={n}, got shape {self.velocity.shape}")
        if self.weights is not None and len(self.weights) != n:
            raise DataError(f"sampling weights must give one value per sample ({n}), got {len(self.weights)}")

    def __len__(self) -> int:
        return len(self.gathers)

    @property
    def on_device(self) -> bool:
        """Whether batches are taken on the device (:class:`DeviceRows`) rather than copied from host arrays."""
        return isinstance(self.gathers, DeviceRows)

    def to_device(self, device: str | torch.device, *, half: bool = False, decimation: int = 1) -> TrainData:
        """The same samples held on ``device``: gathers in float16 with ``half`` and every
        ``decimation``-th time sample (rebuilt on the device per batch), velocity in float32."""
        if self.on_device:
            return self
        gathers = DeviceRows.from_array(self.gathers, device=device, decimation=decimation,
                                        dtype=torch.float16 if half else torch.float32)
        velocity = None if self.velocity is None else DeviceRows.from_array(self.velocity, device=device)
        return TrainData(gathers=gathers, velocity=velocity, weights=self.weights)


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


def mixture_weights(sizes: list[int], weights: tuple[float, ...] = ()) -> np.ndarray:
    """Per-sample sampling weights so that family ``i`` is drawn with probability ``weights[i] / sum``.

    Without weights every sample is equally likely (families in proportion to their size).
    """
    if not weights:
        weights = tuple(float(n) for n in sizes)
    per_sample = [np.full(n, w / n if n else 0.0) for n, w in zip(sizes, weights, strict=True)]
    out = np.concatenate(per_sample) if per_sample else np.zeros(0)
    if out.sum() <= 0:
        raise ConfigError("option 'weights' gives every dataset with training samples a zero weight")
    return out / out.sum()

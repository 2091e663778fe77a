"""Arrays of samples read by rows: several arrays as one, and one batch of rows at a time.

A dataset mixture can hold gigabytes of gathers, often memory-mapped from the simulation
cache's parts (see :func:`fwi_plugins.data.cache.cached_gathers` with ``mmap=True``).
:class:`RowStack` reads them as one array along the first axis without copying them
together, and refuses to turn into one array implicitly: a stray ``np.asarray`` would read
the whole corpus into memory. :func:`take_rows` copies one batch out as an array of its own.

Numpy only: the training engine builds on this, not the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["RowStack", "take_rows"]


class RowStack:
    """Several arrays of samples read as one along the first axis, without copying them together.

    Indexing with an integer, a slice or a 1-D array of row numbers returns a new, writable
    numpy array of those rows; only those rows are read from the parts (which may be
    read-only memory maps). ``None`` parts (a family without that split) are left out, and a
    part that is itself a ``RowStack`` contributes its own parts.

    Raises:
        DataError: no parts, or parts that differ in shape past the first axis or in dtype.
    """

    parts: list[np.ndarray]

    def __init__(self, parts: Sequence[np.ndarray | RowStack | None]) -> None:
        kept: list[np.ndarray] = []
        for p in parts:
            if isinstance(p, RowStack):
                kept.extend(p.parts)
            elif p is not None:
                kept.append(p)
        if not kept:
            raise DataError("RowStack needs at least one array")
        tail = kept[0].shape[1:]
        for p in kept[1:]:
            if p.shape[1:] != tail:
                raise DataError(f"arrays to stack differ in shape past the first axis: {tail} and {p.shape[1:]}")
            if p.dtype != kept[0].dtype:
                raise DataError(f"arrays to stack differ in dtype: {kept[0].dtype} and {p.dtype}")
        self.parts = kept
        self.offsets = np.cumsum([0] + [len(p) for p in kept])
        self.shape: tuple[int, ...] = (int(self.offsets[-1]), *tail)
        self.dtype = kept[0].dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(sum(p.nbytes for p in self.parts))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        mapped = sum(isinstance(p, np.memmap) for p in self.parts)
        return f"RowStack(shape={self.shape}, dtype={self.dtype}, parts={len(self.parts)}, memory-mapped={mapped})"

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self[np.array([index])][0]
        if isinstance(index, slice):
            index = np.arange(*index.indices(len(self)))
        index = np.asarray(index)
        if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
            raise TypeError("RowStack takes an integer, a slice or a 1-D array of row numbers")
        index = index.astype(np.int64)
        n = len(self)
        if index.size and (index.min() < -n or index.max() >= n):
            bad = int(index[(index < -n) | (index >= n)][0])
            raise IndexError(f"row {bad} is out of range for a RowStack of {n} rows")
        index = np.where(index < 0, index + n, index)
        out = np.empty((len(index), *self.shape[1:]), dtype=self.dtype)
        which = np.searchsorted(self.offsets, index, side="right") - 1
        for part in np.unique(which):
            rows = which == part
            out[rows] = self.parts[part][index[rows] - self.offsets[part]]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        # Explicit, not implicit: the parts may be gigabytes of memory-mapped gathers.
        raise TypeError(f"a RowStack of {self.nbytes / 2**20:.0f} MiB does not turn into one array implicitly "
                        f"(it would read every row into memory); index the rows wanted, e.g. stack[a:b] or "
                        f"take_rows(stack, rows), or stack[:] for all of them")

    def min(self) -> float:
        """The smallest value of every part (NaN if any holds NaN); no part is copied."""
        return float(np.min(self._per_part(np.min)))

    def max(self) -> float:
        """The largest value of every part (NaN if any holds NaN); no part is copied."""
        return float(np.max(self._per_part(np.max)))

    def _per_part(self, reduce: Any) -> list[Any]:
        # numpy reduces a memory map in place, block by block: nothing is copied whole.
        values = [reduce(p) for p in self.parts if p.size]
        if not values:
            raise ValueError(f"a RowStack of shape {self.shape} holds no values to reduce")
        return values


def take_rows(source: Any, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of ``source`` (an array, a :class:`RowStack`, or device rows, whose rows index to the
    host) as a C-contiguous, writable array of their own.

    What a batch needs before ``torch.from_numpy``: a memory map's rows are read-only, and
    torch warns about (and must not write through) non-writable arrays.
    """
    batch = source[rows]
    if isinstance(batch, np.memmap) or not batch.flags.writeable or not batch.flags.c_contiguous:
        batch = np.array(batch, order="C", copy=True)
    return batch

"""``SeismicDataset`` and ``Normalization``: what a dataset plugin's factory returns.

A dataset holds velocity maps ``(N, 1, Z, X)`` in m/s and/or shot gathers ``(N, S, T, R)``
per split (``train``, ``val``, ``test``), the :class:`~fwi_plugins.survey.Survey` they belong
to, provenance attributes and the normalisation networks see the data through. Gathers a
dataset does not record are simulated by a physics plugin on first use and cached on disk
(see :mod:`fwi_plugins.data.cache`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

import numpy as np

from ..errors import DataError, UnknownNameError
from ..survey import Survey
from .rows import RowStack

SPLITS = ("train", "val", "test")

ArraySource = np.ndarray | Callable[[], np.ndarray]


def _xp(x: Any) -> Any:
    """The array module of ``x``: torch for tensors, numpy otherwise (torch imported only then)."""
    if hasattr(x, "detach"):
        import torch

        return torch
    return np


def _signed_log(x: Any) -> Any:
    xp = _xp(x)
    return xp.sign(x) * xp.log1p(xp.abs(x))


def _signed_log_scalar(x: float) -> float:
    return math.copysign(math.log1p(abs(x)), x)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Normalization:
    """OpenFWI-style scaling of velocity and gathers to [-1, 1], stored as dataset metadata.

    Velocity is min-max scaled from ``[vmin, vmax]`` m/s to [-1, 1]. Gathers go through
    ``sign(x) * log1p(|x|)`` (when ``log_gathers``) and are then min-max scaled from the
    transformed ``[data_min, data_max]`` (raw amplitudes, as OpenFWI's ``dataset_config``
    states them) to [-1, 1]. A dataset fits ``data_min``/``data_max`` on its training
    gathers the first time gathers are produced; until then they are ``None``.

    Every method takes a numpy array or a torch tensor and returns the same type.

    Attributes:
        vmin: velocity mapped to -1, m/s.
        vmax: velocity mapped to +1, m/s.
        data_min: smallest raw gather amplitude of the scale, or ``None`` if not fitted yet.
        data_max: largest raw gather amplitude of the scale, or ``None`` if not fitted yet.
        log_gathers: apply the signed log transform before the min-max scaling.
    """

    vmin: float = 1500.0
    vmax: float = 4500.0
    data_min: float | None = None
    data_max: float | None = None
    log_gathers: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.vmin) and math.isfinite(self.vmax) and 0 < self.vmin < self.vmax):
            raise DataError(f"normalization: expected 0 < vmin < vmax (m/s), got vmin={self.vmin}, vmax={self.vmax}")
        if (self.data_min is None) != (self.data_max is None):
            raise DataError("normalization: data_min and data_max must be given together")
        if self.data_min is not None and not self.data_min < self.data_max:  # type: ignore[operator]
            raise DataError(f"normalization: expected data_min < data_max, got {self.data_min}, {self.data_max}")

    # -- velocity --------------------------------------------------------------
    def velocity_to_unit(self, velocity: Any) -> Any:
        """m/s to the network's scale ([-1, 1] over ``[vmin, vmax]``)."""
        return (velocity - self.vmin) * (2.0 / (self.vmax - self.vmin)) - 1.0

    def velocity_from_unit(self, unit: Any) -> Any:
        """The network's scale back to m/s."""
        return (unit + 1.0) * (0.5 * (self.vmax - self.vmin)) + self.vmin

    # -- gathers ---------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        """Whether the gathers scale is known."""
        return self.data_min is not None

    def _gather_range(self) -> tuple[float, float]:
        if self.data_min is None or self.data_max is None:
            raise DataError("normalization: the gathers scale (data_min, data_max) is not fitted yet; "
                            "call Normalization.fit_gathers(train_gathers) or SeismicDataset.gathers('train') first")
        if self.log_gathers:
            return _signed_log_scalar(self.data_min), _signed_log_scalar(self.data_max)
        return float(self.data_min), float(self.data_max)

    def gathers_to_unit(self, gathers: Any) -> Any:
        """Raw amplitudes to the network's scale (OpenFWI: signed log, then min-max to [-1, 1])."""
        lo, hi = self._gather_range()
        y = _signed_log(gathers) if self.log_gathers else gathers
        return (y - lo) * (2.0 / (hi - lo)) - 1.0

    def gathers_from_unit(self, unit: Any) -> Any:
        """The inverse of :meth:`gathers_to_unit`."""
        lo, hi = self._gather_range()
        y = (unit + 1.0) * (0.5 * (hi - lo)) + lo
        if not self.log_gathers:
            return y
        xp = _xp(y)
        return xp.sign(y) * xp.expm1(xp.abs(y))

    def fit_gathers(self, gathers: Any) -> Normalization:
        """A copy whose gathers scale spans ``gathers`` (the training split's, normally): an
        array, a tensor or a :class:`~fwi_plugins.data.rows.RowStack` (reduced part by part)."""
        if isinstance(gathers, RowStack):
            lo, hi = gathers.min(), gathers.max()
        else:
            xp = _xp(gathers)
            lo, hi = float(xp.min(gathers)), float(xp.max(gathers))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise DataError("normalization: gathers hold NaN or infinite values")
        if lo == hi:
            # A constant record (e.g. all zeros) still needs a non-empty range.
            lo, hi = lo - 1.0, hi + 1.0
        return dataclasses.replace(self, data_min=lo, data_max=hi)

    # -- metadata --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able metadata (saved with runs, models and files)."""
        data = dataclasses.asdict(self)
        data["kind"] = "openfwi-minmax"
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalization:
        """The inverse of :meth:`to_dict`; unknown keys are an error."""
        data = {k: v for k, v in dict(data).items() if k != "kind"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UnknownNameError("normalization field", unknown[0], known)
        return cls(**data)

    @classmethod
    def openfwi(cls) -> Normalization:
        """OpenFWI's velocity scale (1500-4500 m/s); the gathers scale is fitted on data."""
        return cls(vmin=1500.0, vmax=4500.0)


class SeismicDataset:
    """Velocity maps and/or shot gathers in train/val/test splits, with survey and metadata.

    Arrays may be given directly or as zero-argument callables that produce them (so a
    generator runs, or a file is read, only when a split is first asked for); each split is
    produced once and kept.

    Args:
        name: dataset name (the registry name, normally).
        survey: the acquisition the gathers belong to (or are to be simulated with).
        velocity: split -> ``(N, 1, Z, X)`` float32 m/s array (or a callable producing one);
            ``None`` for gathers-only (field) data.
        gathers: split -> recorded ``(N, S, T, R)`` gathers (or a callable); splits missing
            here are simulated when asked for.
        normalization: the scaling networks see; defaults to OpenFWI's velocity range.
        attrs: provenance (generator, seed, options, source files, ...); part of the cache key.
        split_sizes: sizes of splits whose arrays are lazy; inferred from arrays otherwise.
    """

    def __init__(self, name: str, *, survey: Survey,
                 velocity: Mapping[str, ArraySource] | None = None,
                 gathers: Mapping[str, ArraySource] | None = None,
                 normalization: Normalization | None = None,
                 attrs: Mapping[str, Any] | None = None,
                 split_sizes: Mapping[str, int] | None = None) -> None:
        if not velocity and not gathers:
            raise DataError(f"dataset {name!r}: needs velocity maps, gathers, or both")
        self.name = name
        self.survey = survey
        self.normalization = normalization or Normalization(vmin=survey.vmin, vmax=survey.vmax)
        self.attrs: dict[str, Any] = dict(attrs or {})
        self._velocity_sources = dict(velocity or {})
        self._gather_sources = dict(gathers or {})
        self._velocity: dict[str, np.ndarray] = {}
        self._gathers: dict[str, np.ndarray | RowStack] = {}
        for split in (*self._velocity_sources, *self._gather_sources):
            if split not in SPLITS:
                raise UnknownNameError(f"split of dataset {name!r}", split, SPLITS)
        sizes = dict(split_sizes or {})
        for sources in (self._velocity_sources, self._gather_sources):
            for split, src in sources.items():
                if isinstance(src, np.ndarray):
                    sizes.setdefault(split, int(src.shape[0]))
        missing = [s for s in (*self._velocity_sources, *self._gather_sources) if s not in sizes]
        if missing:
            raise DataError(f"dataset {name!r}: split_sizes must give the size of lazy split(s) {missing}")
        self._split_sizes = {s: int(sizes.get(s, 0)) for s in SPLITS}

    # -- description -----------------------------------------------------------
    @property
    def has_labels(self) -> bool:
        """Whether the dataset has velocity maps (``False`` for gathers-only field data)."""
        return bool(self._velocity_sources)

    @property
    def has_recorded_gathers(self) -> bool:
        """Whether every non-empty split comes with recorded (not simulated) gathers."""
        return all(s in self._gather_sources for s, n in self._split_sizes.items() if n)

    @property
    def split_sizes(self) -> dict[str, int]:
        """Number of samples per split, ``{"train": n, "val": n, "test": n}``."""
        return dict(self._split_sizes)

    @property
    def grid(self) -> tuple[int, int]:
        """``(nz, nx)`` of the velocity maps (the survey's grid)."""
        return (self.survey.nz, self.survey.nx)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self._split_sizes.items())
        return (f"SeismicDataset({self.name!r}, {sizes}, grid={self.survey.nz}x{self.survey.nx}, "
                f"labels={self.has_labels}, recorded_gathers={bool(self._gather_sources)})")

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise UnknownNameError(f"split of dataset {self.name!r}", split, SPLITS)

    # -- arrays ----------------------------------------------------------------
    def velocity(self, split: str = "train") -> np.ndarray:
        """Velocity maps of ``split``: ``(N, 1, Z, X)`` float32 m/s (``N`` may be 0)."""
        self._check_split(split)
        if not self.has_labels:
            raise DataError(f"dataset {self.name!r} has no velocity maps (gathers only); "
                            "use a label-free mode or a dataset with velocity")
        if split not in self._velocity:
            src = self._velocity_sources.get(split)
            if src is None:
                arr = np.zeros((0, 1, *self.grid), np.float32)
            else:
                arr = src() if callable(src) else src
                arr = _check_velocity_array(arr, self, split)
            self._velocity[split] = arr
        return self._velocity[split]

    @overload
    def gathers(self, split: str = ..., physics: Any = ..., *, cache_dir: Any = ..., progress: bool = ...,
                mmap: Literal[False] = ...) -> np.ndarray: ...

    @overload
    def gathers(self, split: str = ..., physics: Any = ..., *, cache_dir: Any = ..., progress: bool = ...,
                mmap: bool) -> np.ndarray | RowStack: ...

    def gathers(self, split: str = "train", physics: Any = None, *, cache_dir: Any = None,
                progress: bool = True, mmap: bool = False) -> np.ndarray | RowStack:
        """Shot gathers of ``split``: ``(N, S, T, R)`` float32.

        Recorded gathers are returned as they are. Otherwise they are simulated from the
        velocity maps with ``physics`` (an object following the
        :class:`fwi_plugins.physics.Physics` contract) in batches, and cached on disk under
        ``cache_dir`` (default: ``$FWI_CACHE_DIR`` or the user cache directory).

        With ``mmap``, simulated gathers come back memory-mapped from the cache's parts: a
        read-only :class:`~fwi_plugins.data.rows.RowStack`, read a batch of rows at a time
        (``g[rows]``), that keeps a large corpus out of this process's memory. Without it,
        gathers this dataset holds memory-mapped are read into one array (and kept).

        The first call also fits the gathers scale of :attr:`normalization` on the
        training split (simulating it too if needed) unless the scale is already set.

        Raises:
            DataError: the split has no recorded gathers and no ``physics`` was given.
        """
        self._check_split(split)
        if split not in self._gathers:
            self._gathers[split] = self._produce_gathers(split, physics, cache_dir, progress, mmap)
        if not self.normalization.fitted:
            fit_split = next((s for s in SPLITS if self._split_sizes[s]), split)
            if fit_split != split and fit_split not in self._gathers:
                self._gathers[fit_split] = self._produce_gathers(fit_split, physics, cache_dir, progress, mmap)
            self.normalization = self.normalization.fit_gathers(self._gathers[fit_split])
        gathers = self._gathers[split]
        if isinstance(gathers, RowStack) and not mmap:
            gathers = self._gathers[split] = gathers[:]
        return gathers

    def _produce_gathers(self, split: str, physics: Any, cache_dir: Any, progress: bool,
                         mmap: bool) -> np.ndarray | RowStack:
        src = self._gather_sources.get(split)
        if src is not None:
            arr = src() if callable(src) else src
            return _check_gathers_array(arr, self, split)
        if self._split_sizes[split] == 0:
            return np.zeros((0, self.survey.n_shots, self.survey.nt, self.survey.n_receivers), np.float32)
        if physics is None:
            raise DataError(
                f"dataset {self.name!r} has no recorded gathers for split {split!r}; pass a physics to "
                f"simulate them, e.g. api.build_physics('deepwave', survey=dataset.survey)")
        from .cache import simulate_cached

        return simulate_cached(self, split, physics, cache_dir=cache_dir, progress=progress, mmap=mmap)

    def fill_gathers(self, split: str, physics: Any, *, rank: int, world: int, cache_dir: Any = None,
                     progress: bool = True) -> int:
        """Simulate into the cache this process's share (``rank`` of ``world``) of the split's
        missing gathers, without reading any back (see :func:`~fwi_plugins.data.cache.fill_shard`);
        the samples simulated. Recorded and empty splits need nothing."""
        self._check_split(split)
        if split in self._gathers or self._gather_sources.get(split) is not None or not self._split_sizes[split]:
            return 0
        if physics is None:
            raise DataError(f"dataset {self.name!r} has no recorded gathers for split {split!r}; pass a physics "
                            f"to simulate them")
        from .cache import fill_shard

        return fill_shard(self.velocity(split), physics, self.cache_identity(split), rank=rank, world=world,
                          cache_dir=cache_dir, progress=progress, desc=f"simulating {self.name} {split}")

    def cache_identity(self, split: str) -> dict[str, Any]:
        """What identifies ``split``'s velocity for the simulation cache (besides its content)."""
        return {"dataset": self.name, "split": split, "attrs": self.attrs}

    def set_normalization(self, normalization: Normalization) -> None:
        """Use a given scaling (for example a pretrained model's) instead of fitting one."""
        self.normalization = normalization


def _check_velocity_array(arr: Any, ds: SeismicDataset, split: str) -> np.ndarray:
    from .array_checks import validate_velocity

    where = f"dataset {ds.name!r} split {split!r}"
    arr = validate_velocity(arr, where)
    if arr.shape[-2:] != ds.grid:
        raise DataError(f"{where}: velocity grid {arr.shape[-2:]} differs from the survey's {ds.grid}")
    return arr


def _check_gathers_array(arr: Any, ds: SeismicDataset, split: str) -> np.ndarray:
    from .array_checks import validate_gathers

    where = f"dataset {ds.name!r} split {split!r}"
    arr = validate_gathers(arr, where)
    expected = (ds.survey.n_shots, ds.survey.nt, ds.survey.n_receivers)
    if arr.shape[1:] != expected:
        raise DataError(f"{where}: gathers of shape {arr.shape[1:]} per sample, the survey expects "
                        f"(shots, time, receivers) = {expected}")
    return arr

"""Simulated gathers, cached on disk so a dataset is simulated once per physics and survey.

An entry is a folder named by the cache key, a hash of everything the gathers depend on:
the dataset's identity (generator, options, seed or source files), the velocity maps' own
bytes, the survey and the physics (name, version, options). It holds the gathers in parts
of :data:`PART_SIZE` samples, each written atomically with a JSON record of its shape and
checksum; an interrupted simulation therefore resumes where it stopped, and a part that is
missing its record, has the wrong shape or fails its checksum is reported and simulated again,
never used.

``cached_gathers(..., mmap=True)`` returns the parts memory-mapped, read as one array by a
:class:`~fwi_plugins.data.rows.RowStack`: pretraining on thousands of maps then reads its
batches from the page cache instead of holding every gather in its own memory. Checksums are
still verified, by streaming each part's file through the hash.

The cache lives under ``$FWI_CACHE_DIR`` if set, else the user cache directory
(``platformdirs.user_cache_dir("fwi-plugins")/simulations``); a ``cache_dir`` argument wins
over both.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from ..errors import DataError
from ..atomic import atomic_path, atomic_write_text
from .cache_key import array_digest, cache_key, mapped_digest
from .rows import RowStack

ENV_VAR = "FWI_CACHE_DIR"
PART_SIZE = 256


class CacheWarning(UserWarning):
    """A cache entry was damaged or incomplete and is being rebuilt."""


def default_cache_dir() -> Path:
    """``$FWI_CACHE_DIR``, else the user cache directory's ``fwi-plugins/simulations``."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("fwi-plugins")) / "simulations"


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def simulate(velocity: np.ndarray, physics: Any, *, batch_size: int | None = None, progress: bool = True,
             desc: str = "simulating", start: int = 0, stop: int | None = None, bar: Any = None) -> np.ndarray:
    """Run ``physics.simulate`` over ``velocity[start:stop]`` in batches, without gradients.

    Returns:
        ``(n, S, T, R)`` float32 gathers.

    Raises:
        DataError: the physics returned the wrong shape or NaN/inf (an unstable simulation).
    """
    import torch

    stop = velocity.shape[0] if stop is None else stop
    survey = physics.survey
    expected = (survey.n_shots, survey.nt, survey.n_receivers)
    batch = int(batch_size or getattr(physics, "batch_size", None) or 16)
    device = getattr(physics, "device", None) or "cpu"
    out = np.empty((stop - start, *expected), np.float32)
    own_bar = bar is None
    if own_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=stop - start, desc=desc, unit="sample", disable=not progress, leave=False)
    try:
        for i in range(start, stop, batch):
            j = min(i + batch, stop)
            v = torch.from_numpy(np.ascontiguousarray(velocity[i:j], dtype=np.float32)).to(device)
            with torch.no_grad():
                g = physics.simulate(v)
            g = g.detach().to("cpu", torch.float32).numpy()
            if g.shape != (j - i, *expected):
                raise DataError(f"physics returned gathers of shape {g.shape} for {j - i} models; its survey "
                                f"expects {(j - i, *expected)}")
            if not np.all(np.isfinite(g)):
                raise DataError(f"physics returned NaN or infinite gathers for samples {i}..{j - 1}: the "
                                f"simulation is unstable for these models (check the survey's dt and dx)")
            out[i - start:j - start] = g
            bar.update(j - i)
    finally:
        if own_bar:
            bar.close()
    return out


def _part_name(start: int, stop: int) -> str:
    return f"part-{start:07d}-{stop:07d}"


def _load_part(entry: Path, start: int, stop: int, shape: tuple[int, ...], *,
               mmap: bool = False) -> np.ndarray | None:
    """A part's gathers if present and intact; ``None`` (with a warning if damaged) otherwise.

    With ``mmap`` the part comes back as a read-only ``np.memmap``, its checksum verified
    by reading the file (see :func:`_mapped_digest`), not through the map.
    """
    base = entry / _part_name(start, stop)
    data, meta = base.with_suffix(".npy"), base.with_suffix(".json")
    if not data.exists() and not meta.exists():
        return None
    problem = None
    arr = None
    try:
        record = json.loads(meta.read_text())
        arr = np.load(data, mmap_mode="r" if mmap else None, allow_pickle=False)
        if tuple(arr.shape) != shape or tuple(record.get("shape", ())) != shape:
            problem = f"shape {tuple(arr.shape)}, expected {shape}"
        elif arr.dtype != np.float32:
            problem = f"dtype {arr.dtype}, expected float32"
        else:
            digest = mapped_digest(data, arr) if isinstance(arr, np.memmap) else array_digest(arr)
            if digest != record.get("sha256"):
                problem = "checksum mismatch"
    except FileNotFoundError as exc:
        problem = f"incomplete ({Path(exc.filename).name} missing)"
    except (ValueError, OSError, EOFError) as exc:
        problem = f"unreadable ({exc})"
    if problem:
        del arr  # a damaged part's map is closed before its file goes
        warnings.warn(f"simulation cache part {base} is corrupt: {problem}; simulating it again",
                      CacheWarning, stacklevel=5)
        for path in (data, meta):
            path.unlink(missing_ok=True)
        return None
    return arr


def _save_part(entry: Path, start: int, stop: int, arr: np.ndarray) -> None:
    base = entry / _part_name(start, stop)
    with atomic_path(base.with_suffix(".npy")) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
    # The record is written last: a part without one is treated as unfinished.
    atomic_write_text(base.with_suffix(".json"),
                      json.dumps({"shape": list(arr.shape), "dtype": "float32", "sha256": array_digest(arr)}))


def _open_entry(velocity: np.ndarray, physics: Any, identity: Mapping[str, Any],
                cache_dir: str | os.PathLike[str] | None) -> Path:
    """The entry folder of these gathers, made (with its record) if it is new."""
    survey = physics.survey
    if velocity.shape[-2:] != (survey.nz, survey.nx):
        raise DataError(f"velocity grid {velocity.shape[-2:]} differs from the physics' survey grid "
                        f"({survey.nz}, {survey.nx})")
    key, record = cache_key(identity, velocity, physics)
    root = resolve_cache_dir(cache_dir)
    entry = root / key
    try:
        entry.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        where = "--cache-dir / $FWI_CACHE_DIR" if cache_dir or os.environ.get("FWI_CACHE_DIR") else "the cache"
        raise DataError(f"simulation cache {root} ({where}): cannot make a folder there "
                        f"({exc.strerror or exc}); expected a writable folder") from None
    record_path = entry / "entry.json"
    if not record_path.exists():
        atomic_write_text(record_path, json.dumps(record, indent=1, sort_keys=True))
    return entry


@contextlib.contextmanager
def _dropped_if_empty(entry: Path) -> Iterator[None]:
    """Remove the entry again if the block fails before any part is stored in it.

    A simulation that fails (an unstable model, an interrupt, a full disk) must not leave a
    folder holding only the entry's record.
    """
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            if all(p.name == "entry.json" for p in entry.iterdir()):
                (entry / "entry.json").unlink(missing_ok=True)
                entry.rmdir()  # fails, and keeps the entry, if another process has begun a part meanwhile
        raise


def _fill_parts(entry: Path, velocity: np.ndarray, physics: Any, keep: Callable[[int, int, np.ndarray], None], *,
                mmap: bool, progress: bool, desc: str, batch_size: int | None) -> None:
    """Hand every part of the entry to ``keep(start, stop, gathers)``, simulating and storing the missing ones.

    Intact parts come first, then the simulated ones, each as soon as it is stored (with
    ``mmap``, memory-mapped from its file: a long simulation never holds more than one part).
    """
    survey = physics.survey
    n = velocity.shape[0]
    per_sample = (survey.n_shots, survey.nt, survey.n_receivers)
    todo = []
    for start in range(0, n, PART_SIZE):
        stop = min(start + PART_SIZE, n)
        part = _load_part(entry, start, stop, (stop - start, *per_sample), mmap=mmap)
        if part is None:
            todo.append((start, stop))
        else:
            keep(start, stop, part)
    if not todo:
        return
    from tqdm.auto import tqdm

    total = sum(b - a for a, b in todo)
    with tqdm(total=total, desc=desc, unit="sample", disable=not progress, leave=False) as bar:
        for start, stop in todo:
            part = simulate(velocity, physics, batch_size=batch_size, start=start, stop=stop, bar=bar)
            _save_part(entry, start, stop, part)
            if mmap:
                del part
                part = np.load(entry / f"{_part_name(start, stop)}.npy", mmap_mode="r", allow_pickle=False)
            keep(start, stop, part)


@overload
def cached_gathers(velocity: np.ndarray, physics: Any, identity: Mapping[str, Any], *,
                   cache_dir: str | os.PathLike[str] | None = ..., progress: bool = ..., desc: str = ...,
                   batch_size: int | None = ..., mmap: Literal[False] = ...) -> np.ndarray: ...


@overload
def cached_gathers(velocity: np.ndarray, physics: Any, identity: Mapping[str, Any], *,
                   cache_dir: str | os.PathLike[str] | None = ..., progress: bool = ..., desc: str = ...,
                   batch_size: int | None = ..., mmap: bool) -> np.ndarray | RowStack: ...


def cached_gathers(velocity: np.ndarray, physics: Any, identity: Mapping[str, Any], *,
                   cache_dir: str | os.PathLike[str] | None = None, progress: bool = True,
                   desc: str = "simulating", batch_size: int | None = None,
                   mmap: bool = False) -> np.ndarray | RowStack:
    """Gathers for ``velocity`` from the cache, simulating (and storing) what is missing.

    Args:
        velocity: ``(N, 1, Z, X)`` float32 m/s.
        physics: an object following the Physics contract (``survey``, ``version``, ``simulate``).
        identity: what the velocity is (generator, options, seed, source files ...).
        cache_dir: overrides ``$FWI_CACHE_DIR`` and the user cache directory.
        progress: show a progress bar while simulating.
        desc: progress-bar label.
        batch_size: models per ``physics.simulate`` call (default: the physics' ``batch_size`` or 16).
        mmap: return the cache's parts memory-mapped (read-only), as one
            :class:`~fwi_plugins.data.rows.RowStack`, instead of one array in memory; index
            it by rows (``g[a:b]``, ``g[rows]``) to read a batch.

    Returns:
        ``(N, S, T, R)`` float32 gathers: a numpy array, or with ``mmap`` a ``RowStack`` of
        ``np.memmap`` parts.
    """
    entry = _open_entry(velocity, physics, identity, cache_dir)
    survey = physics.survey
    per_sample = (survey.n_shots, survey.nt, survey.n_receivers)
    if mmap:
        parts: dict[int, np.ndarray] = {}

        def keep_mapped(start: int, stop: int, part: np.ndarray) -> None:
            parts[start] = part

        with _dropped_if_empty(entry):
            _fill_parts(entry, velocity, physics, keep_mapped, mmap=True, progress=progress, desc=desc,
                        batch_size=batch_size)
        if not parts:  # no samples at all
            return RowStack([np.zeros((0, *per_sample), np.float32)])
        return RowStack([parts[start] for start in sorted(parts)])
    out = np.empty((velocity.shape[0], *per_sample), np.float32)

    def keep_in_memory(start: int, stop: int, part: np.ndarray) -> None:
        out[start:stop] = part

    with _dropped_if_empty(entry):
        _fill_parts(entry, velocity, physics, keep_in_memory, mmap=False, progress=progress, desc=desc,
                    batch_size=batch_size)
    return out


def fill_shard(velocity: np.ndarray, physics: Any, identity: Mapping[str, Any], *, rank: int, world: int,
               cache_dir: str | os.PathLike[str] | None = None, progress: bool = True, desc: str = "simulating",
               batch_size: int | None = None) -> int:
    """Simulate and store the missing cache parts of these gathers that belong to ``rank`` of ``world``.

    Part ``i`` (samples ``i * PART_SIZE`` onwards) belongs to rank ``i % world``, so the
    processes of a distributed job fill one cache entry together, each on its own physics'
    device, and a restart simulates only what is still missing. A part counts as stored when
    its record is written (the record comes last); :func:`cached_gathers` verifies it when the
    gathers are read. Returns the number of samples simulated.
    """
    if not (world >= 1 and 0 <= rank < world):
        raise ValueError(f"rank {rank} of {world} processes: expected 0 <= rank < world")
    entry = _open_entry(velocity, physics, identity, cache_dir)
    n = velocity.shape[0]
    mine = [(start, min(start + PART_SIZE, n)) for index, start in enumerate(range(0, n, PART_SIZE))
            if index % world == rank]
    todo = [(a, b) for a, b in mine if not (entry / f"{_part_name(a, b)}.json").exists()
            or not (entry / f"{_part_name(a, b)}.npy").exists()]
    if not todo:
        return 0
    from tqdm.auto import tqdm

    total = sum(b - a for a, b in todo)
    with _dropped_if_empty(entry), tqdm(total=total, desc=desc, unit="sample", disable=not progress,
                                         leave=False) as bar:
        for start, stop in todo:
            _save_part(entry, start, stop, simulate(velocity, physics, batch_size=batch_size, start=start,
                                                    stop=stop, bar=bar))
    return total


def simulate_cached(dataset: Any, split: str, physics: Any, *, cache_dir: Any = None, progress: bool = True,
                    mmap: bool = False) -> np.ndarray | RowStack:
    """Gathers of a :class:`~fwi_plugins.data.SeismicDataset` split, simulated once and cached
    (memory-mapped with ``mmap``, see :func:`cached_gathers`)."""
    velocity = dataset.velocity(split)
    return cached_gathers(velocity, physics, dataset.cache_identity(split), cache_dir=cache_dir,
                          progress=progress, desc=f"simulating {dataset.name} {split}", mmap=mmap)

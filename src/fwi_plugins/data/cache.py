"""Simulated gathers, cached on disk so a dataset is simulated once per physics and survey.

An entry is a folder named by the cache key, a hash of everything the gathers depend on:
the dataset's identity (generator, options, seed or source files), the velocity maps' own
bytes, the survey and the physics (name, version, options). It holds the gathers in parts
of :data:`PART_SIZE` samples, each written atomically with a JSON record of its shape and
checksum; an interrupted simulation therefore resumes where it stopped, and a part that is
missing its record, has the wrong shape or fails its checksum is reported and simulated again,
never used.

The cache lives under ``$FWI_CACHE_DIR`` if set, else the user cache directory
(``platformdirs.user_cache_dir("fwi-plugins")/simulations``); a ``cache_dir`` argument wins
over both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..atomic import atomic_path, atomic_write_text

ENV_VAR = "FWI_CACHE_DIR"
PART_SIZE = 256
LAYOUT_VERSION = 1


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


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def physics_identity(physics: Any) -> dict[str, Any]:
    """Name, version, options and survey of a physics object (the Physics contract's parts)."""
    version = getattr(physics, "version", None)
    if not version:
        raise DataError(f"physics {type(physics).__name__} has no 'version'; the simulation cache needs one "
                        f"(see fwi_plugins.physics.Physics)")
    survey = getattr(physics, "survey", None)
    if survey is None:
        raise DataError(f"physics {type(physics).__name__} has no 'survey' (see fwi_plugins.physics.Physics)")
    return {
        "name": getattr(physics, "name", None) or f"{type(physics).__module__}.{type(physics).__qualname__}",
        "version": str(version),
        "options": _jsonable(getattr(physics, "options", None)),
        "survey": survey.to_dict(),
    }


def array_digest(arr: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    arr = np.ascontiguousarray(arr)
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def cache_key(identity: Mapping[str, Any], velocity: np.ndarray, physics: Any) -> tuple[str, dict[str, Any]]:
    """The entry name and the record it is the hash of."""
    record = {
        "layout": LAYOUT_VERSION,
        "dataset": _jsonable(identity),
        "velocity": {"sha256": array_digest(velocity), "shape": list(velocity.shape)},
        "physics": physics_identity(physics),
    }
    text = json.dumps(record, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32], record


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


def _load_part(entry: Path, start: int, stop: int, shape: tuple[int, ...]) -> np.ndarray | None:
    """A part's gathers if present and intact; ``None`` (with a warning if damaged) otherwise."""
    base = entry / _part_name(start, stop)
    data, meta = base.with_suffix(".npy"), base.with_suffix(".json")
    if not data.exists() and not meta.exists():
        return None
    problem = None
    try:
        record = json.loads(meta.read_text())
        arr = np.load(data, allow_pickle=False)
        if tuple(arr.shape) != shape or tuple(record.get("shape", ())) != shape:
            problem = f"shape {tuple(arr.shape)}, expected {shape}"
        elif arr.dtype != np.float32:
            problem = f"dtype {arr.dtype}, expected float32"
        elif array_digest(arr) != record.get("sha256"):
            problem = "checksum mismatch"
    except FileNotFoundError as exc:
        problem = f"incomplete ({Path(exc.filename).name} missing)"
    except (ValueError, OSError, EOFError) as exc:
        problem = f"unreadable ({exc})"
    if problem:
        warnings.warn(f"simulation cache part {base} is corrupt: {problem}; simulating it again",
                      CacheWarning, stacklevel=4)
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


def cached_gathers(velocity: np.ndarray, physics: Any, identity: Mapping[str, Any], *,
                   cache_dir: str | os.PathLike[str] | None = None, progress: bool = True,
                   desc: str = "simulating", batch_size: int | None = None) -> np.ndarray:
    """Gathers for ``velocity`` from the cache, simulating (and storing) what is missing.

    Args:
        velocity: ``(N, 1, Z, X)`` float32 m/s.
        physics: an object following the Physics contract (``survey``, ``version``, ``simulate``).
        identity: what the velocity is (generator, options, seed, source files ...).
        cache_dir: overrides ``$FWI_CACHE_DIR`` and the user cache directory.
        progress: show a progress bar while simulating.
        desc: progress-bar label.
        batch_size: models per ``physics.simulate`` call (default: the physics' ``batch_size`` or 16).
    """
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
    n = velocity.shape[0]
    per_sample = (survey.n_shots, survey.nt, survey.n_receivers)
    out = np.empty((n, *per_sample), np.float32)
    todo = []
    for start in range(0, n, PART_SIZE):
        stop = min(start + PART_SIZE, n)
        part = _load_part(entry, start, stop, (stop - start, *per_sample))
        if part is None:
            todo.append((start, stop))
        else:
            out[start:stop] = part
    if todo:
        from tqdm.auto import tqdm

        total = sum(b - a for a, b in todo)
        with tqdm(total=total, desc=desc, unit="sample", disable=not progress, leave=False) as bar:
            for start, stop in todo:
                out[start:stop] = simulate(velocity, physics, batch_size=batch_size, start=start, stop=stop,
                                           bar=bar)
                _save_part(entry, start, stop, out[start:stop])
    return out


def simulate_cached(dataset: Any, split: str, physics: Any, *, cache_dir: Any = None,
                    progress: bool = True) -> np.ndarray:
    """Gathers of a :class:`~fwi_plugins.data.SeismicDataset` split, simulated once and cached."""
    velocity = dataset.velocity(split)
    return cached_gathers(velocity, physics, dataset.cache_identity(split), cache_dir=cache_dir,
                          progress=progress, desc=f"simulating {dataset.name} {split}")

"""The simulation cache's key and checksums: what the cached gathers depend on, hashed.

The key hashes the dataset's identity, the velocity maps' own bytes, the survey and the
physics (name, version, options); :func:`array_digest` hashes an array a bounded chunk at a
time, and :func:`mapped_digest` a memory-mapped one by reading its file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["DIGEST_CHUNK_BYTES", "LAYOUT_VERSION", "array_digest", "cache_key", "mapped_digest", "physics_identity"]

LAYOUT_VERSION = 1
#: Bytes hashed at a time: a checksum never holds more than this of an array in memory.
DIGEST_CHUNK_BYTES = 16 * 2**20


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


def _digest_start(arr: np.ndarray) -> Any:
    # The header cache keys and part records have always hashed: dtype and shape as text.
    return hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())


def _rows_per_block(arr: np.ndarray, chunk_bytes: int) -> int:
    """How many whole rows of ``arr`` make about ``chunk_bytes`` (at least one)."""
    row_bytes = max(1, arr.nbytes // max(1, len(arr)))
    return max(1, chunk_bytes // row_bytes)


def array_digest(arr: np.ndarray, *, chunk_bytes: int = DIGEST_CHUNK_BYTES) -> str:
    """SHA-256 of an array's dtype, shape and C-order bytes.

    Hashed in blocks of rows, so a memory map or a strided view is never copied whole; the
    digest is that of the whole array's bytes in one piece, as cache keys and part records
    have always held it.
    """
    arr = np.asarray(arr)
    if arr.ndim == 0:
        arr = arr.reshape(1)  # as np.ascontiguousarray shapes a scalar
    h = _digest_start(arr)
    step = _rows_per_block(arr, chunk_bytes)
    for start in range(0, len(arr), step):
        block = np.ascontiguousarray(arr[start:start + step])
        h.update(block.data.cast("B"))
    return h.hexdigest()


def mapped_digest(path: Path, arr: np.memmap, *, chunk_bytes: int = DIGEST_CHUNK_BYTES) -> str:
    """:func:`array_digest` of ``arr``, memory-mapped from ``path``, read from the file.

    Reading through the map would make every page of the part resident in this process;
    reading the file into one reused buffer leaves them to the page cache alone.
    """
    if arr.ndim > 1 and not arr.flags.c_contiguous:  # a Fortran-order file: hash rows in C order
        return array_digest(arr, chunk_bytes=chunk_bytes)
    h = _digest_start(arr)
    remaining = arr.nbytes
    buffer = memoryview(bytearray(max(1, min(chunk_bytes, remaining))))
    with open(path, "rb") as fh:
        fh.seek(arr.offset)
        while remaining:
            got = fh.readinto(buffer[:min(len(buffer), remaining)])
            if not got:
                raise EOFError(f"{path.name} ends {remaining} bytes early")
            h.update(buffer[:got])
            remaining -= got
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

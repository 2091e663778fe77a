""".npy files: the array as is, read with ``allow_pickle=False`` (never unpickled)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...atomic import atomic_path
from ...errors import DataError

__all__ = ["read_npy", "write_npy"]


def read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        # numpy says "allow_pickle=False" for object arrays and "cannot reshape" for truncation.
        raise DataError(f"{path}: not a readable numeric .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None


def write_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # A file handle, because np.save would append ".npy" to the temporary name.
        np.save(fh, arr, allow_pickle=False)


"""Tiny example inputs, generated on demand: ``path=example`` for ``openfwi``, ``velocity=example`` for ``files``.

They let a user (and the registry-wide contract checks) try the file readers without
downloading anything. The maps come from this package's own ``flatvel-a`` generator, not
from OpenFWI, and are written once under the cache directory.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_path

EXAMPLE = "example"
_VERSION = "v1"


def _root() -> Path:
    from .cache import default_cache_dir

    return default_cache_dir().parent / "examples" / _VERSION


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def openfwi_example() -> Path:
    """A folder in OpenFWI's distributed layout: a train zip (8 maps) and a test zip (4 maps)."""
    from .families import generate

    root = _root() / "openfwi"
    for split, number, n in (("train", 1, 8), ("test", 2, 4)):
        target = root / f"example_{split}_vmodel.zip"
        if target.exists():
            continue
        maps = generate("flatvel-a", n, split=split)
        with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"vmodel{number}.npy", _npy_bytes(maps))
    return root


def files_example() -> Path:
    """A netCDF velocity file of 10 small (32 x 32) generated maps."""
    from .families import FAMILIES, generate
    from .io import write_velocity

    target = _root() / "files" / "example_velocity.nc"
    if not target.exists():
        opts = FAMILIES["curvevel-a"].options(nz=32, nx=32)
        write_velocity(target, generate("curvevel-a", 10, options=opts), dx=10.0,
                       attrs={"generator": "fwi_plugins.data.families:curvevel-a", "seed": 0})
    return target

"""The file formats behind :mod:`fwi_plugins.data.io`, one module each.

``npy`` (numpy arrays), ``mat`` (MATLAB, read only), ``netcdf`` (netCDF and zarr through
xarray) and ``segy`` (SEG-Y through segyio, its header handling in ``segy_headers``).
Each module imports its library only when a file is actually read or written.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DataError

# Variable names a velocity or gathers array goes by in files written elsewhere.
VELOCITY_NAMES = ("velocity", "vp", "vel", "v", "model")
GATHERS_NAMES = ("gathers", "data", "seismic", "pressure")


def require_file(path: Path) -> None:
    """Raise :class:`DataError` naming ``path`` if nothing is there."""
    if not path.exists():
        raise DataError(f"{path}: no such file")

"""The ``files`` dataset: velocity and/or gathers from user files (.npy, .nc, .zarr, .sgy, velocity .mat).

Either option may name a folder: its files are read in name order and concatenated, and
the splits are cut by fraction, whatever the files are called.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..options import to_dict
from ..survey import Survey
from .dataset import SPLITS, Normalization, SeismicDataset
from .families import resolve_survey
from .io import GATHERS_SUFFIXES, VELOCITY_SUFFIXES, read_gathers, read_velocity, survey_from_attrs
from .options import FilesOptions


def split_counts(n: int, fractions: tuple[float, ...]) -> dict[str, int]:
    """Split ``n`` samples by fractions (train, val, test); rounding leftovers go to train."""
    val = int(round(n * fractions[1]))
    test = int(round(n * fractions[2]))
    train = n - val - test
    if train < 0:
        test += train
        train = 0
    return {"train": train, "val": val, "test": test}


def _read_all(path: str, read: Any, suffixes: tuple[str, ...], what: str) -> tuple[np.ndarray, dict[str, Any]]:
    """One file, or every ``what`` file of a folder in name order, concatenated (names need not say the split)."""
    folder = Path(path).expanduser()
    if not folder.is_dir() or folder.suffix.lower() == ".zarr":
        return read(path)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no {what} files ({', '.join(suffixes)}) in the folder")
    arrays, first = [], None
    for file in files:
        arr, file_attrs = read(file)
        if arrays and arr.shape[1:] != arrays[0].shape[1:]:
            raise DataError(f"{file}: {what} of shape {arr.shape[1:]} per sample, but {files[0].name} holds "
                            f"{arrays[0].shape[1:]}; every file of {folder} must share one layout")
        arrays.append(arr)
        first = first or file_attrs
    attrs = {**(first or {}), "path": str(folder), "files": [f.name for f in files]}
    return np.concatenate(arrays), attrs


def build_files(options: FilesOptions | None = None) -> SeismicDataset:
    """A dataset read from files; gathers-only files make a dataset without labels."""
    opts = options if options is not None else FilesOptions()
    velocity = gathers = None
    attrs: dict = {"generator": "fwi_plugins.data.files", "options": to_dict(opts)}
    survey: Survey | None = None
    if opts.gathers:
        gathers, gattrs = _read_all(opts.gathers, read_gathers, GATHERS_SUFFIXES, "gathers")
        attrs["gathers_file"] = {k: v for k, v in gattrs.items() if k not in ("versions", "survey")}
        if opts.survey == "auto":
            survey = survey_from_attrs(gattrs, where=opts.gathers)
    if opts.velocity:
        if opts.velocity == "example":
            from .examples import files_example

            opts = dataclasses.replace(opts, velocity=str(files_example()))
        stated = survey if survey is not None or opts.survey in ("auto", "openfwi", "small", "") \
            else Survey.load(opts.survey)
        # The survey's grid decides the axis order of MATLAB stacks, (N, Z, X) or (Z, X, N).
        grid = (stated.nz, stated.nx) if stated is not None else None
        velocity, vattrs = _read_all(opts.velocity, functools.partial(read_velocity, grid=grid),
                                     (*VELOCITY_SUFFIXES, ".mat"), "velocity")
        attrs["velocity_file"] = {k: v for k, v in vattrs.items() if k != "versions"}
    if velocity is not None and gathers is not None and velocity.shape[0] != gathers.shape[0]:
        raise DataError(f"{opts.gathers}: {gathers.shape[0]} samples of gathers, but {opts.velocity} holds "
                        f"{velocity.shape[0]} velocity maps; expected one gather set per map")
    if survey is None:
        if opts.survey != "auto":
            if velocity is not None:
                survey = resolve_survey(opts.survey, *velocity.shape[-2:])
            else:
                survey = Survey.load(opts.survey)
        elif velocity is not None:
            dx = float(attrs["velocity_file"].get("dx", 10.0))
            survey = Survey.openfwi(nz=velocity.shape[-2], nx=velocity.shape[-1], dx=dx)
        else:
            raise DataError(f"{opts.gathers}: the file does not describe its survey (npy files carry none); "
                            f"pass survey=FILE.toml or a preset")
    if velocity is not None and velocity.shape[-2:] != (survey.nz, survey.nx):
        raise DataError(f"{opts.velocity}: grid {velocity.shape[-2:]} differs from the survey's "
                        f"({survey.nz}, {survey.nx})")
    n = (velocity if velocity is not None else gathers).shape[0]  # type: ignore[union-attr]
    counts = split_counts(n, opts.splits)
    bounds, start = {}, 0
    for split in SPLITS:
        bounds[split] = (start, start + counts[split])
        start += counts[split]

    def cut(arr: np.ndarray | None) -> dict[str, np.ndarray] | None:
        if arr is None:
            return None
        return {s: arr[a:b] for s, (a, b) in bounds.items() if b > a}

    name = Path(opts.velocity or opts.gathers).stem
    attrs["name"] = name
    return SeismicDataset("files", survey=survey, velocity=cut(velocity), gathers=cut(gathers),
                          normalization=Normalization(vmin=opts.vmin, vmax=opts.vmax), attrs=attrs,
                          split_sizes=counts)

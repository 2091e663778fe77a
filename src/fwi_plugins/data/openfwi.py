"""Reader for files in OpenFWI's layout: ``model*.npy``/``vmodel*.npy`` and ``data*.npy``.

Velocity files hold ``(N, 1, 70, 70)`` float32 m/s; gathers files, when present, hold
``(N, 5, 1000, 70)`` and pair with the velocity file of the same number (``data3.npy`` with
``model3.npy``). Files are read from a folder, from ``.zip`` archives of ``.npy`` members
(as the maps are distributed; read in memory, never unpickled), or given one by one.

Splits: validation maps are drawn (seeded) from the training files, and the test split comes
only from the test files, so a model is never validated on test data.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, OptionError
from ..options import to_dict
from .dataset import Normalization, SeismicDataset
from .families import resolve_survey
from .options import OpenFWIOptions
from .array_checks import validate_gathers, validate_velocity

_VELOCITY = re.compile(r"^(?:v?model|vel)(\d+)\.(?:npy|mat)$", re.IGNORECASE)
_GATHERS = re.compile(r"^data(\d+)\.npy$", re.IGNORECASE)
OPENFWI_VELOCITY_SHAPE = (1, 70, 70)
OPENFWI_GATHERS_SHAPE = (5, 1000, 70)


@dataclass(frozen=True)
class Member:
    """One ``.npy`` array: a plain file, or a member of a zip archive."""

    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        return Path(self.member).name if self.member else self.path.name

    def __str__(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    def load(self) -> np.ndarray:
        if self.member is None and self.path.suffix.lower() == ".mat":
            from .formats.mat import read_mat_velocity

            return read_mat_velocity(self.path)[0]
        try:
            if self.member is None:
                # Memory-mapped: only the rows a split uses are read from disk.
                return np.load(self.path, mmap_mode="r", allow_pickle=False)
            with zipfile.ZipFile(self.path) as zf, zf.open(self.member) as fh:
                return np.lib.format.read_array(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise DataError(f"{self}: not a readable numeric .npy array ({exc})") from None


def _number(name: str) -> int:
    m = _VELOCITY.match(name) or _GATHERS.match(name)
    return int(m.group(1)) if m else -1


def _members(path: Path, family: str) -> Iterator[Member]:
    """Every ``.npy`` under ``path`` (a folder, a .zip or a .npy), restricted to ``family`` in folders."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (expected OpenFWI .npy files, a folder or a .zip)")
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if family and not child.name.lower().startswith(family.lower()) and child.suffix == ".zip":
                continue
            if child.suffix.lower() in (".zip", ".npy", ".mat"):
                yield from _members(child, "")
        return
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = [i.filename for i in zf.infolist() if i.filename.lower().endswith(".npy")]
        except zipfile.BadZipFile as exc:
            raise DataError(f"{path}: not a readable zip archive ({exc})") from None
        for name in names:
            yield Member(path, name)
        return
    if path.suffix.lower() in (".npy", ".mat"):
        yield Member(path)
        return
    raise DataError(f"{path}: expected a folder, a .zip, a .npy or a .mat file")


def _is_test(member: Member) -> bool:
    container = member.path.name if member.member else member.path.parent.name + "/" + member.path.name
    return "test" in container.lower() or "test" in member.name.lower()


def discover(options: OpenFWIOptions) -> tuple[list[Member], list[Member]]:
    """The velocity members for training (and validation) and for testing, in file-number order."""
    if not options.path:
        raise OptionError("dataset openfwi: set path=FOLDER|FILE.zip|FILE.npy (OpenFWI model*.npy / vmodel*.npy)")
    if options.path == "example":
        from .examples import openfwi_example

        root = openfwi_example()
    else:
        root = Path(options.path).expanduser()
    found = [m for m in _members(root, options.family) if _VELOCITY.match(m.name)]
    if root.is_dir() and not options.family:
        families = sorted({p.name.split("_")[0] for p in root.glob("*_*.zip")})
        if len(families) > 1:
            raise OptionError(f"dataset openfwi: {root} holds several families ({', '.join(families)}); "
                              f"choose one with family=NAME")
    if options.test_path:
        train = found
        test = [m for m in _members(Path(options.test_path).expanduser(), options.family) if _VELOCITY.match(m.name)]
    else:
        train = [m for m in found if not _is_test(m)]
        test = [m for m in found if _is_test(m)]
    key = lambda m: (_number(m.name), str(m))  # noqa: E731
    train, test = sorted(train, key=key), sorted(test, key=key)
    if not train and not test:
        raise DataError(f"{root}: no OpenFWI velocity files (model*.npy or vmodel*.npy) found")
    overlap = {str(m) for m in train} & {str(m) for m in test}
    if overlap:
        raise OptionError(f"dataset openfwi: files are both training and test files: {sorted(overlap)[:3]}")
    return train, test


def _gathers_member(velocity: Member) -> Member | None:
    """``dataN.npy`` beside ``modelN.npy`` (same folder or archive), if there is one."""
    target = f"data{_number(velocity.name)}.npy"
    if velocity.member is None:
        for parent in (velocity.path.parent, velocity.path.parent.parent / "data"):
            if (parent / target).is_file():
                return Member(parent / target)
        return None
    with zipfile.ZipFile(velocity.path) as zf:
        for info in zf.infolist():
            if Path(info.filename).name.lower() == target:
                return Member(velocity.path, info.filename)
    return None


def _take(members: list[Member], n: int) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """The first ``n`` maps (0: all) from ``members``, with paired gathers if every file has them."""
    velocities, gathers, used = [], [], []
    have_gathers = all(_gathers_member(m) is not None for m in members)
    count = 0
    for member in members:
        if n and count >= n:
            break
        v = member.load()
        if v.ndim != 4 or v.shape[1:] != OPENFWI_VELOCITY_SHAPE:
            raise DataError(f"{member}: velocity of shape {v.shape}; expected (N, 1, 70, 70) as OpenFWI stores it")
        take = v.shape[0] if not n else min(v.shape[0], n - count)
        velocities.append(validate_velocity(np.asarray(v[:take]), str(member)))
        if have_gathers:
            gm = _gathers_member(member)
            g = gm.load()  # type: ignore[union-attr]
            if g.ndim != 4 or g.shape[1:] != OPENFWI_GATHERS_SHAPE or g.shape[0] != v.shape[0]:
                raise DataError(f"{gm}: gathers of shape {g.shape}; expected ({v.shape[0]}, 5, 1000, 70) "
                                f"to pair with {member}")
            gathers.append(validate_gathers(np.asarray(g[:take]), str(gm)))
        used.append(str(member))
        count += take
    if not velocities:
        return np.zeros((0, *OPENFWI_VELOCITY_SHAPE), np.float32), None, used
    return (np.concatenate(velocities), np.concatenate(gathers) if have_gathers else None, used)


def build_openfwi(options: OpenFWIOptions | None = None) -> SeismicDataset:
    """The ``openfwi`` dataset: OpenFWI-layout files with OpenFWI's normalisation and splits."""
    opts = options if options is not None else OpenFWIOptions()
    train_files, test_files = discover(opts)
    # No file says "test" (and no test_path): the test maps are drawn, seeded, from the same
    # files as training and validation, disjoint from both.
    drawn = 0 if test_files else opts.n_test
    want = opts.n_train + opts.n_val + drawn if opts.n_train else 0
    pool_v, pool_g, train_used = _take(train_files, want)
    # The training count asked for comes first; with all maps asked for (n_train=0), at
    # most half of what validation leaves goes to test.
    spare = pool_v.shape[0] - opts.n_val - opts.n_train if opts.n_train else (pool_v.shape[0] - opts.n_val) // 2
    drawn = min(drawn, max(spare, 0))
    if opts.n_val + drawn >= pool_v.shape[0] and pool_v.shape[0]:
        raise OptionError(f"dataset openfwi: n_val={opts.n_val}"
                          + (f" and n_test={drawn} (drawn from the same files: none says 'test')" if drawn else "")
                          + f" leave no training maps out of {pool_v.shape[0]}")
    order = np.random.default_rng(opts.seed).permutation(pool_v.shape[0])
    val_idx = np.sort(order[:opts.n_val])
    drawn_idx = np.sort(order[opts.n_val:opts.n_val + drawn])
    train_idx = np.sort(order[opts.n_val + drawn:])
    if test_files:
        test_v, test_g, test_used = _take(test_files, opts.n_test)
    else:
        test_v, test_used = pool_v[drawn_idx], [f"{name} (drawn)" for name in train_used]
        test_g = pool_g[drawn_idx] if pool_g is not None else None
    velocity = {"train": pool_v[train_idx], "val": pool_v[val_idx], "test": test_v}
    velocity = {k: v for k, v in velocity.items() if v.shape[0]}
    gathers = None
    if pool_g is not None or test_g is not None:
        gathers = {}
        if pool_g is not None:
            gathers.update(train=pool_g[train_idx], val=pool_g[val_idx])
        if test_g is not None:
            gathers["test"] = test_g
        gathers = {k: g for k, g in gathers.items() if g.shape[0]}
    survey = resolve_survey(opts.survey, 70, 70)
    attrs = {"generator": "fwi_plugins.data.openfwi", "source": "OpenFWI", "seed": opts.seed,
             "options": to_dict(opts), "train_files": train_used, "test_files": test_used}
    return SeismicDataset("openfwi", survey=survey, velocity=velocity, gathers=gathers,
                          normalization=Normalization.openfwi(), attrs=attrs)

"""The GPU recipe's training corpus: generated maps simulated on the GPU, stored in shards.

Why this layout: 100,000 OpenFWI-size samples are 140 GB of float32 gathers, more than the
GPU machine's memory (128 GiB) or disk (64 GiB). The gathers are band-limited far below
the Nyquist frequency of a 4 ms sampling (the 15 Hz Ricker wavelet has ~1e-6 of its peak
amplitude left at 60 Hz), so they are stored every 4th sample, in float16: 17.5 GB in all.
Reading rebuilds the 1 ms traces by band-limited (FFT) interpolation of the mirror-extended
trace, on the GPU when there is one. Measured on deepwave gathers of four families, the
round trip costs 1.7e-5 relative L2 error for the decimation and 2e-4 with float16: far
below anything the network sees through its signed-log input scale.

With ``--openfwi DIR`` the corpus also holds the real OpenFWI FlatVel-A and CurveVel-A maps
of the training archives in ``DIR`` (``flatvel-a_train_vmodel.zip``, ``curvevel-a_train_vmodel.zip``),
split into training and validation maps by the project's ``openfwi`` reader, as families
``openfwi-flatvel-a`` and ``openfwi-curvevel-a``; the test archives are never opened.

Layout under ``root``::

    manifest.json                      the plan: families, sizes, seed, survey, decimation,
                                       the OpenFWI options and archives (sha256)
    <family>/<split>-<start>.velocity.npy   (n, 1, Z, X) float32 m/s
    <family>/<split>-<start>.gathers.npy    (n, S, T / 4, R) float16, raw amplitudes
    <family>/<split>-<start>.json           written last: shape, amplitude range; a piece
                                            without it is unfinished and built again

Loaded with ``fwi pretrain --plugin benchmarks/device/corpus.py``, it registers one dataset
``corpus-<family>`` per family (option ``root``), whose gathers are read lazily: training
draws batches from the shards without ever holding the corpus in float32.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fwi_plugins import DatasetSpec, hookimpl
from fwi_plugins.data import Normalization, SeismicDataset
from fwi_plugins.errors import DataError
from fwi_plugins.atomic import atomic_path, atomic_write_text
from fwi_plugins.options import option
from fwi_plugins.survey import Survey

LAYOUT = "fwi-gpu-corpus-1"
#: The pretraining families; curvefault-b and salt stay out (held out for out-of-distribution tests).
FAMILIES = ("flatvel-a", "curvevel-a", "flatfault-a", "curvefault-a", "flatvel-b", "curvevel-b",
            "flatfault-b", "smooth")
HELD_OUT = ("curvefault-b", "salt")
#: The real OpenFWI families ``--openfwi DIR`` adds, read from ``<family>_train_vmodel.zip`` only.
OPENFWI_FAMILIES = ("flatvel-a", "curvevel-a")
OPENFWI_PREFIX = "openfwi-"
OPENFWI_NAMES = tuple(OPENFWI_PREFIX + f for f in OPENFWI_FAMILIES)


@dataclass(frozen=True)
class Plan:
    """What the corpus holds; a corpus folder is resumed only by the same plan."""

    families: tuple[str, ...] = FAMILIES
    n_train: int = 12_500
    n_val: int = 125
    shard: int = 2_500
    seed: int = 0
    decimation: int = 4
    survey: dict[str, Any] = field(default_factory=lambda: Survey.openfwi().to_dict())
    grid: tuple[int, int] = (70, 70)
    #: Empty, or what :func:`openfwi_part` records: the folder, the reader's options, and per
    #: family the archive (name, size, sha256) and its training and validation map counts.
    openfwi: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = sorted(set(self.families) & set(HELD_OUT))
        if bad:
            raise ValueError(f"families {bad} are held out of pretraining")
        if self.survey["nt"] % self.decimation:
            raise ValueError(f"nt {self.survey['nt']} is not a multiple of the decimation {self.decimation}")

    @property
    def openfwi_families(self) -> tuple[str, ...]:
        return tuple(self.openfwi.get("families", {}))

    @property
    def all_families(self) -> tuple[str, ...]:
        """The generated families, then the real OpenFWI ones."""
        return (*self.families, *self.openfwi_families)

    def size(self, family: str, split: str) -> int:
        """Maps of ``family`` in ``split`` (``"train"`` or ``"val"``)."""
        if family in self.openfwi_families:
            return int(self.openfwi["families"][family][f"n_{split}"])
        return self.n_train if split == "train" else self.n_val

    def pieces(self) -> list[tuple[str, str, int, int]]:
        """``(family, split, start, n)`` of every shard, training shards first."""
        out = [(f, "train", s, min(self.shard, self.n_train - s))
               for s in range(0, self.n_train, self.shard) for f in self.families]
        for f in self.openfwi_families:
            n = self.size(f, "train")
            out += [(f, "train", s, min(self.shard, n - s)) for s in range(0, n, self.shard)]
        for f in self.all_families:
            n = self.size(f, "val")
            out += [(f, "val", s, min(self.shard, n - s)) for s in range(0, n, self.shard)]
        return out

    def sampling_weights(self) -> tuple[float, ...]:
        """``fwi pretrain``'s ``weights``, one per family of :attr:`all_families`; empty: by size.

        The CPU recipe samples in proportion to size, and there its 10,000 generated and 9,900
        real maps make the real maps about half of what training sees. Here the generated
        families are ten times larger, so the weights restore that half: each generated
        family weighs its size, and the real families together weigh as much as all the
        generated ones, shared in proportion to their sizes (100,000 generated maps against
        4,950 + 4,950 real ones: 12,500 each against 50,000 each, so a real map is drawn
        about ten times as often as a generated one).
        """
        if not self.openfwi_families:
            return ()
        generated = self.n_train * len(self.families)
        real = sum(self.size(f, "train") for f in self.openfwi_families)
        return (*(float(self.n_train) for _ in self.families),
                *(self.size(f, "train") * generated / real for f in self.openfwi_families))

    def to_dict(self) -> dict[str, Any]:
        data = {"layout": LAYOUT, **asdict(self), "families": list(self.families), "grid": list(self.grid)}
        if not self.openfwi:  # as manifests were before --openfwi existed
            del data["openfwi"]
        return data


def _base(root: Path, family: str, split: str, start: int) -> Path:
    return root / family / f"{split}-{start:07d}"


def piece_done(root: Path, piece: tuple[str, str, int, int], plan: Plan) -> bool:
    family, split, start, n = piece
    base = _base(root, family, split, start)
    record = base.with_suffix(".json")
    if not record.is_file():
        return False
    survey = plan.survey
    expected = (n, len(survey["sources"]), survey["nt"] // plan.decimation, len(survey["receivers"]))
    try:
        gathers = np.load(base.with_suffix(".gathers.npy"), mmap_mode="r")
        velocity = np.load(base.with_suffix(".velocity.npy"), mmap_mode="r")
    except (OSError, ValueError):
        return False
    return gathers.shape == expected and velocity.shape == (n, 1, *plan.grid)


def open_root(root: Path, plan: Plan) -> None:
    """Create ``root`` with the plan, or check that it holds the same plan."""
    manifest = root / "manifest.json"
    wanted = plan.to_dict()
    if manifest.is_file():
        found = json.loads(manifest.read_text())
        wanted = json.loads(json.dumps(wanted))
        if found != wanted:
            changed = sorted(k for k in {*found, *wanted} if found.get(k) != wanted.get(k))
            detail = ""
            if "openfwi" in changed:
                detail = (f"; it was built {_describe_openfwi(found.get('openfwi'))}, this call asks for it "
                          f"{_describe_openfwi(wanted.get('openfwi'))}")
            raise DataError(f"{root} holds a corpus of another plan (differs in {', '.join(changed)}{detail}); "
                            f"use another work folder or delete it")
        return
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(manifest, json.dumps(wanted, indent=1) + "\n")


def _describe_openfwi(part: dict[str, Any] | None) -> str:
    if not part:
        return "without --openfwi"
    archives = ", ".join(f"{info['archive']} {info['n_train']} + {info['n_val']} maps, sha256 {info['sha256'][:12]}"
                         for info in part["families"].values())
    return f"with --openfwi {part['folder']} (n_val {part['n_val']}, seed {part['seed']}: {archives})"


def openfwi_archives(directory: str | Path) -> dict[str, Path]:
    """The training archive of each of :data:`OPENFWI_FAMILIES` in ``directory``, checked to exist."""
    folder = Path(directory)
    names = ", ".join(f"{f}_train_vmodel.zip" for f in OPENFWI_FAMILIES)
    how = (f"copy them there with: cp ../shared/data/openfwi/*_train_vmodel.zip {directory}; on the GPU "
           f"machine the call must also carry the folder, see docs/gpu_recipe.md")
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DataError(f"--openfwi {directory}: the folder {folder.resolve()} {what}; expected a folder "
                        f"holding the OpenFWI training archives {names} ({how})")
    archives = {f"{OPENFWI_PREFIX}{f}": folder / f"{f}_train_vmodel.zip" for f in OPENFWI_FAMILIES}
    missing = [str(p.resolve()) for p in archives.values() if not p.is_file()]
    if missing:
        raise DataError(f"--openfwi {directory}: missing {', '.join(missing)}; expected the OpenFWI training "
                        f"archives {names} there ({how})")
    return archives


def openfwi_part(directory: str | Path, *, n_val: int, seed: int,
                 grid: tuple[int, int]) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """The plan's ``openfwi`` entry and the maps of each family by split, read from ``directory``.

    Every map of each training archive is used: ``n_val`` of them (drawn with ``seed``, as the
    ``openfwi`` reader draws validation maps from training files) validate, the rest train.
    Only the training archives are given to the reader, so no test archive is ever opened.
    """
    from fwi_plugins.data.openfwi import OPENFWI_VELOCITY_SHAPE, build_openfwi
    from fwi_plugins.data.options import OpenFWIOptions

    if (1, *grid) != OPENFWI_VELOCITY_SHAPE:
        raise DataError(f"the OpenFWI maps are {OPENFWI_VELOCITY_SHAPE[1:]}; the corpus grid is {grid}")
    families: dict[str, Any] = {}
    maps: dict[str, dict[str, np.ndarray]] = {}
    for family, archive in openfwi_archives(directory).items():
        options = OpenFWIOptions(path=str(archive), family=family.removeprefix(OPENFWI_PREFIX), n_train=0,
                                 n_val=n_val, n_test=0, seed=seed)
        dataset = build_openfwi(options)
        maps[family] = {split: dataset.velocity(split) for split in ("train", "val")}
        families[family] = {"archive": archive.name, "bytes": archive.stat().st_size,
                            "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
                            "n_train": len(maps[family]["train"]), "n_val": len(maps[family]["val"])}
    part = {"folder": str(Path(directory).resolve()), "reader": "fwi_plugins.data.openfwi", "n_train": 0,
            "n_val": n_val, "seed": seed, "families": families}
    return part, maps


def read_plan(root: Path) -> Plan:
    data = json.loads((root / "manifest.json").read_text())
    if data.pop("layout", None) != LAYOUT:
        raise DataError(f"{root}/manifest.json is not a {LAYOUT} corpus")
    data["families"] = tuple(data["families"])
    data["grid"] = tuple(data["grid"])
    return Plan(**data)


def _maps(job: list[tuple[str, str, int, int]], seed: int, grid: tuple[int, int]) -> list[np.ndarray | None]:
    from fwi_plugins.data.families import FAMILIES as GENERATORS
    from fwi_plugins.data.families import generate

    out: list[np.ndarray | None] = []
    for family, split, start, n in job:
        if family.startswith(OPENFWI_PREFIX):  # real maps: the parent holds them
            out.append(None)
            continue
        options = GENERATORS[family].options(seed=seed, nz=grid[0], nx=grid[1])
        out.append(generate(family, n, options=options, split=split, start=start))
    return out


def _save(root: Path, piece: tuple[str, str, int, int], velocity: np.ndarray, gathers: np.ndarray,
          decimation: int) -> None:
    family, split, start, n = piece
    base = _base(root, family, split, start)
    base.parent.mkdir(parents=True, exist_ok=True)
    stored = np.ascontiguousarray(gathers[:, :, ::decimation]).astype(np.float16)
    for suffix, array in ((".velocity.npy", velocity), (".gathers.npy", stored)):
        with atomic_path(base.with_suffix(suffix)) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
    record = {"family": family, "split": split, "start": start, "n": n, "dtype": "float16",
              "min": float(gathers.min()), "max": float(gathers.max())}
    atomic_write_text(base.with_suffix(".json"), json.dumps(record) + "\n")


def build(root: Path, plan: Plan, *, physics: Any, device: str, sim_batch: int, deadline: float,
          log: Callable[[str], None], max_pieces: int = 0, workers: int = 0,
          real: dict[str, dict[str, np.ndarray]] | None = None) -> bool:
    """Generate and simulate every missing piece until done or ``deadline`` (``time.monotonic``).

    Maps are generated by a process pool while the GPU simulates; models are simulated in
    chunks of exactly ``sim_batch`` (the last one padded by repeating a model), so a
    compiled time step sees one shape. The OpenFWI families' maps come from ``real`` (family
    -> split -> maps, from :func:`openfwi_part`). Returns whether the corpus is complete.
    """

    open_root(root, plan)
    real = real or {}
    absent = sorted(set(plan.openfwi_families) - set(real))
    if absent:
        raise DataError(f"the corpus plan holds {', '.join(absent)} but no maps were given for them")
    todo = [p for p in plan.pieces() if not piece_done(root, p, plan)]
    total = len(plan.pieces())
    log(f"corpus: {total - len(todo)} of {total} pieces on disk, {len(todo)} to build")
    if not todo:
        return True
    # Training pieces one per job; the small validation pieces share jobs up to sim_batch maps.
    jobs: list[list[tuple[str, str, int, int]]] = []
    for piece in todo:
        shares = jobs and piece[1] == "val" and jobs[-1][0][1] == "val"
        if shares and sum(p[3] for p in jobs[-1]) + piece[3] <= sim_batch:
            jobs[-1].append(piece)
        else:
            jobs.append([piece])
    if max_pieces:
        jobs = jobs[:max_pieces]
    import multiprocessing

    # Spawned, not forked: the parent has CUDA and torch's thread pools running by now.
    context = multiprocessing.get_context("spawn")
    workers = workers or max(1, min(8, (os.cpu_count() or 2) - 2))
    built, per_map = 0, None
    started = time.monotonic()
    with context.Pool(workers) as pool:
        maps_iter = pool.imap(_MapsJob(plan.seed, plan.grid), jobs)
        for job in jobs:
            n = sum(p[3] for p in job)
            if per_map is not None and time.monotonic() + per_map * math.ceil(n / sim_batch) * sim_batch > deadline:
                log(f"corpus: stopping before the time budget ends ({built} pieces built in this call)")
                break
            t0 = time.monotonic()
            velocity = np.concatenate([maps if maps is not None else real[f][s][a:a + k]
                                       for maps, (f, s, a, k) in zip(next(maps_iter), job, strict=True)])
            gathers = simulate(physics, velocity, device=device, sim_batch=sim_batch)
            offset = 0
            for piece in job:
                _save(root, piece, velocity[offset:offset + piece[3]], gathers[offset:offset + piece[3]],
                      plan.decimation)
                offset += piece[3]
            built += len(job)
            elapsed = time.monotonic() - t0
            per_map = elapsed / (math.ceil(n / sim_batch) * sim_batch)
            log(f"corpus: {', '.join(f'{f} {s} {a}-{a + k}' for f, s, a, k in job)}: {n} maps in "
                f"{elapsed:.1f} s ({n / elapsed:.0f} maps/s)")
    remaining = [p for p in plan.pieces() if not piece_done(root, p, plan)]
    log(f"corpus: {total - len(remaining)} of {total} pieces after {time.monotonic() - started:.0f} s")
    return not remaining


class _MapsJob:
    """Picklable map generator for the pool (a closure would not pickle)."""

    def __init__(self, seed: int, grid: tuple[int, int]) -> None:
        self.seed, self.grid = seed, grid

    def __call__(self, job: list[tuple[str, str, int, int]]) -> list[np.ndarray | None]:
        return _maps(job, self.seed, self.grid)


def simulate(physics: Any, velocity: np.ndarray, *, device: str, sim_batch: int) -> np.ndarray:
    """Gathers ``(n, S, T, R)`` float32 of ``velocity``, in fixed-size chunks on ``device``."""
    import torch

    n = len(velocity)
    out = []
    with torch.no_grad():
        for start in range(0, n, sim_batch):
            chunk = velocity[start:start + sim_batch]
            real = len(chunk)
            if real < sim_batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], sim_batch - real, axis=0)])
            data = physics.simulate(torch.from_numpy(chunk).to(device))[:real]
            if not bool(torch.isfinite(data).all()):
                raise DataError(f"the simulation of maps {start}..{start + real - 1} gave NaN or infinite values")
            out.append(data.cpu().numpy())
    return np.concatenate(out)


# -- reading -------------------------------------------------------------------------
def reconstruct(stored: Any, decimation: int, nt: int) -> Any:
    """Full-rate traces ``(..., T, R)`` from every-``decimation``-th samples (torch, any device): the
    training data's own band-limited interpolation (:func:`fwi_plugins.api.upsample_traces`)."""
    from fwi_plugins import api

    return api.upsample_traces(stored, decimation, nt)


class CorpusGathers:
    """The gathers of one family and split, read from the shards as float32 ``(N, S, T, R)``.

    Behaves as the read-only array the training loop needs: ``shape``, ``dtype``,
    ``len``, ``min``/``max`` (of the stored raw amplitudes), and indexing by a slice or an
    array of row numbers.
    """

    def __init__(self, parts: Sequence[Path], records: Sequence[dict[str, Any]], *, decimation: int, nt: int,
                 device: str | None = None) -> None:
        self.parts = [np.load(p, mmap_mode="r") for p in parts]
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        s, _, r = self.parts[0].shape[1:]
        self.shape = (int(self.offsets[-1]), s, nt, r)
        self.dtype = np.dtype(np.float32)
        self.decimation, self.nt = decimation, nt
        self._min = min(float(rec["min"]) for rec in records)
        self._max = max(float(rec["max"]) for rec in records)
        self._device = device

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return self.shape[0]

    def min(self) -> float:
        return self._min

    def max(self) -> float:
        return self._max

    def _device_name(self) -> str:
        if self._device is None:
            import torch

            self._device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
        return self._device

    def __getitem__(self, index: Any) -> np.ndarray:
        import torch

        if isinstance(index, (int, np.integer)):
            return self[np.array([index])][0]
        if isinstance(index, slice):
            index = np.arange(*index.indices(len(self)))
        index = np.asarray(index, dtype=np.int64)
        stored = np.empty((len(index), *self.parts[0].shape[1:]), np.float16)
        which = np.searchsorted(self.offsets, index, side="right") - 1
        for part in np.unique(which):
            rows = which == part
            stored[rows] = self.parts[part][index[rows] - self.offsets[part]]
        with torch.no_grad():
            full = reconstruct(torch.from_numpy(stored).to(self._device_name()), self.decimation, self.nt)
        return full.cpu().numpy()


@dataclass(frozen=True, kw_only=True)
class CorpusOptions:
    """Options of a ``corpus-<family>`` dataset."""

    root: str = option("", "the corpus folder (holding manifest.json) that pretrain_gpu.py built")


class CorpusDataset(SeismicDataset):
    """A family of the corpus: velocity in memory, gathers read lazily from the shards."""

    def __init__(self, name: str, *, survey: Survey, velocity: dict[str, np.ndarray],
                 lazy: dict[str, CorpusGathers], normalization: Normalization, attrs: dict[str, Any]) -> None:
        super().__init__(name, survey=survey, velocity=velocity, normalization=normalization, attrs=attrs)
        self._lazy = lazy

    @property
    def has_recorded_gathers(self) -> bool:
        return True

    def gathers(self, split: str = "train", physics: Any = None, *, cache_dir: Any = None,
                progress: bool = True, mmap: bool = False) -> Any:
        # Read from the shards a batch at a time whatever ``mmap`` asks: the corpus never fits in memory.
        if split in self._lazy:
            return self._lazy[split]
        return np.zeros((0, self.survey.n_shots, self.survey.nt, self.survey.n_receivers), np.float32)


def load_family(root: str | Path, family: str) -> CorpusDataset:
    """The corpus's ``family`` as a dataset (every piece must be finished)."""
    root = Path(root)
    if not (root / "manifest.json").is_file():
        raise DataError(f"dataset corpus-{family}: {root} holds no corpus (manifest.json); build it with "
                        f"benchmarks/device/pretrain_gpu.sh or give -o dataset.root=FOLDER")
    plan = read_plan(root)
    if family not in plan.all_families:
        hint = " (OpenFWI families are built with pretrain_gpu.sh --openfwi DIR)" if family in OPENFWI_NAMES else ""
        raise DataError(f"the corpus in {root} has no family {family!r} (it has {', '.join(plan.all_families)})"
                        + hint)
    survey = Survey.from_dict(plan.survey)
    velocity, lazy = {}, {}
    for split in ("train", "val"):
        pieces = [p for p in plan.pieces() if p[0] == family and p[1] == split]
        if not pieces:
            continue
        missing = [p for p in pieces if not piece_done(root, p, plan)]
        if missing:
            raise DataError(f"the corpus in {root} is unfinished: {len(missing)} {family} {split} piece(s) missing")
        bases = [_base(root, *p[:3]) for p in pieces]
        velocity[split] = np.concatenate([np.load(b.with_suffix(".velocity.npy")) for b in bases])
        records = [json.loads(b.with_suffix(".json").read_text()) for b in bases]
        lazy[split] = CorpusGathers([b.with_suffix(".gathers.npy") for b in bases], records,
                                    decimation=plan.decimation, nt=survey.nt)
    attrs = {"generator": f"fwi_plugins.data.families:{family}", "corpus": str(root), "layout": LAYOUT,
             "seed": plan.seed, "decimation": plan.decimation, "stored": "float16"}
    if family in plan.openfwi_families:
        part = plan.openfwi
        attrs.update(generator=part["reader"], source="OpenFWI", archive=part["families"][family]["archive"],
                     sha256=part["families"][family]["sha256"], seed=part["seed"])
    return CorpusDataset(f"corpus-{family}", survey=survey, velocity=velocity, lazy=lazy,
                         normalization=Normalization(vmin=survey.vmin, vmax=survey.vmax), attrs=attrs)


def _factory(family: str) -> Callable[[CorpusOptions | None], CorpusDataset]:
    def factory(options: CorpusOptions | None = None) -> CorpusDataset:
        return load_family((options or CorpusOptions()).root or os.environ.get("FWI_CORPUS_DIR", ""), family)

    return factory


@hookimpl
def fwi_datasets() -> Iterator[DatasetSpec]:
    for family in FAMILIES:
        yield DatasetSpec(name=f"corpus-{family}", factory=_factory(family), options=CorpusOptions,
                          description=f"generated {family} maps with gathers from the GPU recipe's corpus")
    for family in OPENFWI_NAMES:
        yield DatasetSpec(name=f"corpus-{family}", factory=_factory(family), options=CorpusOptions,
                          description=f"real OpenFWI {family.removeprefix(OPENFWI_PREFIX)} training maps with "
                                      f"gathers from the GPU recipe's corpus (built with --openfwi)")

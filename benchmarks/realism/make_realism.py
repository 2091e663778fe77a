"""Cut the realism test set: 70 x 70 velocity windows of Marmousi2 and the SEG/EAGE overthrust.

For evaluation only; these maps must never be used for pretraining or fine-tuning.

The original models are read from the PyPI wheel of ``sweep-solver`` 0.3.5 (MIT licence),
which embeds a 2-D Marmousi2 P-velocity grid (281 x 1361 at 12.5 m) and a 2-D slice of the
SEG/EAGE overthrust model (187 x 801 at 25 m) as zlib-compressed float16 arrays written in
base85 inside ``sweep/datasets/marmousi.py`` and ``sweep/datasets/overthrust_2d.py``. This
script reads those constants with :mod:`ast` (it does not import or run the package) and
downloads nothing; get the wheel with

    pip download --no-deps -d /tmp/models sweep-solver==0.3.5
    OMP_NUM_THREADS=1 python benchmarks/realism/make_realism.py /tmp/models

(the argument may be the wheel itself, a folder holding it, or an unpacked ``sweep/datasets``
folder). It writes, next to itself:

* ``marmousi2.npy``, ``overthrust.npy``: ``(n, 1, 70, 70)`` float32 m/s, 700 m x 700 m windows
  resampled to 10 m cells;
* ``marmousi2_20m.npy``, ``overthrust_20m.npy``: 1400 m x 1400 m windows on 20 m cells
  (70 x 70), i.e. the structure of a larger piece of the model at half the resolution;
* ``windows.json``: every window's position in the original model's metres;
* ``realism.png``: all slices.

Resampling, per axis and separable: the model's sample ``i`` sits at ``i * h`` metres and
stands for the cell ``[i*h - h/2, i*h + h/2]``. A target cell coarser than the source
(12.5 m -> 20 m) is the length-weighted mean of the source cells it overlaps (a box filter,
anti-aliased); a finer one (12.5 or 25 m -> 10 m, 25 m -> 20 m) is linearly interpolated
at the target sample. Velocities are then clipped to 1500-4500 m/s.
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import json
import sys
import zlib
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N = 70
VMIN, VMAX = 1500.0, 4500.0
WHEEL = "sweep_solver-0.3.5"

#: model -> (file inside the wheel, name of the base85 constant, name of the shape constant, spacing m)
MODELS = {
    "marmousi2": ("sweep/datasets/marmousi.py", "_VP_TRUE_B85", "_VP_TRUE_SHAPE", 12.5),
    "overthrust": ("sweep/datasets/overthrust_2d.py", "_TRUE_B85", "_TRUE_SHAPE", 25.0),
}

# Window corners (x0, z0) in the original model's metres. Marmousi2's water layer is 450-462 m
# thick (1500 m/s), so its windows start at 475 m or deeper: below the sea floor. The
# overthrust slice is a land model and its windows may start at the surface.
WINDOWS_10M = {  # 700 m x 700 m, 10 m cells
    "marmousi2": [
        (2700, 700),     # flat layers with the shallow low-velocity gas lens
        (8400, 475),     # tilted fault blocks, steep thin beds
        (9400, 475),     # faults crossing steep beds
        (10200, 475),    # growth faults at the top of the faulted zone
        (13500, 475),    # shallow anticline east of the faults
        (8600, 1400),    # steep beds cut by faults
        (9800, 1600),    # fault zone at depth
        (10600, 2000),   # thrust under the faults, top of the high-velocity layer
        (7600, 2500),    # unconformity above the deep anticline
        (14000, 2100),   # salt / fast layer wedge over dipping beds
    ],
    "overthrust": [
        (3500, 0),       # surface layers over the leading thrust ramp
        (5000, 0),       # folded hanging wall at the surface
        (6500, 200),     # crest of the thrust anticline
        (8000, 500),     # back limb and the slow wedge
        (4000, 1200),    # ramp anticline, steep limb
        (5500, 1000),    # fold core
        (7000, 1200),    # thrust fault cutting the fold
        (9500, 300),     # slow near-surface wedge against the fault
        (15000, 1400),   # flat layered foreland
        (18500, 0),      # near-surface channel features
    ],
}
WINDOWS_20M = {  # 1400 m x 1400 m, 20 m cells
    "marmousi2": [
        (7800, 475), (8800, 475), (9800, 475),  # the faulted block below the sea floor
        (8000, 1500), (9500, 1900), (11000, 2000),  # steep beds, thrusts, the deep anticline's top
    ],
    "overthrust": [
        (3000, 0), (4500, 0), (6000, 0), (7500, 0),  # thrust ramp and folds from the surface
        (3200, 1400), (18000, 0),  # ramp anticline at depth; near-surface channels of the foreland
    ],
}


def find_source(path: Path) -> Path:
    """The wheel (or unpacked ``sweep/datasets`` folder) named by ``path``."""
    if path.is_file():
        return path
    if (path / "marmousi.py").is_file():
        return path
    if (path / "sweep" / "datasets" / "marmousi.py").is_file():
        return path / "sweep" / "datasets"
    wheels = sorted(path.glob(f"{WHEEL}-*.whl"))
    if not wheels:
        sys.exit(f"error: no {WHEEL}-*.whl (nor an unpacked sweep/datasets) in {path}; "
                 f"pip download --no-deps -d {path} sweep-solver==0.3.5")
    return wheels[0]


def read_text(source: Path, member: str) -> str:
    if source.is_file():
        with zipfile.ZipFile(source) as z:
            return z.read(member).decode()
    return (source / Path(member).name).read_text()


def read_model(source: Path, name: str) -> tuple[np.ndarray, float, str]:
    """``(nz, nx)`` float32 m/s, the spacing in metres, and the sha256 of the module it came from."""
    member, blob_name, shape_name, spacing = MODELS[name]
    text = read_text(source, member)
    values = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in (blob_name, shape_name):
                values[node.targets[0].id] = ast.literal_eval(node.value)
    blob = values[blob_name]
    blob = "".join(blob) if isinstance(blob, (tuple, list)) else blob
    raw = np.frombuffer(zlib.decompress(base64.b85decode(blob)), dtype="<f2")
    model = raw.reshape(tuple(values[shape_name])).astype(np.float32)
    return model, spacing, hashlib.sha256(text.encode()).hexdigest()


def axis_weights(n_src: int, h: float, start: float, d: float, n: int = N) -> np.ndarray:
    """``(n, n_src)`` weights taking samples at ``i*h`` to ``n`` samples at ``start + k*d``."""
    w = np.zeros((n, n_src))
    for k in range(n):
        t = start + k * d
        if d > h:  # coarser: length-weighted mean of the source cells under [t - d/2, t + d/2]
            lo, hi = t - d / 2, t + d / 2
            i0, i1 = max(int(np.floor(lo / h + 0.5)), 0), min(int(np.floor(hi / h + 0.5)), n_src - 1)
            for i in range(i0, i1 + 1):
                w[k, i] = max(0.0, min(hi, (i + 0.5) * h) - max(lo, (i - 0.5) * h))
        else:  # finer: linear interpolation
            f = min(max(t / h, 0.0), n_src - 1.0)
            i = min(int(np.floor(f)), n_src - 2)
            w[k, i], w[k, i + 1] = 1.0 - (f - i), f - i
        w[k] /= w[k].sum()
    return w


def cut(model: np.ndarray, h: float, x0: float, z0: float, d: float) -> np.ndarray:
    nz, nx = model.shape
    extent = (N - 1) * d
    if z0 + extent > (nz - 1) * h or x0 + extent > (nx - 1) * h or x0 < 0 or z0 < 0:
        raise ValueError(f"window at x={x0} m, z={z0} m ({d} m cells) leaves the {nz} x {nx} model ({h} m)")
    wz, wx = axis_weights(nz, h, z0, d), axis_weights(nx, h, x0, d)
    return np.clip(wz @ model.astype(np.float64) @ wx.T, VMIN, VMAX).astype(np.float32)


def figure(sets: dict[str, np.ndarray], windows: dict[str, list], path: Path) -> None:
    from matplotlib.figure import Figure

    cols = 10
    rows = sum(-(-len(v) // cols) for v in sets.values())
    fig = Figure(figsize=(2.0 * cols, 2.25 * rows), layout="constrained")
    grid = fig.add_gridspec(rows, cols)
    r = 0
    for key, maps in sets.items():
        cell = 10 if not key.endswith("_20m") else 20
        for j, vel in enumerate(maps):
            ax = fig.add_subplot(grid[r + j // cols, j % cols])
            im = ax.imshow(vel[0], cmap="jet", vmin=VMIN, vmax=VMAX,
                           extent=(0, N * cell, N * cell, 0))
            x0, z0 = windows[key][j]
            ax.set_title(f"{key} #{j}\nx={x0} z={z0} m", fontsize=7)
            ax.tick_params(labelsize=5)
        r += -(-len(maps) // cols)
    fig.colorbar(im, ax=fig.axes, shrink=0.5, label="m/s")
    fig.suptitle("realism set: window x (along the line) and depth z; axes in metres from the window corner")
    fig.savefig(path, dpi=50)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", type=Path, help="sweep-solver 0.3.5 wheel, a folder holding it, or an unpacked "
                                             "sweep/datasets folder")
    p.add_argument("--out", type=Path, default=HERE, help="output folder (default: next to this script)")
    args = p.parse_args(argv)
    source = find_source(args.models)
    args.out.mkdir(parents=True, exist_ok=True)
    sets, windows, record = {}, {}, {"source": source.name, "models": {}, "windows_m": {}}
    for name in MODELS:
        model, h, digest = read_model(source, name)
        record["models"][name] = {"shape_nz_nx": list(model.shape), "spacing_m": h, "module_sha256": digest,
                                  "vmin": float(model.min()), "vmax": float(model.max())}
        for key, table, d in ((name, WINDOWS_10M, 10.0), (f"{name}_20m", WINDOWS_20M, 20.0)):
            maps = np.stack([cut(model, h, x0, z0, d)[None] for x0, z0 in table[name]])
            np.save(args.out / f"{key}.npy", maps)
            sets[key], windows[key] = maps, table[name]
            record["windows_m"][key] = {"cell_m": d, "size_m": N * d, "x0_z0": [list(w) for w in table[name]]}
            print(f"{key}: {maps.shape} {maps.min():.0f}-{maps.max():.0f} m/s")
    (args.out / "windows.json").write_text(json.dumps(record, indent=1) + "\n")
    figure(sets, windows, args.out / "realism.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

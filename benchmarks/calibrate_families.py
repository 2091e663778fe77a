"""Compare the generated families with the real OpenFWI FlatVel-A and CurveVel-A maps.

Usage::

    python benchmarks/calibrate_families.py [--data ../shared/data/openfwi] [--n 500]

Reads the OpenFWI velocity zips in memory (nothing is copied anywhere) and prints, for
real and generated maps side by side: velocity range, velocity at the top and bottom,
layers per column, layer thickness, relief and curvature of the first interface, and the
share of maps whose velocity never decreases with depth. Stops with a message if the
data folder is absent.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

import numpy as np

from fwi_plugins.data import families

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "openfwi"


def load_real(folder: Path, family: str, n: int) -> np.ndarray:
    path = folder / f"{family}_train_vmodel.zip"
    with zipfile.ZipFile(path) as zf:
        member = sorted(zf.namelist())[0]
        with zf.open(member) as fh:
            maps = np.lib.format.read_array(fh, allow_pickle=False)
    return maps[:n, 0]


def stats(maps: np.ndarray) -> dict[str, str]:
    """Summary figures of ``(N, Z, X)`` maps; "a / b / c" are the 10th, 50th and 90th percentiles."""
    changes = np.diff(maps, axis=1) != 0  # (N, Z-1, X): an interface between rows
    layers = 1 + changes.sum(axis=1)  # per column
    thickness, relief, curvature = [], [], []
    for m, ch in zip(maps, changes):
        for col in ch.T:
            idx = np.r_[0, np.flatnonzero(col) + 1, m.shape[0]]
            thickness.extend(np.diff(idx).tolist())
        if ch.any(axis=0).all():
            first = ch.argmax(axis=0).astype(float)  # depth of the first interface in every column
            relief.append(first.max() - first.min())
            curvature.append(np.abs(np.diff(first, 2)).mean())
    monotone = (np.diff(maps, axis=1) >= 0).all(axis=(1, 2)).mean()

    def pct(values: list | np.ndarray) -> str:
        if len(values) == 0:
            return "-"
        a, b, c = np.percentile(values, [10, 50, 90])
        return f"{a:.3g} / {b:.3g} / {c:.3g}"

    return {
        "velocity min..max (m/s)": f"{maps.min():.0f}..{maps.max():.0f}",
        "top-row velocity (m/s)": pct(maps[:, 0].mean(axis=1)),
        "bottom-row velocity (m/s)": pct(maps[:, -1].mean(axis=1)),
        "layers per column": pct(layers.ravel()),
        "layer thickness (cells)": pct(thickness),
        "first-interface relief (cells)": pct(relief),
        "first-interface curvature (cells/cell^2)": pct(curvature),
        "maps increasing with depth": f"{monotone:.0%}",
    }


def table(columns: dict[str, dict[str, str]]) -> str:
    rows = list(next(iter(columns.values())))
    width = max(len(r) for r in rows)
    colw = {k: max(len(k), *(len(v[r]) for r in rows)) for k, v in columns.items()}
    lines = [" " * width + " | " + " | ".join(k.ljust(colw[k]) for k in columns)]
    lines.append("-" * len(lines[0]))
    for r in rows:
        lines.append(r.ljust(width) + " | " + " | ".join(columns[k][r].ljust(colw[k]) for k in columns))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with the OpenFWI *_vmodel.zip files")
    parser.add_argument("--n", type=int, default=500, help="maps per family")
    args = parser.parse_args(argv)
    needed = [args.data / f"{f}_train_vmodel.zip" for f in ("flatvel-a", "curvevel-a")]
    missing = [p for p in needed if not p.exists()]
    if missing:
        print(f"OpenFWI maps not found ({', '.join(map(str, missing))}); nothing to calibrate against. "
              f"Pass --data FOLDER.", file=sys.stderr)
        return 1
    for family in ("flatvel-a", "curvevel-a"):
        real = load_real(args.data, family, args.n)
        cols = {f"OpenFWI {family}": stats(real), f"generated {family}": stats(families.generate(family, args.n)[:, 0])}
        print(f"\n== {family}: {len(real)} real maps vs {args.n} generated ==")
        print(table(cols))
    others = {name: stats(families.generate(name, min(args.n, 200))[:, 0]) for name in families.FAMILIES
              if name not in ("flatvel-a", "curvevel-a", "smooth")}
    print("\n== the other generated families (200 maps each) ==")
    print(table(others))
    return 0


if __name__ == "__main__":
    sys.exit(main())

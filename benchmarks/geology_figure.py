"""Draw example maps of the realistic-geology families into ``docs/geology.png``.

Usage::

    python benchmarks/geology_figure.py [--out docs/geology.png] [--seed 0]

Four maps of each of ``thrust``, ``steep-beds``, ``salt-dome`` and ``channels`` (70 x 70
cells of 10 m, the default options), one family per row, on a shared velocity scale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matplotlib.figure import Figure

from fwi_plugins.data import families

NAMES = ("thrust", "steep-beds", "salt-dome", "channels")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "geology.png"


def draw(out: Path, seed: int, per_family: int = 4) -> Path:
    fig = Figure(figsize=(2.1 * per_family + 0.9, 2.1 * len(NAMES)), layout="constrained")
    axes = fig.subplots(len(NAMES), per_family, squeeze=False)
    image = None
    for row, name in zip(axes, NAMES):
        opts = families.FAMILIES[name].options(seed=seed)
        maps = families.generate(name, per_family, options=opts)[:, 0]
        extent = (0, opts.nx * 0.01, opts.nz * 0.01, 0)  # km, 10 m cells
        for i, (ax, m) in enumerate(zip(row, maps)):
            image = ax.imshow(m, cmap="jet", vmin=opts.vmin, vmax=opts.vmax, extent=extent,
                              interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(name, fontsize=11)
    fig.colorbar(image, ax=axes, shrink=0.6, label="velocity (m/s)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the maps drawn")
    args = parser.parse_args(argv)
    path = draw(args.out, args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

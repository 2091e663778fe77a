"""README result tables rendered from the benchmarks' results files, never typed by hand.

Each table sits in README.md between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` and is
rendered by ``TABLES[NAME]`` from ``benchmarks/results/NAME.json``. Rewrite them all after a
benchmark run::

    python benchmarks/readme_tables.py            # rewrite the blocks
    python benchmarks/readme_tables.py --check    # exit 1 when a block differs from its file

``tests/test_readme_results.py`` runs the check.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

WAVELET_LABELS = {
    "ricker-15": "15 Hz Ricker (the trained wavelet)", "ricker-8": "8 Hz Ricker", "ricker-10": "10 Hz Ricker",
    "ricker-12": "12 Hz Ricker", "ricker-20": "20 Hz Ricker", "ricker-25": "25 Hz Ricker",
    "ricker-15-rot90": "15 Hz Ricker turned 90 degrees in phase",
    "cells-5m": "the same maps on 5 m cells (gathers about 4 times weaker)",
    "deep-1km": "a 1 km deep section (14.5 m cells: space and time stretched 1.45 times)",
    "noise-dead": "15 Hz with 10 % noise and 10 % dead traces",
}


def _cell(score: dict[str, float] | None) -> str:
    return "–" if score is None else f"{score['ssim']:.3f} / {score['mae_ms']:.0f}"


def wavelets_table(results: dict[str, Any]) -> str:
    scores = results["scores"]
    lines = [f"{results['maps']} generated test maps ({', '.join(results['families'])}), SSIM / MAE m/s, "
             f"`{results['command']}` (commit {results['commit'][:7]}, weights {results['weights_digest'][:12]}):",
             "", "| data | as recorded | shaped with the true wavelet | shaped, wavelet estimated (default) |",
             "|---|---:|---:|---:|"]
    for case, ways in scores.items():
        lines.append(f"| {WAVELET_LABELS.get(case, case)} | {_cell(ways.get('raw'))} | {_cell(ways.get('known'))} | "
                     f"{_cell(ways.get('estimated'))} |")
    return "\n".join(lines)


FOUNDATION_LABELS = {
    "openfwi-flatvel-a": "real OpenFWI FlatVel-A test maps", "openfwi-curvevel-a": "real OpenFWI CurveVel-A test maps",
    "curvefault-b": "generated curvefault-b (held out of pretraining)",
    "salt": "generated salt (held out of pretraining)",
    "realism-marmousi2": "Marmousi2, 700 m windows (realism set)",
    "realism-marmousi2_20m": "Marmousi2, 1,400 m windows at 20 m (realism set)",
    "realism-overthrust": "SEG/EAGE overthrust, 700 m windows (realism set)",
    "realism-overthrust_20m": "SEG/EAGE overthrust, 1,400 m windows at 20 m (realism set)",
}


def foundation_table(results: dict[str, Any]) -> str:
    runs = results["results"]
    names = list(runs)
    header = " | ".join("shipped (v6)" if n == results["baseline"] else f"`{n}`" for n in names)
    lines = [f"Up to {results['n_test']} test maps per target, SSIM / MAE m/s, `{results['command']}` "
             f"(commit {results['commit'][:7]}):", "", f"| target | {header} |", "|---|" + "---:|" * len(names)]
    for key in runs[names[0]]:
        lines.append(f"| {FOUNDATION_LABELS.get(key, key)} | " + " | ".join(_cell(runs[n].get(key)) for n in names)
                     + " |")
    return "\n".join(lines)


TABLES: dict[str, Callable[[dict[str, Any]], str]] = {"wavelets": wavelets_table, "foundation": foundation_table}


def render(name: str, results_dir: Path = RESULTS) -> str:
    return TABLES[name](json.loads((results_dir / f"{name}.json").read_text()))


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {name}:start -->\n).*?(\n<!-- {name}:end -->)", re.DOTALL)


def block(readme_text: str, name: str) -> str | None:
    """The text between a table's markers in the README, or ``None`` without markers."""
    match = _pattern(name).search(readme_text)
    return None if match is None else match.group(0).split("\n", 1)[1].rsplit("\n", 1)[0]


def rewrite(readme_text: str, name: str, table: str) -> str:
    return _pattern(name).sub(lambda m: m.group(1) + table + m.group(2), readme_text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when a block differs")
    args = p.parse_args(argv)
    text = args.readme.read_text()
    stale = []
    for name in TABLES:
        if block(text, name) is None:
            print(f"{args.readme} has no {name} block; left out", file=sys.stderr)
            continue
        table = render(name)
        if block(text, name) != table:
            stale.append(name)
            text = rewrite(text, name, table)
    if args.check:
        for name in stale:
            print(f"{args.readme}: the {name} table differs from benchmarks/results/{name}.json", file=sys.stderr)
        return 1 if stale else 0
    args.readme.write_text(text)
    print(f"rewrote {', '.join(stale) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

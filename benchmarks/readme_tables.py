"""README result tables rendered from the benchmarks' results files, never typed by hand.

Each table sits in README.md between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` and is
rendered by ``TABLES[NAME]`` from its file in ``benchmarks/results/`` (``FILES[NAME]``, else
``NAME.json``). Rewrite them all after a benchmark run::

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


STAGE_LABELS = {"zero_shot": "zero-shot", "adapted": "adapted", "adapted_on_refined": "adapted (first 2)",
                "refined": "refined (first 2)"}


def main_job_table(results: dict[str, Any]) -> str:
    stages = results["stages"]
    wall, timing = results["wall_s"], results["timing_s"]
    share = 100 * results["trainable"]["fraction"]
    where = ("a fresh clone, `make setup` then `make run`" if results["fresh_clone"]
             else "`fwi run` in a set-up checkout")
    lines = [f"`{results['job']}` ({where}, simulation cache empty; `{results['command']}`, commit "
             f"{results['commit'][:7]}, weights {results['weights_digest'][:12]}, {results['hardware']['cpu_count']} "
             f"CPU cores):", "", "| metric | " + " | ".join(STAGE_LABELS[s] for s in stages) + " |",
             "|---|" + "---:|" * len(stages),
             "| SSIM | " + " | ".join(f"{m['ssim']:.4f}" for m in stages.values()) + " |",
             "| MAE (m/s) | " + " | ".join(f"{m['mae_ms']:.0f}" for m in stages.values()) + " |"]
    if all("data_misfit" in m for m in stages.values()):
        lines.append("| data misfit, relative L2 | " + " | ".join(f"{m['data_misfit']:.4f}" for m in stages.values())
                     + " |")
    parts = ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in timing.items() if k != "total")
    setup = f"set-up {wall['setup']:.0f} s, " if "setup" in wall else ""
    lines += ["", f"LoRA trains {results['trainable']['trainable']:,} weights ({share:.2f} %) for {results['steps']} "
              f"steps. First run: {results['first_run_s']:.0f} s ({setup}job {wall['job']:.0f} s: {parts})."]
    return "\n".join(lines)


METHOD_LABELS = {"scratch": "from scratch, to convergence", "full": "full fine-tuning", "lora": "LoRA",
                 "adapter": "adapter", "ia3": "IA3"}


def _params(n: int) -> str:
    return "0" if n == 0 else f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"


def _target_label(target: dict[str, Any]) -> str:
    family = target["options"].get("family")
    return f"real OpenFWI {family}" if target["dataset"] == "openfwi" else f"generated {target['dataset']}"


def _study_cell(row: dict[str, Any] | None, lr: bool = True) -> str:
    if row is None:
        return "–"
    sd = "" if row["ssim"]["sd"] is None else f" ± {row['ssim']['sd']:.4f}"
    rate = f", lr {row['lr']:g}" if lr and row.get("lr") is not None else ""
    return f"{row['ssim']['mean']:.4f}{sd} / {row['mae_ms']['mean']:.0f}{rate}"


def adaptation_table(results: dict[str, Any]) -> str:
    """The study's test table at the most training maps: zero-shot, every method, the specialist if run."""
    by_target, targets = results["results"], results["targets"]
    names = list(by_target)
    top = f"{max(results['options']['fractions']):g}"
    methods = [m for m in results["options"]["methods"] if any(top in by_target[t]["methods"].get(m, {})
                                                                for t in names)]
    opts = results["options"]
    lines = [f"Test SSIM (mean ± sd over seeds {', '.join(map(str, opts['seeds']))}) / MAE m/s, "
             f"{opts['n_train']} training maps, {opts['steps']} steps, the learning rate per method chosen on "
             f"validation maps; `{results['command']}` (commit {results['commit'][:7]}, weights "
             f"{results['foundation']['sha256'][:12]}; every figure: "
             f"[study.md](benchmarks/results/study_v6/study.md)):", "",
             "| method | trainable | " + " | ".join(_target_label(targets[t]) for t in names) + " |",
             "|---|---:|" + "---:|" * len(names),
             "| zero-shot (foundation) | 0 | " + " | ".join(_study_cell(by_target[t]["zero_shot"]) for t in names)
             + " |"]
    for m in methods:
        rows = [by_target[t]["methods"].get(m, {}).get(top) for t in names]
        trainable = next(r["trainable"] for r in rows if r is not None)
        lines.append(f"| {METHOD_LABELS.get(m, m)} | {_params(trainable)} | "
                     + " | ".join(_study_cell(r) for r in rows) + " |")
    if any(by_target[t]["specialist"] for t in names):
        lines.append("| specialist (from scratch on more maps) | – | "
                     + " | ".join(_study_cell(by_target[t]["specialist"]) for t in names) + " |")
    return "\n".join(lines)


def _pair(values: list[float], fmt: str) -> str:
    return f"{values[0]:{fmt}} → {values[1]:{fmt}}"


def refine_table(results: dict[str, Any]) -> str:
    before, after = results["before"]["targets"], results["after"]["targets"]
    lines = [f"From the shipped network's prediction, {next(iter(after.values()))['n_maps']} maps per target, "
             f"shaped L-BFGS, SSIM / MAE m/s, start → refined (`{results['command']}`, commit "
             f"{results['commit'][:7]}):", "",
             "| target | refined (default) | refined, held-out-shot rule (`--holdout 1`) |", "|---|---:|---:|"]
    for key, rule in after.items():
        kept = sum(bool(m.get("kept_start")) for m in rule["per_map"])
        note = f" ({kept} kept)" if kept else ""
        lines.append(f"| {rule['label']} | {_pair(before[key]['ssim'], '.3f')} / {_pair(before[key]['mae_ms'], '.0f')}"
                     f" | {_pair(rule['ssim'], '.3f')} / {_pair(rule['mae_ms'], '.0f')}{note} |")
    return "\n".join(lines)


TABLES: dict[str, Callable[[dict[str, Any]], str]] = {
    "wavelets": wavelets_table, "foundation": foundation_table, "main-job": main_job_table,
    "adaptation": adaptation_table, "refine": refine_table}
FILES = {"main-job": "main_job.json", "adaptation": "study_v6/study.json", "refine": "refine_holdout.json"}


def render(name: str, results_dir: Path = RESULTS) -> str:
    return TABLES[name](json.loads((results_dir / FILES.get(name, f"{name}.json")).read_text()))


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
            print(f"{args.readme}: the {name} table differs from benchmarks/results/{FILES.get(name, name + '.json')}",
                  file=sys.stderr)
        return 1 if stale else 0
    args.readme.write_text(text)
    print(f"rewrote {', '.join(stale) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

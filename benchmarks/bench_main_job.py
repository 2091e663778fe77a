"""The main job as a new user meets it: `make run` timed, its figures written to a results file.

    python benchmarks/bench_main_job.py            # fwi run ... in this checkout, simulation cache empty
    python benchmarks/bench_main_job.py --clone    # a fresh clone of HEAD: make setup, then make run

With ``--clone`` the set-up (a new ``.venv``, the CPU build of torch, the core and every plugin) is
timed apart from the job, and the set-up's packaging warnings (deprecated metadata, licence fields)
are counted. Either way the simulation cache starts empty, so the time includes simulating the
gathers, as on a first run. The figures of the run's ``metrics.json`` (zero-shot, adapted,
refined) and its stage timings go to ``benchmarks/results/main_job.json``; ``readme_tables.py``
renders the README's table from it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from results_file import ROOT, write_results

JOB = ["--backbone", "vit", "--peft", "lora", "--physics", "deepwave"]
STAGES = ("zero_shot", "adapted", "adapted_on_refined", "refined")
KEPT = ("ssim", "mae", "mae_ms", "data_misfit", "n_maps")
# The packaging warnings of the set-up (deprecated metadata, licence fields); not those of the index mirror.
WARNING = re.compile(r"deprecat|licen[cs]e", re.IGNORECASE)


def _timed(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with status {done.returncode}; its output: {log}")
    return seconds


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ, FWI_CACHE_DIR=str(cache))
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    return env


def _in_clone(work: Path) -> tuple[dict[str, float], Path, int]:
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = _env(work / "cache")
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(ROOT)))
    seconds = {"setup": _timed(["make", "setup"], cwd=clone, env=env, log=work / "setup.log")}
    seconds["job"] = _timed(["make", "run"], cwd=clone, env=env, log=work / "run.log")
    warnings = sum(bool(WARNING.search(line)) for line in (work / "setup.log").read_text().splitlines())
    runs = sorted((clone / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    return seconds, runs[-1], warnings


def _here(work: Path) -> tuple[dict[str, float], Path, int]:
    fwi = Path(sys.executable).with_name("fwi")
    out = work / "run"
    seconds = {"job": _timed([str(fwi), "run", *JOB, "--out", str(out)], cwd=work, env=_env(work / "cache"),
                             log=work / "run.log")}
    return seconds, out, 0


def figures(metrics: dict[str, Any]) -> dict[str, Any]:
    """The stages' scores and timings kept from a run's ``metrics.json``."""
    stages = {s: {k: metrics[s][k] for k in KEPT if k in metrics[s]} for s in STAGES if s in metrics}
    return {"stages": stages, "timing_s": {k: round(v, 1) for k, v in metrics["timing"].items()},
            "trainable": metrics["parameters"], "steps": metrics["training"]["steps"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clone", action="store_true", help="time make setup + make run in a fresh clone of HEAD")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "main_job.json")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (printed)")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fwi-main-job-"))
    try:
        seconds, run_dir, warnings = (_in_clone if args.clone else _here)(work)
        result = figures(json.loads((run_dir / "metrics.json").read_text()))
        result.update({"job": "fwi run " + " ".join(JOB), "fresh_clone": args.clone,
                       "wall_s": {k: round(v, 1) for k, v in seconds.items()},
                       "first_run_s": round(sum(seconds.values()), 1)})
        if args.clone:
            result["setup_warning_lines"] = warnings
        write_results(args.out, result, weights="default")
    finally:
        if args.keep:
            print(f"scratch folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: result[k] for k in ("wall_s", "first_run_s", "stages")}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

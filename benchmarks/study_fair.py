"""The fair study: scratch, full fine-tuning and PEFT, each at its own learning rate, over seeds.

``study.py`` gives every method one learning rate and the same few steps, the scratch baseline
included; that favours starting from the foundation by construction. This protocol, on the
study's own machinery (targets, ``build_model``, ``adapt``, ``score``, forked runs side by side,
the resumable ``TaskStore``), is fairer:

* **Splits**: each target's training, validation and test maps; the validation maps come from the
  dataset's own validation split (OpenFWI: drawn, seeded, from its training files and disjoint from
  the training maps; generated families: their own validation stream). No test map guides a choice.
* **Stage 1, tuning**: every method at every learning rate of its grid (``--lr-grid-whole`` for
  scratch and full, ``--lr-grid-peft`` for PEFT methods), the first seed, the study's step budget;
  scored on the validation maps (SSIM and MAE). Each method keeps the learning rate of its highest
  validation SSIM.
* **Scratch to convergence**: the foundation's architecture from its random initialisation, at its
  chosen learning rate, for up to ``--scratch-cap`` steps (cosine schedule over the cap), validated
  every ``--val-every`` epochs and stopped after ``--patience`` validations without a better
  validation SSIM; the best validation's weights are kept and scored.
* **Stage 2**: every method at its chosen learning rate over ``--seeds``, scored on the test maps:
  mean, sample standard deviation and each seed of SSIM and MAE (m/s), with trainable parameters
  and time. The seeds change the initialisation (scratch weights, PEFT adapters) and the order of
  the training maps, not the maps.

Outputs: ``benchmarks/results/study_fair.md`` and ``study_fair.json``; finished runs are kept in
``runs/study-fair/`` so an interrupted study resumes where it stopped (adding a seed, a learning
rate, a method or a target keeps the finished runs).

    OMP_NUM_THREADS=1 python benchmarks/study_fair.py              # the fair study (about an hour on 2 CPU cores)
    OMP_NUM_THREADS=1 python benchmarks/study_fair.py --plan-only  # its runs and time estimate, nothing run
    OMP_NUM_THREADS=1 python benchmarks/study_fair.py --smoke      # the whole path in seconds, random weights
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from study import (DEFAULT_OPENFWI, _chosen_targets, _load_targets, _sha256, _shown_path,  # noqa: E402
                   resolve_foundation, smoke_foundation)
from study_fair_plan import FairSettings, choices, estimate, estimate_text, test_plan, tuning_plan  # noqa: E402
from study_fair_report import build_fair_report, write_fair_outputs  # noqa: E402
from study_fair_runs import progress_line, run_fair_task  # noqa: E402
from study_plan import Settings  # noqa: E402
from study_runs import FOUNDATION, TARGETS, TaskStore, run_all  # noqa: E402

SMOKE = {"n_train": 8, "n_val": 3, "n_test": 5, "steps": 2, "batch_size": 4, "warmup_steps": 1, "scratch_cap": 6,
         "patience": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--foundation", default=None, help="foundation weights, as for study.py (default: the shipped)")
    p.add_argument("--openfwi", type=Path, default=DEFAULT_OPENFWI, help="folder of the OpenFWI velocity zips")
    p.add_argument("--targets", default="openfwi-curvevel-a,salt",
                   help="comma-separated: openfwi-flatvel-a, openfwi-curvevel-a, flatvel-a, curvefault-b, salt")
    p.add_argument("--methods", default="scratch,full,lora,adapter,ia3", help="scratch, full and PEFT methods")
    p.add_argument("--n-train", type=int, default=200, help="training maps per target")
    p.add_argument("--n-val", type=int, default=50, help="validation maps per target (choose lr, stop scratch)")
    p.add_argument("--n-test", type=int, default=100, help="test maps scored per target")
    p.add_argument("--steps", type=int, default=78, help="optimisation steps of every run but scratch on test")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--warmup-steps", type=int, default=6, help="linear warm-up steps before cosine decay")
    p.add_argument("--lambda-ssim", type=float, default=None,
                   help="weight of the (1 - SSIM) term of the label loss (default: fwi run's)")
    p.add_argument("--peft-options", default="lora.r=8,lora.alpha=16", help="as for study.py")
    p.add_argument("--lr-grid-whole", default="3e-4,1e-3,3e-3", help="learning rates tried for scratch and full")
    p.add_argument("--lr-grid-peft", default="1e-3,3e-3,1e-2", help="learning rates tried for PEFT methods")
    p.add_argument("--seeds", default="0,1,2", help="seeds of stage 2; the first one also tunes")
    p.add_argument("--scratch-cap", type=int, default=600, help="most steps of scratch trained to convergence")
    p.add_argument("--patience", type=int, default=8, help="validations without a better SSIM before it stops")
    p.add_argument("--val-every", type=int, default=1, help="epochs between its validations")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the targets' maps (the same for every run)")
    p.add_argument("--workers", type=int, default=2, help="runs side by side (one process each)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    p.add_argument("--cache-dir", default=None, help="simulation cache (default: FWI_CACHE_DIR or the user cache)")
    p.add_argument("--out", type=Path, default=None, help="report folder (default benchmarks/results)")
    p.add_argument("--work", type=Path, default=None, help="resumable run store (default runs/study-fair)")
    p.add_argument("--report-only", action="store_true", help="write the report from the finished runs only")
    p.add_argument("--plan-only", action="store_true", help="print the runs and the time estimate, run nothing")
    p.add_argument("--smoke", action="store_true",
                   help="the whole path in seconds: random weights, the first target, a few maps and steps, "
                        "two learning rates and two seeds; writes to runs/study-fair-smoke")
    return p.parse_args(argv)


def _shrink_for_smoke(args: argparse.Namespace) -> None:
    for name, value in SMOKE.items():
        setattr(args, name, min(getattr(args, name), value))
    args.lr_grid_whole = ",".join(_items(args.lr_grid_whole)[:2])
    args.lr_grid_peft = ",".join(_items(args.lr_grid_peft)[:2])
    args.seeds = ",".join(_items(args.seeds)[:2])
    args.targets = _items(args.targets)[0]


def _items(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def base_settings(args: argparse.Namespace, foundation: str) -> Settings:
    """The study's ``Settings`` that every run reads (its ``lr`` and ``seed`` are replaced per run)."""
    from fwi_plugins.engine.config import RunOptions, TrainOptions

    return Settings(
        foundation=foundation, foundation_sha256=_sha256(FOUNDATION["path"]), targets=tuple(_items(args.targets)),
        methods=tuple(_items(args.methods)), fractions=(1.0,), n_train=args.n_train, n_test=args.n_test,
        steps=args.steps, batch_size=args.batch_size, lr=TrainOptions().lr,
        lambda_ssim=args.lambda_ssim if args.lambda_ssim is not None else RunOptions().lambda_ssim,
        warmup_steps=args.warmup_steps, seed=args.data_seed, physics_targets=(), physics_method="",
        physics_fraction=0.0, physics_samples=0, lambda_physics="0", labelfree_batch=1, misfit_samples=0,
        refine_iterations=0, refine_lr=0.0, refine_step="adam", device=args.device, smoke=args.smoke,
        peft_options=args.peft_options)


def fair_settings(args: argparse.Namespace, base: Settings) -> FairSettings:
    def floats(text: str) -> tuple[float, ...]:
        return tuple(float(x) for x in _items(text))

    return FairSettings(base=base, n_val=args.n_val, grid_whole=floats(args.lr_grid_whole),
                        grid_peft=floats(args.lr_grid_peft), seeds=tuple(int(x) for x in _items(args.seeds)),
                        scratch_cap=args.scratch_cap, patience=args.patience, val_every=args.val_every)


def _check(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, or ``None``."""
    if args.n_val < 1:
        return "--n-val must be at least 1: the learning rates are chosen on validation maps"
    if not _items(args.seeds):
        return "--seeds: give at least one seed"
    if not (_items(args.lr_grid_whole) and _items(args.lr_grid_peft)):
        return "--lr-grid-whole and --lr-grid-peft: give at least one learning rate each"
    if min(args.patience, args.val_every, args.scratch_cap, args.steps) < 1:
        return "--patience, --val-every, --scratch-cap and --steps must be at least 1"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = _check(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.smoke:
        _shrink_for_smoke(args)
    name = "study-fair-smoke" if args.smoke else "study-fair"
    out = args.out or (ROOT / "runs" / name / "results" if args.smoke else ROOT / "benchmarks" / "results")
    work = args.work or (ROOT / "runs" / name)
    # OMP_NUM_THREADS wins: more threads than free cores makes OpenMP (torch, deepwave) crawl.
    threads = int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, (os.cpu_count() or 1) // max(1, args.workers))
    import torch

    torch.set_num_threads(threads)
    started, wall_clock_start = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M:%S %Z")
    if args.smoke and args.foundation is None:
        # The random weights of an earlier smoke run are kept, so that a smoke run resumes too.
        work.mkdir(parents=True, exist_ok=True)
        earlier = work / "random-vit-tiny.safetensors"
        args.foundation = str(earlier) if earlier.is_file() else smoke_foundation(work)
    FOUNDATION.update(resolve_foundation(args.foundation))
    chosen_targets = _chosen_targets(args, base_settings(args, _shown_path(FOUNDATION["path"])))
    if isinstance(chosen_targets, int):
        return chosen_targets
    base, specs, skipped = chosen_targets
    s = fair_settings(args, base)
    plan_ = estimate(s)
    print(estimate_text(plan_, args.workers), flush=True)
    if args.plan_only:
        return 0
    load_time = _load_targets(base, specs, args.cache_dir, n_val=s.n_val)
    store = TaskStore(work / "runs.json", s.fingerprint())
    store.session_start = started
    if not args.report_only:
        _run_stages(s, store, max(1, args.workers), threads)
    chosen = choices(s, store.results)
    missing = [t.key for t in tuning_plan(s) + test_plan(s, chosen) if t.key not in store.results]
    context = {"settings": s, "foundation": {**FOUNDATION, "path": _shown_path(FOUNDATION["path"])},
               "skipped": skipped, "failed": missing, "workers": args.workers, "threads_per_run": threads,
               "started": wall_clock_start, "load_time": load_time, "plan": plan_,
               "wall_time": sum(store.sessions) + (0.0 if args.report_only else time.perf_counter() - started),
               "sessions": len(store.sessions) + (0 if args.report_only else 1),
               "command": reproduce_command(args), "targets": _targets_context()}
    report = build_fair_report(context, store.results)
    write_fair_outputs(report, out)
    print(report["terminal"])
    print(f"\nreport: {out / 'study_fair.md'}   wall time {context['wall_time'] / 60:.1f} min")
    if missing:
        print(f"{len(missing)} run(s) without a result: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


def _run_stages(s: FairSettings, store: TaskStore, workers: int, threads: int) -> None:
    """Stage 1 (tuning, zero-shot), the choice of learning rates, stage 2 (seeds on test)."""
    run_all(tuning_plan(s), s, store, workers, threads, runner=run_fair_task, describe=progress_line)
    chosen = choices(s, store.results)
    for (target, method), lr in chosen.items():
        print(f"chosen on validation SSIM: {target} {method} lr {lr:g}", flush=True)
    run_all(test_plan(s, chosen), s, store, workers, threads, runner=run_fair_task, describe=progress_line)


def _targets_context() -> dict[str, Any]:
    """Each loaded target: what it is, its options and how many maps each split holds."""
    return {key: {"label": t.spec.label, "dataset": t.spec.dataset, "distribution": t.spec.distribution,
                  "options": {k: (os.path.relpath(v, ROOT) if k == "path" else v) for k, v in t.options.items()},
                  "train_maps": int(len(t.train_x)), "val_maps": int(len(t.val_y) if t.val_y is not None else 0),
                  "test_maps": int(len(t.test_x))}
            for key, t in TARGETS.items()}


def reproduce_command(args: argparse.Namespace) -> str:
    """The command line that reproduces this study (defaults left out)."""
    defaults = parse_args(["--smoke"] if args.smoke else [])
    if args.smoke:
        _shrink_for_smoke(defaults)
    parts = ["OMP_NUM_THREADS=1", "python", "benchmarks/study_fair.py"] + (["--smoke"] if args.smoke else [])
    left_out = ("out", "work", "cache_dir", "report_only", "plan_only") + (("foundation",) if args.smoke else ())
    for name, value in vars(args).items():
        if name in left_out:
            continue
        if value == getattr(defaults, name):
            continue
        flag = "--" + name.replace("_", "-")
        parts += [flag] if isinstance(value, bool) else [flag, str(value)]
    return " ".join(parts)


if __name__ == "__main__":
    sys.exit(main())

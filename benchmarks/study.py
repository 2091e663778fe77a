"""The study: training from scratch, full fine-tuning and PEFT of the foundation model.

For each target dataset, in distribution (the real OpenFWI FlatVel-A and CurveVel-A velocity
maps, gathers simulated with the ``deepwave`` physics at OpenFWI geometry) and out of
distribution (the generated ``curvefault-b`` and ``salt`` families, which the foundation model
never saw), and for 100 %, 10 % and 1 % of the target's training maps, it trains:

* ``scratch``: the same backbone from its random initialisation, every weight trained;
* ``full``: full fine-tuning of the foundation model;
* the PEFT methods (``lora``, ``adapter``, ``ia3`` by default) on the foundation model;

and scores each on the target's test maps (MAE, RMSE on the [-1, 1] scale and in m/s, SSIM,
as OpenFWI defines them), with trainable parameters, peak memory and wall time. Every run of
a target and fraction takes the same number of optimisation steps. For the
out-of-distribution targets it then compares, at one fraction and method (10 %, ``lora``):

* (a) label-only fine-tuning (the run of the main grid);
* (b) physics-consistent fine-tuning: label loss + lambda x physics misfit;
* (c) label-free adaptation: the physics misfit of the training gathers alone, no labels;
* (d) refinement after prediction: physics-based FWI (``engine.refine``) of (a)'s predictions;

each in data misfit and SSIM, with its time. Everything goes through the engine's own code
(``engine.train.train``, ``engine.evaluate``, ``engine.refine``, ``api.build_backbone``,
``api.apply_peft``, ``adapted.count_parameters``).

Each run is a forked process of its own, so its peak memory is its own: on CPU the rise of the
process's peak resident set (``ru_maxrss``) over its resident size when the run starts (a
forked process starts with its high-water mark at its current size); on a GPU
``torch.cuda.max_memory_allocated``. ``--workers`` runs go side by side, one CPU thread each.

Outputs: ``benchmarks/results/study.md`` (the report), ``study.json`` (every figure), PNG
figures, and the README's results block (between ``<!-- results:start -->`` and
``<!-- results:end -->``). Finished runs are kept in ``runs/study/`` so an interrupted study
resumes where it stopped.

This file is the command; ``study_plan.py`` holds the targets, settings and list of runs,
``study_runs.py`` runs and measures them, and ``study_report.py`` writes the report.

    OMP_NUM_THREADS=1 python benchmarks/study.py                 # the study (about 40 min on 2 CPU cores)
    OMP_NUM_THREADS=1 python benchmarks/study.py --smoke         # a few steps on a few maps, random weights
    python benchmarks/study.py --help
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from study_plan import Settings, Target, TargetSpec, plan, target_specs  # noqa: E402  (beside this file)
from study_runs import FOUNDATION, TARGETS, TaskStore, run_all  # noqa: E402

DEFAULT_FOUNDATION_RUN = ROOT / "runs" / "foundation-vit-tiny" / "weights.safetensors"
DEFAULT_OPENFWI = ROOT.parent / "shared" / "data" / "openfwi"


def resolve_foundation(choice: str | None) -> dict[str, Any]:
    """The foundation weights: the path, backbone name and options, normalisation and model card."""
    from safetensors import safe_open

    from fwi_plugins import api
    from fwi_plugins.data import Normalization
    from fwi_plugins.weights import resolve_pretrained

    spec = api.get_spec("backbone", "vit")
    if choice is None:
        if "default" in spec.pretrained:
            try:
                choice = str(resolve_pretrained(spec, "default"))
            except Exception:  # noqa: BLE001 - a named weight that is not installed: fall back to the run's file
                choice = str(DEFAULT_FOUNDATION_RUN)
        else:
            choice = str(DEFAULT_FOUNDATION_RUN)
    path = resolve_pretrained(spec, choice)
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    backbone = metadata.get("backbone", "vit")
    options = json.loads(metadata["backbone_options"]) if "backbone_options" in metadata else {"size": "tiny"}
    normalization = (Normalization.from_dict(json.loads(metadata["normalization"]))
                     if "normalization" in metadata else None)
    card = None
    candidates = (path.parent / "model_card.json", path.with_suffix(".json"),
                  path.with_name(f"{path.stem}.model_card.json"), path.with_name(f"{path.stem}_model_card.json"))
    for candidate in candidates:
        if candidate.is_file():
            try:
                card = json.loads(candidate.read_text())
                break
            except json.JSONDecodeError:
                pass
    return {"path": str(path), "choice": choice, "backbone": backbone, "backbone_options": options,
            "normalization": normalization, "metadata": metadata, "card": card}


def load_target(spec: TargetSpec, settings: Settings, cache_dir: str | None, *, n_val: int = 0) -> Target:
    """The target's training and test arrays, and ``n_val`` validation maps from the dataset's own
    validation split (none by default); gathers simulated with deepwave (cached)."""
    from fwi_plugins import api

    options = {**spec.options, "n_train": settings.n_train, "n_val": n_val, "n_test": settings.n_test,
               "seed": settings.seed}
    ds = api.load_dataset(spec.dataset, options)
    if FOUNDATION.get("normalization") is not None:
        # The network learned its input scale in pretraining; every target is seen through it.
        ds.set_normalization(FOUNDATION["normalization"])
    physics = api.build_physics("deepwave", survey=ds.survey)
    train_x = ds.gathers("train", physics, cache_dir=cache_dir, progress=True)
    test_x = ds.gathers("test", physics, cache_dir=cache_dir, progress=True)
    val_x = ds.gathers("val", physics, cache_dir=cache_dir, progress=True) if n_val else None
    return Target(spec=spec, options=options, normalization=ds.normalization, survey=ds.survey,
                  train_x=train_x, train_y=ds.velocity("train"), test_x=test_x, test_y=ds.velocity("test"),
                  val_x=val_x, val_y=ds.velocity("val") if n_val else None)


def smoke_foundation(directory: Path) -> str:
    """A randomly initialised vit tiny saved as foundation weights (for --smoke)."""
    import torch

    from fwi_plugins import api
    from fwi_plugins.weights import save_weights

    # Not the study's seed: 'scratch' runs must not start from these very weights.
    torch.manual_seed(12345)
    model = api.build_backbone("vit", {"size": "tiny"})
    path = directory / "random-vit-tiny.safetensors"
    save_weights(model, path, metadata={"format": "fwi-foundation-1", "name": "random (smoke test)",
                                        "backbone": "vit", "backbone_options": json.dumps({"size": "tiny"})})
    return str(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--foundation", default=None,
                   help="foundation weights: a shipped name of the vit backbone or a .safetensors path "
                        "(default: the shipped 'default' if installed, else "
                        "runs/foundation-vit-tiny/weights.safetensors)")
    p.add_argument("--openfwi", type=Path, default=DEFAULT_OPENFWI,
                   help="folder of the OpenFWI velocity zips (default ../shared/data/openfwi)")
    p.add_argument("--targets", default="openfwi-flatvel-a,openfwi-curvevel-a,curvefault-b,salt",
                   help="comma-separated: openfwi-flatvel-a, openfwi-curvevel-a, flatvel-a, curvefault-b, salt")
    p.add_argument("--methods", default="scratch,full,lora,adapter,ia3",
                   help="scratch and any PEFT method (full, lora, adapter, ia3, loha, ...)")
    p.add_argument("--fractions", default="1,0.1,0.01", help="shares of the target's training maps")
    p.add_argument("--n-train", type=int, default=200, help="training maps that make 100 %%")
    p.add_argument("--n-test", type=int, default=100, help="test maps scored per target")
    p.add_argument("--steps", type=int, default=78, help="optimisation steps of every run")
    p.add_argument("--batch-size", type=int, default=16, help="maps per step (fewer when a fraction has fewer)")
    p.add_argument("--lr", type=float, default=None, help="peak AdamW learning rate (default: the engine's)")
    p.add_argument("--lambda-ssim", type=float, default=None,
                   help="weight of the (1 - SSIM) term of the label loss (default: fwi run's)")
    p.add_argument("--warmup-steps", type=int, default=6, help="linear warm-up steps before cosine decay")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peft-options", default="lora.r=8,lora.alpha=16",
                   help="PEFT options pinned for the study, METHOD.KEY=VALUE,... (the rest: each plugin's defaults)")
    p.add_argument("--physics-targets", default="curvefault-b,salt",
                   help="targets of the physics comparison (out of distribution)")
    p.add_argument("--physics-method", default="lora")
    p.add_argument("--physics-fraction", type=float, default=0.1)
    p.add_argument("--physics-samples", type=int, default=1,
                   help="maps of each step that the physics term simulates (label + physics runs)")
    p.add_argument("--lambda-physics", default="auto",
                   help="weight of the physics misfit; 'auto' makes it equal the label loss at the start")
    p.add_argument("--labelfree-batch", type=int, default=1, help="maps per step of label-free adaptation")
    p.add_argument("--misfit-samples", type=int, default=4,
                   help="test maps whose data misfit is computed and that refinement starts from")
    p.add_argument("--refine-iterations", type=int, default=20)
    # Adam at 0.005 is what the published figures were measured with (refine's default then).
    p.add_argument("--refine-lr", type=float, default=0.005,
                   help="FWI step as a fraction of the velocity range")
    p.add_argument("--refine-step", choices=("adam", "normalized", "lbfgs"), default="adam",
                   help="FWI update rule (see fwi_plugins.engine.refine)")
    p.add_argument("--workers", type=int, default=2, help="runs side by side (one process each)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    p.add_argument("--cache-dir", default=None, help="simulation cache (default: FWI_CACHE_DIR or the user cache)")
    p.add_argument("--out", type=Path, default=None, help="report folder (default benchmarks/results)")
    p.add_argument("--work", type=Path, default=None, help="resumable run store (default runs/study)")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md",
                   help="README whose results block is rewritten")
    p.add_argument("--no-readme", action="store_true", help="leave the README alone")
    p.add_argument("--report-only", action="store_true",
                   help="write the report from the finished runs in the store without running the others")
    p.add_argument("--smoke", action="store_true",
                   help="a check of the whole path in minutes: random weights, few maps, few steps; "
                        "writes to runs/study-smoke, never to the README")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace, foundation: str) -> Settings:
    from fwi_plugins.engine.config import RunOptions, TrainOptions

    def items(text: str) -> tuple[str, ...]:
        return tuple(s.strip() for s in text.split(",") if s.strip())

    return Settings(
        foundation=foundation, foundation_sha256=_sha256(FOUNDATION["path"]), targets=items(args.targets),
        methods=items(args.methods),
        fractions=tuple(float(f) for f in items(args.fractions)), n_train=args.n_train, n_test=args.n_test,
        steps=args.steps, batch_size=args.batch_size,
        lr=args.lr if args.lr is not None else TrainOptions().lr,
        lambda_ssim=args.lambda_ssim if args.lambda_ssim is not None else RunOptions().lambda_ssim,
        warmup_steps=args.warmup_steps, seed=args.seed,
        physics_targets=items(args.physics_targets), physics_method=args.physics_method,
        physics_fraction=args.physics_fraction, physics_samples=args.physics_samples,
        lambda_physics=args.lambda_physics, labelfree_batch=args.labelfree_batch,
        misfit_samples=args.misfit_samples, refine_iterations=args.refine_iterations,
        refine_lr=args.refine_lr, refine_step=args.refine_step,
        device=args.device, smoke=args.smoke, peft_options=args.peft_options)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _shown_path(path: str) -> str:
    """``path`` relative to the repository when it lies inside it (reports should not name this machine)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        _shrink_for_smoke(args)
    out = args.out or (ROOT / "runs" / "study-smoke" / "results" if args.smoke else ROOT / "benchmarks" / "results")
    work = args.work or (ROOT / "runs" / ("study-smoke" if args.smoke else "study"))
    # OMP_NUM_THREADS wins: more threads than free cores makes OpenMP (torch, deepwave) crawl.
    threads = int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, (os.cpu_count() or 1) // max(1, args.workers))
    import torch

    torch.set_num_threads(threads)
    started = time.perf_counter()
    wall_clock_start = time.strftime("%Y-%m-%d %H:%M:%S %Z")

    if args.smoke and args.foundation is None:
        work.mkdir(parents=True, exist_ok=True)
        args.foundation = smoke_foundation(work)
    FOUNDATION.update(resolve_foundation(args.foundation))
    chosen = _chosen_targets(args, settings_from(args, _shown_path(FOUNDATION["path"])))
    if isinstance(chosen, int):
        return chosen
    settings, specs, skipped = chosen
    load_time = _load_targets(settings, specs, args.cache_dir)

    tasks = plan(settings)
    store = TaskStore(work / "runs.json", settings.fingerprint())
    store.session_start = started
    if not args.report_only:
        run_all(tasks, settings, store, max(1, args.workers), threads)
    missing = [t.key for t in tasks if t.key not in store.results]

    from study_report import build_report, write_outputs

    context = _report_context(args, settings, store, skipped=skipped, missing=missing, threads=threads,
                              started=started, wall_clock_start=wall_clock_start, load_time=load_time)
    report = build_report(context, store.results, tasks)
    write_outputs(report, out, readme=None if (args.no_readme or args.smoke) else args.readme)
    print(report["terminal"])
    print(f"\nreport: {out / 'study.md'}   wall time {context['wall_time'] / 60:.1f} min")
    if missing:
        print(f"{len(missing)} run(s) failed: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


def _shrink_for_smoke(args: argparse.Namespace) -> None:
    """--smoke: few maps, few steps, two fractions."""
    args.n_train, args.n_test, args.steps = min(args.n_train, 10), min(args.n_test, 4), min(args.steps, 2)
    args.fractions = "1,0.1"
    args.misfit_samples, args.refine_iterations = min(args.misfit_samples, 1), min(args.refine_iterations, 1)
    args.warmup_steps = min(args.warmup_steps, 1)


def _chosen_targets(args: argparse.Namespace,
                    settings: Settings) -> tuple[Settings, dict[str, TargetSpec], dict[str, str]] | int:
    """The settings less the targets whose data is missing, every target's spec, and why each was skipped.

    Returns the exit status 2 instead for a target that is unknown, or a physics target not studied.
    """
    specs = target_specs(args.openfwi.expanduser().resolve())
    unknown = [t for t in (*settings.targets, *settings.physics_targets) if t not in specs]
    if unknown:
        print(f"unknown target(s) {unknown}; choose from {', '.join(specs)}", file=sys.stderr)
        return 2
    skipped: dict[str, str] = {}
    if not args.openfwi.expanduser().is_dir():
        for key in [t for t in settings.targets if specs[t].dataset == "openfwi"]:
            skipped[key] = (f"the OpenFWI velocity maps are not at {args.openfwi}; {specs[key].label} was "
                            f"skipped (pass --openfwi FOLDER)")
            print(skipped[key], file=sys.stderr)
        settings = dataclasses.replace(settings, targets=tuple(t for t in settings.targets if t not in skipped))
    for key in settings.physics_targets:
        if key not in settings.targets:
            print(f"physics target {key} is not among --targets", file=sys.stderr)
            return 2
    return settings, specs, skipped


def _load_targets(settings: Settings, specs: dict[str, TargetSpec], cache_dir: str | None, *,
                  n_val: int = 0) -> float:
    """Load every target into ``TARGETS`` (with ``n_val`` validation maps); returns the seconds it took."""
    size = FOUNDATION["backbone_options"].get("size", "")
    print(f"foundation: {FOUNDATION['path']} ({FOUNDATION['backbone']} {size})")
    load_started = time.perf_counter()
    for key in settings.targets:
        val = f", {n_val} validation" if n_val else ""
        print(f"loading {specs[key].label}: {settings.n_train} training{val} and {settings.n_test} test maps",
              flush=True)
        TARGETS[key] = load_target(specs[key], settings, cache_dir, n_val=n_val)
    return time.perf_counter() - load_started


def _report_context(args: argparse.Namespace, settings: Settings, store: TaskStore, *, skipped: dict[str, str],
                    missing: list[str], threads: int, started: float, wall_clock_start: str,
                    load_time: float) -> dict[str, Any]:
    """What the report says besides the runs' results: settings, foundation, targets, machine, times."""
    import torch

    return {
        "settings": dataclasses.asdict(settings),
        "foundation": {**{k: v for k, v in FOUNDATION.items() if k in ("choice", "backbone", "backbone_options",
                                                                       "card")},
                       "path": _shown_path(FOUNDATION["path"])},
        "targets": {key: {"label": t.spec.label, "dataset": t.spec.dataset, "distribution": t.spec.distribution,
                          "openfwi_family": t.spec.openfwi_family,
                          "options": {k: (os.path.relpath(v, ROOT) if k == "path" else v)
                                      for k, v in t.options.items()},
                          "train_maps": int(len(t.train_x)), "test_maps": int(len(t.test_x)),
                          "truth_example": t.test_y[0, 0].round().astype(np.int16).tolist()}
                    for key, t in TARGETS.items()},
        "skipped": skipped,
        "failed": missing,
        "workers": args.workers,
        "threads_per_run": threads,
        "hardware": {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()},
        "started": wall_clock_start,
        "load_time": load_time,
        # Earlier sessions count too when the study was interrupted and resumed.
        # A report-only session runs nothing: the time is that of the sessions that ran the study.
        "wall_time": sum(store.sessions) + (0.0 if args.report_only else time.perf_counter() - started),
        "sessions": len(store.sessions) + (0 if args.report_only else 1),
        "command": reproduce_command(args),
    }


def reproduce_command(args: argparse.Namespace) -> str:
    """The command line that reproduces this study (defaults left out)."""
    defaults = parse_args([])
    parts = ["OMP_NUM_THREADS=1", "python", "benchmarks/study.py"]
    for name, value in vars(args).items():
        if name in ("readme", "no_readme", "out", "work", "cache_dir", "report_only"):
            continue
        default = getattr(defaults, name)
        if args.smoke and name in ("n_train", "n_test", "steps", "fractions", "misfit_samples",
                                   "refine_iterations", "warmup_steps", "foundation"):
            continue
        if value == default:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag)
        else:
            parts += [flag, str(value)]
    return " ".join(parts)


if __name__ == "__main__":
    sys.exit(main())

"""Network alone, network + physics refinement, and classical FWI from a 1-D start, side by side.

For each target's first test maps (real OpenFWI FlatVel-A and CurveVel-A velocity maps from
``../shared/data/openfwi``, skipped with a message when that folder is absent, and the
generated families held out of pretraining, ``curvefault-b`` and ``salt``), gathers are
simulated through the cache and the shipped ``vit`` foundation predicts zero-shot. Then:

* every refinement variant in :data:`VARIANTS` refines the prediction for ``--time-limit``
  seconds per map (:func:`fwi_plugins.engine.refinement.refine.refine`);
* label-free adaptation (``--label-free-maps``, 0 to skip): a LoRA adapter of the foundation
  trained on the target's training gathers with the Deepwave misfit alone, no velocity labels
  (the engine's ``train`` with ``labels="none"``), then predicting the test maps; its seconds
  per map include the training, shared over the test maps;
* classical FWI runs the best refinement (:data:`BEST`) from a 1-D start (the least-squares
  linear-in-depth fit to the laterally averaged true model: a generous start, what a
  velocity analysis might give) for up to ``--cap`` seconds per map. Its model at the same
  wall time as network + refinement is scored, and the time it first reaches the SSIM of
  network + that refinement gives the ratio; ``> cap`` when it never does.

Scores follow OpenFWI (SSIM on [0, 1] maps, MAE in m/s); the data misfit is the physics'
own (mean squared difference of the gathers), on the full band. Seconds are per map and
include the network's prediction where it takes part.

    OMP_NUM_THREADS=1 python benchmarks/bench_refine.py --n-maps 2 --time-limit 30 --cap 120
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench_foundation import DEFAULT_OPENFWI, TARGETS, load_target

ROOT = Path(__file__).resolve().parents[1]

#: name -> refine() options: the old default rule, plain L-BFGS, and L-BFGS with its shaping
#: defaults (mute, smooth, depth_power, tv), the best on the generated held-out dev set.
VARIANTS: dict[str, dict[str, Any]] = {
    "descent": {"step": "normalized", "mute": 0, "smooth": 0.0, "depth_power": 0.0, "tv": 0.0},
    "lbfgs": {"step": "lbfgs", "mute": 0, "smooth": 0.0, "depth_power": 0.0, "tv": 0.0},
    "shaped-lbfgs": {"step": "lbfgs"},
}
#: name -> refine_through_network() options: a fresh adapter of the foundation fitted to each
#: survey's data (the network reparameterises the velocity).
NETWORK_VARIANTS: dict[str, dict[str, Any]] = {
    "network-lora": {"peft": "lora", "lr": 1e-3},
}
#: The variant classical FWI runs and is timed against.
BEST = "shaped-lbfgs"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, from: {', '.join(TARGETS)}")
    p.add_argument("--n-maps", type=int, default=1, help="test maps per target (default 1)")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"refinement variants, from: {', '.join([*VARIANTS, *NETWORK_VARIANTS])}")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                   help='an extra refinement variant, e.g. \'tv={"tv": 0.02}\' (refine() options); repeatable')
    p.add_argument("--no-classical", dest="classical", action="store_false",
                   help="skip classical FWI (only the network and its refinements)")
    p.add_argument("--label-free-maps", type=int, default=16,
                   help="training gathers of label-free adaptation (0 skips it; default 16)")
    p.add_argument("--label-free-epochs", type=int, default=2, help="epochs of label-free adaptation (default 2)")
    p.add_argument("--time-limit", type=float, default=20.0, help="refinement seconds per map (default 20)")
    p.add_argument("--cap", type=float, default=60.0, help="classical FWI seconds per map at most (default 60)")
    p.add_argument("--iterations", type=int, default=10_000,
                   help="iterations (evaluations for lbfgs) per map at most; the time limit usually ends first")
    p.add_argument("--holdout", type=int, default=None,
                   help="held-out shots of refine() (default: its own, 1 with 3 shots or more; 0: none)")
    p.add_argument("--results", type=Path, default=None,
                   help="also write the figures with command, commit and hardware to this JSON file")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--openfwi", type=Path, default=DEFAULT_OPENFWI, help="folder of the OpenFWI velocity zips")
    p.add_argument("--cache-dir", default=None, help="simulation cache (default: the user cache)")
    p.add_argument("--json", dest="as_json", action="store_true", help="print the results as JSON")
    return p.parse_args(argv)


def one_d_start(truth: Any) -> Any:
    """Per map, the least-squares line ``a + b z`` through the laterally averaged truth, on every column."""
    import numpy as np

    n, _, nz, nx = truth.shape
    z = np.arange(nz, dtype=np.float64)
    out = np.empty_like(truth)
    for i in range(n):
        b, a = np.polyfit(z, truth[i, 0].mean(axis=1), 1)
        out[i, 0] = (a + b * z)[:, None].repeat(nx, axis=1)
    return out


def scores(velocity: Any, truth: Any, lo: float, hi: float) -> tuple[float, float]:
    """(SSIM on the [0, 1] scale, MAE in m/s) of one map."""
    import numpy as np

    from fwi_plugins import api

    velocity, truth = np.asarray(velocity, np.float64), np.asarray(truth, np.float64)
    shape = (1, 1, *truth.shape[-2:])
    metrics = api.evaluate(velocity.reshape(shape), truth.reshape(shape), vmin=lo, vmax=hi, device="cpu")
    return float(metrics["ssim"]), float(np.abs(velocity - truth).mean())


def classical(start: Any, observed: Any, truth: Any, physics: Any, args: argparse.Namespace) -> list[dict[str, float]]:
    """The best refinement from ``start`` up to the cap: (seconds, SSIM, MAE, misfit) after each step."""
    import torch

    from fwi_plugins import api

    lo, hi = physics.survey.vmin, physics.survey.vmax
    trace: list[dict[str, float]] = []
    started = time.perf_counter()

    def record(step: int, misfit: float, velocity: torch.Tensor) -> None:
        s, m = scores(velocity.cpu().numpy(), truth, lo, hi)
        trace.append({"seconds": time.perf_counter() - started, "ssim": s, "mae_ms": m, "misfit": misfit})

    api.refine(start, observed, physics=physics, iterations=args.iterations, time_limit=args.cap, device=args.device,
           progress=False, callback=record, **VARIANTS[BEST])
    return trace


def label_free(model: Any, key: str, args: argparse.Namespace, physics: Any) -> tuple[Any, float]:
    """A copy of ``model`` with a LoRA adapter trained on the target's training gathers by the misfit alone."""
    import copy

    from fwi_plugins import api

    label, name, options = TARGETS[key]
    options = dict(options, n_train=args.label_free_maps, n_val=0, n_test=0)
    if name == "openfwi":
        options["path"] = str(args.openfwi)
    ds = api.load_dataset(name, options)
    normalization = model.pretrained_cfg.normalization
    ds.set_normalization(normalization)
    gathers = ds.gathers("train", physics, cache_dir=args.cache_dir, progress=False)
    adapted = api.apply_peft(copy.deepcopy(model), "lora", {"r": 8, "alpha": 16}, backbone="vit")
    started = time.perf_counter()
    api.train(adapted, gathers, None, normalization=normalization, physics=physics,
              options={"epochs": args.label_free_epochs, "batch_size": 2, "lr": 5e-4, "lambda_physics": 1.0,
                       "lambda_ssim": 0.0, "physics_samples": 0, "labels": "none", "seed": 0, "device": args.device,
                       "progress": False})
    return adapted.eval(), time.perf_counter() - started


def at_time(trace: list[dict[str, float]], seconds: float) -> dict[str, float]:
    """The lowest-misfit model reached by ``seconds`` (what a refinement stopped then keeps)."""
    reached = [t for t in trace if t["seconds"] <= seconds] or trace[:1]
    return min(reached, key=lambda t: t["misfit"])


def run_target(key: str, args: argparse.Namespace, model: Any) -> dict[str, Any] | None:
    import numpy as np

    from fwi_plugins import api

    loaded_args = argparse.Namespace(n_test=args.n_maps, openfwi=args.openfwi, cache_dir=args.cache_dir)
    target = load_target(key, loaded_args, model.pretrained_cfg.normalization)
    if target is None:
        return None
    ds, gathers, truth = target
    gathers, truth = np.asarray(gathers, np.float32), np.asarray(truth, np.float32)
    physics = api.build_physics("deepwave", survey=ds.survey)
    lo, hi = ds.survey.vmin, ds.survey.vmax
    rows: dict[str, list[dict[str, float]]] = {"network": [], **{v: [] for v in args.variants}}
    if args.classical:
        rows["classical"] = []
    ratios: list[dict[str, float | None]] = []
    adapted, train_s = (label_free(model, key, args, physics) if args.label_free_maps > 0 else (None, 0.0))
    if adapted is not None:
        rows["label-free"] = []
    for i in range(len(truth)):
        x, v = gathers[i:i + 1], truth[i:i + 1]
        network_row, predicted = _scored_prediction(model, x, v, physics, args.device, 0.0)
        rows["network"].append(network_row)
        predict_s = network_row["seconds"]
        if adapted is not None:
            rows["label-free"].append(_scored_prediction(adapted, x, v, physics, args.device,
                                                         train_s / len(truth))[0])
        for name in args.variants:
            started = time.perf_counter()
            if name in NETWORK_VARIANTS:
                result = api.refine_through_network(model, x, physics=physics, iterations=args.iterations,
                                                time_limit=args.time_limit, device=args.device,
                                                **NETWORK_VARIANTS[name])[0]
            else:
                result = api.refine(predicted, x, physics=physics, iterations=args.iterations, holdout=args.holdout,
                                time_limit=args.time_limit, device=args.device, progress=False, **VARIANTS[name])
            s, m = scores(result.velocity, v, lo, hi)
            rows[name].append({"ssim": s, "mae_ms": m, "misfit": result.final_misfit,
                               "seconds": predict_s + time.perf_counter() - started,
                               "kept_start": bool(getattr(result, "kept_start", [False])[0])})
        if not args.classical:
            continue
        reference = rows[BEST if BEST in rows else args.variants[-1]][-1]
        trace = classical(one_d_start(v), x, v, physics, args)
        rows["classical"].append(dict(at_time(trace, reference["seconds"]), seconds=reference["seconds"]))
        reached = next((t["seconds"] for t in trace if t["ssim"] >= reference["ssim"]), None)
        ratios.append({"ratio": None if reached is None else reached / reference["seconds"],
                       "at_least": args.cap / reference["seconds"]})
    summary = {name: {k: float(np.mean([r[k] for r in rs])) for k in ("ssim", "mae_ms", "misfit", "seconds")}
               for name, rs in rows.items()}
    return {"label": TARGETS[key][0], "n_maps": len(truth), "rows": summary, "per_map": rows,
            "classical_time_ratio": ratios}


def _scored_prediction(model: Any, x: Any, truth: Any, physics: Any, device: str,
                       extra_s: float) -> tuple[dict[str, float], Any]:
    """SSIM, MAE, data misfit and seconds of ``model``'s prediction of one map, and the prediction."""
    import numpy as np
    import torch

    from fwi_plugins import api

    lo, hi = physics.survey.vmin, physics.survey.vmax
    started = time.perf_counter()
    predicted = np.clip(api.predict(model, x, shaping="none", device=device, progress=False), lo, hi)
    seconds = time.perf_counter() - started + extra_s
    with torch.no_grad():
        misfit = float(physics.misfit(physics.simulate(torch.from_numpy(predicted).to(device)),
                                      torch.from_numpy(x).to(device)))
    s, m = scores(predicted, truth, lo, hi)
    return {"ssim": s, "mae_ms": m, "misfit": misfit, "seconds": seconds}, predicted


def main(argv: list[str] | None = None) -> int:
    import torch

    from fwi_plugins import api

    args = parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    for spec in args.variant:
        name, _, options = spec.partition("=")
        try:
            VARIANTS[name] = json.loads(options)
        except json.JSONDecodeError as exc:
            print(f"error: --variant {spec!r}: {exc}", file=sys.stderr)
            return 2
        args.variants.append(name)
    unknown = [t for t in args.targets.split(",") if t not in TARGETS] + [v for v in args.variants
                                                                     if v not in VARIANTS and v not in NETWORK_VARIANTS]
    if unknown:
        print(f"error: unknown target or variant {unknown[0]!r}; targets: {', '.join(TARGETS)}; "
              f"variants: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = api.build_backbone("vit", pretrained="default")
    results = {}
    for key in args.targets.split(","):
        outcome = run_target(key, args, model)
        if outcome is not None:
            results[key] = outcome
    options = {**VARIANTS, **NETWORK_VARIANTS}
    record = {"time_limit": args.time_limit, "cap": args.cap, "iterations": args.iterations, "holdout": args.holdout,
              "device": args.device, "variants": {v: options[v] for v in args.variants}, "targets": results}
    if args.results is not None:
        from results_file import write_results

        write_results(args.results, record, weights="default")
    if args.as_json:
        print(json.dumps(record, indent=1))
        return 0
    print(f"\n{args.n_maps} test map(s) per target; refinement {args.time_limit:g} s per map, classical FWI "
          f"from a 1-D start at the same wall time (cap {args.cap:g} s); device {args.device}")
    print("variants: " + "; ".join(f"{v} = {options[v]}" for v in args.variants) + "\n")
    print("| target | method | SSIM | MAE (m/s) | data misfit | s/map |")
    print("|---|---|---:|---:|---:|---:|")
    for outcome in results.values():
        for name, row in outcome["rows"].items():
            label = {"network": "network alone", "classical": "classical FWI, 1-D start",
                     "label-free": "label-free LoRA (no labels)"}.get(name, f"network + {name}")
            print(f"| {outcome['label']} | {label} | {row['ssim']:.3f} | {row['mae_ms']:.0f} | "
                  f"{row['misfit']:.3e} | {row['seconds']:.1f} |")
    if not args.classical:
        return 0
    print("\ntime classical FWI needs to reach the SSIM of network + refinement, as a multiple of the latter's:")
    for outcome in results.values():
        cells = [f"> {r['at_least']:.1f}x (not within the {args.cap:g} s cap)" if r["ratio"] is None
                 else f"{r['ratio']:.1f}x" for r in outcome["classical_time_ratio"]]
        print(f"  {outcome['label']}: " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which network learns most per CPU-minute: backbones, sizes, input patches and decimation on one budget.

Each configuration pretrains from random weights with ``fwi pretrain`` on the CPU recipe's
corpus (the eight generated families, 1,250 training and 50 validation maps each, the cache that
``benchmarks/pretrain_cpu.sh`` fills, read memory-mapped) for the same wall-time budget on one
thread, then is validated on every family's validation maps. The table gives the steps it
managed, seconds per step, parameters and the mixture's validation MAE and SSIM, against the
first configuration (the shipped model's: ``vit`` tiny, patches of 50 samples x 7 receivers).
Configurations run ``--workers`` at a time, one thread each.

A short budget says which network learns fastest at the start, not which ends best after hours;
the shipped recipe's continuation stages are not repeated here.

    OMP_NUM_THREADS=1 python benchmarks/bench_backbones.py --minutes 5 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("flatvel-a", "curvevel-a", "flatfault-a", "curvefault-a", "flatvel-b", "curvevel-b", "flatfault-b",
            "smooth")

#: name -> (backbone, its options): the shipped architecture first (the baseline).
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "vit-tiny-p50x7": ("vit", {"size": "tiny"}),
    "vit-tiny-p100x7": ("vit", {"size": "tiny", "patch_time": 100}),
    # 100 tokens of 100 ms like p100x7, but cut from traces low-passed and decimated to 500 samples.
    "vit-tiny-p50x7-dec2": ("vit", {"size": "tiny", "time_decimation": 2}),
    "vit-small-p50x7": ("vit", {"size": "small"}),
    "inversionnet": ("inversionnet", {}),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, from: {', '.join(CONFIGS)}")
    p.add_argument("--minutes", type=float, default=5.0, help="training wall time of each configuration")
    p.add_argument("--workers", type=int, default=2, help="configurations side by side, one thread each")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-backbones")
    p.add_argument("--fwi", default=str(Path(sys.executable).with_name("fwi")), help="the fwi executable")
    p.add_argument("--json", dest="as_json", action="store_true", help="print the results as JSON")
    return p.parse_args(argv)


def command(name: str, args: argparse.Namespace) -> list[str]:
    backbone, options = CONFIGS[name]
    cmd = [args.fwi, "pretrain", "--backbone", backbone]
    for family in FAMILIES:
        cmd += ["--dataset", family]
    cmd += ["-o", "dataset.n_train=1250", "-o", "dataset.n_val=50", "-o", "dataset.n_test=50"]
    cmd += [a for key, value in options.items() for a in ("-o", f"backbone.{key}={value}")]
    # One long epoch: the budget, not the schedule, ends training; the lr stays near its peak.
    cmd += ["-o", "epochs=1", "-o", "samples_per_epoch=1000000", "-o", "batch_size=16", "-o", f"lr={args.lr}",
            "-o", "warmup_epochs=0.002", "-o", "lambda_ssim=1", "-o", f"max_minutes={args.minutes}",
            "-o", "checkpoint_minutes=0", "-o", "progress=false", "--seed", "0", "--out", str(args.out / name)]
    return cmd


def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    out = args.out / name
    metrics_path = out / "metrics.json"
    if not metrics_path.exists():
        env = dict(os.environ, OMP_NUM_THREADS="1")
        done = subprocess.run(command(name, args), env=env, capture_output=True, text=True)
        if done.returncode != 0 or not metrics_path.exists():
            return {"name": name, "error": (done.stderr or done.stdout)[-2000:]}
    metrics = json.loads(metrics_path.read_text())
    by_family = metrics["validation_by_dataset"]
    steps = metrics["training"]["steps"]
    train_s = metrics["timing"]["train"]
    return {"name": name, "parameters": metrics["parameters"], "steps": steps, "train_s": train_s,
            "s_per_step": train_s / max(steps, 1),
            "val_mae": sum(f["mae"] for f in by_family.values()) / len(by_family),
            "val_mae_ms": sum(f["mae_ms"] for f in by_family.values()) / len(by_family),
            "val_ssim": sum(f["ssim"] for f in by_family.values()) / len(by_family)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [c for c in args.configs.split(",") if c]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        print(f"error: unknown configuration {unknown[0]!r}; choose from {', '.join(CONFIGS)}", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = list(pool.map(lambda n: run_one(n, args), names))
    failed = [r for r in results if "error" in r]
    for r in failed:
        print(f"{r['name']}: failed\n{r['error']}", file=sys.stderr)
    if args.as_json:
        print(json.dumps({"minutes": args.minutes, "lr": args.lr, "results": results}, indent=1))
        return 1 if failed else 0
    ok = [r for r in results if "error" not in r]
    base = ok[0] if ok else None
    print(f"\n{args.minutes:g} min of training per configuration from random weights, one thread each, "
          f"{args.workers} side by side; validation: 50 maps of each of the 8 families (mean of families)\n")
    print("| configuration | parameters | steps | s/step | val MAE | val MAE (m/s) | val SSIM | SSIM vs first |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in ok:
        delta = r["val_ssim"] - base["val_ssim"] if base else 0.0
        print(f"| {r['name']} | {r['parameters'] / 1e6:.2f} M | {r['steps']} | {r['s_per_step']:.2f} | "
              f"{r['val_mae']:.4f} | {r['val_mae_ms']:.0f} | {r['val_ssim']:.4f} | {delta:+.4f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

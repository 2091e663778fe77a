"""PEFT methods against full fine-tuning: trainable share, memory and step time.

For each backbone at OpenFWI size (5 x 1000 x 70 gathers -> 70 x 70 velocity) and each
registered PEFT method, one training configuration runs in its own subprocess (so the
peak memory of one does not hide another's) and reports:

* trainable parameters and their share of the network;
* gradient plus AdamW state bytes after a step (what training adds per trainable weight);
* peak training memory, weights included: ``torch.cuda.max_memory_allocated`` on a GPU;
  on CPU the rise of the process's peak resident set (``ru_maxrss``) over its size once
  torch and peft are imported (every configuration imports peft, so libraries count alike);
* median time of a training step (forward, backward, AdamW), after a warm-up step.

Ratios are to ``full`` at the same batch size, measured in the same run::

    python benchmarks/bench_peft.py                       # vit (base) and inversionnet, batch 2 and 4
    python benchmarks/bench_peft.py --backbones vit --methods lora,full --batch-sizes 8,32 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

MIB = 1024 * 1024


def run_one(backbone: str, method: str, batch: int, *, vit_size: str, steps: int, device: str,
            threads: int) -> dict:
    """Measure one configuration in this process (called in a fresh subprocess)."""
    import peft  # noqa: F401 - imported by every configuration, so its memory is in every baseline
    import torch

    from fwi_plugins import api
    from fwi_plugins.adapted import count_parameters

    torch.set_num_threads(threads)
    rss_start = _rss_bytes()
    torch.manual_seed(0)
    options = {"size": vit_size} if backbone == "vit" else {}
    model = api.build_backbone(backbone, options).to(device)
    base_total = sum(p.numel() for p in model.parameters())
    model = api.apply_peft(model, method, {}, backbone=backbone).to(device)
    trainable, total = count_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randn(batch, 5, 1000, 70, device=device)
    target = torch.rand(batch, 1, 70, 70, device=device) * 2 - 1
    model.train()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.l1_loss(model(x), target)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    state_bytes = sum(p.grad.nbytes for p in params if p.grad is not None)
    state_bytes += sum(t.nbytes for s in opt.state.values() for t in s.values() if torch.is_tensor(t))
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_start
    return {"backbone": backbone, "method": method, "batch": batch, "trainable": trainable, "total": total,
            "base_total": base_total, "state_bytes": state_bytes, "peak_bytes": peak,
            "step_s": statistics.median(times[1:]), "device": device}


def _rss_bytes() -> int:
    """Current resident set size (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _row(r: dict, full: dict | None) -> str:
    def ratio(key: str) -> str:
        return f"{r[key] / full[key]:6.3f}" if full and full[key] else "     -"

    share = 100.0 * r["trainable"] / r["base_total"]
    return (f"{r['backbone']:<13}{r['method']:<15}{r['batch']:>5} {r['trainable']:>12,} {share:>8.3f}% "
            f"{r['state_bytes'] / MIB:>10.1f} {ratio('state_bytes')} {r['peak_bytes'] / MIB:>10.0f} "
            f"{ratio('peak_bytes')} {r['step_s']:>8.3f} {ratio('step_s')}")


def print_table(results: list[dict]) -> None:
    print(f"{'backbone':<13}{'method':<15}{'batch':>5} {'trainable':>12} {'share':>9} "
          f"{'grad+opt MiB':>10} {'ratio':>6} {'peak MiB':>10} {'ratio':>6} {'step s':>8} {'ratio':>6}")
    for r in results:
        full = next((f for f in results if f["method"] == "full" and f["backbone"] == r["backbone"]
                     and f["batch"] == r["batch"]), None)
        print(_row(r, full))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="vit,inversionnet")
    parser.add_argument("--methods", default="", help="comma-separated; default every registered method")
    parser.add_argument("--batch-sizes", default="2,4")
    parser.add_argument("--vit-size", default="base", help="named vit size (tiny, small, base)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--device", default="cuda" if _has_cuda() else "cpu")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--json", default="", help="also write the results to this file")
    parser.add_argument("--one", nargs=3, metavar=("BACKBONE", "METHOD", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        b, m, n = args.one
        print(json.dumps(run_one(b, m, int(n), vit_size=args.vit_size, steps=args.steps, device=args.device,
                                 threads=args.threads)))
        return 0

    from fwi_plugins.manager import FWIPluginManager

    registry = FWIPluginManager().load_all()
    methods = [m for m in args.methods.split(",") if m] or sorted(registry.components("peft"))
    methods = ["full"] + [m for m in methods if m != "full"]  # the reference first
    results = []
    for backbone in [b for b in args.backbones.split(",") if b]:
        for batch in [int(n) for n in args.batch_sizes.split(",") if n]:
            for method in methods:
                cmd = [sys.executable, __file__, "--one", backbone, method, str(batch), "--vit-size", args.vit_size,
                       "--steps", str(args.steps), "--device", args.device, "--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode:
                    print(f"{backbone} {method} batch {batch} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                    continue
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(_row(results[-1], None), file=sys.stderr, flush=True)
    print(f"device: {args.device}, threads: {args.threads}, vit size: {args.vit_size}, "
          f"peak = {'max_memory_allocated' if args.device.startswith('cuda') else 'rise of peak RSS over imports'}")
    print_table(results)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())

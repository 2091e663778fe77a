"""Where a training step's time goes, with the data resident on the device: one short GPU call.

For ``vit`` tiny and small at batch 128, 256 and 512 (by default) it prints and records
samples/s, milliseconds per step split into data (a batch taken from
:class:`~fwi_plugins.engine.training.data.DeviceRows`: float16 every 4th sample, rebuilt to
float32 at 1 ms on the device, as the GPU recipe's corpus stores them), forward+backward
(L1 + SSIM label loss, bfloat16 autocast on CUDA) and optimizer (AdamW, fused on CUDA), and
achieved TFLOP/s from the FLOPs of one step counted by ``torch.utils.flop_counter``.
``--compile`` puts the network through ``torch.compile``.

The whole run keeps within ``--budget-s`` (170 s by default, so that a device call holds it
with its start): configurations that no longer fit are recorded as skipped.

``--compare-host`` also measures the engine's own loop on ``--device`` (meant for the CPU):
the numpy path (rows copied out of host arrays) against device-resident rows, in steps/s of
``engine.train`` and in microseconds per batch of the data path alone.

    python benchmarks/device/bench_step.py                          # on the GPU machine
    python benchmarks/device/bench_step.py --device cpu --steps 2 --batch 4 --sizes tiny --compare-host

Figures go to ``benchmarks/results/bench_step-<device>.json`` (or ``--out``) with the command,
commit and hardware.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_file import write_results  # noqa: E402

from fwi_plugins import api  # noqa: E402
from fwi_plugins.data import Normalization  # noqa: E402

SHOTS, NT, RECEIVERS, GRID = 5, 1000, 70, 70
NORMALIZATION = Normalization(vmin=1500.0, vmax=4500.0, data_min=-30.0, data_max=30.0)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    p.add_argument("--sizes", default="tiny,small", help="vit sizes, comma-separated")
    p.add_argument("--batch", default="128,256,512", help="batch sizes, comma-separated")
    p.add_argument("--steps", type=int, default=10, help="timed steps per configuration (each of two timings)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, allocator)")
    p.add_argument("--corpus", type=int, default=4096, help="samples held on the device (at least the batch)")
    p.add_argument("--decimation", type=int, default=4, help="stored every k-th time sample (1: full rate)")
    p.add_argument("--float32", action="store_true", help="store the gathers in float32, not float16")
    p.add_argument("--no-amp", action="store_true", help="no bfloat16 autocast on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--budget-s", type=float, default=170.0, help="stop starting configurations after this")
    p.add_argument("--compare-host", action="store_true",
                   help="also compare the loop's numpy path with device-resident rows (engine.train)")
    p.add_argument("--compare-steps", type=int, default=6, help="training steps per path in --compare-host")
    p.add_argument("--out", default="", help="results JSON (default benchmarks/results/bench_step-<device>.json)")
    return p.parse_args(argv)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def corpus(n: int, device: str, *, decimation: int, half: bool) -> tuple[Any, Any]:
    """Synthetic gathers and velocity held on ``device`` as the recipe's corpus would be."""
    g = torch.Generator(device=device).manual_seed(0)
    stored_nt = len(range(0, NT, decimation))
    gathers = torch.randn(n, SHOTS, stored_nt, RECEIVERS, generator=g, device=device,
                          dtype=torch.float16 if half else torch.float32)
    velocity = 1500.0 + 3000.0 * torch.rand(n, 1, GRID, GRID, generator=g, device=device)
    return api.device_rows(gathers, decimation=decimation, nt=NT), api.device_rows(velocity)


class Step:
    """One training step in three timed phases: data, forward+backward, optimizer."""

    def __init__(self, size: str, batch: int, device: str, args: argparse.Namespace) -> None:
        self.device, self.batch, self.amp = device, batch, not args.no_amp
        self.model = api.build_backbone("vit", {"size": size}).to(device).train()
        self.net: Callable[[torch.Tensor], torch.Tensor] = (
            torch.compile(self.model) if args.compile else self.model)
        fused = device.startswith("cuda")
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=fused)
        self.gathers, self.velocity = corpus(max(args.corpus, batch), device, decimation=args.decimation,
                                             half=not args.float32)
        self.order = torch.Generator(device=device).manual_seed(1)

    def data(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randperm(len(self.gathers), generator=self.order, device=self.device)[:self.batch].sort().values
        return self.gathers.take(idx), NORMALIZATION.velocity_to_unit(self.velocity.take(idx))

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor, net: Callable | None = None) -> None:
        with api.autocast(self.device, self.amp):
            pred = (net or self.net)(NORMALIZATION.gathers_to_unit(x))
        loss = api.training_loss(pred.float(), x, y, normalization=NORMALIZATION, lambda_ssim=1.0)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()

    def __call__(self) -> None:
        self.forward_backward(*self.data())
        self.optimizer.step()

    def flops(self) -> int:
        """FLOPs of one forward+backward (uncompiled network), counted on the device."""
        from torch.utils.flop_counter import FlopCounterMode

        x, y = self.data()
        with FlopCounterMode(display=False) as counter:
            self.forward_backward(x, y, net=self.model)
        self.optimizer.zero_grad(set_to_none=True)
        return int(counter.get_total_flops())

    def split(self, steps: int) -> dict[str, float]:
        """Mean milliseconds of each phase, synchronised between phases."""
        totals = {"data_ms": 0.0, "forward_backward_ms": 0.0, "optimizer_ms": 0.0}
        for _ in range(steps):
            sync(self.device)
            t0 = time.perf_counter()
            x, y = self.data()
            sync(self.device)
            t1 = time.perf_counter()
            self.forward_backward(x, y)
            sync(self.device)
            t2 = time.perf_counter()
            self.optimizer.step()
            sync(self.device)
            t3 = time.perf_counter()
            for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                totals[key] += 1e3 * dt / steps
        return totals


def measure(size: str, batch: int, device: str, args: argparse.Namespace) -> dict[str, Any]:
    """One configuration's figures."""
    step = Step(size, batch, device, args)
    flops = step.flops()
    for _ in range(args.warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    step_s = (time.perf_counter() - t0) / args.steps
    row: dict[str, Any] = {"size": size, "batch": batch, "samples_per_s": batch / step_s, "step_ms": 1e3 * step_s}
    row.update(step.split(args.steps))
    row["flops_per_step"] = flops
    row["tflops_per_s"] = flops / step_s / 1e12
    row["tflops_per_s_forward_backward"] = flops / (row["forward_backward_ms"] / 1e3) / 1e12
    row["parameters"] = sum(p.numel() for p in step.model.parameters())
    if device.startswith("cuda"):
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return row


def run_grid(device: str, args: argparse.Namespace, deadline: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for size in args.sizes.split(","):
        for batch in (int(b) for b in args.batch.split(",")):
            if time.monotonic() > deadline:
                rows.append({"size": size, "batch": batch, "skipped": "the time budget is spent"})
                continue
            try:
                row = measure(size, batch, device, args)
            except torch.cuda.OutOfMemoryError as error:
                row = {"size": size, "batch": batch, "error": f"out of memory: {str(error)[:200]}"}
            rows.append(row)
            print(line(row), flush=True)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
    return rows


def line(row: dict[str, Any]) -> str:
    head = f"vit {row['size']:<5} batch {row['batch']:>4}"
    if "samples_per_s" not in row:
        return f"{head}  {row.get('error') or row.get('skipped')}"
    return (f"{head}  {row['samples_per_s']:8.0f} samples/s  {row['step_ms']:7.1f} ms/step  (data "
            f"{row['data_ms']:.1f}, fwd+bwd {row['forward_backward_ms']:.1f}, optimizer {row['optimizer_ms']:.1f} ms)"
            f"  {row['tflops_per_s']:.2f} TFLOP/s ({row['flops_per_step'] / 1e9:.1f} GFLOP/step)")


def compare_host(device: str, args: argparse.Namespace) -> dict[str, Any]:
    """The engine's loop on ``device``: rows copied from numpy arrays against device-resident rows."""
    import numpy as np

    from fwi_plugins.data.rows import take_rows

    batch = int(args.batch.split(",")[0])
    size = args.sizes.split(",")[0]
    rng = np.random.default_rng(0)
    n = batch * args.compare_steps
    gathers = rng.standard_normal((n, SHOTS, NT, RECEIVERS), dtype=np.float32)
    velocity = rng.uniform(1500, 4500, (n, 1, GRID, GRID)).astype(np.float32)
    resident_gathers = api.device_rows(torch.from_numpy(gathers).to(device))
    options = {"epochs": 1, "batch_size": batch, "lr": 1e-4, "device": "cpu" if device == "cpu" else "cuda",
               "progress": False, "amp": not args.no_amp, "max_steps": args.compare_steps, "lambda_ssim": 1.0}
    per_path: dict[str, list[float]] = {"numpy": [], "device_resident": []}
    for _ in range(2):  # alternated, best of two: the machine's other load hits both alike
        for name, resident in (("numpy", False), ("device_resident", True)):
            torch.manual_seed(0)
            model = api.build_backbone("vit", {"size": size})
            result = api.train(model, gathers, velocity, options=options, normalization=NORMALIZATION, device=device,
                               resident=resident)
            per_path[name].append(result.steps / result.wall_time)
    idx = np.sort(rng.choice(n, batch, replace=False))
    rows_t = torch.as_tensor(idx, device=device)
    data_us = {"numpy": _best_us(lambda: torch.from_numpy(take_rows(gathers, idx)).to(device)),
               "device_resident": _best_us(lambda: resident_gathers.take(rows_t))}
    out = {"size": size, "batch": batch, "steps": args.compare_steps,
           "steps_per_s": {k: max(v) for k, v in per_path.items()}, "data_path_us_per_batch": data_us}
    print(f"loop on {device}, vit {size} batch {batch}: numpy rows {out['steps_per_s']['numpy']:.3f} steps/s, "
          f"device-resident {out['steps_per_s']['device_resident']:.3f} steps/s; data path alone "
          f"{data_us['numpy']:.0f} us vs {data_us['device_resident']:.0f} us per batch", flush=True)
    return out


def _best_us(fn: Callable[[], Any], repeats: int = 20) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1e6 * best


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    deadline = time.monotonic() + args.budget_s
    device = api.device_name(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    print(f"bench_step on {device} ({torch.cuda.get_device_name(0) if device.startswith('cuda') else 'CPU'}), "
          f"amp {not args.no_amp and device.startswith('cuda')}, compile {args.compile}, corpus float"
          f"{32 if args.float32 else 16} every {args.decimation}", flush=True)
    figures: dict[str, Any] = {"device": device, "settings": {k: v for k, v in vars(args).items() if k != "out"},
                               "configurations": run_grid(device, args, deadline)}
    if args.compare_host:
        figures["compare_host"] = compare_host(device, args)
    out = args.out or ROOT / "benchmarks" / "results" / f"bench_step-{device.split(':')[0]}.json"
    print(f"written {write_results(out, figures)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

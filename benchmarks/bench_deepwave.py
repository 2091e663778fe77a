"""Simulation throughput through the ``deepwave`` physics plugin against a direct deepwave call.

Both paths simulate the same batch (OpenFWI geometry by default: 70 x 70 cells, 5 shots,
1000 steps, accuracy 4) in the same process. Samples alternate between the two paths so
that machine load drifts affect both alike; the median of each is reported.

Throughput is in grid-cell updates per second: model cells x shots x time samples per
second (the PML cells are work too, but they are the same on both paths, so leaving
them out changes no ratio).

Run::

    OMP_NUM_THREADS=2 python benchmarks/bench_deepwave.py --samples 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import deepwave
import torch

from fwi_plugins import api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1, help="velocity models per call (each with every shot)")
    parser.add_argument("--samples", type=int, default=5, help="timed calls per path")
    parser.add_argument("--accuracy", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backward", action="store_true", help="time forward + gradient instead of forward")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    survey = api.Survey.openfwi()
    physics = api.build_physics("deepwave", {"accuracy": args.accuracy}, survey=survey)
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    velocity = (2000.0 + 2000.0 * torch.rand(args.batch, 1, survey.nz, survey.nx, generator=generator)).to(device)

    # The direct call gets its inputs prepared outside the timing: the plugin's own
    # preparation (checks, repeating models per shot, geometry) is the overhead measured.
    n_shots = survey.n_shots
    models = velocity[:, 0].repeat_interleave(n_shots, dim=0)
    amplitudes = torch.from_numpy(survey.wavelet_samples()).to(device).view(1, 1, -1).repeat(
        args.batch * n_shots, 1, 1)
    sources = torch.tensor(survey.sources, dtype=torch.long, device=device).unsqueeze(1).repeat(args.batch, 1, 1)
    receivers = torch.tensor(survey.receivers, dtype=torch.long, device=device).unsqueeze(0).repeat(
        args.batch * n_shots, 1, 1)

    def direct() -> torch.Tensor:
        m = models.clone().requires_grad_(args.backward)
        out = deepwave.scalar(m, survey.dx, survey.dt, source_amplitudes=amplitudes, source_locations=sources,
                              receiver_locations=receivers, accuracy=args.accuracy, pml_width=physics.pml_width,
                              pml_freq=survey.peak_freq, max_vel=physics.max_vel).receiver_amplitudes
        if args.backward:
            out.square().sum().backward()
        return out

    def plugin() -> torch.Tensor:
        v = velocity.clone().requires_grad_(args.backward)
        out = physics.simulate(v)
        if args.backward:
            out.square().sum().backward()
        return out

    def timed(fn) -> float:  # noqa: ANN001
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    # Same numbers from both paths, or the comparison means nothing.
    with torch.no_grad():
        a = physics.simulate(velocity)
        b = deepwave.scalar(models, survey.dx, survey.dt, source_amplitudes=amplitudes, source_locations=sources,
                            receiver_locations=receivers, accuracy=args.accuracy, pml_width=physics.pml_width,
                            pml_freq=survey.peak_freq, max_vel=physics.max_vel).receiver_amplitudes
        b = b.view(args.batch, n_shots, survey.n_receivers, survey.nt).transpose(2, 3)
    assert torch.allclose(a, b), "plugin and direct call disagree"

    plugin_times, direct_times = [], []
    for _ in range(args.samples):
        direct_times.append(timed(direct))
        plugin_times.append(timed(plugin))
    cells = args.batch * n_shots * survey.nz * survey.nx * survey.nt
    t_plugin, t_direct = statistics.median(plugin_times), statistics.median(direct_times)
    rate_plugin, rate_direct = cells / t_plugin, cells / t_direct
    overhead = t_plugin / t_direct - 1.0
    what = "forward + backward" if args.backward else "forward"
    print(f"deepwave {deepwave.__version__}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"device {device}")
    print(f"batch: {args.batch} model(s) x {n_shots} shots, {survey.nz} x {survey.nx} cells, {survey.nt} steps, "
          f"accuracy {args.accuracy}, PML {physics.pml_width}; {what}; median of {args.samples}")
    print(f"  direct deepwave.scalar : {t_direct * 1e3:8.1f} ms  {rate_direct / 1e6:8.1f} M cell-updates/s")
    print(f"  plugin simulate        : {t_plugin * 1e3:8.1f} ms  {rate_plugin / 1e6:8.1f} M cell-updates/s")
    print(f"  overhead: {100 * overhead:+.1f}% (plugin/direct time ratio {t_plugin / t_direct:.3f}; target within 5%)")
    best = min(plugin_times) / min(direct_times) - 1.0
    print(f"  overhead of the fastest samples: {100 * best:+.1f}% (least disturbed by other load)")
    print(f"  all samples (ms) direct: {[round(t * 1e3, 1) for t in direct_times]}")
    print(f"  all samples (ms) plugin: {[round(t * 1e3, 1) for t in plugin_times]}")


if __name__ == "__main__":
    main()

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
from dataclasses import dataclass
from typing import Any

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
    direct = DirectCall.prepare(survey, physics, velocity, accuracy=args.accuracy)
    check_agreement(physics, direct, velocity)
    direct_times, plugin_times = alternate_timings(physics, direct, velocity, samples=args.samples,
                                                   backward=args.backward)
    report(direct_times, plugin_times, survey=survey, physics=physics, args=args)


@dataclass
class DirectCall:
    """``deepwave.scalar`` on the batch, its inputs prepared outside the timing.

    The plugin's own preparation (checks, repeating models per shot, geometry) is the
    overhead measured.
    """

    survey: Any
    models: torch.Tensor
    amplitudes: torch.Tensor
    sources: torch.Tensor
    receivers: torch.Tensor
    accuracy: int
    pml_width: int
    max_vel: Any

    @classmethod
    def prepare(cls, survey: Any, physics: Any, velocity: torch.Tensor, *, accuracy: int) -> DirectCall:
        batch, n_shots, device = velocity.shape[0], survey.n_shots, velocity.device
        models = velocity[:, 0].repeat_interleave(n_shots, dim=0)
        amplitudes = torch.from_numpy(survey.wavelet_samples()).to(device).view(1, 1, -1).repeat(
            batch * n_shots, 1, 1)
        sources = torch.tensor(survey.sources, dtype=torch.long, device=device).unsqueeze(1).repeat(batch, 1, 1)
        receivers = torch.tensor(survey.receivers, dtype=torch.long, device=device).unsqueeze(0).repeat(
            batch * n_shots, 1, 1)
        return cls(survey=survey, models=models, amplitudes=amplitudes, sources=sources, receivers=receivers,
                   accuracy=accuracy, pml_width=physics.pml_width, max_vel=physics.max_vel)

    def __call__(self, models: torch.Tensor) -> torch.Tensor:
        survey = self.survey
        return deepwave.scalar(models, survey.dx, survey.dt, source_amplitudes=self.amplitudes,
                               source_locations=self.sources, receiver_locations=self.receivers,
                               accuracy=self.accuracy, pml_width=self.pml_width, pml_freq=survey.peak_freq,
                               max_vel=self.max_vel).receiver_amplitudes


def check_agreement(physics: Any, direct: DirectCall, velocity: torch.Tensor) -> None:
    """Same numbers from both paths, or the comparison means nothing."""
    survey = direct.survey
    with torch.no_grad():
        a = physics.simulate(velocity)
        b = direct(direct.models)
        b = b.view(velocity.shape[0], survey.n_shots, survey.n_receivers, survey.nt).transpose(2, 3)
    assert torch.allclose(a, b), "plugin and direct call disagree"


def alternate_timings(physics: Any, direct: DirectCall, velocity: torch.Tensor, *, samples: int,
                      backward: bool) -> tuple[list[float], list[float]]:
    """Seconds per call of each path, ``samples`` each, alternating so that load drifts affect both alike."""

    def direct_path() -> torch.Tensor:
        out = direct(direct.models.clone().requires_grad_(backward))
        if backward:
            out.square().sum().backward()
        return out

    def plugin_path() -> torch.Tensor:
        out = physics.simulate(velocity.clone().requires_grad_(backward))
        if backward:
            out.square().sum().backward()
        return out

    def timed(fn) -> float:  # noqa: ANN001
        if velocity.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if velocity.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    plugin_times, direct_times = [], []
    for _ in range(samples):
        direct_times.append(timed(direct_path))
        plugin_times.append(timed(plugin_path))
    return direct_times, plugin_times


def report(direct_times: list[float], plugin_times: list[float], *, survey: Any, physics: Any,
           args: argparse.Namespace) -> None:
    """Median times and cell-update rates of both paths, and the plugin's overhead."""
    n_shots = survey.n_shots
    cells = args.batch * n_shots * survey.nz * survey.nx * survey.nt
    t_plugin, t_direct = statistics.median(plugin_times), statistics.median(direct_times)
    rate_plugin, rate_direct = cells / t_plugin, cells / t_direct
    overhead = t_plugin / t_direct - 1.0
    what = "forward + backward" if args.backward else "forward"
    print(f"deepwave {deepwave.__version__}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"device {torch.device(args.device)}")
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

"""Dataset throughput on CPU at OpenFWI size (70 x 70 maps, 5 shots x 1000 samples x 70 receivers).

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_datasets.py [--simulate 8] [--cache 256] [--batch 16]

Prints, in samples per second:

* generation of each velocity family;
* simulation with the deepwave physics (skipped with a message if it is not installed);
* loading simulated gathers back from the cache (read + checksum) and turning a batch into
  normalised tensors;
* the appetite of a training step (forward, backward, optimiser) of the ``inversionnet``
  and ``vit`` (tiny) backbones on the same batch;

and the ratio of loading throughput to each appetite (above 1: loading is not the bottleneck).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` runs of ``fn``, seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


class RandomPhysics:
    """Stands in for a physics when filling the cache: the cache's cost does not depend on it."""

    name, version = "bench-random", "1"

    def __init__(self, survey):
        self.survey = survey

    def simulate(self, velocity):
        import torch

        s = self.survey
        return torch.randn(velocity.shape[0], s.n_shots, s.nt, s.n_receivers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generate", type=int, default=500, help="maps generated per family")
    parser.add_argument("--simulate", type=int, default=8, help="maps simulated with deepwave")
    parser.add_argument("--cache", type=int, default=256, help="samples written to and read from the cache")
    parser.add_argument("--batch", type=int, default=16, help="training batch size")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed per backbone")
    args = parser.parse_args()

    import torch

    from fwi_plugins import api
    from fwi_plugins.data import Normalization, families
    from fwi_plugins.data.cache import cached_gathers
    from fwi_plugins.survey import Survey

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s)")
    survey = Survey.openfwi()

    print(f"\n-- generation ({args.generate} maps of 70 x 70 per family) --")
    for name in families.FAMILIES:
        t = timed(lambda name=name: families.generate(name, args.generate))
        print(f"{name:14s} {args.generate / t:10.0f} maps/s")

    print(f"\n-- simulation (deepwave, OpenFWI survey, {args.simulate} maps) --")
    sim_rate = None
    if "deepwave" in api.list_components("physics"):
        physics = api.build_physics("deepwave", survey=survey)
        v = torch.from_numpy(families.generate("curvevel-a", args.simulate))
        with torch.no_grad():
            physics.simulate(v[:1])  # warm-up
            t = timed(lambda: physics.simulate(v))
        sim_rate = args.simulate / t
        print(f"deepwave       {sim_rate:10.2f} samples/s ({t / args.simulate:.3f} s per sample)")
    else:
        print("deepwave physics not installed (pip install -e plugins/fwi-deepwave): not measured")

    print(f"\n-- cache ({args.cache} samples, {args.cache * 5 * 1000 * 70 * 4 / 2**20:.0f} MiB) --")
    velocity = families.generate("flatvel-a", args.cache)
    with tempfile.TemporaryDirectory() as tmp:
        fake = RandomPhysics(survey)
        t_write = timed(lambda: cached_gathers(velocity, fake, {"bench": 1}, cache_dir=Path(tmp), progress=False))
        t_read = timed(lambda: cached_gathers(velocity, fake, {"bench": 1}, cache_dir=Path(tmp), progress=False),
                       repeat=3)
        gathers = cached_gathers(velocity, fake, {"bench": 1}, cache_dir=Path(tmp), progress=False)
    load_rate = args.cache / t_read
    print(f"write (random fill + checksum + atomic save) {args.cache / t_write:10.0f} samples/s")
    print(f"read + checksum {load_rate:10.0f} samples/s")
    norm = Normalization.openfwi().fit_gathers(gathers)
    idx = np.random.default_rng(0).permutation(args.cache)

    def batches() -> None:
        for i in range(0, args.cache - args.batch + 1, args.batch):
            b = idx[i:i + args.batch]
            x = torch.from_numpy(norm.gathers_to_unit(gathers[b]))
            y = torch.from_numpy(norm.velocity_to_unit(velocity[b]))
            assert x.shape[0] == y.shape[0]

    n_batched = (args.cache // args.batch) * args.batch
    batch_rate = n_batched / timed(batches, repeat=2)
    print(f"batching (shuffle, normalise, to tensor) {batch_rate:10.0f} samples/s")
    feed_rate = 1.0 / (1.0 / load_rate + 1.0 / batch_rate)
    print(f"loading overall (read once + batch) {feed_rate:10.0f} samples/s")

    print(f"\n-- training step appetite (batch {args.batch}, CPU) --")
    x = torch.from_numpy(norm.gathers_to_unit(gathers[: args.batch]))
    y = torch.from_numpy(norm.velocity_to_unit(velocity[: args.batch]))
    for name, options in (("inversionnet", {}), ("vit", {"size": "tiny"})):
        try:
            model = api.build_backbone(name, options)
        except Exception as exc:  # a backbone still being written must not stop the benchmark
            print(f"{name:14s} not available ({type(exc).__name__}: {exc})")
            continue
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
            opt.zero_grad()
            loss = torch.nn.functional.l1_loss(model(x), y)
            loss.backward()
            opt.step()

        step()  # warm-up
        t = timed(lambda: [step() for _ in range(args.steps)])
        rate = args.steps * args.batch / t
        print(f"{name:14s} {rate:10.1f} samples/s consumed -> loading is {feed_rate / rate:8.0f} x faster")
    if sim_rate:
        print(f"\nsimulating on the fly would feed {sim_rate:.2f} samples/s: that is why gathers are cached.")


if __name__ == "__main__":
    main()

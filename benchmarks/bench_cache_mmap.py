"""Memory of loading simulated gathers from the cache: whole arrays against memory-mapped parts.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_cache_mmap.py [--samples 300] [--repeat 2]

Fills a simulation cache in a temporary folder through ``cached_gathers`` (a cheap stand-in
physics of OpenFWI's shape, 1.37 MiB a sample; the cache's cost does not depend on the
physics), then loads it back in fresh child processes, both ways:

* ``full``: ``cached_gathers(...)``, every part read into one array (what pretraining did);
* ``mmap``: ``cached_gathers(..., mmap=True)``, every part memory-mapped (what it does now).

Each load verifies every part's shape, dtype and SHA-256. For each child it prints the load
time and the peak resident memory (``ru_maxrss``; Linux carries it over from the parent across
exec, so this script's own process stays small and imports no numpy) and, after the load and
after one pass over every row in shuffled batches of 16 (a training epoch's reads plus the
min/max of the normalisation), the anonymous and file-backed resident memory: file-backed
pages of a memory map are the page cache's, shared and given back under memory pressure.
The page cache is warm (the parts were just written) for both ways alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 2**20
BATCH = 16


class NoisePhysics:
    """A stand-in physics (the Physics contract's parts the cache uses): seeded noise of the survey's shape."""

    name, version = "bench-noise", "1"
    batch_size = 32

    def __init__(self, survey: Any) -> None:
        self.survey = survey

    def simulate(self, velocity: Any) -> Any:
        import torch

        s = self.survey
        g = torch.Generator().manual_seed(int(velocity[:, 0, 0, 0].sum().item()))
        return torch.randn(len(velocity), s.n_shots, s.nt, s.n_receivers, generator=g)

    def misfit(self, predicted: Any, observed: Any) -> Any:
        return (predicted - observed).square().mean()


def _inputs(samples: int) -> tuple[Any, NoisePhysics]:
    import numpy as np

    from fwi_plugins.survey import Survey

    survey = Survey.openfwi()
    velocity = np.random.default_rng(0).uniform(1500, 4500, (samples, 1, survey.nz, survey.nx)).astype(np.float32)
    return velocity, NoisePhysics(survey)


def _memory() -> dict[str, float]:
    """This process's peak (ru_maxrss, VmHWM) and current anonymous / file-backed resident memory, MiB."""
    import resource

    out = {"ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MiB}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0]) * 1024 / MiB
    except OSError:  # not Linux: ru_maxrss alone
        pass
    return out


def child(how: str, cache_dir: str, samples: int) -> dict[str, Any]:
    """One load of the cache (``build``, ``full`` or ``mmap``) in this process; what it cost."""
    import numpy as np

    from fwi_plugins.data.cache import cached_gathers
    from fwi_plugins.data.rows import take_rows

    velocity, physics = _inputs(samples)
    before = _memory()
    t0 = time.perf_counter()
    gathers = cached_gathers(velocity, physics, {"bench": "cache-mmap"}, cache_dir=cache_dir, progress=False,
                             mmap=how != "full")
    load_s = time.perf_counter() - t0
    loaded = _memory()
    result: dict[str, Any] = {"how": how, "load_s": load_s, "before": before, "loaded": loaded,
                              "shape": list(gathers.shape), "nbytes": int(gathers.nbytes)}
    if how == "build":
        return result
    t0 = time.perf_counter()
    lo, hi = float(gathers.min()), float(gathers.max())
    order = np.random.default_rng(1).permutation(len(gathers))
    checksum = 0.0
    for start in range(0, len(order), BATCH):
        batch = take_rows(gathers, np.sort(order[start:start + BATCH]))
        checksum += float(batch[:, :, ::97].sum())
    result.update(pass_s=time.perf_counter() - t0, passed=_memory(), range=[lo, hi], checksum=checksum)
    return result


def _run_child(how: str, cache_dir: str, samples: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", how, "--cache-dir", cache_dir,
                          "--samples", str(samples)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"child {how} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="samples in the cache (1.37 MiB each)")
    parser.add_argument("--repeat", type=int, default=2, help="loads of each kind, alternating")
    parser.add_argument("--child", choices=("build", "full", "mmap"), help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.samples < 1 or args.repeat < 1:
        parser.error("--samples and --repeat must be positive")
    if args.child:
        print(json.dumps(child(args.child, args.cache_dir, args.samples)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-cache-mmap-") as cache_dir:
        built = _run_child("build", cache_dir, args.samples)
        parts = sorted(Path(cache_dir).rglob("part-*.npy"))
        print(f"cache: {args.samples} samples of {tuple(built['shape'][1:])} float32 = "
              f"{built['nbytes'] / MiB:.0f} MiB in {len(parts)} parts, filled in {built['load_s']:.1f} s "
              f"({os.environ.get('OMP_NUM_THREADS', '?')} thread(s); page cache warm)")
        runs: dict[str, list[dict[str, Any]]] = {"full": [], "mmap": []}
        for _ in range(args.repeat):
            for how in runs:
                runs[how].append(_run_child(how, cache_dir, args.samples))
        _report(runs)


def _report(runs: dict[str, list[dict[str, Any]]]) -> None:
    print()
    print(f"{'load':<5} {'load s':>7} {'peak RSS MiB':>13} {'grew MiB':>9} {'anon MiB':>9} {'file MiB':>9}   "
          f"after one pass: {'s':>5} {'peak MiB':>9} {'anon MiB':>9} {'file MiB':>9}")
    best = {}
    for how, rs in runs.items():
        for r in rs:
            b, m, p = r["before"], r["loaded"], r["passed"]
            grew = m.get("VmHWM", m["ru_maxrss"]) - b.get("VmHWM", b["ru_maxrss"])
            print(f"{how:<5} {r['load_s']:>7.2f} {m['ru_maxrss']:>13.0f} {grew:>9.0f} {m.get('RssAnon', 0):>9.0f} "
                  f"{m.get('RssFile', 0):>9.0f}   {'':>15} {r['pass_s']:>5.2f} {p['ru_maxrss']:>9.0f} "
                  f"{p.get('RssAnon', 0):>9.0f} {p.get('RssFile', 0):>9.0f}")
        best[how] = {"load_s": min(r["load_s"] for r in rs), "peak": min(r["loaded"]["ru_maxrss"] for r in rs),
                     "anon_after_pass": min(r["passed"].get("RssAnon", 0) for r in rs)}
    same = {(tuple(r["range"]), r["checksum"]) for rs in runs.values() for r in rs}
    print()
    print(f"peak resident memory of the load (ru_maxrss): full {best['full']['peak']:.0f} MiB, "
          f"mmap {best['mmap']['peak']:.0f} MiB, ratio {best['full']['peak'] / best['mmap']['peak']:.1f}x")
    print(f"load time (best of {len(runs['full'])}): full {best['full']['load_s']:.2f} s, "
          f"mmap {best['mmap']['load_s']:.2f} s, ratio {best['full']['load_s'] / best['mmap']['load_s']:.2f}x")
    print(f"anonymous memory after a pass over every row: full {best['full']['anon_after_pass']:.0f} MiB, "
          f"mmap {best['mmap']['anon_after_pass']:.0f} MiB")
    print(f"same values both ways (range and checksum of the pass): {len(same) == 1}")


if __name__ == "__main__":
    main()

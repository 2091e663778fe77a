"""Agreement and speed of the pure-torch ``torchwave`` physics against ``deepwave`` at OpenFWI size.

Both simulate the same generated maps (one per family, default: the eight pretraining
families and the two held out) on the OpenFWI acquisition: 70 x 70 cells at 10 m, 5 shots,
70 receivers, 1000 samples at 1 ms, 15 Hz Ricker, PML 20, max_vel 4500 m/s (so both take
two internal steps per sample). Printed: the relative L2 error of torchwave's gathers per
family, and seconds per model of each on the CPU; with a GPU, torchwave's throughput there
(compiled time step, a batch of ``--gpu-batch`` models) in models per second.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_torchwave.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fwi_plugins import api
from fwi_plugins.data.families import FAMILIES, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated families, one map each")
    parser.add_argument("--gpu-batch", type=int, default=1000, help="models per torchwave call on the GPU")
    args = parser.parse_args()
    families = args.families.split(",")
    survey = api.Survey.openfwi()
    deepwave = api.build_physics("deepwave", survey=survey)
    torchwave = api.build_physics("torchwave", {"compile": "off"}, survey=survey)
    velocity = torch.from_numpy(np.concatenate([generate(f, 1, split="test") for f in families]))

    print(f"{'family':<14} {'rel. L2 error':>13} {'deepwave s':>10} {'torchwave s':>11}")
    errors, times = [], {"deepwave": [], "torchwave": []}
    for family, model in zip(families, velocity.split(1), strict=True):
        t0 = time.perf_counter()
        reference = deepwave.simulate(model)
        t1 = time.perf_counter()
        ours = torchwave.simulate(model)
        t2 = time.perf_counter()
        error = float((ours - reference).norm() / reference.norm())
        errors.append(error)
        times["deepwave"].append(t1 - t0)
        times["torchwave"].append(t2 - t1)
        print(f"{family:<14} {error:>13.2e} {t1 - t0:>10.2f} {t2 - t1:>11.2f}")
    print(f"largest error {max(errors):.2e} (acceptance: 1e-2); CPU with {torch.get_num_threads()} thread(s): "
          f"deepwave {np.median(times['deepwave']):.2f} s, torchwave {np.median(times['torchwave']):.2f} s "
          f"per model (median)")

    if torch.cuda.is_available():
        gpu = api.build_physics("torchwave", survey=survey)  # compile=auto: fused on CUDA
        batch = velocity.repeat(args.gpu_batch // len(velocity) + 1, 1, 1, 1)[:args.gpu_batch].cuda()
        with torch.no_grad():
            t0 = time.perf_counter()
            first = gpu.simulate(batch[:len(velocity)]).cpu()  # compiles (first shape)
            compile_s = time.perf_counter() - t0
            gpu.simulate(batch)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            gpu.simulate(batch)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
        error = float((first - torchwave.simulate(velocity)).norm() / torchwave.simulate(velocity).norm())
        print(f"GPU {torch.cuda.get_device_name(0)}: {args.gpu_batch} models in {seconds:.2f} s "
              f"({args.gpu_batch / seconds:.0f} models/s, {args.gpu_batch * survey.n_shots / seconds:.0f} shots/s); "
              f"first call with compilation {compile_s:.1f} s; GPU vs CPU relative error {error:.1e}")


if __name__ == "__main__":
    main()

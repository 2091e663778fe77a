"""Realistic sections recorded as a field crew would: not OpenFWI's survey, not its wavelet, not its scale.

The 1,400 m windows of the realism set (Marmousi2 and the SEG/EAGE overthrust at 20 m cells,
``benchmarks/realism``; evaluation only) are recorded on a survey of their own: 20 m cells, a
shot every 140 m and a receiver every 20 m along the 1,380 m line, 2 s at 2 ms, a 10 Hz source
turned 30 degrees in phase and 1,000 times stronger than the Ricker the simulations assume.
``fwi predict``'s path (``api.predict(survey=...)``: the acquisition map, then wavelet
shaping) predicts each weights' answer on the 20 m grid; the figures are scored against the
truth and drawn (``--figure``, truth and each weights' prediction side by side).

    OMP_NUM_THREADS=2 python benchmarks/bench_field_survey.py --weights runs/v7/weights.safetensors

Results go to ``benchmarks/results/field_survey.json`` (command, commit, weights digest, hardware).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_file import weights_digest, write_results  # noqa: E402

SETS = ("marmousi2_20m", "overthrust_20m")
PEAK_HZ, PHASE_DEG, SCALE = 10.0, 30.0, 1000.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", action="append", default=[], help="weights to compare (repeatable); the shipped "
                                                                  "default is always measured first")
    p.add_argument("--realism", type=Path, default=ROOT / "benchmarks" / "realism")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "field_survey.json")
    p.add_argument("--figure", type=Path, default=ROOT / "benchmarks" / "results" / "field_survey.png")
    return p.parse_args(argv)


def field_survey(nz: int, nx: int) -> Any:
    from fwi_plugins import api

    shots = tuple((0.0, float(x)) for x in range(0, nx, 7))
    return api.Survey.openfwi(nz=nz, nx=nx, dx=20.0, nt=1000, dt=0.002, sources=shots,
                              receivers=tuple((0.0, float(x)) for x in range(nx)), peak_freq=PEAK_HZ)


def record(truth: np.ndarray, survey: Any) -> np.ndarray:
    """The crew's recording: the survey's Ricker turned in phase, scaled, with 2 % noise."""
    from fwi_plugins import api
    from fwi_plugins.wavelet import phase_rotate

    physics = api.build_physics("deepwave", survey=survey)
    gathers = np.asarray(api.simulate(truth, physics), dtype=np.float64)
    gathers = np.moveaxis(phase_rotate(np.moveaxis(gathers, 2, -1), PHASE_DEG), -1, 2) * SCALE
    rng = np.random.default_rng(0)
    rms = np.sqrt(np.mean(gathers ** 2))
    return (gathers + 0.02 * rms * rng.standard_normal(gathers.shape)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    import torch

    from fwi_plugins import api
    from fwi_plugins.acquisition import Grid

    args = parse_args(argv)
    torch.manual_seed(0)
    truth = np.concatenate([np.load(args.realism / f"{name}.npy") for name in SETS])
    survey = field_survey(truth.shape[-2], truth.shape[-1])
    gathers = record(truth, survey)
    grid = Grid(nz=survey.nz, nx=survey.nx, dx=survey.dx)
    results: dict[str, Any] = {}
    drawn = {"true": truth}
    started = time.perf_counter()
    for weights in ["default", *args.weights]:
        model = api.build_backbone("vit", pretrained=weights)
        velocity = np.clip(api.predict(model, gathers, survey=survey, grid=grid, progress=False), 1500, 4500)
        per_set = {}
        for i, name in enumerate(SETS):
            part = slice(6 * i, 6 * (i + 1))
            m = api.evaluate(velocity[part], truth[part], normalization=model.pretrained_cfg.normalization)
            per_set[name] = {"ssim": float(m["ssim"]), "mae_ms": float(m["mae_ms"])}
        results[weights] = {"digest": weights_digest(weights), "scores": per_set}
        drawn[str(Path(weights).with_suffix("")) if weights != "default" else "shipped"] = velocity
        print(weights, {k: f"{v['ssim']:.3f}/{v['mae_ms']:.0f}" for k, v in per_set.items()}, flush=True)
    write_results(args.out, {"survey": survey.to_dict(), "wavelet": {"peak_hz": PEAK_HZ, "phase_deg": PHASE_DEG,
                                                                     "scale": SCALE, "noise": 0.02},
                             "maps": len(truth), "results": results, "seconds": time.perf_counter() - started})
    picks = [0, 3, 6, 9]
    api.plot_velocity(args.figure, {k: v[picks] for k, v in drawn.items()}, dx=survey.dx,
                                vmin=1500, vmax=4500, title="realistic sections on a field survey (10 Hz, "
                                                            "30 degrees, 20 m cells, 2 s)")
    print(f"wrote {args.out} and {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The foundation's prediction when the data's source wavelet is not the one it was trained on.

The same test maps are simulated on the network's own survey (OpenFWI's geometry) with
Ricker wavelets of other peak frequencies and with the training Ricker rotated in phase,
then predicted three ways:

* ``raw``: the gathers as they are (what ``fwi predict --shaping none`` does);
* ``known``: shaped with the true source wavelet (a user who gives ``--wavelet FILE``);
* ``estimated``: shaped with the filter estimated from the data alone (the default,
  ``--shaping estimate``: the network's first answer simulated, a matching filter, shaping,
  a second answer).

Each is scored against the truth and against the prediction from the training wavelet on
the same maps (SSIM difference, MAE ratio), and the figures are written to
``benchmarks/results/wavelets.json`` with the command, commit, weights digest and hardware.

    OMP_NUM_THREADS=2 python benchmarks/bench_wavelets.py --n-test 16
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

from results_file import write_results  # noqa: E402

#: case -> (Ricker peak Hz, phase rotation degrees) on the network's own survey
CASES: dict[str, tuple[float, float]] = {
    "ricker-15": (15.0, 0.0), "ricker-8": (8.0, 0.0), "ricker-10": (10.0, 0.0), "ricker-12": (12.0, 0.0),
    "ricker-20": (20.0, 0.0), "ricker-25": (25.0, 0.0), "ricker-15-rot90": (15.0, 90.0),
}

#: Surveys other than the network's, the same maps on them (predicted through the acquisition map):
#: 5 m cells (the gathers ~4 times weaker), 14.3 m cells (a 1 km deep section: the map stretches
#: space and time by 1.43, so a 15 Hz source reads as 21 Hz), and the native survey with 10 % noise
#: and 10 % dead traces.
SURVEY_CASES = ("cells-5m", "deep-1km", "noise-dead")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-test", type=int, default=16, help="test maps per family (default 16)")
    p.add_argument("--families", default="curvevel-a,flatfault-b,salt",
                   help="generated families whose test maps are used (comma-separated)")
    p.add_argument("--cases", default=",".join((*CASES, *SURVEY_CASES)),
                   help=f"comma-separated, from: {', '.join((*CASES, *SURVEY_CASES))}")
    p.add_argument("--weights", default="default", help="foundation weights (default: vit's shipped weights)")
    p.add_argument("--noise", type=float, default=None, help="the Wiener inverse's white-noise level "
                                                               "(default: fwi_plugins.shaping's)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "wavelets.json")
    return p.parse_args(argv)


def simulate_case(velocity: np.ndarray, peak: float, rotation: float) -> tuple[np.ndarray, np.ndarray]:
    """Gathers of ``velocity`` on OpenFWI's geometry with a Ricker of ``peak`` Hz turned by ``rotation``,
    and that wavelet."""
    from fwi_plugins import api
    from fwi_plugins.wavelet import phase_rotate

    # A 25 Hz Ricker needs the 8th-order stencil on 10 m cells to stay within the dispersion limit.
    accuracy = 8 if peak > 20 else 4
    survey = api.Survey.openfwi(peak_freq=peak)
    physics = api.build_physics("deepwave", {"accuracy": accuracy}, survey=survey)
    gathers = np.asarray(api.simulate(velocity, physics), dtype=np.float64)
    wavelet = survey.wavelet_samples().astype(np.float64)
    if rotation:
        gathers = phase_rotate(np.moveaxis(gathers, 2, -1), rotation)
        gathers = np.moveaxis(gathers, -1, 2)
        wavelet = phase_rotate(wavelet, rotation)
    return gathers.astype(np.float32), wavelet


def survey_case(case: str, truth: np.ndarray) -> tuple[np.ndarray, Any]:
    """Gathers of ``truth`` on the survey of ``case`` and that survey."""
    from fwi_plugins import api

    if case == "noise-dead":
        gathers, _ = simulate_case(truth, 15.0, 0.0)
        rng = np.random.default_rng(0)
        rms = np.sqrt(np.mean(gathers.astype(np.float64) ** 2, axis=(1, 2, 3), keepdims=True))
        gathers = gathers + 0.1 * rms * rng.standard_normal(gathers.shape)
        dead = rng.random((gathers.shape[0], gathers.shape[1], 1, gathers.shape[3])) < 0.1
        return np.where(dead, 0.0, gathers).astype(np.float32), None
    factor, dx = {"cells-5m": (2, 5.0), "deep-1km": (1, 1000.0 / 69)}[case]
    nz, nx = truth.shape[-2] * factor, truth.shape[-1] * factor
    velocity = np.repeat(np.repeat(truth, factor, axis=-2), factor, axis=-1)
    nt = int(np.ceil(1000 * max(1.0, factor * dx / 10.0)))  # long enough to see the bottom at the stretch
    survey = api.Survey.openfwi(nz=nz, nx=nx, dx=dx, nt=nt, sources=tuple((0.0, float(factor * x)) for _, x in
                                                                          api.Survey.openfwi().sources),
                                receivers=tuple((0.0, float(factor * x)) for x in range(70)))
    physics = api.build_physics("deepwave", survey=survey)
    return np.asarray(api.simulate(velocity, physics), dtype=np.float32), survey


def survey_predictions(model: Any, gathers: np.ndarray, survey: Any) -> dict[str, np.ndarray]:
    from fwi_plugins import api
    from fwi_plugins.acquisition import Grid

    if survey is None:
        return {way: api.predict(model, gathers, shaping=way, progress=False) for way in ("none", "estimate")}
    grid = Grid(nz=70, nx=70, dx=survey.dx * (survey.nx // 70))
    return {way: api.predict(model, gathers, survey=survey, grid=grid, shaping=way, progress=False)
            for way in ("none", "estimate")}


def predictions(model: Any, gathers: np.ndarray, wavelet: np.ndarray, noise: float | None) -> dict[str, np.ndarray]:
    from fwi_plugins import api
    from fwi_plugins.shaping import DEFAULT_NOISE, shaping_from_wavelet

    noise = DEFAULT_NOISE if noise is None else noise
    trained = api.Survey.openfwi().wavelet_samples()
    known = shaping_from_wavelet(wavelet, trained, dt=0.001, noise=noise)
    return {
        "raw": api.predict(model, gathers, shaping="none", progress=False),
        "known": api.predict(model, gathers, shaping=known, progress=False),
        "estimated": api.predict(model, gathers, shaping="estimate", shaping_noise=noise, progress=False),
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    from fwi_plugins import api
    from fwi_plugins.data.families import generate

    args = parse_args(argv)
    torch.manual_seed(0)
    truth = np.concatenate([generate(f, args.n_test, split="test") for f in args.families.split(",")])
    model = api.build_backbone("vit", pretrained=args.weights)
    norm = model.pretrained_cfg.normalization
    scores: dict[str, dict[str, dict[str, float]]] = {}
    started = time.perf_counter()
    for case in args.cases.split(","):
        if case in SURVEY_CASES:
            gathers, survey = survey_case(case, truth)
            ways = survey_predictions(model, gathers, survey)
            ways = {"raw": ways["none"], "estimated": ways["estimate"]}
        else:
            peak, rotation = CASES[case]
            gathers, wavelet = simulate_case(truth, peak, rotation)
            ways = predictions(model, gathers, wavelet, args.noise)
        scores[case] = {}
        for way, velocity in ways.items():
            m = api.evaluate(np.clip(velocity, 1500, 4500), truth, normalization=norm)
            scores[case][way] = {"ssim": float(m["ssim"]), "mae_ms": float(m["mae_ms"])}
        print(case, {w: f"{s['ssim']:.3f}/{s['mae_ms']:.0f}" for w, s in scores[case].items()}, flush=True)
    base = scores.get("ricker-15", {}).get("raw")
    if base is not None:
        for ways in scores.values():
            for s in ways.values():
                s["ssim_vs_15hz"] = s["ssim"] - base["ssim"]
                s["mae_ratio_vs_15hz"] = s["mae_ms"] / base["mae_ms"]
    write_results(args.out, {"maps": len(truth), "families": args.families.split(","), "weights": args.weights,
                             "scores": scores, "seconds": time.perf_counter() - started},
                  weights=args.weights)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Refine a rough velocity model by physics-based FWI, through the Python API.

A curved-layer model from the ``curvevel-a`` family is the truth; a heavily smoothed copy
stands in for a network's prediction; Deepwave refines it against the simulated gathers.

    python examples/refine_prediction.py            # OpenFWI geometry, 70 x 70
    python examples/refine_prediction.py --small    # a 32 x 32 grid, seconds
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.ndimage import gaussian_filter

from fwi_plugins import api


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 32 x 32 grid instead of OpenFWI's 70 x 70")
    parser.add_argument("--iterations", type=int, default=30, help="gradient steps of the refinement")
    args = parser.parse_args(argv)

    size = {"nz": 32, "nx": 32, "survey": "small"} if args.small else {}
    dataset = api.load_dataset("curvevel-a", {"n_train": 0, "n_val": 0, "n_test": 1, **size})
    physics = api.build_physics("deepwave", survey=dataset.survey)

    truth = dataset.velocity("test")
    observed = api.simulate(truth, physics)
    start = gaussian_filter(truth, sigma=(0, 0, 6, 6)).astype(np.float32)

    result = api.refine(start, observed, physics=physics, iterations=args.iterations, progress=True)
    before = api.evaluate(start, truth)
    after = api.evaluate(result.velocity, truth)
    summary = {
        "data_misfit_reduction": result.reduction,
        "mae_ms_before": before["mae_ms"], "mae_ms_after": after["mae_ms"],
        "ssim_before": before["ssim"], "ssim_after": after["ssim"],
    }
    for key, value in summary.items():
        print(f"{key:24s} {value:.4f}")
    return summary


if __name__ == "__main__":
    main()

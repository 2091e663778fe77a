"""The shipped weights' guard figures: measured once here, held by tests/test_shipped_weights.py.

The guard is a small, fixed set of maps the test can afford on every run: the first 24 real
OpenFWI FlatVel-A test maps (where ``../shared/data/openfwi`` exists) and 8 generated test maps
each of flatvel-a and curvevel-a (seed 0). Their zero-shot SSIM and MAE (the network alone,
no shaping) are written into the model card's ``guard`` entry with the weights' digest; the
test recomputes them and fails when the weights do worse than the card says.

    OMP_NUM_THREADS=2 python benchmarks/weights_guard.py            # measure, write the card entry
    OMP_NUM_THREADS=2 python benchmarks/weights_guard.py --weights OLD.safetensors --dry-run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OPENFWI = ROOT.parent / "shared" / "data" / "openfwi"
CARD = ROOT / "src" / "fwi_plugins" / "weights" / "vit-tiny-openfwi.json"

#: name -> (dataset, options)
SETS: dict[str, tuple[str, dict[str, Any]]] = {
    "openfwi-flatvel-a": ("openfwi", {"family": "flatvel-a", "n_train": 1, "n_val": 0, "n_test": 24}),
    "flatvel-a": ("flatvel-a", {"n_train": 0, "n_val": 0, "n_test": 8, "seed": 0}),
    "curvevel-a": ("curvevel-a", {"n_train": 0, "n_val": 0, "n_test": 8, "seed": 0}),
}


def measure(weights: str = "default", openfwi: Path = OPENFWI) -> dict[str, dict[str, float]]:
    """Zero-shot SSIM and MAE (m/s) of ``weights`` on each guard set that is available here."""
    from fwi_plugins import api

    model = api.build_backbone("vit", pretrained=weights)
    normalization = model.pretrained_cfg.normalization
    scores = {}
    for name, (dataset, options) in SETS.items():
        if dataset == "openfwi":
            if not (openfwi / "flatvel-a_test_vmodel.zip").is_file():
                continue
            options = dict(options, path=str(openfwi))
        ds = api.load_dataset(dataset, options)
        ds.set_normalization(normalization)
        truth = ds.velocity("test")
        gathers = api.simulate(truth, api.build_physics("deepwave", survey=ds.survey))
        predicted = np.clip(api.predict(model, gathers, shaping="none", progress=False), 1500, 4500)
        m = api.evaluate(predicted, truth, normalization=normalization)
        scores[name] = {"maps": int(len(truth)), "ssim": float(m["ssim"]), "mae_ms": float(m["mae_ms"])}
    return scores


def main(argv: list[str] | None = None) -> int:
    from fwi_plugins import api
    from fwi_plugins.weights import state_digest

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="default")
    p.add_argument("--card", type=Path, default=CARD)
    p.add_argument("--dry-run", action="store_true", help="print, write nothing")
    args = p.parse_args(argv)
    scores = measure(args.weights)
    digest = state_digest(api.build_backbone("vit", pretrained=args.weights))
    print(json.dumps({"weights_digest": digest, "sets": scores}, indent=1))
    if not args.dry_run:
        card = json.loads(args.card.read_text())
        card["guard"] = {"command": "python benchmarks/weights_guard.py", "weights_digest": digest,
                         "shaping": "none", "sets": scores}
        args.card.write_text(json.dumps(card, indent=1) + "\n")
        print(f"wrote the guard entry of {args.card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Zero-shot quality of foundation weights on maps they never saw, against the shipped model.

Each set of weights predicts velocity from simulated gathers of the test maps of

* real OpenFWI FlatVel-A and CurveVel-A (velocity maps from ``../shared/data/openfwi``;
  skipped with a message when that folder is absent),
* the generated families held out of pretraining (``curvefault-b``, ``salt``), and
* the realism set, 70 x 70 windows of public benchmark models (Marmousi2, SEG/EAGE
  overthrust; ``benchmarks/realism``, one row per ``.npy`` file there, skipped with a message
  when the folder is absent; evaluation only, never pretraining),

and is scored with OpenFWI's definitions (MAE and RMSE on the [-1, 1] scale, MAE also in m/s,
SSIM on maps rescaled to [0, 1]). The first weights are the baseline, measured in the same
process: by default the shipped ``vit`` weights. Gathers come from the deepwave plugin
through the simulation cache, so a second run only predicts.

    OMP_NUM_THREADS=1 python benchmarks/bench_foundation.py \\
        --weights runs/foundation/weights.safetensors --n-test 200
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OPENFWI = ROOT.parent / "shared" / "data" / "openfwi"
DEFAULT_REALISM = ROOT / "benchmarks" / "realism"

#: key -> (label, dataset, dataset options)
TARGETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "openfwi-flatvel-a": ("OpenFWI FlatVel-A (real)", "openfwi", {"family": "flatvel-a"}),
    "openfwi-curvevel-a": ("OpenFWI CurveVel-A (real)", "openfwi", {"family": "curvevel-a"}),
    "curvefault-b": ("generated curvefault-b (held out)", "curvefault-b", {}),
    "salt": ("generated salt (held out)", "salt", {}),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", action="append", default=[],
                   help="foundation weights to compare (a .safetensors path or a shipped name); repeatable")
    p.add_argument("--baseline", default="default", help="weights measured first, as the reference "
                                                         "(default: vit's shipped weights)")
    p.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, from: {', '.join(TARGETS)}")
    p.add_argument("--n-test", type=int, default=200, help="test maps per target (default 200)")
    p.add_argument("--openfwi", type=Path, default=DEFAULT_OPENFWI, help="folder of the OpenFWI velocity zips")
    p.add_argument("--realism", type=Path, default=DEFAULT_REALISM,
                   help="folder of realism-set maps, one (n, 1, 70, 70) m/s .npy per row "
                        "(default benchmarks/realism; 'none' leaves the rows out)")
    p.add_argument("--cache-dir", default=None, help="simulation cache (default: the user cache)")
    p.add_argument("--json", dest="as_json", action="store_true", help="print the results as JSON")
    p.add_argument("--out", type=Path, default=None,
                   help="also write the results with command, commit, weights digests and hardware to this JSON")
    return p.parse_args(argv)


def load_target(key: str, args: argparse.Namespace, normalization: Any) -> tuple[Any, Any, Any] | None:
    """(dataset, test gathers, test velocity) of a target; ``None`` with a message when it is unavailable.

    ``normalization`` is set on the dataset only so that it does not simulate its training
    split to fit one; each model predicts through its own.
    """
    from fwi_plugins import api

    label, name, options = TARGETS[key]
    options = dict(options, n_train=0 if name != "openfwi" else 1, n_val=0, n_test=args.n_test)
    if name == "openfwi":
        if not args.openfwi.is_dir():
            print(f"{label}: skipped, the OpenFWI velocity maps are not at {args.openfwi} (pass --openfwi)")
            return None
        options["path"] = str(args.openfwi)
    ds = api.load_dataset(name, options)
    ds.set_normalization(normalization)
    physics = api.build_physics("deepwave", survey=ds.survey)
    return ds, ds.gathers("test", physics, cache_dir=args.cache_dir, progress=True), ds.velocity("test")


def load_realism(args: argparse.Namespace, normalization: Any) -> dict[str, tuple[str, tuple[Any, Any, Any]]]:
    """Realism rows: key -> (label, (dataset, test gathers, test velocity)), one per ``.npy`` of
    ``args.realism`` (its first ``--n-test`` maps), simulated like the other rows (OpenFWI's
    survey, the deepwave plugin, the simulation cache). A missing folder gives a note and no rows.
    """
    import numpy as np

    from fwi_plugins import api
    from fwi_plugins.data.dataset import SeismicDataset
    from fwi_plugins.data.families import resolve_survey

    folder = args.realism
    if str(folder).lower() == "none":
        return {}
    if not folder.is_dir():
        print(f"realism set: skipped, no folder {folder} (pass --realism DIR)")
        return {}
    rows: dict[str, tuple[str, tuple[Any, Any, Any]]] = {}
    for path in sorted(folder.glob("*.npy")):
        maps = np.load(path).astype(np.float32)[: args.n_test]
        if maps.ndim != 4 or maps.shape[1:] != (1, 70, 70):
            print(f"realism set: skipped {path.name}, shape {maps.shape} is not (n, 1, 70, 70)")
            continue
        survey = resolve_survey("openfwi", 70, 70)
        ds = SeismicDataset(f"realism-{path.stem}", survey=survey, velocity={"test": maps},
                            attrs={"generator": "benchmarks/realism", "file": path.name})
        ds.set_normalization(normalization)
        physics = api.build_physics("deepwave", survey=ds.survey)
        gathers = ds.gathers("test", physics, cache_dir=args.cache_dir, progress=True)
        rows[f"realism-{path.stem}"] = (f"realism: {path.stem}", (ds, gathers, ds.velocity("test")))
    return rows


def score(weights: str, target: tuple[Any, Any, Any]) -> dict[str, float]:
    """OpenFWI metrics of ``weights``' zero-shot predictions of one target's test maps."""
    import numpy as np

    from fwi_plugins import api

    ds, gathers, truth = target
    model = api.build_backbone("vit", pretrained=weights)
    started = time.perf_counter()
    predicted = api.predict(model, gathers, shaping="none")
    seconds = time.perf_counter() - started
    predicted = np.clip(predicted, ds.survey.vmin, ds.survey.vmax)
    metrics = api.evaluate(predicted, truth, normalization=model.pretrained_cfg.normalization)
    return {"ssim": metrics["ssim"], "mae": metrics["mae"], "rmse": metrics["rmse"], "mae_ms": metrics["mae_ms"],
            "seconds_per_map": seconds / len(gathers)}


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    unknown = [t for t in args.targets.split(",") if t not in TARGETS]
    if unknown:
        print(f"error: unknown target {unknown[0]!r}; choose from {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    candidates = [args.baseline, *args.weights]
    results: dict[str, dict[str, dict[str, float]]] = {w: {} for w in candidates}
    from fwi_plugins import api

    normalization = api.build_backbone("vit", pretrained=args.baseline).pretrained_cfg.normalization
    for key in args.targets.split(","):
        target = load_target(key, args, normalization)
        if target is None:
            continue
        for weights in candidates:
            results[weights][key] = score(weights, target)
    labels = {key: TARGETS[key][0] for key in TARGETS}
    for key, (label, target) in load_realism(args, normalization).items():
        labels[key] = label
        for weights in candidates:
            results[weights][key] = score(weights, target)
    if args.out is not None:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from results_file import weights_digest, write_results

        write_results(args.out, {"n_test": args.n_test, "baseline": args.baseline,
                                 "digests": {w: weights_digest(w) for w in candidates}, "results": results})
    if args.as_json:
        print(json.dumps(results, indent=1))
        return 0
    base = results[args.baseline]
    print(f"\nzero-shot on up to {args.n_test} test maps per target (SSIM / MAE m/s); baseline: {args.baseline}\n")
    print("| target | " + " | ".join(candidates) + " |")
    print("|---|" + "---:|" * len(candidates))
    for key in base:
        cells = [f"{results[w][key]['ssim']:.3f} / {results[w][key]['mae_ms']:.0f}" for w in candidates]
        print(f"| {labels[key]} | " + " | ".join(cells) + " |")
    for weights in args.weights:
        ratios = ", ".join(f"{key}: SSIM {results[weights][key]['ssim'] - base[key]['ssim']:+.3f}, MAE x"
                           f"{results[weights][key]['mae'] / base[key]['mae']:.2f}" for key in base)
        print(f"\n{weights} against the baseline: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

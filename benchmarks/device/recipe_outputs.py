"""What a GPU recipe call leaves in ``--out``: sharded weights, held-out scores, the model card, checked.

``pretrain_gpu.py`` calls :func:`finalize` once there are weights, and :func:`check_out` at the
end of every call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import corpus  # beside this file

#: Largest number of files and bytes per file that come back from the GPU machine.
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20


def held_out(model: Any, cfg: dict[str, Any], plan: corpus.Plan, device: str,
             log: Callable[[str], None]) -> dict[str, Any]:
    """Zero-shot scores on generated maps of the families kept out of pretraining."""
    import numpy as np
    from fwi_torchwave.options import TorchwaveOptions
    from fwi_torchwave.physics import build

    from fwi_plugins import api
    from fwi_plugins.data.families import FAMILIES, generate
    from fwi_plugins.survey import Survey

    survey = Survey.from_dict(plan.survey)
    physics = build(TorchwaveOptions(), survey=survey)
    normalization = model.pretrained_cfg.normalization
    n = max(1, cfg["sim_batch"] // len(corpus.HELD_OUT))
    truths = {}
    for family in corpus.HELD_OUT:
        options = FAMILIES[family].options(seed=plan.seed, nz=plan.grid[0], nx=plan.grid[1])
        truths[family] = generate(family, n, options=options, split="test")
    # One simulation of the corpus's chunk size: the compiled time step is reused as it is.
    gathers = corpus.simulate(physics, np.concatenate(list(truths.values())), device=device,
                              sim_batch=cfg["sim_batch"])
    scores = {}
    for i, (family, truth) in enumerate(truths.items()):
        predicted = api.predict(model, gathers[i * n:(i + 1) * n], shaping="none", device=device, progress=False)
        scores[family] = {k: float(v) for k, v in api.evaluate(np.asarray(predicted), truth,
                                                           normalization=normalization).items()
                          if isinstance(v, (int, float))}
        log(f"held out: {family} ({n} test maps) zero-shot SSIM {scores[family]['ssim']:.4f}, "
            f"MAE {scores[family]['mae_ms']:.1f} m/s")
    return scores


def finalize(cfg: dict[str, Any], work: Path, out: Path, plan: corpus.Plan, device: str, record: dict[str, Any],
             log: Callable[[str], None]) -> bool:
    """Sharded weights, model card and log into ``out``; whether training was complete."""
    from fwi_plugins import api
    from fwi_plugins.weights import read_metadata, save_sharded_weights

    run = work / "pretrain"
    weights = run / "weights.safetensors"
    if not weights.is_file():
        return False
    card = json.loads((run / "model_card.json").read_text())
    model = api.build_backbone("vit", pretrained=str(weights)).to(device).eval()
    record["held_out_zero_shot"] = held_out(model, cfg, plan, device, log)
    metadata = read_metadata(weights)
    index = save_sharded_weights(model, out, metadata, max_shard_bytes=cfg["shard_bytes"])
    shards = sorted(p.name for p in out.glob("model-*-of-*.safetensors"))
    log(f"weights: {len(shards)} shard(s) and {index.name} in {out}")
    card["recipe"] = record
    (out / "model_card.json").write_text(json.dumps(card, indent=1, default=str) + "\n")
    (out / "model_card.md").write_text((run / "model_card.md").read_text() + recipe_markdown(record, card))
    return bool(card.get("complete"))


def recipe_markdown(record: dict[str, Any], card: dict[str, Any]) -> str:
    corpus_info = record.get("corpus", {})
    lines = ["", "## GPU recipe", "",
             f"Made by `benchmarks/device/pretrain_gpu.sh` on {record.get('gpu') or 'a CPU'} "
             f"(torch {record.get('torch')}); training {'complete' if card.get('complete') else 'stopped by the time budget: a snapshot'}.",
             "",
             f"Corpus: {corpus_info.get('train_maps', 0):,} training and {corpus_info.get('val_maps', 0):,} validation maps "
             f"of {', '.join(corpus_info.get('families', []))}, simulated with the pure-torch `torchwave` "
             f"physics (Deepwave's scalar scheme; 1e-5 relative agreement in the plugin's tests) and stored "
             f"every {corpus_info.get('decimation')}th sample in float16 (rebuilt by band-limited interpolation).",
             ""]
    real = (corpus_info.get("openfwi") or {}).get("families") or {}
    if real:
        maps = "; ".join(f"{name}: {info['n_train']:,} training and {info['n_val']:,} validation maps of "
                         f"`{info['archive']}` (sha256 {info['sha256'][:12]}…)" for name, info in real.items())
        lines += [f"Real OpenFWI maps, every map of the training archives, split by `fwi_plugins.data.openfwi` "
                  f"(the test archives were never opened): {maps}.", ""]
    shares = corpus_info.get("sampling_share") or {}
    if real and shares:
        lines += ["Sampling shares of the training mixture: "
                  + ", ".join(f"{name} {share:.3f}" for name, share in shares.items()) + ".", ""]
    if record.get("sanity"):
        lines += [f"Propagator check on {record['sanity']['device']}: relative L2 error "
                  f"{record['sanity']['relative_error']:.1e} against plain torch in float64 on the CPU.", ""]
    scores = record.get("held_out_zero_shot") or {}
    if scores:
        lines += ["Zero-shot on families held out of pretraining (generated test maps):", "",
                  "| family | SSIM | MAE (m/s) |", "|---|---:|---:|"]
        lines += [f"| {f} | {s['ssim']:.4f} | {s['mae_ms']:.1f} |" for f, s in scores.items()]
        lines.append("")
    calls = record.get("calls", [])
    if calls:
        lines += ["Calls:", ""] + [f"* call {i + 1}: {c.get('did', '')} ({c.get('seconds', 0):.0f} s)"
                                   for i, c in enumerate(calls)] + [""]
    return "\n".join(lines)


def check_out(out: Path) -> None:
    files = sorted(p for p in out.rglob("*") if p.is_file())
    big = [f"{p.name} ({p.stat().st_size / 2**20:.1f} MiB)" for p in files if p.stat().st_size > MAX_FILE_BYTES]
    if len(files) > MAX_FILES or big:
        raise SystemExit(f"{out} holds {len(files)} files ({', '.join(big) or 'none too large'}); at most "
                         f"{MAX_FILES} files of at most 16 MiB come back")

"""What ``fwi pretrain`` leaves in its folder: the weights with their record, the model card, the metrics.

The weights' safetensors header records what :mod:`fwi_plugins.pretrained` reads back (backbone,
options, normalisation, shape, wavelet, datasets); ``model_card.json`` and ``model_card.md``
say how they were made, for programs and for people.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import shlex
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any


from ..config import ResolvedConfig
from ..options import PretrainOptions
from ..training.data import mixture_weights
from .start import hardware, io_shape

if TYPE_CHECKING:
    from torch import nn

    from ...data import Normalization, SeismicDataset
    from ..training.distributed import DistInfo
    from ..training.result import TrainResult

__all__ = ["WEIGHTS_FILE", "dataset_labels", "model_card_markdown", "print_summary", "wavelet_record",
           "write_foundation"]

WEIGHTS_FILE = "weights.safetensors"


def dataset_labels(datasets: Sequence[SeismicDataset]) -> list[str]:
    """A distinct label for each dataset of a mixture: its name, and where a name repeats (two
    ``openfwi`` families, say) the name with its ``family`` option, else with its position."""
    names = [d.name for d in datasets]
    labels = []
    for i, d in enumerate(datasets):
        if names.count(d.name) == 1:
            labels.append(d.name)
            continue
        family = (d.attrs.get("options") or {}).get("family")
        labels.append(f"{d.name}:{family}" if family else f"{d.name}#{i + 1}")
    if len(set(labels)) < len(labels):  # the same family twice: positions tell them apart
        labels = [f"{label}#{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]
    return labels


def wavelet_record(survey: Any) -> dict[str, Any]:
    """The source wavelet the weights learn, as their metadata records it (what prediction shapes data to)."""
    return {"kind": survey.wavelet, "peak_freq": survey.peak_freq, "delay": survey.delay, "dt": survey.dt}


def write_foundation(resolved: ResolvedConfig, *, out: Path, model: nn.Module, datasets: list[SeismicDataset],
                      sizes: list[int], normalization: Normalization, metrics: dict[str, Any], result: TrainResult,
                      info: DistInfo) -> None:
    """Write the weights (with what built them in their metadata), the model card, metrics and loss figure."""
    from ...weights import save_weights
    from .rundir import RunDirectory

    opts: PretrainOptions = resolved.options
    card = _model_card(resolved, out=out, datasets=datasets, sizes=sizes, weights=opts.weights,
                       normalization=normalization, metrics=metrics, device=info.device,
                       world_size=info.world_size)
    metadata = {"format": "fwi-foundation-1", "name": opts.name, "backbone": resolved.spec("backbone").name,
                "backbone_options": json.dumps(resolved.config.components["backbone"][0].options),
                "normalization": json.dumps(normalization.to_dict()),
                "shape": json.dumps(dataclasses.asdict(io_shape(datasets[0].survey))),
                "wavelet": json.dumps(wavelet_record(datasets[0].survey)),
                "datasets": json.dumps(dataset_labels(datasets)), "seed": str(opts.seed),
                "steps": str(result.steps)}
    save_weights(model, out / WEIGHTS_FILE, metadata=metadata)
    rd = RunDirectory(out)
    rd.write_json("model_card.json", card)
    rd.write_text("model_card.md", model_card_markdown(card))
    rd.write_metrics(metrics)
    if opts.progress:
        from .. import figures as fig

        try:
            keys = ("epoch", "train_loss", "val_mae", "val_misfit")
            fig.loss_curves(out / "figures" / "loss.png",
                            [{k: h[k] for k in keys if k in h} for h in result.history], title="pretraining")
        except Exception as exc:  # a figure must never cost the finished weights
            # stacklevel 3: the warning names the caller of pretrain().
            warnings.warn(f"the loss figure was not written: {exc}", UserWarning, stacklevel=3)


def print_summary(backbone: str, metrics: Mapping[str, Any], result: TrainResult,
                   per_family: Mapping[str, Mapping[str, float]], weights: Path) -> None:
    """What was pretrained, how it validates, and how to use the weights."""
    shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics["validation"].items())
    print(f"pretrained {backbone} ({metrics['parameters']:,} parameters) for {result.steps} steps in "
          f"{result.wall_time:.0f} s: {shown or 'no validation'}")
    for name, m in per_family.items():
        print(f"  {name:<16} MAE {m['mae']:.4f}  SSIM {m['ssim']:.4f}")
    if not result.complete:
        print("the time budget stopped pretraining early: these weights are a snapshot; run the same "
              "command again to resume")
    print(f"weights: {weights}\nuse them: fwi run --backbone {backbone} "
          f"--pretrained {weights} ...")


def _model_card(resolved: ResolvedConfig, *, out: Path, datasets: list[SeismicDataset], sizes: list[int],
                weights: tuple[float, ...], normalization: Normalization, metrics: Mapping[str, Any], device: str,
                world_size: int) -> dict[str, Any]:
    """The model card's content (``model_card.json``; :func:`model_card_markdown` writes it for people)."""
    config = resolved.config
    probabilities = mixture_weights(sizes, weights)
    shares, start = [], 0
    for n in sizes:
        shares.append(float(probabilities[start:start + n].sum()))
        start += n
    argv = list(config.argv)
    return {
        "name": resolved.options.name,
        "backbone": {"name": config.components["backbone"][0].name,
                     "options": dict(config.components["backbone"][0].options)},
        # Called from Python there is no command line; the configuration file is the recipe.
        "command": shlex.join(argv) if argv else f"fwi pretrain --config {out / 'config.toml'}",
        "reproduce": f"fwi pretrain --config {out / 'config.toml'}",
        "data": [{"name": label, "options": dict(c.options), "train": n, "val": d.split_sizes.get("val", 0),
                  "sampling_share": share, "attrs": _plain(d.attrs)}
                 for d, label, c, n, share in zip(datasets, dataset_labels(datasets), config.components["dataset"],
                                                  sizes, shares, strict=True)],
        "physics": (dict(config.components["physics"][0].to_dict()) if config.components.get("physics") else None),
        "normalization": normalization.to_dict(),
        "seed": resolved.options.seed,
        "init": resolved.options.init or None,
        "options": dict(config.options),
        "steps": metrics["training"]["steps"],
        "complete": metrics["training"]["complete"],
        "epochs": metrics["training"]["epochs"],
        "selected_epoch": metrics["training"]["best_epoch"],
        "wall_time_s": metrics["training"]["wall_time"],
        "hardware": hardware(device, world_size),
        "validation": metrics["validation"],
        "validation_by_dataset": metrics["validation_by_dataset"],
        "parameters": metrics["parameters"],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _plain(value: Any) -> Any:
    """``value`` as JSON-able data."""
    from .rundir import to_jsonable

    return to_jsonable(value)


def model_card_markdown(card: Mapping[str, Any]) -> str:
    """The model card as Markdown, for people (``model_card.json`` holds the same for programs)."""
    hw = card["hardware"]
    where = hw.get("gpu") or f"{hw.get('cpu')} ({hw.get('cpu_threads')} threads)"
    lines = [
        f"# {card['name']}: {card['backbone']['name']} foundation model",
        "",
        f"Pretrained with fwi-plugins on {len(card['data'])} dataset famil{'y' if len(card['data']) == 1 else 'ies'}; "
        f"{card['steps']} steps in {card['epochs']} epochs, {card['wall_time_s']:.0f} s on {where} "
        f"({hw['processes']} process{'es' if hw['processes'] > 1 else ''}, torch {hw['torch']}).",
        "",
        *([f"Initialised from the weights `{card['init']}` (see their own model card), then trained as below.",
           ""] if card.get("init") else []),
        "## Reproduce",
        "",
        "```",
        card["command"],
        "```",
        "",
        f"or `{card['reproduce']}`. Seed {card['seed']}.",
        "",
        "## Backbone",
        "",
        f"`{card['backbone']['name']}` with options `{json.dumps(card['backbone']['options'])}`; "
        f"{card['parameters']:,} parameters.",
        "",
        "## Data",
        "",
        "| dataset | train | val | sampling share |",
        "|---|---:|---:|---:|",
    ]
    for d in card["data"]:
        lines.append(f"| {d['name']} | {d['train']} | {d['val']} | {d['sampling_share']:.2f} |")
    lines += ["", "Test splits were not used: validation is on each family's validation split.", "",
              "## Validation", "", "| dataset | MAE | RMSE | SSIM | MAE (m/s) |", "|---|---:|---:|---:|---:|"]
    for name, m in card["validation_by_dataset"].items():
        lines.append(f"| {name} | {m['mae']:.4f} | {m['rmse']:.4f} | {m['ssim']:.4f} | {m['mae_ms']:.1f} |")
    overall = ", ".join(f"{k} = {v:.4g}" for k, v in card["validation"].items())
    chosen = card.get("selected_epoch")
    which = f"epoch {chosen}, the best on validation, whose weights these are" if chosen is not None else "last epoch"
    lines += ["", f"Mixture ({which}): {overall or 'n/a'}.", "",
              "## Normalisation", "", f"`{json.dumps(card['normalization'])}`", ""]
    return "\n".join(lines)

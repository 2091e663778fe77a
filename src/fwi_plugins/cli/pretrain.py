"""``fwi pretrain``: a foundation backbone trained on a mixture of dataset families."""

from __future__ import annotations

import click

from .common import ComponentName, handles_errors, job_flags, plugin_option
from .run import build_config, launch, options_epilog


@click.command("pretrain", epilog=options_epilog("pretrain"))
@plugin_option
@click.option("--backbone", type=ComponentName("backbone"), help="Backbone network (fwi list backbone).")
@click.option("--dataset", "datasets", type=ComponentName("dataset"), multiple=True,
              help="A dataset family of the mixture; repeat for each (weights: -o weights=1,2,...).")
@click.option("--physics", type=ComponentName("physics"),
              help="Forward model that simulates missing gathers (and the physics term); default deepwave "
                   "when installed.")
@click.option("-o", "--option", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Pretrain option (epochs=20, weights=1,3) or component option (backbone.size=tiny, "
                   "dataset.n_train=500: applies to every dataset); repeatable.")
@click.option("--config", "config_file", type=click.Path(dir_okay=True), metavar="FILE",
              help="Start from a configuration file (or an output directory's config.toml).")
@click.option("--out", type=click.Path(file_okay=False), metavar="DIR",
              help="Output directory (default runs/pretrain-BACKBONE; an existing one resumes).")
@job_flags
@handles_errors
def pretrain(plugins: tuple[str, ...], backbone: str | None, datasets: tuple[str, ...], physics: str | None,
             overrides: tuple[str, ...], config_file: str | None, out: str | None, device: str | None,
             seed: int | None, dry_run: bool, as_json: bool) -> None:
    """Pretrain a foundation backbone on dataset families.

    Trains on the families' training splits with per-family sampling weights, validates
    on their validation splits (never the test splits), checkpoints every epoch, and
    writes weights.safetensors with a model card. Run the same command again to resume;
    launch it with torchrun for several GPUs or nodes.

    \b
    Examples:
      fwi pretrain --backbone vit --dataset flatvel-a --dataset curvevel-a -o backbone.size=tiny
      fwi pretrain --backbone vit --dataset flatvel-a --dataset style-a -o weights=1,2 -o epochs=20
      torchrun --nproc-per-node 4 $(which fwi) pretrain --config pretrain.toml
    """
    from ..manager import get_plugin_manager

    manager = get_plugin_manager()
    defaults = {}
    if "deepwave" in manager.components("physics"):
        defaults["physics"] = "deepwave"
    config = build_config(
        "pretrain", config_file=config_file,
        components={"backbone": backbone, "dataset": list(datasets) or None, "physics": physics},
        overrides=overrides, flags={"device": device, "seed": seed}, out=out, defaults=defaults)
    launch(config, manager, dry_run=dry_run, as_json=as_json)

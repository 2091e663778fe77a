"""``fwi run``: the main job, adapt a foundation model to a dataset."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from .common import ComponentName, echo_json, handles_errors, job_flags, parse_overrides, plugin_option, split_overrides

#: The dataset ``fwi run`` adapts to when none is named: a generated family that the
#: shipped foundation model never saw in pretraining (salt bodies in layered sediment),
#: so the default job shows adaptation to a new geology; minutes on a laptop CPU.
DEFAULT_DATASET = "salt"


def _run_directory_of(config_file: Path) -> Path | None:
    """The run directory whose own configuration ``config_file`` is (the folder or its config.*), else None."""
    path = config_file.expanduser()
    folder = path if path.is_dir() else path.parent
    if not (path.is_dir() or path.name in ("config.toml", "config.json")):
        return None
    return folder if (folder / "config.json").is_file() and (folder / "config.toml").is_file() else None


def build_config(command: str, *, config_file: str | None, components: Mapping[str, Sequence[str] | str | None],
                 overrides: Sequence[str], flags: Mapping[str, Any], out: str | None,
                 defaults: Mapping[str, str] | None = None) -> Any:
    """The job's :class:`~fwi_plugins.engine.config.RunConfig` from a file, flags and ``-o`` pairs.

    Precedence, lowest first: defaults, the ``--config`` file, component flags, ``-o``
    options and the dedicated flags (``--labels``, ``--device``, ...). A component named
    by a flag replaces the file's choice of that kind, together with its options.
    """
    from ..engine.config import Component, RunConfig, load_config

    config = load_config(config_file) if config_file else RunConfig(command=command)
    run_dir = _run_directory_of(Path(config_file)) if config_file and out is None else None
    if run_dir is not None:
        # A run directory's configuration re-runs that directory, wherever it was copied to:
        # the path recorded inside may name the original, which a copy must never write into.
        out = str(run_dir)
    if config.command != command:
        raise ConfigError(f"{config_file} is a {config.command!r} configuration; use fwi {config.command}")
    chosen: dict[str, list[Any]] = {}
    for kind, names in components.items():
        if not names:
            continue
        names = [names] if isinstance(names, str) else list(names)
        chosen[kind] = [Component(n) for n in names]
    for kind, name in (defaults or {}).items():
        if kind not in chosen and not config.components.get(kind):
            chosen[kind] = [Component(name)]
    per_kind, plain = split_overrides(parse_overrides(overrides))
    options = dict(plain)
    options.update({k: v for k, v in flags.items() if v is not None})
    argv = ("fwi", *sys.argv[1:]) if sys.argv and sys.argv[0].endswith("fwi") else ()
    return config.with_updates(components=chosen, options=options, component_options=per_kind, out=out,
                               argv=argv or None)


def _print_config(config: Any, as_json: bool) -> None:
    from ..settings_files import to_toml

    if as_json:
        echo_json(config.to_dict())
    else:
        click.echo(to_toml(config.to_dict()), nl=False)


def options_epilog(command: str) -> str:
    """``--help`` text listing the engine options of ``command`` (no torch import)."""
    from ..engine.options import PretrainOptions, RunOptions, options_help

    cls = RunOptions if command == "run" else PretrainOptions
    return f"\b\n{command} options (-o KEY=VALUE, default shown):\n" + options_help(cls)


@click.command("run", epilog=options_epilog("run"))
@plugin_option
@click.option("--backbone", type=ComponentName("backbone"), help="Backbone network (fwi list backbone).")
@click.option("--peft", type=ComponentName("peft"), help="PEFT method (fwi list peft).")
@click.option("--physics", type=ComponentName("physics"), help="Forward model (fwi list physics).")
@click.option("--dataset", type=ComponentName("dataset"),
              help=f"Target dataset (fwi list dataset); default {DEFAULT_DATASET}.")
@click.option("--pretrained", metavar="NAME|PATH|none",
              help="Foundation weights: a shipped name, a .safetensors file from fwi pretrain, or none.")
@click.option("--labels", type=click.Choice(["full", "none", "self"]),
              help="'none' adapts label-free, with the physics misfit alone; 'self' adapts label-free by "
                   "self-training on its predictions refined by FWI.")
@click.option("-o", "--option", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Run option (epochs=3) or component option (backbone.size=tiny, peft.r=4); repeatable.")
@click.option("--config", "config_file", type=click.Path(dir_okay=True), metavar="FILE",
              help="Start from a configuration file (or a run directory's config.toml).")
@click.option("--out", type=click.Path(file_okay=False), metavar="DIR",
              help="Run directory (default runs/BACKBONE-PEFT-DATASET; an existing one resumes).")
@job_flags
@handles_errors
def run(plugins: tuple[str, ...], backbone: str | None, peft: str | None, physics: str | None, dataset: str | None,
        pretrained: str | None, labels: str | None, overrides: tuple[str, ...], config_file: str | None,
        out: str | None, device: str | None, seed: int | None, dry_run: bool, as_json: bool) -> None:
    """Adapt a foundation model to a dataset: the main job.

    Evaluates zero-shot on the test split, adapts with the PEFT method (label loss plus
    lambda_physics times the physics misfit), evaluates again, refines a few predictions
    by physics-based FWI, and writes a run directory with the configuration, metrics,
    adapter, predictions and figures. Run the same command again to resume.

    \b
    Examples:
      fwi run --backbone vit --peft lora --physics deepwave
      fwi run --backbone vit --peft lora --physics deepwave --dataset curvevel-a -o epochs=10 -o peft.r=4
      fwi run --backbone vit --peft lora --physics deepwave --labels none -o lambda_physics=1
      fwi run --config runs/vit-lora-salt/config.toml
    """
    from ..manager import get_plugin_manager

    config = build_config(
        "run", config_file=config_file,
        components={"backbone": backbone, "peft": peft, "physics": physics, "dataset": dataset},
        overrides=overrides, flags={"pretrained": pretrained, "labels": labels, "device": device, "seed": seed},
        out=out, defaults={"dataset": DEFAULT_DATASET})
    launch(config, get_plugin_manager(), dry_run=dry_run, as_json=as_json)


def launch(config: Any, manager: Any, *, dry_run: bool, as_json: bool) -> None:
    """Resolve a training job's configuration, then print it (``--dry-run``) or run it."""
    from ..engine.jobs.start import resolve

    resolved = resolve(config, manager.get)
    check_importable(resolved)
    if dry_run:
        print_dry_run(resolved, as_json)
        return
    if resolved.config.command == "pretrain":
        from ..engine.jobs.pretrain import pretrain as job
    else:
        from ..engine.jobs.run import run as job
    metrics = job(resolved, notify=manager.notify, summary=not as_json)
    if as_json:
        echo_json(metrics)


def check_importable(resolved: Any) -> None:
    """Import every chosen component's factory now, so a broken one fails before any work."""
    for specs in resolved.specs.values():
        for spec in specs:
            spec.check_importable()


def print_dry_run(resolved: Any, as_json: bool) -> None:
    """Print the resolved configuration of ``--dry-run``, with the output folder it would use."""
    import dataclasses

    from ..engine.jobs.start import default_out

    if not resolved.config.out:
        resolved = dataclasses.replace(
            resolved, config=dataclasses.replace(resolved.config, out=str(default_out(resolved.config))))
    _print_config(resolved.config, as_json)

"""The ``fwi`` command line.

Subcommands live in their own modules and are imported only when invoked, so
``fwi --help`` stays fast and never imports torch.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__

# name -> (module, attribute, one-line help shown by ``fwi --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("fwi_plugins.cli.run", "run", "Adapt a foundation model to a dataset: the main job."),
    "pretrain": ("fwi_plugins.cli.pretrain", "pretrain", "Pretrain a foundation backbone on dataset families."),
    "simulate": ("fwi_plugins.cli.simulate", "simulate", "Simulate shot gathers from velocity models."),
    "predict": ("fwi_plugins.cli.predict", "predict", "Predict velocity from shot gathers."),
    "refine": ("fwi_plugins.cli.refine", "refine", "Refine a velocity model by physics-based FWI."),
    "evaluate": ("fwi_plugins.cli.evaluate", "evaluate", "Score predicted velocity against the truth."),
    "study": ("fwi_plugins.cli.study", "study", "Compare ways of adapting a foundation: the fair PEFT study."),
    "runs": ("fwi_plugins.cli.runs", "runs", "List run folders with their metrics, or compare runs side by side."),
    "plugins": ("fwi_plugins.cli.registry", "plugins", "List loaded plugins with versions and hooks."),
    "list": ("fwi_plugins.cli.registry", "list_components", "List registered components of each kind."),
    "show": ("fwi_plugins.cli.registry", "show", "Describe one component: provider, options, requirements."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, _, help_) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fwi")
def main() -> None:
    """fwi: deep-learning full-waveform inversion with plugins.

    \b
    Quick start:
      fwi run --backbone vit --peft lora --physics deepwave
      fwi list              what backbones, PEFT methods, datasets and physics exist
      fwi show backbone vit options of one component
    """

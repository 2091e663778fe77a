"""``fwi study``: the fair study of adaptation methods, resumable, into a study folder."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from .common import echo_json, handles_errors, plugin_option

# option -> (StudyOptions field, help); every one defaults to the fair protocol (or the smoke run's)
TEXT_OPTIONS: dict[str, tuple[str, type, str]] = {
    "--backbone": ("backbone", str, "Backbone name (default vit)."),
    "--weights": ("weights", str, "Foundation weights: a shipped name, a .safetensors path, or 'none' for a random "
                                  "foundation (default: the backbone's 'default')."),
    "--backbone-options": ("backbone_options", str, "Backbone options KEY=VALUE,... (the weights' own otherwise)."),
    "--peft": ("methods", str, "Methods, comma-separated: scratch, full and any PEFT method "
                               "(default scratch,full,lora,adapter,ia3)."),
    "--peft-options": ("peft_options", str, "METHOD.KEY=VALUE,... (default lora.r=8,lora.alpha=16)."),
    "--dataset": ("targets", str, "Target datasets, comma-separated; options as NAME:KEY=VALUE:KEY=VALUE, e.g. "
                                  "openfwi:family=curvevel-a:path=DATA (default salt)."),
    "--physics": ("physics", str, "Physics that simulates the gathers (default deepwave)."),
    "--fractions": ("fractions", str, "Shares of the training maps, the data curve (default 1)."),
    "--seeds": ("seeds", str, "Seeds; the first also chooses the learning rates (default 0,1,2)."),
    "--n-train": ("n_train", int, "Training maps that make fraction 1 (default 200)."),
    "--n-val": ("n_val", int, "Validation maps: choose learning rates, stop scratch (default 50)."),
    "--n-test": ("n_test", int, "Test maps scored (default 100)."),
    "--steps": ("steps", int, "Optimisation steps of every run but the converging ones (default 78)."),
    "--batch-size": ("batch_size", int, "Maps per step (default 16)."),
    "--warmup-steps": ("warmup_steps", int, "Linear warm-up steps before cosine decay (default 6)."),
    "--lambda-ssim": ("lambda_ssim", float, "Weight of the (1 - SSIM) term of the loss (default 1)."),
    "--lr-grid-whole": ("lr_whole", str, "Learning rates tried for scratch and full (default 3e-4,1e-3,3e-3)."),
    "--lr-grid-peft": ("lr_peft", str, "Learning rates tried for PEFT methods (default 1e-3,3e-3,1e-2)."),
    "--scratch-cap": ("scratch_cap", int, "Most steps of scratch trained to convergence (default 600)."),
    "--patience": ("patience", int, "Validations without a better SSIM before a converging run stops (default 8)."),
    "--val-every": ("val_every", int, "Epochs between validations of converging runs (default 1)."),
    "--specialist-maps": ("specialist_maps", int, "Target maps the specialist is trained on from scratch; 0: no "
                                                  "specialist (default 1000; 20000 on a GPU is the real bound)."),
    "--specialist-cap": ("specialist_cap", int, "Most steps of the specialist (default 1200)."),
    "--data-seed": ("data_seed", int, "Seed of the target maps, the same for every run (default 0)."),
    "--min-gain": ("min_gain", float, "SSIM gain below which more maps 'stop paying off' (default 0.002)."),
    "--device": ("device", str, "cpu, cuda or auto (default cpu)."),
}


def _options(func: Any) -> Any:
    for flag, (field, kind, help_) in reversed(TEXT_OPTIONS.items()):
        func = click.option(flag, field, type=kind, default=None, help=help_)(func)
    return func


@click.command("study")
@_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Study folder (default studies/study, or studies/smoke with --smoke); the same folder resumes.")
@click.option("--cache-dir", default=None, help="Simulation cache (default FWI_CACHE_DIR or the user cache).")
@click.option("--plan-only", is_flag=True, help="Print the plan and its time estimate; run nothing.")
@click.option("--smoke", is_flag=True, help="Tiny grid, random tiny model, few maps and steps: the whole path "
                                            "in under a minute on a CPU.")
@click.option("--json", "as_json", is_flag=True, help="Print study.json (or the plan) as JSON.")
@plugin_option
@handles_errors
def study(out: Path | None, cache_dir: str | None, plan_only: bool, smoke: bool, as_json: bool, plugins: Any,
          **values: Any) -> None:
    """Compare ways of adapting a foundation: scratch, full fine-tuning and PEFT methods.

    \b
    The fair protocol: each method's learning rate chosen on validation maps from a
    grid, scratch trained to convergence, every method over seeds (mean ± sd), at
    fractions of the training maps (the data curve), against a specialist trained from
    scratch on many target maps (each method: the share of the zero-shot -> specialist
    gap it closes). Writes study.json, study.md and figures into --out; run the same
    command again to resume; a different plan in the same folder is refused.

    \b
    Examples:
      fwi study --smoke
      fwi study --backbone vit --peft lora,adapter,ia3,full --dataset salt --seeds 0,1,2 \\
                --fractions 1,0.1,0.01 --out studies/salt
      fwi study --dataset salt,curvefault-b --plan-only
    """
    from ..study import from_text, plan_summary, run_study
    from ..study.plan import estimate_text

    options = from_text(values, smoke=smoke)
    if plan_only:
        summary = plan_summary(options)
        if as_json:
            echo_json(summary)
        else:
            click.echo(estimate_text(summary["estimate"]))
            click.echo("first runs (the others wait for the chosen learning rates):")
            for task_id in summary["first_runs"]:
                click.echo(f"  {task_id}")
        return
    folder = out or Path("studies") / ("smoke" if smoke else "study")
    from ..study.plan import estimate

    click.echo(estimate_text(estimate(options)), err=True)
    report = run_study(options, folder, command=_command(values, smoke, folder), cache_dir=cache_dir,
                       echo=lambda line: click.echo(line, err=True))
    if as_json:
        echo_json(report)
    else:
        from ..study.text import terminal

        click.echo(terminal(report))
        click.echo(f"\nreport: {folder / 'study.md'}  ({report['wall_time_s'] / 60:.1f} min)")
    if report["missing"]:
        sys.exit(1)


def _command(values: dict[str, Any], smoke: bool, folder: Path) -> str:
    """The command that reruns (or resumes) this study: the options given, defaults left out."""
    flags = {field: flag for flag, (field, _, _) in TEXT_OPTIONS.items()}
    parts = ["fwi", "study", *(["--smoke"] if smoke else [])]
    for field, value in values.items():
        if value is not None:
            parts += [flags[field], shlex.quote(str(value))]
    return " ".join([*parts, "--out", shlex.quote(str(folder))])

"""``fwi refine``: physics-based FWI of a velocity model against recorded gathers.

The job itself is :func:`fwi_plugins.engine.jobs.refine.refine_files`; this module parses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import ComponentName, handles_errors, parse_overrides, split_overrides


def _frequencies(text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        values = tuple(float(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of frequencies in Hz, "
                                 f"for example 5,10,15", param_hint="--frequencies") from None
    if not values or any(v <= 0 for v in values):
        raise click.BadParameter(f"{text!r}: frequencies must be positive (Hz)", param_hint="--frequencies")
    return values


@click.command("refine")
@click.option("--initial", "initial_path", type=click.Path(path_type=Path),
              help="Starting velocity (m/s): .npy, .nc, .zarr or .sgy; typically a network's prediction. "
                   "Or give --backbone to start from its prediction.")
@click.option("--backbone", type=ComponentName("backbone"), metavar="NAME",
              help="Start from this backbone's prediction of --observed (as fwi predict makes it), "
                   "instead of --initial.")
@click.option("--pretrained", metavar="NAME|PATH|none",
              help="With --backbone: its shipped weights (default: its default foundation) or a .safetensors file.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.safetensors",
              help="With --backbone: full weights (for example from fwi pretrain), instead of --pretrained.")
@click.option("--adapter", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="With --backbone: a PEFT adapter folder saved by fwi run, loaded on top of the weights.")
@click.option("--normalization", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.json",
              help="With --backbone: the normalisation the model was trained with; default: the weights'.")
@click.option("--observed", "observed_path", required=True, type=click.Path(path_type=Path),
              help="Recorded gathers (sample, shot, time, receiver): .npy, .nc, .zarr or .sgy.")
@click.option("--survey", "survey_name", default=None, metavar="PRESET|FILE",
              help="Survey: a preset (openfwi, small) or a .toml/.json file. "
                   "Default: the survey stored in the observed file, else openfwi.")
@click.option("--physics", "physics_name", type=ComponentName("physics"), default="deepwave", show_default=True,
              help="Forward model (see: fwi list physics).")
@click.option("-o", "--option", "overrides", multiple=True, metavar="physics.KEY=VALUE",
              help="Physics option, e.g. -o physics.misfit=envelope, or with --backbone a backbone option "
                   "(repeatable; see: fwi show physics NAME).")
@click.option("--wavelet", "wavelet", type=click.Choice(["survey", "estimate"]), default=None,
              help="Source wavelet the misfit compares with: the survey's Ricker, or estimated from the data "
                   "(a matching filter per set of gathers: unknown wavelet and amplitude scale, as in field "
                   "data). Sets -o physics.wavelet; default: the physics' own default (survey).")
@click.option("--iterations", type=click.IntRange(min=1), default=50, show_default=True,
              help="Gradient steps in all; with --step lbfgs, misfit-and-gradient evaluations per model.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True,
              help="Step size as a fraction of the velocity range (vmax - vmin).")
@click.option("--step", "step_rule", type=click.Choice(["lbfgs", "normalized", "adam"]), default="lbfgs",
              show_default=True,
              help="Update rule: L-BFGS per model with its update shaped (mute 3, smooth 2, depth-power 1, tv 0.02 "
                   "unless given), steepest descent scaled to a largest step of --lr, or Adam.")
@click.option("--smooth", type=click.FloatRange(min=0), default=None,
              help="Smooth the update with a Gaussian of this many grid cells (0: none). Default: the step's.")
@click.option("--mute", type=click.IntRange(min=0), default=None,
              help="Rows at the top (sources, receivers) the update leaves alone, then a taper over as many "
                   "(0: none). Default: the step's.")
@click.option("--depth-power", type=click.FloatRange(min=0), default=None,
              help="Scale the update of row z by ((z + 1) / depth) ** this, against the gradient's decay with "
                   "depth (0: none). Default: the step's.")
@click.option("--tv", type=click.FloatRange(min=0), default=None,
              help="Weight of total variation against the normalised misfit: favours blocky models (0: none). "
                   "Default: the step's.")
@click.option("--prior", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Weight of the distance from the starting model against the normalised misfit (0: none).")
@click.option("--sobolev", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Weight of the squared gradient of the model against the normalised misfit: favours smooth "
                   "models, against streaks (0: none).")
@click.option("--regularization", type=click.Choice(["given", "auto"]), default="given", show_default=True,
              help="auto: refine once per candidate prior (none, TV, smoothness; two weights each) and keep the "
                   "one that predicts the held-out shots best, for all maps (5 times the cost); given: --tv "
                   "and --sobolev as set.")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop refining each model after this many seconds, keeping the model reached. Default: none.")
@click.option("--holdout", type=click.IntRange(min=0), default=None, metavar="N",
              help="Shots held out of the inversion (every other one from the 2nd) that decide what it returns: "
                   "each map's model with the lowest misfit on them, or its start unchanged where refinement "
                   "does not beat the start there by 1 %. Default: 1 with 3 shots or more; 0: none.")
@click.option("--frequencies", default=None, metavar="F1,F2,...",
              help="Frequency continuation: low-pass cutoffs in Hz, fitted from low to high.")
@click.option("--vmin", type=float, default=None, help="Lower velocity bound in m/s (default: the survey's).")
@click.option("--vmax", type=float, default=None, help="Upper velocity bound in m/s (default: the survey's).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("refined"),
              show_default=True, help="Directory for velocity.nc, history.json and figures.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@handles_errors
def refine(initial_path: Path | None, backbone: str | None, pretrained: str | None, weights: Path | None,
           adapter: Path | None, normalization: Path | None, observed_path: Path, survey_name: str | None,
           physics_name: str,
           overrides: tuple[str, ...], wavelet: str | None, iterations: int, lr: float, step_rule: str,
           smooth: float | None, mute: int | None, depth_power: float | None, tv: float | None, prior: float,
           sobolev: float, regularization: str, time_limit: float | None, holdout: int | None,
           frequencies: str | None, vmin: float | None, vmax: float | None, device: str, out_dir: Path,
           progress: bool) -> None:
    """Refine a velocity model by full-waveform inversion through a physics plugin.

    \b
    Writes, in --out:
      velocity.nc    the refined model (m/s), with provenance in its attributes
      initial.nc     with --backbone: its prediction, the starting model
      history.json   the misfit per iteration, start and end misfit, settings
      config.json    the resolved settings; metrics.json: start and end misfit
      velocity.png   initial and refined models side by side
      misfit.png     the misfit history
      wavelet.png    with --wavelet estimate: the estimated source wavelet in the
                     refined model (also in history.json)

    \b
    Examples:
      fwi refine --initial predicted.nc --observed shots.nc --survey openfwi \\
                 --iterations 100 --frequencies 5,10 -o physics.misfit=trace-l2
      fwi refine --backbone vit --observed shots.nc --iterations 100
      fwi refine --backbone vit --observed line.sgy --wavelet estimate --iterations 30
    """
    from ..engine.jobs.refine import refine_files
    from ..manager import get_plugin_manager

    cutoffs = _frequencies(frequencies)
    per_kind = _component_options(overrides, with_backbone=bool(backbone))
    done = refine_files(observed_path=observed_path, out=out_dir, initial_path=initial_path, backbone=backbone,
                        pretrained=pretrained, weights=weights, adapter=adapter, normalization=normalization,
                        backbone_options=per_kind["backbone"], survey=survey_name, physics=physics_name,
                        physics_options=per_kind["physics"], wavelet=wavelet, iterations=iterations, lr=lr,
                        step=step_rule, smooth=smooth, mute=mute, depth_power=depth_power, tv=tv, prior=prior,
                        sobolev=sobolev, regularization=regularization,
                        time_limit=time_limit, holdout=holdout, frequencies=cutoffs, vmin=vmin, vmax=vmax,
                        device=device, progress=progress, notify=get_plugin_manager().notify)
    _report(done, iterations=iterations, out_dir=out_dir)


def _component_options(overrides: tuple[str, ...], *, with_backbone: bool) -> dict[str, dict[str, str]]:
    """The ``-o KIND.KEY=VALUE`` options by kind: physics options, and backbone ones with ``--backbone``."""
    from ..errors import OptionError

    per_kind, plain = split_overrides(parse_overrides(overrides))
    if plain:
        raise OptionError(f"-o {next(iter(plain))}=...: fwi refine takes only physics.KEY=VALUE options")
    allowed = ("physics", "backbone") if with_backbone else ("physics",)
    for kind, values in per_kind.items():
        if kind not in allowed and values:
            raise OptionError(f"-o {kind}.{next(iter(values))}=...: fwi refine takes only "
                              f"{' and '.join(allowed)} options")
    return per_kind


def _report(done: Any, *, iterations: int, out_dir: Path) -> None:
    """What the refinement did, in a few lines: the misfit, the held-out shots, the wavelet, the files."""
    result, estimated = done.result, done.wavelet
    click.echo(f"misfit {result.initial_misfit:.4g} -> {result.final_misfit:.4g} "
               f"({100 * result.reduction:.1f}% lower) after {iterations} iterations")
    if result.holdout_shots:
        click.echo(result.holdout_note())
    if result.regularization is not None:
        click.echo(f"regularization chosen by the held-out shots: {result.regularization['chosen']}")
    if estimated is not None:
        import numpy as np

        click.echo(f"estimated source wavelet explains {100 * done.metrics['wavelet_fit']:.1f}% of the data energy "
                   f"(the survey's as simulated: {100 * float(np.mean(estimated.fit_unfiltered)):.1f}%)")
    click.echo(f"wrote {out_dir / 'velocity.nc'}, history.json, velocity.png, misfit.png"
               + (", wavelet.png" if estimated is not None else ""))

"""``fwi refine``: physics-based FWI of a velocity model against recorded gathers."""

from __future__ import annotations

import json
from pathlib import Path

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
              help="Gradient steps in all.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True,
              help="Step size as a fraction of the velocity range (vmax - vmin).")
@click.option("--step", "step_rule", type=click.Choice(["normalized", "adam"]), default="normalized",
              show_default=True, help="Update rule: steepest descent scaled to a largest step of --lr, or Adam.")
@click.option("--smooth", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Smooth the gradient with a Gaussian of this many grid cells (0: none).")
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
           overrides: tuple[str, ...], wavelet: str | None, iterations: int, lr: float, step_rule: str, smooth: float,
           frequencies: str | None,
           vmin: float | None, vmax: float | None, device: str, out_dir: Path, progress: bool) -> None:
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
    import numpy as np

    from .. import api
    from ..data.io import read_gathers, read_velocity, survey_from_attrs, write_velocity
    from ..engine import figures
    from ..engine.refine import refine as run_refine
    from ..errors import DataError, OptionError
    from ..options import to_dict
    from ..survey import Survey

    cutoffs = _frequencies(frequencies)
    per_kind, plain = split_overrides(parse_overrides(overrides))
    if plain:
        raise OptionError(f"-o {next(iter(plain))}=...: fwi refine takes only physics.KEY=VALUE options")
    allowed = ("physics", "backbone") if backbone else ("physics",)
    for kind, values in per_kind.items():
        if kind not in allowed and values:
            raise OptionError(f"-o {kind}.{next(iter(values))}=...: fwi refine takes only "
                              f"{' and '.join(allowed)} options")
    if (initial_path is None) == (backbone is None):
        raise OptionError("give the starting model as --initial FILE or --backbone NAME (its prediction), "
                          "one of the two")
    model_flags = {"--pretrained": pretrained, "--weights": weights, "--adapter": adapter,
                   "--normalization": normalization}
    stray = [flag for flag, value in model_flags.items() if value is not None]
    if initial_path is not None and stray:
        raise OptionError(f"{stray[0]} goes with --backbone, not --initial")
    if backbone is not None:
        from .predict import weights_source

        # The weights are checked before any data is read.
        source, weights_config = weights_source(backbone, pretrained, weights, per_kind["backbone"])

    observed, observed_attrs = read_gathers(observed_path)
    if survey_name is not None:
        survey = Survey.load(survey_name)
    else:
        survey = survey_from_attrs(observed_attrs, where=str(observed_path)) or Survey.openfwi()

    expected = (survey.n_shots, survey.nt, survey.n_receivers)
    if observed.shape[1:] != expected:
        raise DataError(f"{observed_path}: gathers have (shot, time, receiver) = {observed.shape[1:]}, "
                        f"the survey expects {expected}")
    start: dict[str, object] = {}
    if backbone is not None:
        from ..acquisition import Grid
        from ..engine.predict import resolve_device
        from ..specs import IOShape
        from .predict import predict_velocity

        shape = IOShape(shots=survey.n_shots, time=survey.nt, receivers=survey.n_receivers,
                        depth=survey.nz, width=survey.nx)
        velocity, start = predict_velocity(
            observed, backbone=backbone, options=per_kind["backbone"], source=source, weights_config=weights_config,
            adapter=adapter, normalization=normalization, shape=shape, batch_size=32, device=resolve_device(device),
            progress=progress, where="--observed", survey=survey,
            grid=Grid(nz=survey.nz, nx=survey.nx, dx=survey.dx))
        if velocity.shape[-2:] != (survey.nz, survey.nx):
            raise DataError(f"--backbone {backbone} predicts a {velocity.shape[-2]} x {velocity.shape[-1]} grid, "
                            f"the survey's is {survey.nz} x {survey.nx}")
        initial_path = out_dir / "initial.nc"
    else:
        velocity, _ = read_velocity(initial_path)
    if velocity.shape[0] != observed.shape[0]:
        raise DataError(f"{initial_path} holds {velocity.shape[0]} model(s) but {observed_path} holds "
                        f"{observed.shape[0]} set(s) of gathers")
    if not np.all(np.isfinite(velocity)) or float(np.nanmin(velocity)) <= 0:
        raise DataError(f"{initial_path}: velocity must be finite and positive (m/s)")

    spec = api.get_spec("physics", physics_name)
    if wavelet is not None:
        if "wavelet" not in getattr(spec.options, "__dataclass_fields__", {}):
            raise OptionError(f"--wavelet: physics {spec.name!r} has no 'wavelet' option (it cannot estimate "
                              f"a source wavelet); use a physics that has, for example deepwave")
        given = per_kind["physics"].get("wavelet")
        if given is not None and str(given) != wavelet:
            raise OptionError(f"--wavelet {wavelet} disagrees with -o physics.wavelet={given}; give one of them")
        per_kind["physics"]["wavelet"] = wavelet
    options = spec.parse_options(per_kind["physics"])
    physics = spec.load()(options, survey=survey)
    lo = survey.vmin if vmin is None else vmin
    hi = survey.vmax if vmax is None else vmax
    # The starting model is clipped into the bounds (a prediction may overshoot a little);
    # what is left to check is the grid and whether the survey can simulate it.
    survey.check_velocity(np.clip(velocity, max(lo, survey.vmin), min(hi, survey.vmax)),
                          accuracy=int(getattr(options, "accuracy", 4)), name=str(initial_path))

    settings = {
        "command": "refine", "initial": str(initial_path), "observed": str(observed_path),
        "survey": survey.to_dict(), "physics": spec.name, "physics_options": to_dict(options),
        "physics_version": physics.version, "iterations": iterations, "lr": lr,
        "step": step_rule, "smooth": smooth,
        "frequencies": list(cutoffs) if cutoffs else None, "vmin": lo, "vmax": hi,
    }
    from ..io_utils import atomic_write_text
    from ..manager import get_plugin_manager

    if start:
        settings["start"] = start
    out_dir.mkdir(parents=True, exist_ok=True)
    if backbone is not None:
        write_velocity(initial_path, velocity, dx=survey.dx,
                       attrs={"generator": "fwi refine", "stage": "initial", **start, "input": str(observed_path)})
    atomic_write_text(out_dir / "config.json", json.dumps(settings, indent=2) + "\n")
    get_plugin_manager().notify("fwi_run_started", run_dir=out_dir, config=settings)

    result = run_refine(velocity, observed, physics=physics, iterations=iterations, lr=lr, step=step_rule,
                        smooth=smooth, vmin=vmin,
                        vmax=vmax, frequencies=cutoffs, device=device, progress=progress)

    history = {**result.to_dict(), "settings": settings}
    estimated = None
    if getattr(options, "wavelet", "survey") == "estimate":
        from ..wavelet import estimate_wavelet

        estimated = estimate_wavelet(physics, result.velocity, observed,
                                     max_lag=getattr(options, "wavelet_lag", None),
                                     damping=float(getattr(options, "wavelet_damping", 1e-3)))
        history["wavelet"] = estimated.to_dict()

    write_velocity(out_dir / "velocity.nc", result.velocity, dx=survey.dx,
                   attrs={"generator": "fwi refine", "refine": settings,
                          "initial_misfit": result.initial_misfit, "final_misfit": result.final_misfit})
    atomic_write_text(out_dir / "history.json",
                      json.dumps(history, indent=2) + "\n")
    figures.velocity_comparison(out_dir / "velocity.png", {"initial": velocity, "refined": result.velocity},
                                dx=survey.dx, title="refinement")
    figures.misfit_history(out_dir / "misfit.png", result.history, title=f"refinement ({spec.name})")
    if estimated is not None:
        from ..wavelet import wavelet_figure

        wavelet_figure(out_dir / "wavelet.png", estimated, assumed=survey.wavelet_samples(),
                       title="estimated source wavelet (refined model)")
    metrics = {"initial_misfit": result.initial_misfit, "final_misfit": result.final_misfit,
               "reduction": result.reduction, "iterations": iterations}
    if estimated is not None:
        metrics["wavelet_fit"] = float(np.mean(estimated.fit))
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    get_plugin_manager().notify("fwi_run_finished", run_dir=out_dir, metrics=metrics)
    click.echo(f"misfit {result.initial_misfit:.4g} -> {result.final_misfit:.4g} "
               f"({100 * result.reduction:.1f}% lower) after {iterations} iterations")
    if estimated is not None:
        click.echo(f"estimated source wavelet explains {100 * metrics['wavelet_fit']:.1f}% of the data energy "
                   f"(the survey's as simulated: {100 * float(np.mean(estimated.fit_unfiltered)):.1f}%)")
    click.echo(f"wrote {out_dir / 'velocity.nc'}, history.json, velocity.png, misfit.png"
               + (", wavelet.png" if estimated is not None else ""))

"""``fwi evaluate``: OpenFWI metrics of any predicted velocity against any truth."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import ComponentName, echo_json, handles_errors, parse_overrides, plugin_option, split_overrides

if TYPE_CHECKING:
    import numpy as np

_VELOCITY_FILE = click.Path(dir_okay=True, path_type=Path)


@click.command("evaluate")
@click.option("--predicted", required=True, type=_VELOCITY_FILE, metavar="FILE",
              help="Predicted velocity in m/s (.npy, .nc, .zarr, .sgy).")
@click.option("--truth", type=_VELOCITY_FILE, metavar="FILE",
              help="True velocity in m/s, same grid and sample count. Optional with --physics.")
@click.option("--vmin", type=float, default=1500.0, show_default=True,
              help="Velocity (m/s) mapped to -1 on the normalised scale of MAE and RMSE.")
@click.option("--vmax", type=float, default=4500.0, show_default=True,
              help="Velocity (m/s) mapped to +1.")
@click.option("--physics", type=ComponentName("physics"), metavar="NAME",
              help="Also simulate gathers from the prediction and score them against --observed.")
@click.option("--observed", type=click.Path(path_type=Path), metavar="FILE",
              help="Observed shot gathers (.npy, .nc, .zarr, .sgy) for the data misfit.")
@click.option("--survey", metavar="FILE|PRESET",
              help="Acquisition of --observed (.toml/.json, or openfwi/small); default: the file's own.")
@click.option("-o", "--option", "overrides", multiple=True, metavar="physics.KEY=VALUE",
              help="Physics option (repeatable), e.g. -o physics.accuracy=4.")
@click.option("--device", default="auto", show_default=True, help="Where to simulate: auto, cpu, cuda.")
@click.option("--per-sample", is_flag=True, help="Include every sample's metrics in the output.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON instead of a table.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.json",
              help="Also write the metrics to this JSON file.")
@plugin_option
@handles_errors
def evaluate(predicted: Path, truth: Path | None, vmin: float, vmax: float, physics: str | None,
             observed: Path | None, survey: str | None, overrides: tuple[str, ...], device: str,
             per_sample: bool, as_json: bool, out: Path | None, plugins: tuple[str, ...]) -> None:
    """Score predicted velocity: MAE and RMSE (normalised and m/s) and SSIM, as OpenFWI reports them.

    \b
    Examples:
      fwi evaluate --predicted runs/r/predictions.nc --truth test_velocity.npy
      fwi evaluate --predicted pred.nc --physics deepwave --observed shots.sgy --json
    """
    from ..engine.evaluate import evaluate as run_evaluate
    from ..engine.jobs.rundir import summary_table, to_jsonable
    from ..errors import OptionError

    if truth is None and physics is None:
        raise OptionError("fwi evaluate needs --truth FILE, or --physics NAME with --observed FILE, or both")
    if (physics is None) != (observed is None):
        raise OptionError("--physics and --observed go together: the data misfit simulates gathers from "
                          "--predicted and compares them with --observed")
    per_kind, plain = split_overrides(parse_overrides(overrides))
    stray = [f"{kind}.{key}" for kind, values in per_kind.items() if kind != "physics" for key in values]
    stray += list(plain)
    if stray:
        raise OptionError(f"-o {stray[0]}: fwi evaluate takes only physics options (-o physics.KEY=VALUE)")

    pred, true = _velocities(predicted, truth)
    physics_obj = obs = None
    if physics is not None and observed is not None:
        obs, physics_obj = _observed_and_physics(observed, survey, physics, per_kind["physics"], pred.shape,
                                                 predicted=predicted)
    result = run_evaluate(pred, true, vmin=vmin, vmax=vmax, physics=physics_obj, observed=obs,
                          per_sample=per_sample, device=device, progress=not as_json)
    result = to_jsonable(result)
    if out is not None:
        from ..engine.jobs.rundir import RunDirectory

        RunDirectory(out.parent).write_json(out.name, result)
    if as_json:
        echo_json(result)
    else:
        click.echo(summary_table(result))
        if out is not None:
            click.echo(f"metrics written to {out}")


def _velocities(predicted: Path, truth: Path | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The predicted velocity, and the true velocity checked to have the same samples and grid."""
    from ..data.io import read_velocity
    from ..errors import DataError

    pred, _ = read_velocity(predicted)
    true = None
    if truth is not None:
        true, _ = read_velocity(truth)
        if true.shape != pred.shape:
            raise DataError(f"--predicted {predicted} holds velocity of shape {pred.shape} but --truth {truth} "
                            f"holds {true.shape}; they must have the same samples and grid")
    return pred, true


def _observed_and_physics(observed: Path, survey: str | None, physics: str, options: dict[str, Any],
                          predicted_shape: tuple[int, ...], *, predicted: Path) -> tuple[np.ndarray, Any]:
    """The observed gathers, and the physics built for their survey (given, or the file's own)."""
    from .. import api
    from ..data.io import read_gathers, survey_from_attrs
    from ..errors import ConfigError, DataError
    from ..survey import Survey

    obs, obs_attrs = read_gathers(observed)
    geometry = Survey.load(survey) if survey else survey_from_attrs(obs_attrs, where=str(observed))
    if geometry is None:
        raise ConfigError(f"--observed {observed} does not say how it was recorded; pass --survey FILE "
                          f"(or a preset: openfwi, small)")
    if (geometry.nz, geometry.nx) != predicted_shape[-2:]:
        raise DataError(f"the survey of --observed {observed} has a {geometry.nz} x {geometry.nx} grid but "
                        f"--predicted {predicted} is {predicted_shape[-2]} x {predicted_shape[-1]}")
    return obs, api.build_physics(physics, options, survey=geometry)

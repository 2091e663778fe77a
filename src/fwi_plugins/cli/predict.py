"""``fwi predict``: velocity from shot gathers with a (pretrained, fine-tuned or adapted) backbone.

The job itself is :func:`fwi_plugins.engine.jobs.predict.predict_files`; this module parses.
"""

from __future__ import annotations

from pathlib import Path

import click

from .common import ComponentName, handles_errors, parse_overrides, plugin_option, split_overrides

__all__ = ["predict"]


def _parse_grid(value: str | None) -> tuple[int, int] | None:
    from ..errors import OptionError

    if value is None:
        return None
    parts = value.lower().replace(",", "x").split("x")
    try:
        nz, nx = (int(p) for p in parts)
    except ValueError:
        raise OptionError(f"--grid {value!r}: expected DEPTHxWIDTH in cells, for example 70x70") from None
    if nz <= 0 or nx <= 0:
        raise OptionError(f"--grid {value!r}: both sizes must be positive")
    return nz, nx



@click.command("predict")
@click.option("--backbone", required=True, type=ComponentName("backbone"), metavar="NAME",
              help="Backbone network (fwi list backbone).")
@click.option("--pretrained", metavar="NAME|PATH|none",
              help="Shipped weights of the backbone (default: its default foundation), a .safetensors file, "
                   "or none for an untrained network.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.safetensors",
              help="Full weights of the backbone (for example from fwi pretrain or a full fine-tune), "
                   "instead of --pretrained.")
@click.option("--adapter", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="PEFT adapter folder (peft layout) saved by fwi run, loaded on top of the weights.")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="Shot gathers (sample, shot, time, receiver): .npy, .nc, .zarr or .sgy.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Output folder: velocity.nc, velocity.sgy and velocity.png.")
@click.option("-o", "--option", "overrides", multiple=True, metavar="backbone.KEY=VALUE",
              help="Backbone option (repeatable); default: the options the weights were built with, "
                   "which an option may only repeat.")
@click.option("--normalization", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.json",
              help="Normalisation the model was trained with; default: found beside the adapter/weights.")
@click.option("--survey", "survey_name", metavar="FILE|PRESET",
              help="Acquisition of the input (.toml/.json survey file, or openfwi/small); default: the input's "
                   "own coordinates or headers. Gathers of any acquisition are mapped onto the model's.")
@click.option("--grid", metavar="ZxX", help="Velocity grid in cells; default: the input's survey (its depth: "
                                            "what the recording sees, when the input does not say), else R x R.")
@click.option("--dx", type=float, help="Grid spacing in metres; default: the input's survey, else 10.")
@click.option("--shaping", default="auto", show_default=True, metavar="auto|estimate|none|FILE",
              help="Shape the data's source wavelet and amplitude to those the weights were trained with: "
                   "estimate (from the data, simulating with deepwave), a wavelet file (.npy or text, sampled "
                   "at the weights' interval from time 0), none; auto estimates for weights that record their "
                   "acquisition.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Samples per batch.")
@click.option("--device", default="auto", show_default=True, help="auto (GPU when present), cpu or cuda.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@plugin_option
@handles_errors
def predict(backbone: str, pretrained: str | None, weights: Path | None, adapter: Path | None, input_path: Path,
            out: Path, overrides: tuple[str, ...], normalization: Path | None, survey_name: str | None,
            grid: str | None, dx: float | None, shaping: str, batch_size: int, device: str, quiet: bool,
            plugins: tuple[str, ...]) -> None:
    """Predict velocity from shot gathers, in batches, and write it as netCDF, SEG-Y and PNG.

    The backbone is built the way its weights were (options, normalisation), from the
    backbone's default foundation unless --pretrained or --weights says otherwise.

    \b
    Examples:
      fwi predict --backbone vit --input shots.npy --out pred/
      fwi predict --backbone vit --adapter runs/r/adapter --input field.sgy --out pred/ --device cuda
      fwi predict --backbone vit --weights foundation.safetensors --input shots.npy --out pred/
    """
    from ..engine.jobs.predict import predict_files
    from ..errors import OptionError
    from ..manager import get_plugin_manager

    per_kind, plain = split_overrides(parse_overrides(overrides))
    stray = [f"{kind}.{key}" for kind, values in per_kind.items() if kind != "backbone" for key in values]
    stray += list(plain)
    if stray:
        raise OptionError(f"-o {stray[0]}: fwi predict takes only backbone options (-o backbone.KEY=VALUE)")
    requested_grid = _parse_grid(grid)
    result = predict_files(backbone=backbone, input_path=input_path, out=out, pretrained=pretrained, weights=weights,
                           adapter=adapter, options=per_kind["backbone"], normalization=normalization,
                           survey=survey_name,
                           grid=requested_grid, dx=dx, batch_size=batch_size, device=device, progress=not quiet,
                           notify=get_plugin_manager().notify, shaping=shaping)
    velocity = result.velocity
    n, _, nz, nx = velocity.shape
    click.echo(f"predicted {n} velocity model(s) of {nz} x {nx} cells ({velocity.min():.0f}-"
               f"{velocity.max():.0f} m/s)")
    for path in result.paths:
        click.echo(f"  {path}")

"""``fwi simulate``: shot gathers from velocity models (a file or a dataset) with a physics plugin."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from .common import ComponentName, handles_errors, parse_overrides, plugin_option, split_overrides

_OUT_SUFFIXES = (".nc", ".zarr", ".sgy", ".segy", ".npy")


@click.command("simulate")
@click.option("--velocity", "velocity_path", type=click.Path(path_type=Path), default=None,
              help="Velocity file (.npy, .nc, .zarr, .sgy), (N, 1, Z, X) m/s.")
@click.option("--dataset", type=ComponentName("dataset"), default=None,
              help="A dataset to simulate instead of a file (see: fwi list datasets).")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="train", show_default=True,
              help="Which split of --dataset.")
@click.option("--survey", default=None, metavar="PRESET|FILE",
              help="Acquisition: 'openfwi', 'small' or a .toml/.json file. Default: the dataset's, or "
                   "OpenFWI's layout on the velocity file's grid.")
@click.option("--physics", type=ComponentName("physics"), default="deepwave", show_default=True,
              help="Forward model (see: fwi list physics).")
@click.option("-o", "--option", "overrides", multiple=True, metavar="KIND.KEY=VALUE",
              help="Component option, e.g. -o physics.accuracy=8 -o dataset.n_train=100 (repeatable).")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True,
              help="Gathers file to write: .nc, .zarr, .sgy/.segy or .npy.")
@click.option("--velocity-out", type=click.Path(path_type=Path), default=None,
              help="Also write the velocity maps simulated (same formats), e.g. a dataset's labels.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Simulation cache folder (default: $FWI_CACHE_DIR or the user cache directory).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Models per simulation call (default: the physics' own, else 16).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@plugin_option
@handles_errors
def simulate(velocity_path: Path | None, dataset: str | None, split: str, survey: str | None, physics: str,
             overrides: tuple[str, ...], out_path: Path, velocity_out: Path | None, cache_dir: Path | None,
             batch_size: int | None, progress: bool, plugins: tuple[str, ...]) -> None:
    """Simulate shot gathers from velocity models and write them with their survey and provenance.

    \b
    Examples:
      fwi simulate --dataset curvevel-a -o dataset.n_train=64 --out curvevel.nc
      fwi simulate --dataset salt --split test --out salt.sgy --velocity-out salt_velocity.sgy
      fwi simulate --velocity model.npy --survey survey.toml -o physics.accuracy=8 --out gathers.zarr
    """
    from .. import api
    from ..data.cache import cached_gathers
    from ..data.families import resolve_survey
    from ..data.io import read_velocity, write_gathers, write_velocity
    from ..errors import OptionError
    from ..options import to_dict

    if (velocity_path is None) == (dataset is None):
        raise OptionError("give exactly one of --velocity FILE or --dataset NAME")
    if out_path.suffix.lower() not in _OUT_SUFFIXES:
        raise OptionError(f"--out {out_path}: expected a file ending in {', '.join(_OUT_SUFFIXES)}")
    per_kind, plain = split_overrides(parse_overrides(overrides))
    if plain:
        raise OptionError(f"-o {next(iter(plain))}: options of fwi simulate are physics.KEY=VALUE or "
                          f"dataset.KEY=VALUE")
    attrs: dict[str, Any]
    if dataset is not None:
        dataset_options = dict(per_kind["dataset"])
        spec = api.get_spec("dataset", dataset)
        if survey is not None:
            if not any(info.name == "survey" for info in spec.describe_options()):
                raise OptionError(f"--survey: dataset {dataset!r} takes no survey option")
            dataset_options.setdefault("survey", survey)
        ds = api.load_dataset(dataset, dataset_options)
        velocity = ds.velocity(split)
        the_survey = ds.survey
        dx = the_survey.dx
        attrs = {**{k: v for k, v in ds.attrs.items()}, "dataset": ds.name, "split": split}
    else:
        assert velocity_path is not None
        if per_kind["dataset"]:
            raise OptionError("-o dataset.* options need --dataset")
        velocity, vattrs = read_velocity(velocity_path)
        dx = float(vattrs.get("dx", 10.0))
        nz, nx = velocity.shape[-2:]
        the_survey = resolve_survey(survey or "openfwi", nz, nx)
        if survey in (None, "openfwi", "small") and dx != the_survey.dx:
            from dataclasses import replace

            the_survey = replace(the_survey, dx=dx)
        ds = None
        attrs = {"generator": f"file {velocity_path}",
                 **{k: v for k, v in vattrs.items() if k in ("generator", "seed", "family", "options")},
                 "velocity_file": str(velocity_path)}
    if velocity.shape[0] == 0:
        raise OptionError(f"split {split!r} of dataset {dataset!r} is empty; choose another --split "
                          f"or set -o dataset.n_{split}=N")
    model = api.build_physics(physics, per_kind["physics"], survey=the_survey)
    identity = ds.cache_identity(split) if ds is not None else {"velocity_file": attrs["velocity_file"]}
    click.echo(f"simulating {velocity.shape[0]} model(s) of {velocity.shape[2]} x {velocity.shape[3]} with "
               f"{physics}: {the_survey.n_shots} shots, {the_survey.nt} samples, {the_survey.n_receivers} "
               f"receivers", err=True)
    started = time.perf_counter()
    gathers = cached_gathers(velocity, model, identity, cache_dir=cache_dir, progress=progress,
                             desc=f"simulating {dataset or velocity_path.name}", batch_size=batch_size)
    elapsed = time.perf_counter() - started
    attrs.update(physics=physics, physics_version=model.version,
                 physics_options=to_dict(getattr(model, "options", None)) if hasattr(model, "options") else {})
    if ds is not None:
        ds.set_normalization(ds.normalization.fit_gathers(gathers) if not ds.normalization.fitted
                             else ds.normalization)
        attrs["normalization"] = ds.normalization.to_dict()
    write_gathers(out_path, gathers, survey=the_survey, attrs=attrs)
    click.echo(f"wrote {out_path}: gathers {tuple(gathers.shape)} in {elapsed:.1f} s "
               f"({velocity.shape[0] / max(elapsed, 1e-9):.1f} samples/s, cached ones included)")
    if velocity_out is not None:
        write_velocity(velocity_out, velocity, dx=dx, attrs=attrs)
        click.echo(f"wrote {velocity_out}: velocity {tuple(velocity.shape)} m/s")

"""``fwi simulate``: shot gathers from velocity models (a file or a dataset) with a physics plugin.

The command parses; the job is :func:`fwi_plugins.engine.jobs.simulate.simulate_files`.
"""

from __future__ import annotations

from pathlib import Path

import click

from .common import ComponentName, handles_errors, parse_overrides, plugin_option, split_overrides


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
    from ..engine.jobs.simulate import check_request, simulate_files
    from ..errors import OptionError

    check_request(velocity_path, dataset, out_path, velocity_out)  # reported ahead of a malformed -o option
    per_kind, plain = split_overrides(parse_overrides(overrides))
    if plain:
        raise OptionError(f"-o {next(iter(plain))}: options of fwi simulate are physics.KEY=VALUE or "
                          f"dataset.KEY=VALUE")
    simulate_files(out=out_path, velocity_path=velocity_path, dataset=dataset, split=split, survey=survey,
                   physics=physics, physics_options=per_kind["physics"], dataset_options=per_kind["dataset"],
                   velocity_out=velocity_out, cache_dir=cache_dir, batch_size=batch_size, progress=progress,
                   echo=click.echo)

"""``fwi runs``: list run folders with their key metrics, or compare some side by side."""

from __future__ import annotations

from pathlib import Path

import click

from .common import echo_json, handles_errors


@click.command("runs", context_settings={"ignore_unknown_options": False})
@click.argument("paths", nargs=-1, metavar="[compare] [DIR ...]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@handles_errors
def runs(paths: tuple[str, ...], as_json: bool) -> None:
    """List run folders with their key metrics, or compare runs side by side.

    \b
    fwi runs [DIR ...]          every run folder in or below each DIR (default: ./runs):
                                backbone, PEFT, dataset, zero-shot and adapted SSIM and MAE,
                                steps, wall time, complete or partial
    fwi runs compare RUN RUN ...  one column per run, a row per metric, then every setting in
                                which they differ; '*' marks rows that differ, '<' the best value

    \b
    Examples:
      fwi runs
      fwi runs runs/lora-salt runs/adapter-salt --json
      fwi runs compare runs/vit-lora-salt runs/vit-full-salt
    """
    from ..engine.jobs.runs import compare_rows, find_runs, format_compare, format_list, read_run
    from ..errors import OptionError

    if paths and paths[0] == "compare":
        folders = [Path(p) for p in paths[1:]]
        if len(folders) < 2:
            raise OptionError("fwi runs compare needs at least two run folders: fwi runs compare RUN RUN ...")
        summaries = [read_run(folder) for folder in folders]
        if as_json:
            echo_json({"runs": [str(s.path) for s in summaries], "rows": compare_rows(summaries)})
        else:
            click.echo(format_compare(summaries))
        return
    roots = [Path(p) for p in paths] or [Path("runs")]
    summaries = [read_run(folder) for folder in find_runs(roots)]
    if as_json:
        echo_json([s.to_dict() for s in summaries])
    elif not summaries:
        click.echo(f"no run folders in {', '.join(map(str, roots))}")
    else:
        click.echo(format_list(summaries, base=Path.cwd()))

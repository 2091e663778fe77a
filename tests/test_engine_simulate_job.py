"""The ``fwi simulate`` job lives in the engine: called directly, it writes what the command writes."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from fwi_plugins.cli import main
from fwi_plugins.data import io
from fwi_plugins.engine.jobs.simulate import simulate_files
from fwi_plugins.errors import OptionError

DATASET = {"n_train": "2", "nz": "20", "nx": "20"}


def _same_gathers(cli_path, job_path):
    (cli, cli_attrs), (job, job_attrs) = io.read_gathers(cli_path), io.read_gathers(job_path)
    np.testing.assert_array_equal(job, cli)
    assert ({k: v for k, v in job_attrs.items() if k not in ("versions", "path")}
            == {k: v for k, v in cli_attrs.items() if k not in ("versions", "path")})


def test_the_job_writes_what_fwi_simulate_writes(tmp_path):
    flags = [a for k, v in DATASET.items() for a in ("-o", f"dataset.{k}={v}")]
    result = CliRunner().invoke(main, ["simulate", "--dataset", "flatvel-b", *flags, "--survey", "small",
                                       "--out", str(tmp_path / "cli.nc"), "--velocity-out", str(tmp_path / "v.nc"),
                                       "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert result.exit_code == 0, result.output
    lines: list[tuple[str, bool]] = []
    done = simulate_files(out=tmp_path / "job.nc", dataset="flatvel-b", dataset_options=DATASET, survey="small",
                          cache_dir=tmp_path / "cache", progress=False,
                          echo=lambda message, err=False: lines.append((message, err)))
    _same_gathers(tmp_path / "cli.nc", tmp_path / "job.nc")
    assert done.paths == [tmp_path / "job.nc"] and done.gathers.shape[0] == 2
    assert lines[0][1] and lines[0][0].startswith("simulating 2 model(s) of 20 x 20 with deepwave")
    assert lines[1] == (lines[1][0], False) and lines[1][0].startswith(f"wrote {tmp_path / 'job.nc'}: gathers")

    # The velocity file written beside the gathers simulates to the same gathers.
    again = simulate_files(out=tmp_path / "again.npy", velocity_path=tmp_path / "v.nc", survey="small",
                           cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_allclose(np.load(tmp_path / "again.npy"), done.gathers, rtol=1e-5,
                               atol=1e-6 * np.abs(done.gathers).max())
    assert again.attrs["velocity_file"] == str(tmp_path / "v.nc")


@pytest.mark.parametrize(("request_args", "message"), [
    ({}, "exactly one of --velocity FILE or --dataset NAME"),
    ({"dataset": "flatvel-b", "velocity_path": "v.npy"}, "exactly one of"),
    ({"dataset": "flatvel-b", "out": "g.txt"}, "expected a file ending in .nc"),
    ({"velocity_path": "v.npy", "dataset_options": {"n_train": 1}}, "-o dataset.* options need --dataset"),
])
def test_the_job_checks_its_request(tmp_path, request_args, message):
    request_args = {"out": "g.nc", **request_args}
    np.save(tmp_path / "v.npy", np.full((1, 1, 20, 20), 2000.0, np.float32))
    request_args = {k: (tmp_path / v if k in ("out", "velocity_path") else v) for k, v in request_args.items()}
    with pytest.raises(OptionError, match=message.replace(".", r"\.").replace("*", r"\*")):
        simulate_files(**request_args, progress=False)
    assert not (tmp_path / "g.nc").exists()

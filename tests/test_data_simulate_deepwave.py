"""``fwi simulate`` and the cache with the real Deepwave physics on a tiny survey.

These need the fwi-deepwave plugin; without it they fail with the reason (the plugin is
part of this repository: ``pip install -e plugins/fwi-deepwave``), rather than skipping.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from fwi_plugins import api
from fwi_plugins.data import io


@pytest.fixture
def deepwave_available():
    assert "deepwave" in api.list_components("physics"), \
        "the deepwave physics is not registered: pip install -e plugins/fwi-deepwave"


def test_dataset_gathers_simulated_with_deepwave_are_cached(deepwave_available, tmp_path):
    ds = api.load_dataset("curvevel-a", {"n_train": 2, "n_val": 0, "n_test": 0, "nz": 20, "nx": 20,
                                         "survey": "small"})
    physics = api.build_physics("deepwave", survey=ds.survey)
    g = ds.gathers("train", physics, cache_dir=tmp_path, progress=False)
    s = ds.survey
    assert g.shape == (2, s.n_shots, s.nt, s.n_receivers) and np.isfinite(g).all() and np.abs(g).max() > 0
    assert ds.normalization.fitted
    unit = ds.normalization.gathers_to_unit(g)
    assert unit.min() == pytest.approx(-1, abs=1e-5) and unit.max() == pytest.approx(1, abs=1e-5)

    class Refuse:
        """Same identity as the real physics, but simulating is an error: the cache must answer."""

        survey, version, options, name = physics.survey, physics.version, physics.options, "deepwave"

        def simulate(self, velocity):
            raise AssertionError("simulated although cached")

    again = api.load_dataset("curvevel-a", {"n_train": 2, "n_val": 0, "n_test": 0, "nz": 20, "nx": 20,
                                            "survey": "small"})
    refuse = Refuse()
    refuse.name = getattr(physics, "name", None) or f"{type(physics).__module__}.{type(physics).__qualname__}"
    np.testing.assert_array_equal(again.gathers("train", refuse, cache_dir=tmp_path, progress=False), g)


@pytest.mark.parametrize("suffix", [".nc", pytest.param(".sgy", marks=pytest.mark.slow)])
def test_fwi_simulate_writes_gathers_with_survey(deepwave_available, tmp_path, suffix):
    from fwi_plugins.cli import main

    out = tmp_path / f"g{suffix}"
    vout = tmp_path / "v.nc"
    result = CliRunner().invoke(main, [
        "simulate", "--dataset", "flatvel-b", "-o", "dataset.n_train=2", "-o", "dataset.nz=20",
        "-o", "dataset.nx=20", "--survey", "small", "--out", str(out), "--velocity-out", str(vout),
        "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert result.exit_code == 0, result.output
    g, attrs = io.read_gathers(out)
    survey = io.survey_from_attrs(attrs)
    assert g.shape == (2, survey.n_shots, survey.nt, survey.n_receivers) and survey.nz == 20
    v, vattrs = io.read_velocity(vout)
    assert v.shape == (2, 1, 20, 20)
    if suffix == ".nc":
        assert attrs["generator"].endswith("flatvel-b") and attrs["physics"] == "deepwave"
        assert "deepwave" in attrs["physics_version"] and attrs["normalization"]["data_min"] < 0
    # Simulating the written velocity file again gives the same gathers.
    out2 = tmp_path / "again.npy"
    result = CliRunner().invoke(main, ["simulate", "--velocity", str(vout), "--survey", "small", "--out", str(out2),
                                       "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(out2), g, rtol=1e-5, atol=1e-6 * np.abs(g).max())


def test_fwi_simulate_errors_are_clear(tmp_path):
    from fwi_plugins.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["simulate", "--out", str(tmp_path / "g.nc")])
    assert result.exit_code == 2 and "exactly one of --velocity FILE or --dataset NAME" in result.output
    result = runner.invoke(main, ["simulate", "--dataset", "flatvel-x", "--out", str(tmp_path / "g.nc")])
    assert result.exit_code == 2 and "Did you mean 'flatvel-" in result.output
    np.save(tmp_path / "kms.npy", np.full((1, 1, 20, 20), 2.5, np.float32))
    result = runner.invoke(main, ["simulate", "--velocity", str(tmp_path / "kms.npy"), "--out", str(tmp_path / "g.nc")])
    assert result.exit_code == 1 and "kms.npy" in result.output and "km/s" in result.output
    assert not (tmp_path / "g.nc").exists()

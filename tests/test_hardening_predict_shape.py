"""fwi predict names the input's mismatch with the acquisition the weights were trained for."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from fwi_plugins.cli import main


@pytest.mark.parametrize(("shape", "message"), [
    ((1, 5, 999, 70), "999 time samples, not 1000"),
    ((1, 4, 1000, 70), "4 shots, not 5"),
    ((1, 5, 1000, 69), "69 receivers, not 70"),
])
def test_gathers_off_the_weights_acquisition_are_refused_naming_the_input(tmp_path, shape, message):
    path = tmp_path / "shots.npy"
    np.save(path, np.zeros(shape, np.float32))
    result = CliRunner().invoke(main, ["predict", "--backbone", "vit", "--input", str(path),
                                       "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1, result.output
    assert "error: --input" in result.output and message in result.output
    assert "trained for 5 shots x 1000 time samples x 70 receivers" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()

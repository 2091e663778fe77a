"""Figures: real PNGs, written atomically, with clear errors for wrong shapes."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fwi_plugins.engine import figures
from fwi_plugins.errors import DataError
from fwi_plugins.survey import Survey

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _read_png(path):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return imread(path)


def _no_leftovers(directory):
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".part")]


def test_velocity_comparison_draws_each_column(tmp_path):
    rng = np.random.default_rng(0)
    true = rng.uniform(1500, 4500, size=(3, 1, 20, 24)).astype(np.float32)
    one = figures.velocity_comparison(tmp_path / "one.png", {"true": true}, max_rows=2)
    three = figures.velocity_comparison(tmp_path / "v.png", {"true": true, "predicted": true + 10,
                                                             "refined": true - 10}, dx=10.0, max_rows=2)
    narrow, wide = _read_png(one), _read_png(three)
    assert wide.shape[1] > 1.8 * narrow.shape[1]
    assert wide.shape[0] == pytest.approx(narrow.shape[0], rel=0.1)
    assert wide[..., :3].std() > 0.05
    _no_leftovers(tmp_path)


def test_velocity_comparison_skips_missing_panels_and_rejects_mismatched_grids(tmp_path):
    v = np.full((20, 20), 3000.0)
    figures.velocity_comparison(tmp_path / "a.png", {"true": v, "predicted": v, "refined": None})
    assert (tmp_path / "a.png").is_file()
    with pytest.raises(DataError, match="different grids"):
        figures.velocity_comparison(tmp_path / "b.png", {"true": v, "predicted": np.zeros((20, 21))})
    with pytest.raises(DataError, match=r"\(N, 1, Z, X\)"):
        figures.velocity_comparison(tmp_path / "c.png", {"true": np.zeros((2, 3, 4, 5))})
    assert not (tmp_path / "b.png").exists()


def test_gather_comparison_with_survey_geometry(tmp_path):
    survey = Survey.small(nz=16, nx=16, nt=100, n_sources=2)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(2, survey.n_shots, survey.nt, survey.n_receivers)).astype(np.float32)
    out = figures.gather_comparison(tmp_path / "g.png", obs, obs * 0.9, survey=survey, shot=1, sample=1)
    assert _read_png(out)[..., :3].std() > 0.05
    alone = figures.gather_comparison(tmp_path / "obs.png", obs[0, 0], dt=0.002, dx=5.0)
    assert _read_png(alone).shape[1] < _read_png(out).shape[1]
    with pytest.raises(DataError, match="shot 5 is out of range"):
        figures.gather_comparison(tmp_path / "x.png", obs, obs, shot=5)
    with pytest.raises(DataError, match="simulated"):
        figures.gather_comparison(tmp_path / "x.png", obs, obs[:, :, :50])
    _no_leftovers(tmp_path)


def test_loss_curves_from_columns_and_records(tmp_path):
    cols = figures.loss_curves(tmp_path / "cols.png", {"train": [1.0, 0.5, 0.2], "val": [1.1, 0.6, 0.3]})
    recs = figures.loss_curves(tmp_path / "recs.png", [
        {"epoch": 1, "train": 1.0, "val": 1.2, "phase": "warmup"},
        {"epoch": 2, "train": 0.4, "val": None},
    ])
    assert _read_png(cols).shape == _read_png(recs).shape
    with pytest.raises(DataError, match="no numeric series"):
        figures.loss_curves(tmp_path / "none.png", {"train": []})


def test_misfit_history_single_and_per_sample(tmp_path):
    figures.misfit_history(tmp_path / "m1.png", np.geomspace(1.0, 0.01, 30))
    figures.misfit_history(tmp_path / "m2.png", np.geomspace(1.0, 0.1, 20)[None] * np.array([[1.0], [2.0]]))
    figures.misfit_history(tmp_path / "m3.png", {"l2": [3, 2, 1]})
    for name in ("m1", "m2", "m3"):
        _read_png(tmp_path / f"{name}.png")
    with pytest.raises(DataError):
        figures.misfit_history(tmp_path / "bad.png", np.zeros((2, 2, 2)))


def test_a_failed_draw_leaves_no_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError):
        figures.loss_curves(tmp_path / "loss.png", {"train": [1, 2]})
    assert list(tmp_path.iterdir()) == []


def test_drawing_leaves_pyplot_alone(tmp_path):
    was_loaded = "matplotlib.pyplot" in sys.modules
    figures.loss_curves(tmp_path / "loss.png", {"train": [1, 2]})
    assert ("matplotlib.pyplot" in sys.modules) == was_loaded

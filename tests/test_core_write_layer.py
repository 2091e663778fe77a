"""One atomic-write layer, one TOML writer, one velocity-units rule."""

from __future__ import annotations

import numpy as np
import pytest

from fwi_plugins.data.io import validate_velocity
from fwi_plugins.errors import DataError, SurveyError
from fwi_plugins.atomic import atomic_dir, replace_dir
from fwi_plugins.settings_files import read_toml_or_json, to_toml
from fwi_plugins.survey import Survey
from fwi_plugins.units import velocity_units_guess


def test_a_folder_is_swapped_in_whole(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("first")
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no temporary left beside it"


def test_a_failed_folder_write_keeps_the_old_folder(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_replace_dir_onto_a_missing_name(tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "x").write_text("1")
    replace_dir(tmp_path / "new", tmp_path / "there")
    assert (tmp_path / "there" / "x").read_text() == "1" and not (tmp_path / "new").exists()


def test_one_toml_writer_round_trips_configs_and_surveys(tmp_path):
    data = {"name": "r", "lr": 1e-5, "none": None, "nan": float("nan"), "opts": {"a": [1, 2], "b": {"c": True}},
            "runs": [{"k": 1}, {"k": 2}]}
    (tmp_path / "c.toml").write_text(to_toml(data))
    back = read_toml_or_json(tmp_path / "c.toml", what="a file", error=ValueError)
    assert back["lr"] == 1e-5 and back["none"] == "none" and np.isnan(back["nan"])
    assert back["opts"] == {"a": [1, 2], "b": {"c": True}} and back["runs"] == [{"k": 1}, {"k": 2}]
    survey = Survey.small()
    assert Survey.load(str(survey.save(tmp_path / "s.toml"))) == survey


@pytest.mark.parametrize(("lo", "hi", "guess"), [(1.5, 4.5, "km/s"), (1.5, 15.0, "km/s"), (1500.0, 4500.0, None),
                                                 (1.5e6, 4.5e6, "mm/s")])
def test_one_units_rule_for_files_and_surveys(lo, hi, guess):
    assert velocity_units_guess(lo, hi) == guess
    v = np.full((1, 1, 8, 8), lo, np.float32)
    v[..., 0, 0] = hi
    if guess is None:
        validate_velocity(v, "v")
        return
    with pytest.raises(DataError, match=f"looks like {guess}"):
        validate_velocity(v, "v")
    survey = Survey.small(nz=8, nx=8)
    with pytest.raises(SurveyError, match="units off by 1000"):
        survey.check_velocity(v)

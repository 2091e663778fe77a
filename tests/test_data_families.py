"""Generated families through the registry: reproducible, any grid, each with its character."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fwi_plugins import api
from fwi_plugins.data import families
from fwi_plugins.errors import OptionError

OPENFWI_STYLE = [n for n in families.FAMILIES if n.endswith(("-a", "-b"))]


def test_every_family_is_registered_with_options():
    names = set(api.list_components("dataset"))
    assert set(families.FAMILIES) | {"openfwi", "files"} <= names
    assert {"salt", "smooth"} <= names  # families OpenFWI lacks


@pytest.mark.parametrize("name", list(families.FAMILIES))
def test_family_contract_and_reproducibility(name):
    ds = api.load_dataset(name, {"n_train": 3, "n_val": 1, "n_test": 2, "nz": 24, "nx": 40, "seed": 5})
    v = ds.velocity("train")
    assert v.shape == (3, 1, 24, 40) and v.dtype == np.float32
    assert 1500 <= v.min() and v.max() <= 4500
    assert (ds.survey.nz, ds.survey.nx) == (24, 40)
    assert ds.attrs["seed"] == 5 and ds.attrs["family"] == name
    again = api.load_dataset(name, {"n_train": 3, "n_val": 1, "n_test": 2, "nz": 24, "nx": 40, "seed": 5})
    np.testing.assert_array_equal(again.velocity("train"), v)
    other = api.load_dataset(name, {"n_train": 3, "nz": 24, "nx": 40, "seed": 6})
    assert not np.array_equal(other.velocity("train"), v)
    # Splits are different maps, and map i does not depend on the split sizes.
    assert not np.array_equal(ds.velocity("test")[0], v[0])
    bigger = api.load_dataset(name, {"n_train": 5, "nz": 24, "nx": 40, "seed": 5})
    np.testing.assert_array_equal(bigger.velocity("train")[:3], v)


@pytest.mark.parametrize("name", OPENFWI_STYLE)
def test_a_variants_increase_with_depth_and_b_variants_invert(name):
    v = families.generate(name, 40, options=families.FAMILIES[name].options(seed=1))[:, 0]
    layers = np.array([len(np.unique(m)) for m in v])
    if name.endswith("-a"):
        assert layers.min() >= 3 and np.median(layers) <= 8
        if "fault" not in name:
            assert (np.diff(v, axis=1) >= 0).all(), "velocity must not decrease with depth in -a families"
    else:
        assert np.median(layers) >= 6
        assert np.mean((np.diff(v, axis=1) < 0).any(axis=(1, 2))) > 0.5, "-b families should have inversions"


def test_flat_curved_and_faulted_shapes():
    flat = families.generate("flatvel-a", 20)[:, 0]
    assert (flat == flat[:, :, :1]).all(), "flat layers are constant across x"
    curved = families.generate("curvevel-a", 20)[:, 0]
    assert np.mean([(m != m[:, :1]).any() for m in curved]) > 0.9
    faulted = families.generate("flatfault-a", 20)[:, 0]
    # A fault makes columns differ, but each side of it stays flat: few distinct column profiles.
    profiles = [len(np.unique(m.T, axis=0)) for m in faulted]
    assert np.median(profiles) > 1


def test_salt_has_a_constant_fast_body_and_smooth_is_smooth():
    s = families.generate("salt", 10, options=families.FAMILIES["salt"].options(salt_velocity=4400.0))[:, 0]
    assert all((m == 4400.0).sum() > 20 for m in s)
    sm = families.generate("smooth", 10)[:, 0]
    assert np.abs(np.diff(sm, axis=1)).max() < 400  # no sharp interfaces
    assert np.median([len(np.unique(m)) for m in sm]) > 1000


def test_bad_family_options_are_option_errors():
    with pytest.raises(OptionError, match="max_layers"):
        api.load_dataset("flatvel-a", {"min_layers": 5, "max_layers": 3})
    with pytest.raises(OptionError, match="vmin"):
        api.load_dataset("curvevel-b", {"vmin": 5000})


def test_survey_file_must_match_grid(tmp_path):
    from fwi_plugins.survey import Survey

    path = Survey.small(nz=20, nx=20).save(tmp_path / "s.toml")
    ds = api.load_dataset("flatvel-a", {"survey": str(path), "nz": 20, "nx": 20, "n_train": 1})
    assert ds.survey.nt == 300
    with pytest.raises(OptionError, match="differs"):
        api.load_dataset("flatvel-a", {"survey": str(path)})


def test_registration_imports_neither_torch_nor_generators():
    code = ("import sys; from fwi_plugins import api; api.list_components('dataset'); "
            "api.get_spec('dataset', 'salt').describe_options(); "
            "print(sorted(m for m in ('torch', 'xarray', 'segyio', 'fwi_plugins.data.families') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

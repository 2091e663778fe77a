"""tiny-layers: reproducible, geologically ordered models, and gathers the framework simulates."""

from __future__ import annotations

import numpy as np
import pytest

from fwi_example.layers import VMAX, VMIN, layered_models, load
from fwi_example.options import TinyLayersOptions
from fwi_plugins.errors import OptionError


def test_models_are_flat_increasing_layers_within_range():
    models = layered_models(20, 32, seed=3)
    assert models.shape == (20, 1, 32, 32) and models.dtype == np.float32
    assert VMIN <= models.min() and models.max() <= VMAX
    columns = models[:, 0, :, 0]
    assert np.array_equal(models[:, 0], np.repeat(columns[:, :, None], 32, axis=2))  # laterally constant
    assert (np.diff(columns, axis=1) >= 0).all()  # velocity grows with depth
    n_layers = {len(np.unique(c)) for c in columns}
    assert n_layers == {2, 3}
    for c in columns:
        tops = np.flatnonzero(np.diff(c)) + 1
        assert np.diff(np.concatenate([[0], tops, [32]])).min() >= 3  # every layer resolved


def test_same_seed_same_models_and_splits_do_not_overlap():
    a = load(TinyLayersOptions(seed=1))
    b = load(TinyLayersOptions(seed=1))
    assert np.array_equal(a.velocity("val"), b.velocity("val"))
    assert not np.array_equal(a.velocity("train"), load(TinyLayersOptions(seed=2)).velocity("train"))
    assert a.split_sizes == {"train": 8, "val": 2, "test": 2}
    assert not np.array_equal(a.velocity("train")[:2], a.velocity("val"))
    assert (a.survey.nz, a.survey.nx, a.has_labels) == (32, 32, True)


def test_max_layers_two_gives_two_layers_only():
    v = load(TinyLayersOptions(max_layers=2, train=6)).velocity("train")
    assert {len(np.unique(m[0, :, 0])) for m in v} == {2}


def test_gathers_are_simulated_with_the_given_physics(tmp_path):
    from fwi_example.convolutional import ConvolutionalPhysics

    ds = load(TinyLayersOptions(train=3, val=1, test=0))
    d = ds.gathers("val", ConvolutionalPhysics(ds.survey), cache_dir=tmp_path, progress=False)
    assert d.shape == (1, ds.survey.n_shots, ds.survey.nt, ds.survey.n_receivers)
    assert np.abs(d).max() > 0.01  # real reflections, not a silent record
    assert ds.normalization.fitted


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="size must be at least 12"):
        TinyLayersOptions(size=10)
    from fwi_example.plugin import fwi_datasets

    spec = next(iter(fwi_datasets()))
    with pytest.raises(OptionError, match="dataset would be empty"):
        spec.parse_options({"train": "0", "val": "0", "test": "0"})

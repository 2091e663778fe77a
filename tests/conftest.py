"""Shared fixtures: every test gets a fresh plugin manager and a private cache."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _fresh_manager(monkeypatch, tmp_path_factory):
    from fwi_plugins.testing import isolated_plugins

    with isolated_plugins(monkeypatch, tmp_path_factory.mktemp("fwi-cache")):
        yield


@pytest.fixture
def direct_waves():
    """Gathers of OpenFWI's survey holding only the direct wave of a 2,000 m/s surface: a valid input
    for tests of fwi predict that are about something else (an empty or random input is refused)."""
    import numpy as np

    from fwi_plugins.survey import Survey
    from fwi_plugins.wavelet import ricker

    survey = Survey.openfwi()
    times = survey.times()
    out = np.zeros((1, survey.n_shots, survey.nt, survey.n_receivers), np.float32)
    for s, (_, sx) in enumerate(survey.sources):
        for r, (_, rx) in enumerate(survey.receivers):
            out[0, s, :, r] = ricker(times, survey.peak_freq, survey.delay + abs(rx - sx) * survey.dx / 2000.0)
    return out


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """``cli(*args)`` runs the ``fwi`` command in ``tmp_path`` with a fresh registry and a cache of its own."""
    from click.testing import CliRunner

    from fwi_plugins.cli import main
    from fwi_plugins.manager import reset_plugin_manager

    monkeypatch.setenv("FWI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    reset_plugin_manager()
    runner = CliRunner()
    yield lambda *args: runner.invoke(main, list(args))
    reset_plugin_manager()

"""Fixtures for the fwi-deepwave tests: a fresh plugin manager and one CPU thread per test."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _fresh_manager(monkeypatch, tmp_path_factory):
    from fwi_plugins.manager import reset_plugin_manager

    for var in ("FWI_DISABLE_PLUGINS", "FWI_DISABLE_PLUGIN_AUTOLOAD", "FWI_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FWI_CACHE_DIR", str(tmp_path_factory.mktemp("fwi-cache")))
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture(autouse=True)
def _one_thread():
    # The test models are a few hundred cells: threads only add synchronisation, and on a
    # shared machine a busy core stalls every step of a multi-threaded propagation.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

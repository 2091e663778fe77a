"""Shared fixtures: every test gets a fresh plugin manager and a private cache."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _fresh_manager(monkeypatch, tmp_path_factory):
    from fwi_plugins.manager import reset_plugin_manager

    for var in ("FWI_DISABLE_PLUGINS", "FWI_DISABLE_PLUGIN_AUTOLOAD", "FWI_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FWI_CACHE_DIR", str(tmp_path_factory.mktemp("fwi-cache")))
    reset_plugin_manager()
    yield
    reset_plugin_manager()

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

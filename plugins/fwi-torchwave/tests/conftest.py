"""Fixtures for the fwi-torchwave tests: a fresh plugin manager and one CPU thread per test."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _fresh_manager(monkeypatch, tmp_path_factory):
    from fwi_plugins.testing import isolated_plugins

    with isolated_plugins(monkeypatch, tmp_path_factory.mktemp("fwi-cache")):
        yield


@pytest.fixture(autouse=True)
def _one_thread():
    # The test models are a few hundred cells: threads only add synchronisation, and on a
    # shared machine a busy core stalls every step of a multi-threaded propagation.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Fixtures for the fwi-tensorboard tests: a fresh plugin manager and one CPU thread per test."""

from fwi_plugins.testing import plugin_test_fixtures

_fresh_manager, _one_thread = plugin_test_fixtures()

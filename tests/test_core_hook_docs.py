"""Meta-tests: every hook is documented with an example and exercised by a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from fwi_plugins import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = hookspecs.REGISTRATION_HOOKS + hookspecs.LIFECYCLE_HOOKS


def test_hook_tables_cover_every_declared_hook():
    declared = {name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("fwi_")}
    assert declared == set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring_with_an_example(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert "Example::" in doc, f"{hook} docstring has no example"
    assert "@hookimpl" in doc, f"{hook} example does not show an implementation"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_plugin_hooks_md(hook):
    text = (ROOT / "docs" / "plugin_hooks.md").read_text()
    section = re.search(rf"^## {hook}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, f"docs/plugin_hooks.md has no section '## {hook}'"
    assert "```python" in section.group(1) and f"def {hook}(" in section.group(1), \
        f"the {hook} section has no complete example implementing it"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook):
    this = Path(__file__).resolve()
    test_files = [p for p in ROOT.glob("**/tests/**/*.py") if p.resolve() != this and ".venv" not in p.parts]
    users = [p for p in test_files if re.search(rf"\b{hook}\b", p.read_text())]
    assert users, f"no test exercises {hook}"

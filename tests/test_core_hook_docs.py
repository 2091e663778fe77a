"""Meta-tests: every hook is documented with an example and exercised by a test."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
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


def exercised_hooks(source: str) -> set[str]:
    """Hook names a test's code implements, calls or notifies: never a comment or a docstring.

    Counted: a function defined with the hook's name (an implementation), an attribute
    with it (``manager.hook.fwi_backbones()``), a call of it by name, and a string literal that is an argument of
    a call (``manager.notify("fwi_epoch_end", ...)``). Plugin source held in a string and
    written out by the test is parsed the same way.
    """
    found: set[str] = set()
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return found
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.add(node.name)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                found.add(node.func.id)  # a hook implementation imported and called directly
            found.update(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "def fwi_" in node.value:
            found |= exercised_hooks(node.value)
    return found & set(HOOKS)


def test_a_mention_in_a_comment_or_docstring_does_not_count():
    assert exercised_hooks('''
        def test_x():
            """Calls fwi_backbones."""
            # fwi_physics is exercised elsewhere
            assert "fwi_datasets"
    ''') == set()
    assert exercised_hooks('''
        PLUGIN = """
        @hookimpl
        def fwi_physics():
            yield spec
        """

        def test_y(manager):
            manager.hook.fwi_backbones()
            manager.notify("fwi_epoch_end", epoch=1)
    ''') == {"fwi_physics", "fwi_backbones", "fwi_epoch_end"}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook):
    this = Path(__file__).resolve()
    test_files = [p for p in ROOT.glob("**/tests/**/*.py") if p.resolve() != this and ".venv" not in p.parts]
    users = [p for p in test_files if hook in exercised_hooks(p.read_text())]
    assert users, f"no test implements, calls or notifies {hook}"

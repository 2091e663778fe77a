"""The plugin author's docs hold up: snippets import what they use, and the example plugin
packages as the docs say (a wheel with its modules and its entry point)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("docs/plugin_hooks.md", "docs/writing_plugins.md")
RUFF = Path(sys.executable).with_name("ruff")


def snippets() -> list[tuple[str, int, str]]:
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            found.append((doc, text[: match.start()].count("\n") + 1, match.group(1)))
    return found


@pytest.mark.skipif(not RUFF.exists(), reason="ruff is not installed beside this Python")
@pytest.mark.parametrize(("doc", "line", "code"), snippets(), ids=[f"{d}:{n}" for d, n, _ in snippets()])
def test_snippet_imports_what_it_uses(doc, line, code):
    """A complete snippet imports or defines every name it uses.

    Fragments from inside a function (indented) and snippets marked ``# excerpt of FILE``
    (whose other names live in that file) are shown for their lines, not run.
    """
    if code.startswith(("# excerpt", " ")):
        pytest.skip("an excerpt")
    compile(code, f"{doc}:{line}", "exec")
    result = subprocess.run([str(RUFF), "check", "--no-cache", "--isolated", "--select", "F821",
                             "--output-format", "concise", "--stdin-filename", "snippet.py", "-"],
                            input=code, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{doc}:{line}: names used but never imported or defined:\n{result.stdout}"


def _wheel(source: Path, out: Path) -> zipfile.ZipFile:
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "--no-index", "-q", "-w", str(out), str(source)],
                            capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return zipfile.ZipFile(wheels[0])


def _copy_plugin(tmp_path: Path) -> Path:
    source = tmp_path / "fwi-example"
    shutil.copytree(ROOT / "plugins" / "fwi-example", source,
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build", "dist"))
    return source


def test_the_example_plugin_builds_a_wheel_with_its_modules_and_entry_point(tmp_path):
    source = _copy_plugin(tmp_path)
    wheel = _wheel(source, tmp_path / "dist")
    names = set(wheel.namelist())
    modules = {f"fwi_example/{p.name}" for p in (source / "src" / "fwi_example").glob("*.py")}
    assert modules and modules <= names, sorted(modules - names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = wheel.read(entry_points).decode()
    assert "[fwi_plugins]" in text and "example = fwi_example.plugin" in text
    metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Name: fwi-example" in metadata and "Requires-Dist: fwi-plugins" in metadata


@pytest.mark.slow
def test_weights_declared_as_package_data_travel_in_the_wheel(tmp_path):
    """writing_plugins.md: weights ship only when declared as package data, as the docs show."""
    source = _copy_plugin(tmp_path)
    weights = source / "src" / "fwi_example" / "weights"
    weights.mkdir()
    (weights / "demo.safetensors").write_bytes(b"\0" * 16)
    without = _wheel(source, tmp_path / "without")
    assert "fwi_example/weights/demo.safetensors" not in without.namelist()

    docs = (ROOT / "docs" / "writing_plugins.md").read_text()
    block = re.search(r"```toml\n(\[tool\.setuptools\.package-data\]\n.*?)```", docs, re.S)
    assert block, "writing_plugins.md shows no [tool.setuptools.package-data] table"
    declared = block.group(1).replace("my_plugin", "fwi_example")
    (source / "pyproject.toml").write_text((source / "pyproject.toml").read_text() + "\n" + declared)
    shutil.rmtree(source / "build", ignore_errors=True)
    with_data = _wheel(source, tmp_path / "with")
    assert "fwi_example/weights/demo.safetensors" in with_data.namelist()


# -- the guide covers every hook and every public testing helper (issue 27) --------------------------

def _guide() -> str:
    return (ROOT / "docs" / "writing_plugins.md").read_text()


def _hooks() -> list[str]:
    from fwi_plugins import hookspecs

    return sorted(name for name in vars(hookspecs) if name.startswith("fwi_") and callable(getattr(hookspecs, name)))


def _testing_helpers() -> list[str]:
    import inspect

    from fwi_plugins import testing

    return sorted(name for name, value in vars(testing).items()
                  if not name.startswith("_") and (inspect.isfunction(value) or inspect.isclass(value))
                  and value.__module__ == testing.__name__)


@pytest.mark.parametrize("hook", _hooks())
def test_the_guide_mentions_every_hook(hook):
    assert f"`{hook}`" in _guide(), f"docs/writing_plugins.md never mentions the hook {hook}"


@pytest.mark.parametrize("helper", _testing_helpers())
def test_the_guide_mentions_every_public_testing_helper(helper):
    assert f"`{helper}`" in _guide(), f"docs/writing_plugins.md never mentions fwi_plugins.testing.{helper}"


def test_the_guide_does_not_miscount_the_hooks():
    text = _guide()
    assert not re.search(r"\bthe other (two|three|four) hooks\b", text), "the guide counts the hooks wrongly"

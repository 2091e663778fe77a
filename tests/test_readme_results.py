"""The README's result tables are the results files' figures (benchmarks/readme_tables.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import readme_tables  # noqa: E402


@pytest.mark.parametrize("name", sorted(readme_tables.TABLES))
def test_each_readme_table_is_rendered_from_its_results_file(name):
    text = (ROOT / "README.md").read_text()
    found = readme_tables.block(text, name)
    assert found is not None, f"README.md has no <!-- {name}:start --> ... <!-- {name}:end --> block"
    assert found == readme_tables.render(name), f"run python benchmarks/readme_tables.py: {name} is stale"


def test_a_changed_figure_is_found(tmp_path):
    name = sorted(readme_tables.TABLES)[0]
    table = readme_tables.render(name)
    edited = table.replace("0.", "0.9", 1)
    assert edited != table
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n<!-- {name}:start -->\n{edited}\n<!-- {name}:end -->\n")
    assert readme_tables.main(["--readme", str(readme), "--check"]) == 1
    assert readme_tables.main(["--readme", str(readme)]) == 0
    assert readme_tables.main(["--readme", str(readme), "--check"]) == 0
    assert readme_tables.block(readme.read_text(), name) == table


def test_the_readme_reads_in_five_minutes():
    """Under 250 lines: the history lives in docs/results.md, which every result section links."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 250
    assert "docs/results.md" in text and (ROOT / "docs" / "results.md").is_file()

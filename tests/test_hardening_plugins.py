"""Plugins that fail gently: a name clash fails only the commands that use the name."""

from __future__ import annotations

import textwrap

import pytest
from click.testing import CliRunner

from fwi_plugins.cli import main
from fwi_plugins.errors import DuplicateNameError
from fwi_plugins.manager import FWIPluginManager

CLASH = textwrap.dedent('''
    from fwi_plugins import BackboneSpec, hookimpl

    @hookimpl
    def fwi_backbones():
        yield BackboneSpec(name="vit", factory="nowhere:nothing", description="a second vit")
''')


@pytest.fixture
def clash(tmp_path):
    path = tmp_path / "clash.py"
    path.write_text(CLASH)
    return str(path)


def test_a_clash_fails_only_its_name(clash):
    manager = FWIPluginManager().load_all()
    manager.load_plugin(clash)
    with pytest.raises(DuplicateNameError, match=r"'vit' is provided twice.*clash\.py.*fwi-plugins"):
        manager.get("backbone", "vit")
    assert manager.get("backbone", "inversionnet").name == "inversionnet"
    assert manager.get("peft", "lora").name == "lora"
    assert len(manager.conflicts()) == 1
    assert {i.name for i in manager.plugin_infos()} >= {clash}


def test_fwi_plugins_reports_the_clash_instead_of_failing(clash):
    result = CliRunner().invoke(main, ["plugins", "--plugin", clash])
    assert result.exit_code == 0, result.output
    assert "conflict: backbone name 'vit' is provided twice" in result.output


@pytest.mark.parametrize(("argv", "code"), [
    (["show", "backbone", "inversionnet"], 0),
    (["list", "peft"], 0),
    (["show", "backbone", "vit"], 2),
])
def test_only_commands_using_the_name_fail(clash, argv, code):
    result = CliRunner().invoke(main, [*argv, "--plugin", clash])
    assert result.exit_code == code, result.output
    if code:
        assert "error:" in result.output and "provided twice" in result.output

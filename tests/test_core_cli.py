"""The ``fwi`` command line: listing, describing, and failing clearly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from fwi_plugins.cli import main

PLUGIN = '''
from dataclasses import dataclass
from fwi_plugins import BackboneSpec, hookimpl
from fwi_plugins.options import option

@dataclass(frozen=True, kw_only=True)
class Opts:
    width: int = option(8, "channels of the first layer")

@hookimpl
def fwi_backbones():
    yield BackboneSpec(name="localnet", factory="os:getcwd", description="a local test net",
                       options=Opts, peft_targets=("conv",), head=("head",))
'''


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("run", "pretrain", "simulate", "predict", "refine", "evaluate", "plugins", "list", "show"):
        assert command in result.output


def test_plugins_json_lists_builtins_with_versions():
    result = invoke("plugins", "--json")
    assert result.exit_code == 0
    infos = json.loads(result.output)
    builtins = [i for i in infos if i["distribution"] == "fwi-plugins"]
    assert builtins and all(i["version"] and i["status"] == "loaded" for i in builtins)


def test_list_and_show_a_plugin_loaded_from_a_file(tmp_path):
    path = tmp_path / "localplug.py"
    path.write_text(PLUGIN)
    result = invoke("list", "backbone", "--json", "--plugin", str(path))
    assert result.exit_code == 0, result.output
    assert "localnet" in [c["name"] for c in json.loads(result.output)]
    result = invoke("show", "backbone", "localnet", "--plugin", str(path))
    assert result.exit_code == 0, result.output
    assert "backbone.width (int, default 8)" in result.output
    assert "channels of the first layer" in result.output
    assert "peft targets: conv" in result.output


def test_show_unknown_name_exits_2_with_a_suggestion(tmp_path):
    path = tmp_path / "localplug2.py"
    path.write_text(PLUGIN)
    result = CliRunner().invoke(main, ["show", "backbone", "localnt", "--plugin", str(path)])
    assert result.exit_code == 2
    assert "Did you mean 'localnet'?" in result.output
    assert "Traceback" not in result.output


def test_unknown_kind_exits_2():
    result = CliRunner().invoke(main, ["list", "backbonez"])
    assert result.exit_code == 2
    assert "Did you mean 'backbone'?" in result.output


def test_missing_plugin_file_is_a_clear_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["list", "--plugin", str(tmp_path / "nope.py")])
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_plugin_raising_on_import_leaves_list_working(tmp_path):
    """The real road: a broken entry point in a fake distribution, through the real executable."""
    info = tmp_path / "fwi_crashy-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fwi-crashy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[fwi_plugins]\ncrashy = fwi_crashy_mod\n")
    (tmp_path / "fwi_crashy_mod.py").write_text("raise ImportError('crashy needs libfoo')\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "fwi_plugins", "list"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "crashy" in proc.stderr and "crashy needs libfoo" in proc.stderr
    assert "backbones (--backbone)" in proc.stdout


NO_HEAVY_IMPORTS = """
import sys
from click.testing import CliRunner
import fwi_plugins
from fwi_plugins.cli import main
for args in (["--help"], ["plugins"], ["plugins", "--json"], ["list"]):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, (args, result.output)
heavy = sorted(m for m in ("torch", "peft", "deepwave", "transformers") if m in sys.modules)
print(",".join(heavy))
"""


def test_help_plugins_and_list_do_not_import_torch_peft_or_deepwave():
    proc = subprocess.run([sys.executable, "-c", NO_HEAVY_IMPORTS], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported: {proc.stdout.strip()}"


@pytest.mark.parametrize("distribution", ["fwi-example", "fwi-deepwave"])
def test_installed_first_party_plugins_are_seen_with_versions(distribution):
    """``make`` installs every plugins/* distribution; the real ``fwi`` must find them."""
    proc = subprocess.run([sys.executable, "-m", "fwi_plugins", "plugins", "--json"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    infos = {i["distribution"]: i for i in json.loads(proc.stdout)}
    assert distribution in infos, f"{distribution} not installed or not discovered: {sorted(infos)}"
    assert infos[distribution]["version"] and infos[distribution]["status"] == "loaded"
    assert sum(infos[distribution]["components"].values()) >= 1

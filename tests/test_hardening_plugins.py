"""Plugins that fail gently: a name clash fails only the commands that use the name; a broken or
misnamed plugin is one clean line, blamed on itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import warnings

import pytest
from click.testing import CliRunner

from fwi_plugins.cli import main
from fwi_plugins import PhysicsSpec
from fwi_plugins.errors import DuplicateNameError, PluginError
from fwi_plugins.manager import FWIPluginManager, PluginLoadWarning

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


# -- a broken installed plugin, strict mode and the block list, through the real command line --------

def _install(root, dist: str, module: str, source: str) -> None:
    """A fake installed distribution declaring ``module`` in the ``fwi_plugins`` group."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[fwi_plugins]\n{dist} = {module}\n")


def _fwi(site, *argv: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FWI_") or k == "FWI_CACHE_DIR"}
    environ.update(env, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "fwi_plugins", *argv], capture_output=True, text=True,
                          env=environ, timeout=120, check=False)


@pytest.fixture
def broken_site(tmp_path):
    _install(tmp_path, "fwi-broken", "fwi_broken_cli", "raise RuntimeError('boom at import')")
    return tmp_path


@pytest.mark.parametrize("argv", [
    ["list", "backbone"],
    ["run", "--backbone", "vit", "--dry-run"],
    ["refine", "--help"],
])
def test_strict_mode_blames_the_broken_plugin_not_an_option(broken_site, argv):
    result = _fwi(broken_site, *argv, FWI_STRICT_PLUGINS="1")
    if argv[-1] == "--help":
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 1, result.stdout + result.stderr
    assert "--plugin" not in result.stderr and "--backbone" not in result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: plugin 'fwi-broken' (fwi-broken 1.0) failed to load: boom at import")
    assert "FWI_STRICT_PLUGINS" in lines[0]


def test_strict_mode_blames_the_broken_plugin_in_commands_without_plugin_option(broken_site):
    result = _fwi(broken_site, "refine", "--backbone", "vit", "missing.nc", FWI_STRICT_PLUGINS="1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "--backbone" not in result.stderr and "--physics" not in result.stderr
    assert result.stderr.startswith("error: plugin 'fwi-broken'"), result.stderr


def test_a_broken_plugin_is_one_clean_warning_line(broken_site):
    result = _fwi(broken_site, "list", "peft")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [("warning: plugin 'fwi-broken' (fwi-broken 1.0) failed to load: boom at import; "
                      "continuing without it")], result.stderr
    assert "lora" in result.stdout


def test_an_unknown_blocked_name_warns_with_did_you_mean(tmp_path, monkeypatch):
    _install(tmp_path, "fwi-goodish", "fwi_goodish_mod", "")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FWI_DISABLE_PLUGINS", "fwi-goodsh,fwi-goodish")
    with pytest.warns(PluginLoadWarning, match=r"FWI_DISABLE_PLUGINS names 'fwi-goodsh'.*"
                                               r"Did you mean 'fwi-goodish'\?") as caught:
        manager = FWIPluginManager().load_all()
    assert len([w for w in caught if "FWI_DISABLE_PLUGINS" in str(w.message)]) == 1
    assert manager.infos["fwi-goodish"].status == "blocked"


def test_known_blocked_names_do_not_warn(monkeypatch):
    monkeypatch.setenv("FWI_DISABLE_PLUGINS", "fwi-example,deepwave,fwi_plugins.builtins.datasets")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)
        manager = FWIPluginManager(autoload=False).load_all()
    assert manager.infos["fwi_plugins.builtins.datasets"].status == "blocked"


def test_an_unknown_blocked_name_on_the_command_line(tmp_path):
    result = _fwi(tmp_path, "list", "peft", FWI_DISABLE_PLUGINS="deepwav")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        "warning: FWI_DISABLE_PLUGINS names 'deepwav', which no installed plugin has. Did you mean 'deepwave'?"
    ], result.stderr


# -- --dry-run imports the chosen components' factories ------------------------------------------------

UNIMPORTABLE = textwrap.dedent('''
    from fwi_plugins import BackboneSpec, DatasetSpec, PeftMethodSpec, hookimpl

    @hookimpl
    def fwi_backbones():
        yield BackboneSpec(name="ghostnet", factory="no_such_module_q:build", description="not importable")

    @hookimpl
    def fwi_peft_methods():
        yield PeftMethodSpec(name="ghostpeft", factory="fwi_plugins.builtins.peft_methods:apply_lora",
                             saver="no_such_module_q:save", loader="no_such_module_q:load",
                             description="saver not importable")

    @hookimpl
    def fwi_datasets():
        yield DatasetSpec(name="ghostdata", factory="fwi_plugins.errors:NoSuchThing", description="no attribute")
''')


@pytest.fixture
def unimportable(tmp_path):
    path = tmp_path / "ghosts.py"
    path.write_text(UNIMPORTABLE)
    return str(path)


@pytest.mark.parametrize(("argv", "component", "target"), [
    (["run", "--backbone", "ghostnet", "--peft", "lora", "--physics", "deepwave"], "backbone 'ghostnet'",
     "factory 'no_such_module_q:build'"),
    (["run", "--backbone", "vit", "--peft", "ghostpeft", "--physics", "deepwave"], "peft 'ghostpeft'",
     "saver 'no_such_module_q:save'"),
    (["run", "--backbone", "vit", "--peft", "lora", "--physics", "deepwave", "--dataset", "ghostdata"],
     "dataset 'ghostdata'", "factory 'fwi_plugins.errors:NoSuchThing'"),
    (["pretrain", "--backbone", "ghostnet", "--dataset", "flatvel-a"], "backbone 'ghostnet'",
     "factory 'no_such_module_q:build'"),
    (["pretrain", "--backbone", "vit", "--dataset", "flatvel-a", "--dataset", "ghostdata"],
     "dataset 'ghostdata'", "factory 'fwi_plugins.errors:NoSuchThing'"),
])
def test_dry_run_imports_every_chosen_factory(unimportable, tmp_path, argv, component, target):
    result = CliRunner().invoke(main, [*argv, "--plugin", unimportable, "--dry-run",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: {component} (plugin {unimportable}): cannot import {target}: "), error
    assert not (tmp_path / "out").exists()


def test_dry_run_of_importable_components_still_prints_the_configuration(tmp_path):
    result = CliRunner().invoke(main, ["run", "--backbone", "vit", "--peft", "lora", "--physics", "deepwave",
                                       "--dry-run", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert 'command = "run"' in result.stdout


# -- a component that needs another plugin's component ---------------------------------------------------

NEEDY = textwrap.dedent('''
    from fwi_plugins import BackboneSpec, PhysicsSpec, hookimpl

    @hookimpl
    def fwi_physics():
        yield PhysicsSpec(name="wavex", factory="fwi_plugins.physics:Physics", needs=("physics:deepwave",),
                          description="a physics built on deepwave's")

    @hookimpl
    def fwi_backbones():
        yield BackboneSpec(name="wavenet", factory="fwi_plugins.builtins.inversionnet:ConvBlock",
                           needs=("physics:wavex",), description="needs wavex, which needs deepwave")
''')


@pytest.fixture
def needy(tmp_path):
    path = tmp_path / "needy.py"
    path.write_text(NEEDY)
    return str(path)


def test_a_met_need_leaves_the_component_available(needy):
    manager = FWIPluginManager().load_all()
    manager.load_plugin(needy)
    assert manager.get("physics", "wavex").unavailable is None
    assert manager.get("backbone", "wavenet").unavailable is None
    assert manager.get("physics", "wavex").to_dict()["needs"] == ["physics:deepwave"]


def test_a_blocked_need_makes_the_component_unavailable(needy):
    manager = FWIPluginManager(blocked=["deepwave"]).load_all()
    manager.load_plugin(needy)
    reason = manager.get("physics", "wavex").unavailable
    assert reason == "needs physics 'deepwave', which is not registered (plugin deepwave is blocked)"
    assert manager.get("backbone", "wavenet").unavailable.startswith(
        "needs physics 'wavex', which is unavailable (needs physics 'deepwave'")
    with pytest.raises(PluginError, match=r"physics 'wavex' \(plugin .*needy\.py\) is unavailable: needs physics "
                                          r"'deepwave', which is not registered"):
        manager.get("physics", "wavex").load()


def test_fwi_list_shows_the_unmet_need(needy):
    result = _fwi(".", "list", "physics", "--plugin", needy, FWI_DISABLE_PLUGINS="deepwave")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("wavex"))
    assert "[unavailable: needs physics 'deepwave', which is not registered (plugin deepwave is blocked)]" in line
    result = _fwi(".", "list", "physics", "--json", "--plugin", needy, FWI_DISABLE_PLUGINS="deepwave")
    wavex = next(spec for spec in json.loads(result.stdout) if spec["name"] == "wavex")
    assert wavex["unavailable"].startswith("needs physics 'deepwave'")
    result = _fwi(".", "show", "physics", "wavex", "--plugin", needy, FWI_DISABLE_PLUGINS="deepwave")
    assert "needs: physics:deepwave (unavailable: needs physics 'deepwave', which is not registered" in result.stdout


def test_building_a_component_with_an_unmet_need_is_a_clear_error(needy, tmp_path):
    result = _fwi(".", "run", "--plugin", needy, "--backbone", "vit", "--peft", "lora", "--physics", "wavex",
                  "--dry-run", "--out", str(tmp_path / "out"), FWI_DISABLE_PLUGINS="deepwave")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: physics 'wavex' (plugin {needy}) is unavailable: needs physics 'deepwave', which is not "
        "registered (plugin deepwave is blocked)"], result.stderr


@pytest.mark.parametrize("needs", [("deepwave",), ("physic:deepwave",), ("physics:",)])
def test_a_malformed_need_is_refused(needs):
    with pytest.raises(PluginError, match=r"needs .*expected 'KIND:NAME'"):
        PhysicsSpec(name="bad", factory="os:getcwd", needs=needs)


# -- fwi list with a clash: both providers listed and marked, exit 0 (issue 27) ------------------------

def test_fwi_list_lists_both_providers_of_a_clashing_name(clash):
    result = CliRunner().invoke(main, ["list", "--plugin", clash])
    assert result.exit_code == 0, result.output
    vit_lines = [line for line in result.output.splitlines() if line.strip().startswith("vit ")]
    assert len(vit_lines) == 2, result.output
    assert any("fwi-plugins" in line for line in vit_lines) and any("clash.py" in line for line in vit_lines)
    assert all("clash" in line.lower() for line in vit_lines), vit_lines
    assert "backbone name 'vit' is provided twice" in result.output
    assert "inversionnet" in result.output and "lora" in result.output


def test_fwi_list_json_says_which_names_clash(clash):
    result = CliRunner().invoke(main, ["list", "backbone", "--json", "--plugin", clash])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    vits = [e for e in entries if e["name"] == "vit"]
    assert len(vits) == 2
    assert {e["provider"]["plugin"] for e in vits} == {"fwi_plugins.builtins.backbones", clash}
    assert all("provided twice" in e["conflict"] for e in vits)
    assert all(e["conflict"] is None for e in entries if e["name"] != "vit")
    whole = json.loads(CliRunner().invoke(main, ["list", "--json", "--plugin", clash]).stdout)
    assert sum(e["name"] == "vit" for e in whole["backbone"]) == 2


def test_a_command_using_the_clashing_name_still_fails_naming_both(clash):
    result = CliRunner().invoke(main, ["run", "--backbone", "vit", "--dry-run", "--plugin", clash])
    assert result.exit_code == 2, result.output
    assert "provided twice" in result.output and "clash.py" in result.output and "fwi-plugins" in result.output


# -- a --plugin FILE that fails at import warns like an installed plugin, unless strict (issue 27) ----

@pytest.fixture
def broken_file(tmp_path):
    path = tmp_path / "broken_local.py"
    path.write_text("raise RuntimeError('boom in a local file')\n")
    return str(path)


def test_a_plugin_file_failing_at_import_warns_naming_the_file_and_the_error(broken_file):
    manager = FWIPluginManager(strict=False).load_all()
    with pytest.warns(PluginLoadWarning, match=r"broken_local\.py.*failed to load: RuntimeError: boom in a local "
                                               r"file; continuing without it"):
        manager.load_plugin(broken_file)
    info = {i.name: i for i in manager.plugin_infos()}[broken_file]
    assert info.status == "failed" and "boom in a local file" in info.error
    assert manager.get("backbone", "vit").name == "vit"


def test_a_plugin_file_failing_at_import_is_an_error_in_strict_mode(broken_file):
    manager = FWIPluginManager(strict=True).load_all()
    with pytest.raises(PluginError, match=r"broken_local\.py.*boom in a local file.*FWI_STRICT_PLUGINS"):
        manager.load_plugin(broken_file)


def test_fwi_list_with_a_broken_plugin_file_warns_and_lists(broken_file, tmp_path):
    result = _fwi(tmp_path, "list", "peft", "--plugin", broken_file)
    assert result.returncode == 0, result.stderr
    assert "lora" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "broken_local.py" in lines[0], result.stderr
    assert "boom in a local file" in lines[0]

    strict = _fwi(tmp_path, "list", "peft", "--plugin", broken_file, FWI_STRICT_PLUGINS="1")
    assert strict.returncode == 1, strict.stderr
    assert strict.stderr.strip().splitlines() == [
        f"error: --plugin {broken_file!r} failed to load: RuntimeError: boom in a local file "
        "(FWI_STRICT_PLUGINS is set)"]


# -- a factory string without 'module:function' is refused at registration (issue 27) ----------------

@pytest.mark.parametrize("factory", ["my_plugin.build", "my_plugin:", ":build", "my plugin:build", "a:b:c", ""])
def test_a_factory_string_without_module_colon_function_is_refused_naming_it(factory):
    from fwi_plugins import BackboneSpec

    with pytest.raises(PluginError, match=rf"backbone 'badnet': factory {re.escape(repr(factory))}.*module:function"):
        BackboneSpec(name="badnet", factory=factory)


def test_a_malformed_peft_saver_string_is_refused():
    from fwi_plugins import PeftMethodSpec

    with pytest.raises(PluginError, match=r"peft 'badpeft': saver 'mod\.save'"):
        PeftMethodSpec(name="badpeft", factory="mod:make", saver="mod.save", loader="mod:load")


def test_a_malformed_factory_warns_at_registration_naming_the_plugin(tmp_path):
    path = tmp_path / "badfactory.py"
    path.write_text(textwrap.dedent('''
        from fwi_plugins import BackboneSpec, hookimpl

        @hookimpl
        def fwi_backbones():
            yield BackboneSpec(name="badnet", factory="badfactory_mod.build")
    '''))
    manager = FWIPluginManager(strict=False).load_all()
    manager.load_plugin(str(path))
    with pytest.warns(PluginLoadWarning, match=r"badfactory\.py.*backbone 'badnet': factory 'badfactory_mod\.build'"):
        assert "badnet" not in manager.components("backbone")
    assert "badfactory_mod" not in sys.modules


def test_a_valid_factory_string_is_not_imported_at_registration():
    from fwi_plugins import BackboneSpec

    spec = BackboneSpec(name="lazy", factory="a_module_that_does_not_exist.sub:build_it")
    assert spec.factory == "a_module_that_does_not_exist.sub:build_it"


# -- '--pretrained none' is random weights whatever a plugin ships (issue 27) --------------------------

def test_a_shipped_weights_name_none_is_refused_at_registration():
    from fwi_plugins import BackboneSpec

    with pytest.raises(PluginError, match=r"backbone 'shipsnone'.*'None'.*reserved"):
        BackboneSpec(name="shipsnone", factory="a:b", pretrained={"None": "a:weights/w.safetensors"})


def test_pretrained_none_does_not_read_what_cannot_be_loaded():
    from fwi_plugins import BackboneSpec
    from fwi_plugins.pretrained import backbone_options

    spec = BackboneSpec(name="shipsbroken", factory="a:b",
                        pretrained={"default": "fwi_plugins:weights/not-there.safetensors"})
    with pytest.warns(UserWarning, match=r"not-there\.safetensors.*untrained"):
        options, config = backbone_options(spec, {"width": 3}, "none")
    assert options == {"width": 3} and config is None

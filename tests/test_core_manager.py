"""The plugin manager, exercised through real entry-point discovery.

Fake ``*.dist-info`` folders on ``sys.path`` are found by ``importlib.metadata`` exactly
as installed distributions are, so these tests take the same road as ``pip install``.
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest

from fwi_plugins import BackboneSpec, PhysicsSpec
from fwi_plugins.errors import DuplicateNameError, PluginError, UnknownNameError
from fwi_plugins.manager import FWIPluginManager, PluginLoadWarning, get_plugin_manager

GOOD = '''
from fwi_plugins import BackboneSpec, hookimpl

@hookimpl
def fwi_backbones():
    yield BackboneSpec(name="{name}", factory="os:getcwd", description="a fake backbone")
'''


def make_distribution(root: Path, dist: str, module: str, source: str, version: str = "1.2.3",
                      ep_name: str | None = None) -> None:
    """Write ``module.py`` and a ``dist-info`` declaring it in the ``fwi_plugins`` group."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[fwi_plugins]\n{ep_name or dist} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_entry_point_plugin_is_discovered_with_its_distribution(site):
    make_distribution(site, "fwi-good", "fwi_good_mod", GOOD.format(name="goodnet"))
    manager = FWIPluginManager().load_all()
    spec = manager.get("backbone", "goodnet")
    assert spec.provider.distribution == "fwi-good"
    assert spec.provider.version == "1.2.3"
    info = {i.name: i for i in manager.plugin_infos()}["fwi-good"]
    assert info.status == "loaded"
    assert info.components == {"backbone": 1}
    assert info.hooks == ["fwi_backbones"]


def test_plugin_raising_on_import_warns_and_others_keep_working(site):
    make_distribution(site, "fwi-good", "fwi_good_mod2", GOOD.format(name="goodnet"))
    make_distribution(site, "fwi-broken", "fwi_broken_mod", "raise RuntimeError('boom at import')")
    with pytest.warns(PluginLoadWarning, match=r"fwi-broken.*boom at import"):
        manager = FWIPluginManager().load_all()
    assert manager.get("backbone", "goodnet").name == "goodnet"
    info = {i.name: i for i in manager.plugin_infos()}["fwi-broken"]
    assert info.status == "failed" and "boom at import" in info.error


def test_strict_mode_turns_a_broken_plugin_into_an_error(site, monkeypatch):
    make_distribution(site, "fwi-broken", "fwi_broken_mod2", "raise RuntimeError('boom')")
    monkeypatch.setenv("FWI_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="fwi-broken"):
        FWIPluginManager().load_all()


def test_blocked_plugin_is_not_imported(site, monkeypatch):
    marker = site / "imported.txt"
    source = f"open({str(marker)!r}, 'w').write('x')\n" + GOOD.format(name="blockednet")
    make_distribution(site, "fwi-blocked", "fwi_blocked_mod", source)
    monkeypatch.setenv("FWI_DISABLE_PLUGINS", "fwi_blocked")
    manager = FWIPluginManager().load_all()
    assert not marker.exists()
    assert {i.name: i for i in manager.plugin_infos()}["fwi-blocked"].status == "blocked"
    with pytest.raises(UnknownNameError):
        manager.get("backbone", "blockednet")


def test_autoload_can_be_switched_off(site, monkeypatch):
    make_distribution(site, "fwi-good", "fwi_good_mod3", GOOD.format(name="goodnet"))
    monkeypatch.setenv("FWI_DISABLE_PLUGIN_AUTOLOAD", "1")
    manager = FWIPluginManager().load_all()
    assert "goodnet" not in manager.components("backbone")
    assert all(i.distribution == "fwi-plugins" for i in manager.plugin_infos())


def test_two_providers_of_one_name_is_an_error_naming_both(site):
    make_distribution(site, "fwi-one", "fwi_one_mod", GOOD.format(name="samenet"))
    make_distribution(site, "fwi-two", "fwi_two_mod", GOOD.format(name="SameNet"))
    manager = FWIPluginManager().load_all()
    with pytest.raises(DuplicateNameError) as err:
        manager.components("backbone")
    assert "fwi-one" in str(err.value) and "fwi-two" in str(err.value)


def test_misspelled_hook_implementation_is_caught(site):
    make_distribution(site, "fwi-typo", "fwi_typo_mod", '''
        from fwi_plugins import hookimpl

        @hookimpl
        def fwi_backbone():
            return []
    ''')
    with pytest.raises(Exception, match="fwi_backbone"):
        FWIPluginManager().load_all()


def test_hook_yielding_the_wrong_spec_type_warns(site):
    make_distribution(site, "fwi-wrong", "fwi_wrong_mod", '''
        from fwi_plugins import PhysicsSpec, hookimpl

        @hookimpl
        def fwi_backbones():
            yield PhysicsSpec(name="oops", factory="os:getcwd", description="wrong kind")
    ''')
    manager = FWIPluginManager().load_all()
    with pytest.warns(PluginLoadWarning, match="expected BackboneSpec"):
        assert "oops" not in manager.components("backbone")


def test_unknown_name_suggests_the_closest(site):
    make_distribution(site, "fwi-good", "fwi_good_mod4", GOOD.format(name="goodnet"))
    manager = FWIPluginManager().load_all()
    with pytest.raises(UnknownNameError) as err:
        manager.get("backbone", "godnet")
    assert "Did you mean 'goodnet'?" in str(err.value)
    assert err.value.exit_code == 2


def test_names_are_case_and_dash_insensitive_and_aliases_resolve():
    from fwi_plugins import hookimpl

    class Plugin:
        @hookimpl
        def fwi_physics(self):
            yield PhysicsSpec(name="my-wave", factory="os:getcwd", description="d", aliases=("mw",))

    manager = FWIPluginManager(autoload=False).load_all()
    manager.register(Plugin(), name="local")
    manager._registry = None
    assert manager.get("physics", "MY_WAVE").name == "my-wave"
    assert manager.get("physics", "mw").name == "my-wave"


def test_load_plugin_from_a_python_file(tmp_path):
    path = tmp_path / "local_plugin.py"
    path.write_text(GOOD.format(name="filenet"))
    manager = FWIPluginManager(autoload=False).load_all()
    manager.load_plugin(str(path))
    assert manager.get("backbone", "filenet").provider.plugin == str(path)
    with pytest.raises(PluginError, match="no such file"):
        manager.load_plugin(str(tmp_path / "missing.py"))


def test_lifecycle_hooks_are_called_and_a_raising_observer_only_warns(tmp_path):
    from fwi_plugins import hookimpl

    seen = []

    class Observer:
        @hookimpl
        def fwi_run_started(self, run_dir, config):
            seen.append(("fwi_run_started", config["command"]))

        @hookimpl
        def fwi_epoch_end(self, stage, epoch, metrics):
            seen.append(("fwi_epoch_end", stage, epoch, metrics["train_loss"]))

        @hookimpl
        def fwi_train_step(self, stage, step, metrics):
            seen.append(("fwi_train_step", stage, step, metrics["loss"]))

        @hookimpl
        def fwi_predictions_ready(self, stage, predictions):
            seen.append(("fwi_predictions_ready", stage, len(predictions)))

        @hookimpl
        def fwi_run_finished(self, run_dir, metrics):
            raise RuntimeError("observer broke")

    manager = FWIPluginManager(autoload=False).load_all()
    manager.register(Observer(), name="observer")
    manager.notify("fwi_run_started", run_dir=tmp_path, config={"command": "run"})
    assert manager.listens("fwi_train_step")
    assert not FWIPluginManager(autoload=False).load_all().listens("fwi_train_step")
    manager.notify("fwi_train_step", run_dir=tmp_path, stage="adapt", step=10, metrics={"loss": 0.75})
    manager.notify("fwi_epoch_end", run_dir=tmp_path, stage="adapt", epoch=1, metrics={"train_loss": 0.5})
    manager.notify("fwi_predictions_ready", run_dir=tmp_path, stage="adapted", path=None, predictions=[1, 2])
    with pytest.warns(PluginLoadWarning, match="observer broke"):
        manager.notify("fwi_run_finished", run_dir=tmp_path, metrics={})
    assert seen == [("fwi_run_started", "run"), ("fwi_train_step", "adapt", 10, 0.75),
                    ("fwi_epoch_end", "adapt", 1, 0.5),
                    ("fwi_predictions_ready", "adapted", 2)]


def test_get_plugin_manager_is_cached():
    assert get_plugin_manager() is get_plugin_manager()


def test_spec_with_missing_requirement_reports_what_to_install():
    from fwi_plugins.errors import MissingDependencyError

    spec = BackboneSpec(name="needy", factory="os:getcwd", description="d",
                        requires=("no_such_module_xyz",))
    assert spec.missing_requirements() == ["no_such_module_xyz"]
    with pytest.raises(MissingDependencyError, match="pip install no_such_module_xyz"):
        spec.load()


def test_warnings_do_not_leak_between_managers(site):
    make_distribution(site, "fwi-broken", "fwi_broken_leak", "raise RuntimeError('boom at import')")
    with pytest.warns(PluginLoadWarning, match="boom at import"):
        broken = FWIPluginManager().load_all()
    assert broken.infos["fwi-broken"].status == "failed"
    # A later manager that does not load the broken plugin inherits neither its warning nor its failure.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clean = FWIPluginManager(blocked=["fwi-broken"]).load_all()
        builtins_only = FWIPluginManager(autoload=False).load_all()
    assert [str(w.message) for w in caught] == []
    assert clean.infos["fwi-broken"].status == "blocked"
    assert "fwi-broken" not in builtins_only.infos
    assert all(info.status == "loaded" for name, info in clean.infos.items() if name != "fwi-broken")


def test_every_registration_hook_adds_its_components_with_provenance():
    from fwi_plugins import DatasetSpec, PeftMethodSpec, hookimpl

    class Plugin:
        @hookimpl
        def fwi_backbones(self):
            yield BackboneSpec(name="hook-net", factory="os:getcwd", description="d")

        @hookimpl
        def fwi_peft_methods(self):
            yield PeftMethodSpec(name="hook-tune", factory="os:getcwd", description="d")

        @hookimpl
        def fwi_datasets(self):
            yield DatasetSpec(name="hook-data", factory="os:getcwd", description="d")

        @hookimpl
        def fwi_physics(self):
            yield PhysicsSpec(name="hook-wave", factory="os:getcwd", description="d")

    manager = FWIPluginManager(autoload=False).load_all()
    manager.register(Plugin(), name="every-kind")
    manager._registry = None
    for kind, name in (("backbone", "hook-net"), ("peft", "hook-tune"), ("dataset", "hook-data"),
                       ("physics", "hook-wave")):
        spec = manager.get(kind, name)
        assert spec.kind == kind and spec.provider.plugin == "every-kind"

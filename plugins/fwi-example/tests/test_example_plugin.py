"""fwi-example through the front door: installed, discovered, and keeping every contract.

These tests need ``pip install -e plugins/fwi-example`` (the Makefile does it): they load
the plugin the way users get it, from its entry point, into a fresh plugin manager.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fwi_plugins.manager import FWIPluginManager
from fwi_plugins.testing import check_component

COMPONENTS = [("backbone", "tinyunet"), ("peft", "frozen-encoder"), ("dataset", "tiny-layers"),
              ("physics", "convolutional")]


@pytest.fixture
def manager() -> FWIPluginManager:
    return FWIPluginManager().load_all()


def test_entry_point_registers_one_component_of_each_kind(manager):
    info = next(i for i in manager.plugin_infos() if i.name == "example")
    assert (info.distribution, info.version, info.status) == ("fwi-example", "0.1.0", "loaded")
    assert info.components == {"backbone": 1, "peft": 1, "dataset": 1, "physics": 1}
    for kind, name in COMPONENTS:
        spec = manager.get(kind, name)
        assert spec.provider.distribution == "fwi-example"
        assert spec.provider.plugin == "example"


@pytest.mark.parametrize(("kind", "name"), COMPONENTS, ids=[n for _, n in COMPONENTS])
def test_component_keeps_its_contract(manager, kind, name):
    check_component(manager.get(kind, name))


def test_blocking_the_plugin_removes_its_components(monkeypatch):
    monkeypatch.setenv("FWI_DISABLE_PLUGINS", "fwi-example")
    manager = FWIPluginManager().load_all()
    assert next(i for i in manager.plugin_infos() if i.name == "example").status == "blocked"
    assert "tinyunet" not in manager.components("backbone")


def test_discovered_from_a_fake_dist_info_without_installing(tmp_path, monkeypatch):
    """Entry-point discovery reads ``*.dist-info`` folders on sys.path, installed or not."""
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "src"))  # the code, uninstalled
    info = tmp_path / "fwi_example_dev-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fwi-example-dev\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[fwi_plugins]\nexample-dev = fwi_example.plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # Block the installed copy, if any, or its names would clash with the development one.
    manager = FWIPluginManager(blocked=["fwi-example"]).load_all()
    assert manager.get("physics", "convolutional").provider.distribution == "fwi-example-dev"


def test_registration_does_not_import_torch():
    code = ("import sys; from fwi_plugins.manager import FWIPluginManager; "
            "m = FWIPluginManager().load_all(); m.get('backbone', 'tinyunet'); "
            "import fwi_example.plugin; "
            "heavy = [n for n in ('torch', 'fwi_example.unet', 'fwi_example.convolutional') if n in sys.modules]; "
            "print(heavy); sys.exit(bool(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_options_are_documented_and_validated(manager):
    from fwi_plugins.errors import OptionError, UnknownNameError

    spec = manager.get("backbone", "tinyunet")
    assert {o.name: o.default for o in spec.describe_options()} == {"base_channels": 8, "levels": 2}
    assert spec.parse_options({"levels": "3"}).levels == 3
    with pytest.raises(OptionError, match="levels must be between 1 and 4"):
        spec.parse_options({"levels": "7"})
    with pytest.raises(UnknownNameError, match="Did you mean 'levels'"):
        spec.parse_options({"level": "2"})
    physics = manager.get("physics", "convolutional")
    with pytest.raises(OptionError, match="envelope"):
        physics.parse_options({"misfit": "hilbert"})


def test_components_work_together(manager):
    """A few steps of physics-guided training: tinyunet + frozen-encoder on tiny-layers."""
    import torch

    torch.manual_seed(0)
    dataset = manager.get("dataset", "tiny-layers").load()(None)
    physics = manager.get("physics", "convolutional").load()(None, survey=dataset.survey)
    velocity = torch.from_numpy(dataset.velocity("train"))
    with torch.no_grad():
        gathers = physics.simulate(velocity)
    assert gathers.shape == (8, 3, 300, 32)
    norm = dataset.normalization.fit_gathers(gathers)

    from fwi_plugins import IOShape

    s = dataset.survey
    shape = IOShape(shots=s.n_shots, time=s.nt, receivers=s.n_receivers, depth=s.nz, width=s.nx)
    backbone = manager.get("backbone", "tinyunet")
    model = backbone.load()(backbone.parse_options({"base_channels": 4}), shape=shape)
    model = manager.get("peft", "frozen-encoder").load()(model, None, targets=backbone.peft_targets,
                                                         head=backbone.head)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    x, y = norm.gathers_to_unit(gathers), norm.velocity_to_unit(velocity)

    def loss_fn() -> torch.Tensor:
        pred = model(x)
        data = physics.misfit(physics.simulate(norm.velocity_from_unit(pred)), gathers)
        return (pred - y).abs().mean() + data

    with torch.no_grad():
        before = float(loss_fn())
    for _ in range(15):
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step()
    with torch.no_grad():
        after = float(loss_fn())
    assert after < 0.8 * before
    assert frozen and all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)

"""Contract tests over the whole registry: a component is tested the moment it registers.

Each registered backbone, PEFT method, dataset and physics is built through the same
registry path users take and checked with :mod:`fwi_plugins.testing`.
"""

from __future__ import annotations

import pytest

from fwi_plugins.manager import FWIPluginManager
from fwi_plugins.specs import KINDS
from fwi_plugins.testing import check_component

_REGISTRY = FWIPluginManager().load_all()
CASES = [(kind, name) for kind in KINDS for name in sorted(_REGISTRY.components(kind))]


@pytest.mark.parametrize(("kind", "name"), CASES, ids=[f"{k}:{n}" for k, n in CASES])
def test_component_keeps_its_contract(kind, name):
    manager = FWIPluginManager().load_all()
    spec = manager.get(kind, name)
    if spec.missing_requirements():
        pytest.fail(f"{kind} {name!r} is registered but unavailable: missing {spec.missing_requirements()}")
    check_component(spec)


@pytest.mark.parametrize("kind", list(KINDS))
def test_registration_hook_yields_specs_of_its_kind(kind):
    """``fwi_backbones``, ``fwi_peft_methods``, ``fwi_datasets`` and ``fwi_physics`` called directly."""
    manager = FWIPluginManager().load_all()
    hook = getattr(manager.hook, KINDS[kind].hook)
    specs = [spec for result in hook() for spec in result]
    assert specs, f"no plugin implements {KINDS[kind].hook}"
    assert all(isinstance(s, KINDS[kind].spec) for s in specs)


def test_first_party_components_are_registered():
    names = {kind: set(_REGISTRY.components(kind)) for kind in KINDS}
    assert {"vit", "inversionnet"} <= names["backbone"]
    assert {"lora", "adapter", "ia3", "full", "frozen"} <= names["peft"]
    assert {"flatvel-a", "curvevel-a", "openfwi"} <= names["dataset"]
    assert "deepwave" in names["physics"]

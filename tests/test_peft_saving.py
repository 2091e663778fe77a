"""Saving is part of the PEFT method contract: core dispatches on the method, never on a class.

A method with a saver and loader writes its own format and reads it back; the folder rules
(local safetensors only, finite tensors) hold for every format, because core checks the
folder before any loader sees it.
"""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

import fwi_plugins
from fwi_plugins import PeftMethodSpec, api, hookimpl
from fwi_plugins.adapted import load_adapted, save_adapted
from fwi_plugins.adapter_folder import read_adapter_config, read_adapter_weights, write_adapter
from fwi_plugins.errors import DataError, PluginError
from fwi_plugins.manager import get_plugin_manager
from fwi_plugins.testing import TINY_SHAPE

CALLS: list[str] = []


def apply_bias_only(model: nn.Module, options: None = None, *, targets=(), head=()) -> nn.Module:
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith("bias"))
    return model


def save_bias_only(model: nn.Module, folder: Path) -> None:
    CALLS.append("save")
    biases = {n: p for n, p in model.named_parameters() if n.endswith("bias")}
    write_adapter(folder, method="bias-only", config={"count": len(biases)}, tensors=biases)


def load_bias_only(model: nn.Module, folder: Path, *, trainable: bool) -> nn.Module:
    CALLS.append("load")
    assert read_adapter_config(folder)["count"] > 0
    model.load_state_dict(read_adapter_weights(folder), strict=False)
    return apply_bias_only(model)


class BiasOnly:
    @hookimpl
    def fwi_peft_methods(self):
        yield PeftMethodSpec(name="bias-only", factory=apply_bias_only, saver=save_bias_only,
                             loader=load_bias_only)


@pytest.fixture
def bias_only():
    get_plugin_manager().register(BiasOnly(), name="bias-only-plugin")
    get_plugin_manager().registry  # noqa: B018 - built before the first lookup
    CALLS.clear()
    yield


def _backbone() -> nn.Module:
    torch.manual_seed(0)
    return api.build_backbone("inversionnet", {"dim1": 4, "dim2": 4, "dim3": 4, "dim4": 4, "dim5": 4},
                              shape=TINY_SHAPE)


def test_a_third_party_method_saves_and_loads_in_its_own_format(tmp_path, bias_only):
    model = api.apply_peft(_backbone(), "bias-only")
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("bias"):
                p.add_(0.5)
    folder = save_adapted(model, tmp_path / "a")
    assert json.loads((folder / "adapter_config.json").read_text())["fwi_method"] == "bias-only"
    loaded = load_adapted(_backbone(), folder)
    assert CALLS == ["save", "load"]
    x = torch.randn(1, TINY_SHAPE.shots, TINY_SHAPE.time, TINY_SHAPE.receivers)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model.eval()(x))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_the_folder_rules_hold_before_a_third_party_loader_runs(tmp_path, bias_only):
    folder = save_adapted(api.apply_peft(_backbone(), "bias-only"), tmp_path / "a")
    (folder / "adapter_model.safetensors").unlink()
    marker = tmp_path / "marker"
    (folder / "adapter_model.bin").write_bytes(pickle.dumps(_Tripwire(marker)))
    with pytest.raises(DataError, match=r"adapter_model\.bin.*safetensors"):
        load_adapted(_backbone(), folder)
    assert CALLS == ["save"] and not marker.exists()


def test_a_format_whose_method_is_not_installed_is_a_clear_error(tmp_path):
    folder = save_adapted(api.apply_peft(_backbone(), "full"), tmp_path / "a")
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "fwi_method": "gone"}))
    with pytest.raises(DataError, match="unknown method 'gone'"):
        load_adapted(_backbone(), folder)


def test_a_method_without_a_saver_gets_the_generic_format(tmp_path):
    model = apply_bias_only(_backbone())
    folder = save_adapted(model, tmp_path / "a")
    assert json.loads((folder / "adapter_config.json").read_text())["fwi_method"] == "trainable"
    loaded = load_adapted(_backbone(), folder, trainable=True)
    assert {n for n, p in loaded.named_parameters() if p.requires_grad} == {
        n for n, p in model.named_parameters() if p.requires_grad}


def test_a_saver_needs_a_loader():
    with pytest.raises(PluginError, match="saver needs a loader"):
        PeftMethodSpec(name="half", factory=apply_bias_only, saver=save_bias_only)


def test_core_adapter_handling_names_no_built_in_class():
    """Saving and loading dispatch on the method's spec: the core modules never import builtins."""
    root = Path(fwi_plugins.__file__).parent
    for module in ("adapted.py", "adapter_folder.py"):
        tree = ast.parse((root / module).read_text())
        imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [m for m in imported if "builtins" in m], module


class _Tripwire:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))

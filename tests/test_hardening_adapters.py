"""Adapters load only from local safetensors files: nothing is unpickled, nothing reaches the network.

peft's own loader deserialises ``adapter_model.bin`` with ``torch.load`` and treats a folder
without a weights file as a Hugging Face Hub repository id; these tests hold that neither
path is ever taken and that every malformed adapter folder fails with a clear error.
"""

from __future__ import annotations

import json
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fwi_plugins import adapted
from fwi_plugins.errors import DataError, FWIError
from fwi_plugins.manager import FWIPluginManager
from fwi_plugins.testing import TINY_SHAPE


def _backbone(name: str = "vit"):
    spec = FWIPluginManager().load_all().get("backbone", name)
    torch.manual_seed(0)
    return spec.load()(spec.parse_options(dict(spec.example_options)), shape=TINY_SHAPE)


def _adapted(method: str):
    manager = FWIPluginManager().load_all()
    bspec = manager.get("backbone", "vit")
    mspec = manager.get("peft", method)
    return mspec.load()(_backbone(), mspec.parse_options(dict(mspec.example_options)),
                        targets=bspec.peft_targets, head=bspec.head)


class _Tripwire:
    """Unpickling this writes a marker file: proof that something ran ``pickle.load``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test loudly instead of reaching out."""
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _saved_lora(tmp_path: Path) -> Path:
    folder = tmp_path / "adapter"
    adapted.save_adapted(_adapted("lora"), folder)
    return folder


def test_pickled_weights_are_refused_and_never_unpickled(tmp_path, no_network):
    folder = _saved_lora(tmp_path)
    (folder / "adapter_model.safetensors").unlink()
    marker = tmp_path / "marker"
    (folder / "adapter_model.bin").write_bytes(pickle.dumps(_Tripwire(marker)))
    with pytest.raises(DataError, match=r"adapter_model\.bin.*safetensors"):
        adapted.load_adapted(_backbone(), folder)
    assert not marker.exists()


def test_folder_without_weights_is_refused_without_network(tmp_path, no_network):
    folder = _saved_lora(tmp_path)
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(DataError, match=r"adapter_model\.safetensors"):
        adapted.load_adapted(_backbone(), folder)


def test_named_subadapter_without_weights_is_refused(tmp_path, no_network):
    model = _adapted("lora")
    adapted.add_adapter(model, "second")
    folder = tmp_path / "adapter"
    adapted.save_adapted(model, folder)
    (folder / "second" / "adapter_model.safetensors").unlink()
    (folder / "second" / "adapter_model.bin").write_bytes(pickle.dumps(_Tripwire(tmp_path / "marker")))
    with pytest.raises(DataError, match="second"):
        adapted.load_adapted(_backbone(), folder)
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_truncated_weights_are_a_clear_error(tmp_path, method, no_network):
    folder = tmp_path / "adapter"
    adapted.save_adapted(_adapted(method), folder)
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(DataError, match=r"adapter_model\.safetensors"):
        adapted.load_adapted(_backbone(), folder)


@pytest.mark.parametrize("content", ["[1, 2]", '"lora"', "{", '{"peft_type": "NOPE"}',
                                     '{"peft_type": "LORA", "r": "many"}',
                                     '{"peft_type": "LORA", "target_modules": 3}'])
def test_malformed_config_is_a_clear_error(tmp_path, content, no_network):
    folder = _saved_lora(tmp_path)
    (folder / "adapter_config.json").write_text(content)
    with pytest.raises(DataError, match=r"adapter_config\.json"):
        adapted.load_adapted(_backbone(), folder)


def test_a_file_is_not_an_adapter_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(FWIError, match="folder"):
        adapted.load_adapted(_backbone(), tmp_path / "f")


def test_loaded_lora_matches_and_is_frozen_or_trainable(tmp_path, no_network):
    model = _adapted("lora")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    model.eval()
    folder = tmp_path / "adapter"
    adapted.save_adapted(model, folder)
    x = torch.randn(2, TINY_SHAPE.shots, TINY_SHAPE.time, TINY_SHAPE.receivers)
    loaded = adapted.load_adapted(_backbone(), folder).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6, rtol=0)
    assert not any(p.requires_grad for p in loaded.parameters())
    trainable = adapted.load_adapted(_backbone(), folder, trainable=True)
    names = {n for n, p in trainable.named_parameters() if p.requires_grad}
    assert names == {n for n, p in model.named_parameters() if p.requires_grad}


def test_peft_is_imported_offline():
    """Whoever imports peft through fwi_plugins gets huggingface_hub in offline mode."""
    code = ("import os; os.environ.pop('HF_HUB_OFFLINE', None)\n"
            "from fwi_plugins.adapter_folder import import_peft\n"
            "import_peft()\n"
            "import huggingface_hub.constants as c\n"
            "assert os.environ['HF_HUB_OFFLINE'] == '1' and c.HF_HUB_OFFLINE, c.HF_HUB_OFFLINE\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "HF_HUB_OFFLINE"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_cli_predict_reports_a_pickled_adapter_as_an_error_line(tmp_path, direct_waves):
    from click.testing import CliRunner

    from fwi_plugins.cli import main

    folder = _saved_lora(tmp_path)
    (folder / "adapter_model.safetensors").unlink()
    (folder / "adapter_model.bin").write_bytes(pickle.dumps(_Tripwire(tmp_path / "marker")))
    data = tmp_path / "data.npy"
    import numpy as np

    np.save(data, direct_waves)  # the shipped weights' acquisition
    result = CliRunner().invoke(main, ["predict", "--backbone", "vit", "--adapter", str(folder),
                                       "--input", str(data), "--out", str(tmp_path / "out.nc")])
    assert result.exit_code != 0
    assert "error:" in result.output and "adapter_model.bin" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "marker").exists()
    json.dumps(result.output)

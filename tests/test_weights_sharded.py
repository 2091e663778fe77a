"""Sharded weights (Hugging Face's layout): shards within the size limit, an index, the same network back."""

from __future__ import annotations

import json

import pytest
import torch

from fwi_plugins import api
from fwi_plugins.errors import DataError
from fwi_plugins.specs import IOShape
from fwi_plugins.weights import (
    INDEX_NAME,
    load_pretrained,
    read_metadata,
    save_sharded_weights,
    save_weights,
    state_digest,
)

SHAPE = IOShape(shots=2, time=40, receivers=12, depth=12, width=12)
OPTIONS = {"size": "tiny", "depth": 2, "patch_time": 10, "patch_receiver": 4, "decoder_dim": 8}
METADATA = {"backbone": "vit", "backbone_options": json.dumps(OPTIONS), "steps": "7",
            "shape": json.dumps({"shots": 2, "time": 40, "receivers": 12, "depth": 12, "width": 12})}


def network(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = api.build_backbone("vit", OPTIONS, shape=SHAPE)
    return model.eval()


def test_shards_respect_the_limit_and_load_back_to_the_same_network(tmp_path):
    model = network(0)
    limit = 200_000
    index = save_sharded_weights(model, tmp_path / "weights", METADATA, max_shard_bytes=limit)
    assert index.name == INDEX_NAME
    shards = sorted(p.name for p in index.parent.glob("*.safetensors"))
    assert len(shards) > 1 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    largest = max(t.numel() * t.element_size() for t in model.state_dict().values())
    for name in shards:
        tensors_bytes = (index.parent / name).stat().st_size
        assert tensors_bytes <= max(limit, largest) + 20_000  # + the JSON header
    data = json.loads(index.read_text())
    assert set(data["weight_map"]) == set(model.state_dict())
    assert data["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert read_metadata(index) == METADATA  # what a single file keeps in its header

    spec = api.get_spec("backbone", "vit")
    fresh = network(1)
    x = torch.randn(2, 2, 40, 12)
    assert not torch.equal(model(x), fresh(x))
    assert load_pretrained(fresh, spec, index) == METADATA
    assert torch.equal(model(x), fresh(x))
    # The folder stands for its index, and the pretrained path reads the options from it.
    rebuilt = api.build_backbone("vit", pretrained=str(index.parent)).eval()
    assert torch.equal(model(x), rebuilt(x))


def test_single_file_and_shards_carry_the_same_metadata(tmp_path):
    model = network(0)
    single = save_weights(model, tmp_path / "w.safetensors", METADATA)
    index = save_sharded_weights(model, tmp_path / "sharded", METADATA, max_shard_bytes=300_000)
    assert read_metadata(single) == read_metadata(index)


def test_resaving_with_fewer_shards_removes_the_stale_ones(tmp_path):
    model = network(0)
    save_sharded_weights(model, tmp_path, METADATA, max_shard_bytes=100_000)
    save_sharded_weights(model, tmp_path, METADATA)
    assert [p.name for p in tmp_path.glob("*.safetensors")] == ["model-00001-of-00001.safetensors"]
    load_pretrained(network(2), api.get_spec("backbone", "vit"), tmp_path / INDEX_NAME)


def test_damaged_indexes_are_data_errors(tmp_path):
    model = network(0)
    spec = api.get_spec("backbone", "vit")
    index = save_sharded_weights(model, tmp_path, METADATA, max_shard_bytes=200_000)
    data = json.loads(index.read_text())
    first = next(iter(data["weight_map"]))

    escaped = dict(data, weight_map={**data["weight_map"], first: "../elsewhere.safetensors"})
    index.write_text(json.dumps(escaped))
    with pytest.raises(DataError, match="index's folder"):
        load_pretrained(network(1), spec, index)

    unnamed = dict(data, weight_map={k: v for k, v in data["weight_map"].items() if k != first})
    index.write_text(json.dumps(unnamed))
    with pytest.raises(DataError, match="does not hold the tensors its index names"):
        load_pretrained(network(1), spec, index)

    index.write_text(json.dumps(data))
    (tmp_path / data["weight_map"][first]).unlink()
    with pytest.raises(DataError, match="missing"):
        load_pretrained(network(1), spec, index)

    index.write_text("{not json")
    with pytest.raises(DataError, match="index"):
        read_metadata(index)


def test_state_digest_names_the_weights_whatever_file_they_came_from(tmp_path):
    model = network(0)
    save_weights(model, tmp_path / "one.safetensors", METADATA)
    index = save_sharded_weights(model, tmp_path / "shards", METADATA, max_shard_bytes=200_000)
    spec = api.get_spec("backbone", "vit")
    loaded = []
    for path in (tmp_path / "one.safetensors", index):
        fresh = network(1)
        load_pretrained(fresh, spec, str(path))
        loaded.append(state_digest(fresh))
    assert loaded[0] == loaded[1] == state_digest(model) != state_digest(network(1))

    changed = network(0)
    first = next(iter(changed.state_dict()))
    with torch.no_grad():
        changed.state_dict()[first].view(-1)[0] += 1e-6  # one value of one tensor
    assert state_digest(changed) != state_digest(model)
    half = network(0).to(torch.bfloat16)  # bf16 has no numpy dtype: hashed through its bytes
    assert len(state_digest(half)) == 64 and state_digest(half) != state_digest(model)


def test_unshard_joins_the_shards_into_one_file_with_their_metadata(tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "device"))
    import unshard

    from fwi_plugins.weights import load_tensors

    model = network(0)
    save_sharded_weights(model, tmp_path / "shards", METADATA, max_shard_bytes=200_000)
    out = tmp_path / "one.safetensors"
    assert unshard.main([str(tmp_path / "shards"), str(out), "--name", "joined"]) == 0
    tensors, metadata = load_tensors(out)
    assert metadata == {**METADATA, "name": "joined"}
    state = model.state_dict()
    assert tensors.keys() == state.keys() and all(torch.equal(tensors[k], state[k]) for k in state)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]

    assert unshard.main([str(tmp_path / "nowhere" / INDEX_NAME), str(tmp_path / "x.safetensors")]) == 1
    assert "unshard: error:" in capsys.readouterr().err and not (tmp_path / "x.safetensors").exists()

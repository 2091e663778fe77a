"""One pretrained path: a weights file is applied the same way by every entry point.

The references here are built by hand from the file itself (safetensors header and tensors,
OpenFWI's normalisation formulas), not through :mod:`fwi_plugins.pretrained`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file

from fwi_plugins import api
from fwi_plugins.cli import main
from fwi_plugins.data.io import read_velocity
from fwi_plugins.errors import ConfigError, DataError, OptionError
from fwi_plugins.weights import resolve_pretrained, save_weights

README = Path(__file__).resolve().parents[1] / "README.md"
SHIPPED = resolve_pretrained(api.get_spec("backbone", "vit"), "default")


def _header(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def _by_hand(path: Path, gathers: np.ndarray) -> np.ndarray:
    """Velocity in m/s the way the weights file says: its options, its tensors, its normalisation."""
    from fwi_plugins.builtins.backbone_options import ViTOptions
    from fwi_plugins.builtins.vit import build
    from fwi_plugins.specs import IOShape

    header = _header(path)
    model = build(ViTOptions(**json.loads(header["backbone_options"])), shape=IOShape(**json.loads(header["shape"])))
    model.load_state_dict(load_file(str(path)), strict=True)
    norm = json.loads(header["normalization"])
    lo, hi = (math.copysign(math.log1p(abs(v)), v) for v in (norm["data_min"], norm["data_max"]))
    x = np.sign(gathers) * np.log1p(np.abs(gathers))
    x = (x - lo) * (2.0 / (hi - lo)) - 1.0
    with torch.no_grad():
        y = model.eval()(torch.from_numpy(x.astype(np.float32))).numpy()
    return (y + 1.0) * 0.5 * (norm["vmax"] - norm["vmin"]) + norm["vmin"]


@pytest.fixture(scope="module")
def openfwi_gathers():
    """Two generated flatvel-a maps and their gathers at OpenFWI's acquisition."""
    dataset = api.load_dataset("flatvel-a", {"n_train": 0, "n_val": 0, "n_test": 2, "seed": 4321})
    truth = dataset.velocity("test")
    gathers = api.simulate(truth, api.build_physics("deepwave", survey=dataset.survey))
    return gathers, truth


def _readme_three_lines() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (block,) = [b for b in blocks if 'pretrained="default"' in b]
    return block


def test_readme_three_lines_predict_with_the_shipped_model(openfwi_gathers):
    gathers, truth = openfwi_gathers
    code = _readme_three_lines()
    assert len(code.strip().splitlines()) == 3
    namespace = {"gathers": gathers}
    exec(code, namespace)  # exactly the README's lines
    velocity = namespace["velocity"]
    assert velocity.shape == (2, 1, 70, 70)
    np.testing.assert_allclose(velocity, _by_hand(SHIPPED, gathers), rtol=1e-5, atol=0.05)
    # A foundation, not a random network (those give a near-constant map, about 870 m/s off).
    assert np.abs(velocity - truth).mean() < 400


def test_fwi_predict_uses_the_default_foundation_and_none_is_random_with_a_warning(openfwi_gathers, tmp_path):
    gathers, _ = openfwi_gathers
    np.save(tmp_path / "g.npy", gathers)
    runner = CliRunner()
    result = runner.invoke(main, ["predict", "--backbone", "vit", "--input", str(tmp_path / "g.npy"),
                                  "--out", str(tmp_path / "pred"), "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    velocity, attrs = read_velocity(tmp_path / "pred" / "velocity.nc")
    np.testing.assert_allclose(velocity, _by_hand(SHIPPED, gathers), rtol=1e-5, atol=0.05)
    assert attrs["pretrained"] == "default" and attrs["backbone_options"]["size"] == "tiny"

    result = runner.invoke(main, ["predict", "--backbone", "vit", "--pretrained", "none", "--input",
                                  str(tmp_path / "g.npy"), "--out", str(tmp_path / "none"), "--quiet",
                                  "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "--pretrained none" in result.output and "random weights" in result.output
    _, attrs = read_velocity(tmp_path / "none" / "velocity.nc")
    assert attrs["backbone_options"]["size"] == "tiny"  # the foundation's architecture, untrained


def _parameter_count(path: Path) -> int:
    return sum(t.numel() for t in load_file(str(path)).values())


def test_the_scratch_baseline_has_the_foundations_architecture(tmp_path):
    result = CliRunner().invoke(main, ["run", "--backbone", "vit", "--peft", "lora", "--physics", "deepwave",
                                       "--pretrained", "none", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    options = json.loads(result.output)["backbone"]["options"]
    assert options["size"] == json.loads(_header(SHIPPED)["backbone_options"])["size"] == "tiny"
    scratch = api.build_backbone("vit", options)
    assert sum(t.numel() for t in scratch.state_dict().values()) == _parameter_count(SHIPPED)

    untrained = api.build_backbone("vit", pretrained="none")
    shipped = load_file(str(SHIPPED))
    state = untrained.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in shipped.items()}
    assert not torch.equal(state["head.weight"], shipped["head.weight"])
    assert untrained.pretrained_cfg is None


def _entry_points(tmp_path: Path, options: list[str], direct_waves: np.ndarray) -> dict[str, object]:
    """How each entry point answers the same backbone options with the default foundation."""
    np.save(tmp_path / "g.npy", direct_waves)
    mapping = dict(o.removeprefix("backbone.").split("=") for o in options)
    flags = [part for o in options for part in ("-o", o)]
    runner = CliRunner()
    outcomes: dict[str, object] = {
        "fwi predict": runner.invoke(main, ["predict", "--backbone", "vit", *flags, "--input", str(tmp_path / "g.npy"),
                                            "--out", str(tmp_path / "p"), "--quiet", "--device", "cpu",
                                            "--shaping", "none"]),
        "fwi run": runner.invoke(main, ["run", "--backbone", "vit", "--peft", "lora", "--physics", "deepwave",
                                        *flags, "--dry-run"]),
    }
    for name, build in (("api.build_backbone", lambda: api.build_backbone("vit", mapping, pretrained="default")),
                        ("load_model", lambda: __import__("fwi_plugins.engine.inference", fromlist=["load_model"])
                         .load_model("vit", mapping, pretrained="default"))):
        try:
            outcomes[name] = build()
        except OptionError as exc:
            outcomes[name] = exc
    return outcomes


def test_an_option_the_weights_fix_is_refused_by_name_everywhere(tmp_path, direct_waves):
    for name, outcome in _entry_points(tmp_path, ["backbone.size=small"], direct_waves).items():
        if isinstance(outcome, Exception):
            message = str(outcome)
        else:
            assert outcome.exit_code == 2, (name, outcome.output)
            assert "Traceback" not in outcome.output
            message = outcome.output
            assert message.startswith("error:") or "\nerror:" in message, name
        assert "'size'" in message and "'small'" in message and "'tiny'" in message, (name, message)


def test_options_that_repeat_the_weights_or_leave_them_intact_are_taken(tmp_path, direct_waves):
    for name, outcome in _entry_points(tmp_path, ["backbone.size=tiny", "backbone.dropout=0.1"], direct_waves).items():
        if isinstance(outcome, torch.nn.Module):
            assert outcome.pretrained_cfg.source == "default", name
            assert [m.p for m in outcome.modules() if isinstance(m, torch.nn.Dropout)][:1] == [0.1], name
            shipped = load_file(str(SHIPPED))
            assert torch.equal(outcome.state_dict()["head.weight"], shipped["head.weight"]), name
        else:
            assert not isinstance(outcome, Exception) and outcome.exit_code == 0, (name, outcome)


# -- a weights file of one's own: options, shape and normalisation travel with it --------
TINY = {"size": "tiny", "dim": 16, "depth": 1, "heads": 2, "decoder_dim": 8, "patch_time": 16, "patch_receiver": 4}
TINY_SHAPE = {"shots": 2, "time": 64, "receivers": 16, "depth": 12, "width": 20}
NORM = {"vmin": 1000.0, "vmax": 5000.0, "data_min": -3.0, "data_max": 2.0, "log_gathers": True}


@pytest.fixture
def own_weights(tmp_path):
    from fwi_plugins.specs import IOShape

    torch.manual_seed(3)
    model = api.build_backbone("vit", TINY, shape=IOShape(**TINY_SHAPE))
    path = tmp_path / "own.safetensors"
    save_weights(model, path, metadata={"backbone": "vit", "backbone_options": TINY, "shape": TINY_SHAPE,
                                        "normalization": NORM})
    return path


def test_a_weights_file_brings_its_options_shape_and_normalisation(own_weights):
    from fwi_plugins.engine.inference import load_model

    gathers = np.random.default_rng(1).normal(size=(3, 2, 64, 16)).astype(np.float32)
    expected = _by_hand(own_weights, gathers)
    for model in (load_model("vit", weights_path=own_weights), api.build_backbone("vit", pretrained=str(own_weights))):
        velocity = api.predict(model, gathers, progress=False, device="cpu")
        assert velocity.shape == (3, 1, 12, 20)
        np.testing.assert_allclose(velocity, expected, rtol=1e-5, atol=0.05)


def test_weights_that_do_not_fit_fail_naming_what(own_weights, tmp_path):
    from fwi_plugins.specs import IOShape

    with pytest.raises(ConfigError, match="belong to backbone 'vit', not 'inversionnet'"):
        api.build_backbone("inversionnet", pretrained=str(own_weights))
    with pytest.raises(DataError, match="2 shots x 64 samples x 16 receivers"):
        api.build_backbone("vit", pretrained=str(own_weights), shape=IOShape(shots=3, time=64, receivers=16))
    broken = tmp_path / "broken.safetensors"
    save_weights(torch.nn.Linear(1, 1), broken, metadata={"backbone_options": "{size: tiny"})
    with pytest.raises(DataError, match=f"{re.escape(str(broken))}: metadata 'backbone_options' is not valid JSON"):
        api.build_backbone("vit", pretrained=str(broken))
    with pytest.raises(Exception, match="ships no pretrained weights"):
        api.build_backbone("inversionnet", pretrained="default")

    np.save(tmp_path / "g.npy", np.zeros((1, 2, 64, 16), np.float32))
    base = ["predict", "--input", str(tmp_path / "g.npy"), "--out", str(tmp_path / "o"), "--quiet"]
    for args, code, message in [
        (["--backbone", "inversionnet", "--weights", str(own_weights)], 1, "belong to backbone 'vit'"),
        (["--backbone", "inversionnet"], 2, "--pretrained: backbone 'inversionnet' ships no pretrained weights"),
        (["--backbone", "vit", "--pretrained", "default", "--weights", str(own_weights)], 2, "give one"),
        (["--backbone", "vit", "--weights", str(broken)], 1, "metadata 'backbone_options'"),
    ]:
        result = CliRunner().invoke(main, [*base, *args])
        assert result.exit_code == code, (args, result.output)
        assert f"error: {message}" in result.output or message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_fwi_refine_from_the_foundation_starts_where_fwi_predict_ends(openfwi_gathers, tmp_path):
    gathers, _ = openfwi_gathers
    np.save(tmp_path / "g.npy", gathers[:1])
    result = CliRunner().invoke(main, ["refine", "--backbone", "vit", "--observed", str(tmp_path / "g.npy"),
                                       "--iterations", "1", "--out", str(tmp_path / "r"), "--no-progress",
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    initial, attrs = read_velocity(tmp_path / "r" / "initial.nc")
    np.testing.assert_allclose(initial, _by_hand(SHIPPED, gathers[:1]), rtol=1e-5, atol=0.05)
    assert attrs["pretrained"] == "default"
    settings = json.loads((tmp_path / "r" / "config.json").read_text())
    assert settings["initial"].endswith("initial.nc") and settings["start"]["backbone_options"]["size"] == "tiny"

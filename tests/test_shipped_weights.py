"""The foundation weights shipped with the package: present, small, loadable, better than chance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fwi_plugins import api
from fwi_plugins.weights import resolve_pretrained

WEIGHTS_DIR = Path(api.__file__).resolve().parent / "weights"


def test_vit_ships_default_weights_under_25_mb_with_a_model_card():
    spec = api.get_spec("backbone", "vit")
    assert "default" in spec.pretrained
    path = resolve_pretrained(spec, "default")
    assert path.stat().st_size <= 25 * 2**20
    card = json.loads((WEIGHTS_DIR / f"{path.stem}.json").read_text())
    for key in ("command", "data", "seed", "steps", "wall_time_s", "hardware", "validation"):
        assert key in card, f"model card lacks {key!r}"
    assert card["command"].startswith("fwi pretrain")
    assert (WEIGHTS_DIR / f"{path.stem}.md").is_file()


def test_default_weights_predict_better_than_an_untrained_network():
    """Zero-shot on fresh maps of a family the foundation saw, against random initialisation."""
    from safetensors import safe_open

    from fwi_plugins.data import Normalization

    spec = api.get_spec("backbone", "vit")
    dataset = api.load_dataset("flatvel-a", {"n_train": 0, "n_val": 0, "n_test": 3, "seed": 12345})
    physics = api.build_physics("deepwave", survey=dataset.survey)
    truth = dataset.velocity("test")
    gathers = api.simulate(truth, physics)

    with safe_open(str(resolve_pretrained(spec, "default")), framework="pt") as handle:
        metadata = handle.metadata()
    options = json.loads(metadata["backbone_options"])  # the weights carry how they were built
    normalization = Normalization.from_dict(json.loads(metadata["normalization"]))

    scores = {}
    for pretrained in ("default", None):
        model = api.build_backbone("vit", options, pretrained=pretrained)
        predicted = api.predict(model, gathers, normalization=normalization, progress=False)
        scores[pretrained] = api.evaluate(predicted, truth)
    assert scores["default"]["mae"] < 0.5 * scores[None]["mae"]
    assert scores["default"]["ssim"] > scores[None]["ssim"]
    assert np.isfinite(scores["default"]["rmse"])


def test_default_weights_never_saw_the_held_out_families():
    """``curvefault-b`` and ``salt`` measure out-of-distribution adaptation (make run, the study)."""
    spec = api.get_spec("backbone", "vit")
    path = resolve_pretrained(spec, "default")
    card = json.loads((WEIGHTS_DIR / f"{path.stem}.json").read_text())
    seen = {d["name"] for d in card["data"]}
    assert seen and not seen & {"curvefault-b", "salt"}


def test_the_shipped_weights_keep_the_quality_their_card_records():
    """The model card's guard figures (benchmarks/weights_guard.py, one run) hold for the weights shipped.

    Weights as weak as v5 (real FlatVel-A SSIM 0.951 where v6 has 0.974 on the same 24 maps)
    fail: the tolerance only absorbs run-to-run float differences.
    """
    import sys

    from fwi_plugins.weights import state_digest

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import weights_guard

    spec = api.get_spec("backbone", "vit")
    path = resolve_pretrained(spec, "default")
    guard = json.loads((WEIGHTS_DIR / f"{path.stem}.json").read_text())["guard"]
    assert guard["weights_digest"] == state_digest(api.build_backbone("vit", pretrained="default")), \
        "the card's guard figures belong to other weights: run python benchmarks/weights_guard.py"
    measured = weights_guard.measure("default")
    assert set(measured) <= set(guard["sets"]) and "flatvel-a" in measured
    for name, scores in measured.items():
        card = guard["sets"][name]
        assert scores["maps"] == card["maps"], name
        assert scores["ssim"] >= card["ssim"] - 0.003, (name, scores, card)
        assert scores["mae_ms"] <= card["mae_ms"] * 1.03, (name, scores, card)

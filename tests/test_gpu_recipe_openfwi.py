"""The GPU recipe's ``--openfwi DIR``: the real OpenFWI training maps join the corpus and the mixture.

The archives are written here in OpenFWI's layout ((N, 1, 70, 70) float32 ``vmodelK.npy`` members
of ``<family>_<split>_vmodel.zip``), with test archives of other values beside them.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device" / "pretrain_gpu.sh"
#: Maps per member of each training archive: 6 FlatVel-A maps in two members, 5 CurveVel-A in one.
TRAIN_MEMBERS = {"flatvel-a": (3, 3), "curvevel-a": (5,)}
N_VAL = 2  # what --tiny draws from each archive for validation


def run_recipe(work: Path, out: Path, *extra: str, install: bool = True) -> subprocess.CompletedProcess[str]:
    """The recipe through its shell script (which installs first), or its Python file alone."""
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    command = ["bash", str(SCRIPT)] if install else [sys.executable, str(SCRIPT.with_suffix(".py"))]
    return subprocess.run([*command, "--tiny", "--work", str(work), "--out", str(out), *extra],
                          capture_output=True, text=True, env=env, timeout=1200)


def layered_maps(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct OpenFWI-size maps: layers of 1500..4500 m/s with a slight lateral gradient."""
    layers = np.sort(rng.uniform(1500.0, 4200.0, (n, 1, 70, 1)), axis=2)
    lateral = rng.uniform(0.0, 3.0, (n, 1, 1, 1)) * np.arange(70) / 70
    return (layers + lateral * 100).astype(np.float32)


def write_archive(path: Path, members: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in members.items():
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            zf.writestr(name, buffer.getvalue())


def read_archive(path: Path) -> np.ndarray:
    """Every map of ``path``, read with zipfile and numpy alone."""
    with zipfile.ZipFile(path) as zf:
        names = sorted((n for n in zf.namelist() if n.endswith(".npy")), key=lambda n: int(n[6:-4]))
        return np.concatenate([np.load(io.BytesIO(zf.read(n)), allow_pickle=False) for n in names])


def openfwi_folder(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(7)
    for family, counts in TRAIN_MEMBERS.items():
        write_archive(folder / f"{family}_train_vmodel.zip",
                      {f"vmodel{i + 1}.npy": layered_maps(n, rng) for i, n in enumerate(counts)})
        write_archive(folder / f"{family}_test_vmodel.zip", {"vmodel11.npy": layered_maps(3, rng)})
    return folder


def corpus_maps(work: Path, family: str, split: str) -> np.ndarray:
    parts = sorted((work / "corpus" / f"openfwi-{family}").glob(f"{split}-*.velocity.npy"))
    return np.concatenate([np.load(p) for p in parts]) if parts else np.zeros((0, 1, 70, 70), np.float32)


def rows(maps: np.ndarray) -> list[bytes]:
    return [m.tobytes() for m in maps]


@pytest.mark.slow
def test_tiny_recipe_with_openfwi_trains_on_every_training_map_and_never_on_a_test_map(tmp_path):
    pytest.importorskip("fwi_torchwave")
    data = openfwi_folder(tmp_path / "openfwi")
    work, out = tmp_path / "work", tmp_path / "out"

    # The first call builds one piece (a generated one); the second builds the rest, the OpenFWI
    # pieces among them, on the same plan read back from the manifest, and trains. A generous
    # budget: on a loaded machine the default 9 minutes would stop the second call early.
    first = run_recipe(work, out, "--openfwi", str(data), "--max-pieces", "1", "--minutes", "60")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "RECIPE INCOMPLETE" in first.stdout and not (work / "corpus" / "openfwi-flatvel-a").exists()
    result = run_recipe(work, out, "--openfwi", str(data), "--minutes", "60")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"corpus: 1 of \d+ pieces on disk", result.stdout) and "RECIPE COMPLETE" in result.stdout

    for family in TRAIN_MEMBERS:
        archive = read_archive(data / f"{family}_train_vmodel.zip")
        test_maps = set(rows(read_archive(data / f"{family}_test_vmodel.zip")))
        train, val = corpus_maps(work, family, "train"), corpus_maps(work, family, "val")
        assert not test_maps & set(rows(np.concatenate([train, val])))
        assert (len(train), len(val)) == (len(archive) - N_VAL, N_VAL)
        # Every map of the training archive, each once, unchanged; validation apart from training.
        assert sorted(rows(np.concatenate([train, val]))) == sorted(rows(archive))
        assert not set(rows(train)) & set(rows(val))

    manifest = json.loads((work / "corpus" / "manifest.json").read_text())
    recorded = manifest["openfwi"]["families"]
    assert set(recorded) == {"openfwi-flatvel-a", "openfwi-curvevel-a"}
    assert {info["archive"] for info in recorded.values()} == {f"{f}_train_vmodel.zip" for f in TRAIN_MEMBERS}

    card = json.loads((out / "model_card.json").read_text())
    data_rows = {row["name"]: row for row in card["data"]}
    real = {f"corpus-openfwi-{f}": sum(n) - N_VAL for f, n in TRAIN_MEMBERS.items()}
    assert len(data_rows) == 10 and {name: data_rows[name]["train"] for name in real} == real
    # About half of the samples are real, shared between the two families by size.
    shares = {name: data_rows[name]["sampling_share"] for name in real}
    assert sum(shares.values()) == pytest.approx(0.5)
    assert shares["corpus-openfwi-flatvel-a"] / shares["corpus-openfwi-curvevel-a"] == pytest.approx(4 / 3)
    generated = [row["sampling_share"] for name, row in data_rows.items() if name not in real]
    assert generated == pytest.approx([0.5 / 8] * 8)
    markdown = (out / "model_card.md").read_text()
    assert all(name in markdown for name in real) and "flatvel-a_train_vmodel.zip" in markdown
    assert "_test_vmodel" not in markdown + (out / "pretrain_gpu.log").read_text()

    # A second call without --openfwi meets the corpus built with it: a clear error, no traceback.
    again = run_recipe(work, tmp_path / "out2")
    assert again.returncode != 0 and "Traceback" not in again.stderr
    assert re.search(r"differs in [^;]*\bopenfwi\b", again.stderr) and "asks for it without --openfwi" in again.stderr


@pytest.mark.parametrize("remove", ["folder", "curvevel-a_train_vmodel.zip"])
def test_openfwi_folder_or_archive_missing_is_a_clear_error(tmp_path, remove):
    data = openfwi_folder(tmp_path / "openfwi")
    if remove == "folder":
        data = tmp_path / "absent"
    else:
        (data / remove).unlink()
    result = run_recipe(tmp_path / "work", tmp_path / "out", "--openfwi", str(data), install=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    missing = data if remove == "folder" else data / remove
    assert str(missing.resolve()) in result.stderr and "curvevel-a_train_vmodel.zip" in result.stderr
    assert not (tmp_path / "work").exists()  # stopped before anything was written

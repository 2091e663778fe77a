"""Files a user can lose: foreign folders, leftovers of killed writes, failed starts, file modes."""

from __future__ import annotations

import contextlib
import json
import os
import stat

import numpy as np
import pytest

from fwi_plugins.engine.config import Component, RunConfig
from fwi_plugins.errors import ConfigError
from fwi_plugins.manager import FWIPluginManager

TINY_VIT = {"size": "tiny", "dim": "16", "depth": "1", "heads": "2", "decoder_dim": "8", "patch_time": "50",
            "patch_receiver": "4"}
TINY_DATA = {"n_train": "8", "n_val": "2", "n_test": "4", "nz": "16", "nx": "16", "survey": "small"}


@pytest.fixture
def manager(tmp_path, monkeypatch):
    monkeypatch.setenv("FWI_CACHE_DIR", str(tmp_path / "cache"))
    return FWIPluginManager().load_all()


def config(out, **options) -> RunConfig:
    base = {"epochs": 1, "batch_size": 4, "device": "cpu", "progress": False, "figures": False,
            "pretrained": "none"}
    base.update(options)
    return RunConfig(command="run", out=str(out), options=base, components={
        "backbone": (Component("vit", TINY_VIT),), "peft": (Component("lora", {"r": "2"}),),
        "physics": (Component("deepwave"),), "dataset": (Component("flatvel-a", TINY_DATA),)})


def prepare(cfg, manager):
    from fwi_plugins.engine.jobs.start import prepare_run_dir, resolve

    return prepare_run_dir(resolve(cfg, manager.get))[0]


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- --out ---------------------------------------------------------------------------
def test_a_folder_that_is_not_a_run_is_refused_and_left_alone(tmp_path, manager):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "metrics.json").write_text("my own numbers")
    (out / "chapter1.tex").write_text("x")
    with pytest.raises(ConfigError, match=r"thesis.*not empty.*not a run"):
        prepare(config(out), manager)
    assert (out / "metrics.json").read_text() == "my own numbers"
    assert sorted(p.name for p in out.iterdir()) == ["chapter1.tex", "metrics.json"]


def test_an_empty_folder_and_a_new_one_are_fine(tmp_path, manager):
    (tmp_path / "empty").mkdir()
    assert (prepare(config(tmp_path / "empty"), manager) / "config.json").is_file()
    assert (prepare(config(tmp_path / "new" / "deeper"), manager) / "config.toml").is_file()


def test_a_run_that_did_no_work_does_not_block_its_corrected_retry(tmp_path, manager):
    out = tmp_path / "run"
    prepare(config(out, lr=1.0), manager)  # as if the job then failed on a bad input
    (out / "checkpoints").mkdir()  # an empty folder is no work either
    prepare(config(out, lr=1e-3), manager)
    assert json.loads((out / "config.json").read_text())["options"]["lr"] == 1e-3


def test_a_run_that_did_work_still_refuses_another_configuration(tmp_path, manager):
    out = tmp_path / "run"
    prepare(config(out, lr=1.0), manager)
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "latest.json").write_text("{}")
    with pytest.raises(ConfigError, match="different configuration"):
        prepare(config(out, lr=1e-3), manager)


def test_leftovers_of_killed_writes_are_removed_when_the_run_starts_again(tmp_path, manager):
    out = tmp_path / "run"
    prepare(config(out), manager)
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "latest.json").write_text("{}")
    (out / "checkpoints" / ".epoch-0002.k3j4.part").mkdir()
    (out / "checkpoints" / ".epoch-0002.k3j4.part" / "model.safetensors").write_bytes(b"half")
    (out / ".adapter.x1y2.part").mkdir()
    (out / ".metrics.json.ab12.part").write_text("{")
    (out / "notes.part").write_text("not ours: no leading dot")
    prepare(config(out), manager)
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert not [p for p in left if p.endswith(".part") and "/." in "/" + p], left
    assert "notes.part" in left and "checkpoints/latest.json" in left


def test_adapter_writes_leave_part_named_temporaries(tmp_path, monkeypatch):
    """A killed adapter write leaves a folder the next run recognises and removes."""
    from fwi_plugins import adapted

    seen = []

    def fail(src, dst):
        seen.append(src)
        raise KeyboardInterrupt

    manager = FWIPluginManager().load_all()
    spec = manager.get("backbone", "inversionnet")
    from fwi_plugins.testing import TINY_SHAPE

    model = spec.load()(spec.parse_options(dict(spec.example_options)), shape=TINY_SHAPE)
    mspec = manager.get("peft", "full")
    model = mspec.load()(model, mspec.parse_options({}), targets=spec.peft_targets, head=spec.head)
    monkeypatch.setattr(adapted, "_replace_into", fail)
    with pytest.raises(KeyboardInterrupt):
        adapted.save_adapted(model, tmp_path / "adapter")
    assert seen and seen[0].name.startswith(".adapter.") and seen[0].name.endswith(".part")


# -- modes -------------------------------------------------------------------------------
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_written_files_follow_the_umask(tmp_path, mask):
    from fwi_plugins.data import io
    from fwi_plugins.atomic import atomic_write_text
    from fwi_plugins.survey import Survey

    with umask(mask):
        text = atomic_write_text(tmp_path / "a.json", "{}")
        survey = Survey.small()
        gathers = np.zeros((1, survey.n_shots, survey.nt, survey.n_receivers), np.float32)
        nc = io.write_gathers(tmp_path / "g.nc", gathers, survey=survey)
        sgy = io.write_gathers(tmp_path / "g.sgy", gathers, survey=survey)
    for path in (text, nc, sgy):
        assert mode(path) == 0o666 & ~mask, path


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_saved_adapters_follow_the_umask(tmp_path, mask):
    from fwi_plugins import adapted
    from fwi_plugins.testing import TINY_SHAPE

    manager = FWIPluginManager().load_all()
    spec = manager.get("backbone", "inversionnet")
    model = spec.load()(spec.parse_options(dict(spec.example_options)), shape=TINY_SHAPE)
    mspec = manager.get("peft", "lora")
    model = mspec.load()(model, mspec.parse_options(dict(mspec.example_options)), targets=spec.peft_targets,
                         head=spec.head)
    with umask(mask):
        folder = adapted.save_adapted(model, tmp_path / "adapter")
    assert mode(folder) == 0o777 & ~mask
    for path in folder.iterdir():
        assert mode(path) == 0o666 & ~mask, path


def test_run_directory_files_follow_the_umask(tmp_path, manager):
    with umask(0o022):
        out = prepare(config(tmp_path / "run"), manager)
    assert mode(out / "config.toml") == 0o644 and mode(out / "config.json") == 0o644

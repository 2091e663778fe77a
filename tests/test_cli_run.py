"""``fwi run`` and ``fwi pretrain`` on the command line: dry runs, errors, a tiny job, --config."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest
from click.testing import CliRunner

from fwi_plugins.cli import main
from fwi_plugins.manager import reset_plugin_manager

PLUGIN = textwrap.dedent('''
    import math

    from fwi_plugins import PhysicsSpec, hookimpl


    class LinearPhysics:
        def __init__(self, options, *, survey):
            import torch

            self.survey, self.version = survey, "linear-1"
            g = torch.Generator().manual_seed(7)
            self.kernel = torch.randn(survey.n_shots, survey.nt, survey.nz, generator=g) / math.sqrt(survey.nz)
            self.columns = torch.tensor([int(round(r[1])) for r in survey.receivers])

        def simulate(self, velocity):
            import torch

            v = (velocity[:, 0, :, self.columns] - 3000.0) / 1000.0
            return torch.einsum("stz,bzr->bstr", self.kernel, v)

        def misfit(self, predicted, observed):
            return (predicted - observed).square().mean()


    @hookimpl
    def fwi_physics():
        yield PhysicsSpec(name="linear-test", factory=LinearPhysics, description="linear stand-in physics")
''')

TINY = ["-o", "backbone.size=tiny", "-o", "backbone.dim=16", "-o", "backbone.depth=1", "-o", "backbone.heads=2",
        "-o", "backbone.decoder_dim=8", "-o", "backbone.patch_receiver=4",
        "-o", "dataset.n_train=8", "-o", "dataset.n_val=2", "-o", "dataset.n_test=2", "-o", "dataset.nz=16",
        "-o", "dataset.nx=16", "-o", "dataset.survey=small"]
FAST = ["-o", "epochs=1", "-o", "batch_size=4", "-o", "progress=false", "-o", "figures=false",
        "-o", "refine_samples=1", "-o", "refine_iterations=1", "-o", "n_misfit=1", "--device", "cpu"]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("FWI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    plugin = tmp_path / "standins.py"
    plugin.write_text(PLUGIN)
    reset_plugin_manager()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, [*args[:1], "--plugin", str(plugin), *args[1:]], catch_exceptions=False)

    yield invoke
    reset_plugin_manager()


def test_dry_run_prints_the_resolved_configuration(cli, tmp_path):
    result = cli("run", "--backbone", "vit", "--peft", "lora", "--physics", "linear-test", "-o", "epochs=3",
                 "-o", "peft.r=4", "--labels", "full", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    assert config["options"]["epochs"] == 3 and config["peft"]["options"]["r"] == 4
    assert config["dataset"]["name"] == "salt"  # the default target
    assert config["out"] == "runs/vit-lora-salt"
    assert not (tmp_path / "runs").exists()
    toml = cli("run", "--backbone", "vit", "--peft", "lora", "--physics", "linear-test", "--dry-run")
    assert toml.exit_code == 0 and "[options]" in toml.output and "[backbone]" in toml.output


@pytest.mark.parametrize(("args", "needle", "code"), [
    (["-o", "epoch=3"], "Did you mean 'epochs'", 2),
    (["-o", "epochs=0"], "epochs", 2),
    (["-o", "lr=fast"], "lr", 2),
    (["-o", "backbone.sise=tiny"], "Did you mean 'size'", 2),
    (["-o", "peft.r=x"], "'r'", 2),
    (["-o", "bakbone.size=tiny"], "Did you mean 'backbone'", 2),
    (["--labels", "none"], "lambda_physics", 2),
    (["-o", "noequals"], "key=value", 2),
])
def test_bad_values_fail_before_any_work_naming_the_key(cli, tmp_path, args, needle, code):
    result = cli("run", "--backbone", "vit", "--peft", "lora", "--physics", "linear-test", *args)
    assert result.exit_code == code, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_unknown_component_and_missing_component(cli):
    result = cli("run", "--backbone", "vitt", "--peft", "lora", "--physics", "linear-test")
    assert result.exit_code == 2 and "Did you mean 'vit'" in result.output
    result = cli("run", "--backbone", "vit", "--physics", "linear-test")
    assert result.exit_code != 0 and "--peft" in result.output


def test_tiny_job_then_rerun_from_its_config(cli, tmp_path):
    out = tmp_path / "job"
    result = cli("run", "--backbone", "vit", "--peft", "lora", "--physics", "linear-test", "--pretrained", "none",
                 *TINY, *FAST, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "SSIM" in result.output and "zero-shot" in result.output and "refined (1)" in result.output
    assert (out / "metrics.json").is_file() and (out / "adapter" / "adapter_config.json").is_file()
    first = json.loads((out / "metrics.json").read_text())
    # fwi runs reads the folder the engine wrote.
    listed = CliRunner().invoke(main, ["runs", str(tmp_path), "--json"], catch_exceptions=False)
    (run,) = json.loads(listed.output)
    assert (run["backbone"], run["peft"], run["dataset"], run["status"]) == ("vit", "lora", "salt", "complete")
    assert run["adapted_ssim"] == first["adapted"]["ssim"] and run["steps"] == first["training"]["steps"] == 2
    assert run["wall_time"] == first["timing"]["total"] and first["training"]["complete"] is True
    # The run directory's config re-runs the job: it resumes the finished training.
    again = cli("run", "--config", str(out), "--json")
    assert again.exit_code == 0, again.output
    metrics = json.loads(again.output[again.output.index("{"):])
    assert metrics["training"]["resumed_from"] == 1
    assert metrics["adapted"] == first["adapted"]
    # Changing a setting of a finished run directory is refused, naming the key.
    changed = cli("run", "--config", str(out / "config.toml"), "-o", "lr=0.5")
    assert changed.exit_code == 1 and "options.lr" in changed.output
    # A copied run directory re-runs in the copy; the original is never written into.
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    copied = cli("run", "--config", str(copy / "config.toml"), "--json")
    assert copied.exit_code == 0, copied.output
    assert json.loads(copied.output[copied.output.index("{"):])["training"]["resumed_from"] == 1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    assert json.loads((copy / "config.json").read_text())["out"] == str(copy.resolve())


def test_pretrain_dry_run_and_bad_weights(cli):
    base = ["pretrain", "--backbone", "vit", "--dataset", "flatvel-a", "--dataset", "curvevel-a",
            "--physics", "linear-test"]
    result = cli(*base, "-o", "weights=1,2", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    assert [d["name"] for d in config["dataset"]] == ["flatvel-a", "curvevel-a"]
    assert config["options"]["weights"] == [1.0, 2.0]
    bad = cli(*base, "-o", "weights=1,2,3")
    assert bad.exit_code == 1 and "weights" in bad.output
    missing = cli("pretrain", "--backbone", "vit")
    assert missing.exit_code == 1 and "dataset" in missing.output


def test_tiny_pretrain_then_run_from_its_weights(cli, tmp_path):
    pre = tmp_path / "pre"
    result = cli("pretrain", "--backbone", "vit", "--dataset", "flatvel-a", "--physics", "linear-test", *TINY,
                 "-o", "epochs=1", "-o", "batch_size=4", "-o", "progress=false", "--device", "cpu",
                 "--out", str(pre))
    assert result.exit_code == 0, result.output
    assert (pre / "weights.safetensors").is_file() and (pre / "model_card.md").is_file()
    card = json.loads((pre / "model_card.json").read_text())
    assert card["command"].startswith("fwi pretrain")
    run = cli("run", "--backbone", "vit", "--peft", "lora", "--physics", "linear-test", *TINY, *FAST,
              "--pretrained", str(pre / "weights.safetensors"), "--out", str(tmp_path / "job"))
    assert run.exit_code == 0, run.output
    assert json.loads((tmp_path / "job" / "metrics.json").read_text())["pretrained"].endswith("weights.safetensors")

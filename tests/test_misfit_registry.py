"""Misfits are a registry: built-ins and plugins' misfits alike, usable by any physics by name."""

from __future__ import annotations

import textwrap

import pytest
import torch
from click.testing import CliRunner

from fwi_plugins import MisfitSpec, get_plugin_manager
from fwi_plugins.cli import main
from fwi_plugins.errors import OptionError, PluginError
from fwi_plugins.misfit_registry import canonical_misfit, get_misfit
from fwi_plugins.misfit_functions import misfit_ncc
from fwi_plugins.survey import Survey

L1 = textwrap.dedent('''
    from fwi_plugins import MisfitSpec, hookimpl

    def l1(predicted, observed):
        return (predicted - observed).abs().mean()

    @hookimpl
    def fwi_misfits():
        yield MisfitSpec(name="l1", factory=l1, description="mean absolute difference")
''')


@pytest.fixture
def l1_plugin(tmp_path):
    path = tmp_path / "l1_misfit.py"
    path.write_text(L1)
    get_plugin_manager().load_plugin(str(path))
    return str(path)


def test_the_built_in_misfits_are_registered_through_the_hook():
    manager = get_plugin_manager()
    misfits = manager.components("misfit")
    assert {"l2", "trace-l2", "ncc", "envelope"} <= set(misfits)
    assert all(spec.provider.distribution == "fwi-plugins" for spec in misfits.values())
    assert get_misfit("NCC") is misfit_ncc
    assert canonical_misfit("trace_l2") == "trace-l2"


def test_an_unknown_misfit_suggests_the_closest():
    with pytest.raises(OptionError, match=r"unknown misfit 'ncx'\. Did you mean 'ncc'\?") as err:
        canonical_misfit("ncx")
    assert "fwi list misfit" in str(err.value)


@pytest.mark.parametrize("physics", ["deepwave", "torchwave"])
def test_a_physics_takes_a_plugins_misfit(l1_plugin, physics):
    spec = get_plugin_manager().get("physics", physics)
    options = spec.parse_options({"misfit": "L1"})
    assert options.misfit == "l1"
    built = spec.load()(options, survey=Survey.openfwi())
    a, b = torch.randn(1, 2, 64, 8), torch.randn(1, 2, 64, 8)
    assert float(built.misfit(a, b)) == pytest.approx(float((a - b).abs().mean()))


@pytest.mark.parametrize("physics", ["deepwave", "torchwave"])
def test_a_physics_refuses_an_unknown_misfit_with_did_you_mean(physics):
    spec = get_plugin_manager().get("physics", physics)
    with pytest.raises(OptionError, match=r"option 'misfit': unknown misfit 'envelop'\. Did you mean 'envelope'\?"):
        spec.parse_options({"misfit": "envelop"})


def test_fwi_run_refuses_an_unknown_misfit(tmp_path):
    result = CliRunner().invoke(main, ["run", "--backbone", "vit", "--peft", "lora", "--physics", "deepwave",
                                       "-o", "physics.misfit=l3", "--dry-run", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "option 'misfit': unknown misfit 'l3'. Did you mean 'l2'?" in result.stderr


def test_fwi_list_misfit_lists_plugins_misfits(l1_plugin):
    result = CliRunner().invoke(main, ["list", "misfit", "--plugin", l1_plugin])
    assert result.exit_code == 0, result.output
    for name in ("l1", "l2", "trace-l2", "ncc", "envelope"):
        assert f"  {name} " in result.stdout


def test_a_misfit_takes_no_options():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Opts:
        power: int = 2

    with pytest.raises(PluginError, match="misfit 'lp'.*takes no options"):
        MisfitSpec(name="lp", factory="os:getcwd", options=Opts)

"""``fwi plugins``, ``fwi list`` and ``fwi show``: what is installed, by whom, with which options."""

from __future__ import annotations

import click

from ..specs import KINDS, kind_of
from .common import echo_json, handles_errors, plugin_option


def _manager():  # noqa: ANN202 - imported lazily to keep --help cheap
    from ..manager import get_plugin_manager

    return get_plugin_manager()


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@plugin_option
@handles_errors
def plugins(as_json: bool, plugins: tuple[str, ...]) -> None:
    """List loaded plugins: distribution, version, hooks and component counts.

    Failed and blocked plugins are listed too, with the reason.
    """
    manager = _manager()
    infos = manager.plugin_infos()
    conflicts = manager.conflicts()
    if as_json:
        echo_json([info.to_dict() for info in infos])
        for message in conflicts:
            click.secho(f"conflict: {message}", fg="red", err=True)
        return
    for info in infos:
        version = f"{info.distribution or '-'} {info.version or ''}".strip()
        counts = ", ".join(f"{n} {KINDS[k].plural if n != 1 else k}" for k, n in info.components.items())
        line = f"{info.name:40s} {version:24s} {info.status:8s} {counts}"
        click.echo(line.rstrip())
        if info.error:
            click.secho(f"    {info.error}", fg="red")
        if info.hooks and info.status == "loaded":
            click.echo(f"    hooks: {', '.join(info.hooks)}")
    for message in conflicts:  # listed, not fatal: commands that use the name fail
        click.secho(f"conflict: {message}", fg="red")


@click.command("list")
@click.argument("kind", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@plugin_option
@handles_errors
def list_components(kind: str | None, as_json: bool, plugins: tuple[str, ...]) -> None:
    """List registered components, of one KIND (backbone, peft, dataset, physics) or all.

    A name two plugins provide is listed once per provider and marked as a clash (``conflict``
    in ``--json``); only the commands that use that name fail.
    """
    manager = _manager()
    kinds = [kind_of(kind).name] if kind else list(KINDS)
    # A clashing name is listed with both providers and marked; only commands that use it fail.
    table = {k: [{**spec.to_dict(), "conflict": clash} for spec, clash in manager.listing(k)] for k in kinds}
    if as_json:
        echo_json(table if not kind else table[kinds[0]])
        return
    for k, specs in table.items():
        click.secho(f"{KINDS[k].plural} ({KINDS[k].option}):", bold=True)
        if not specs:
            click.echo("  (none)")
        for spec in specs:
            note = f"  [unavailable: {spec['unavailable']}]" if spec["unavailable"] else ""
            note += "  [name clash: see below]" if spec["conflict"] else ""
            provider = spec["provider"]["distribution"] or spec["provider"]["plugin"]
            click.echo(f"  {spec['name']:16s} {spec['description']}  ({provider}){note}")
    clashes = dict.fromkeys(spec["conflict"] for specs in table.values() for spec in specs if spec["conflict"])
    for message in clashes:
        click.secho(f"conflict: {message}", fg="red")
    if not kind:
        click.echo("\nDetails of one: fwi show KIND NAME")


@click.command("show")
@click.argument("kind")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@plugin_option
@handles_errors
def show(kind: str, name: str, as_json: bool, plugins: tuple[str, ...]) -> None:
    """Describe component NAME of KIND: provider, options with help and defaults, requirements."""
    spec = _manager().get(kind, name)
    data = spec.to_dict()
    if as_json:
        echo_json(data)
        return
    click.secho(f"{spec.kind} {spec.name}", bold=True)
    click.echo(f"  {spec.description}")
    if spec.aliases:
        click.echo(f"  aliases: {', '.join(spec.aliases)}")
    if spec.provider:
        click.echo(f"  provided by: {spec.provider} (plugin {spec.provider.plugin})")
    if spec.requires:
        missing = data["missing"]
        status = f"missing: pip install {' '.join(missing)}" if missing else "all installed"
        click.echo(f"  requires: {', '.join(spec.requires)} ({status})")
    if spec.needs:
        status = f"unavailable: {spec.unavailable}" if spec.unavailable else "all registered"
        click.echo(f"  needs: {', '.join(spec.needs)} ({status})")
    for key in ("peft_targets", "head", "pretrained"):
        if data.get(key):
            click.echo(f"  {key.replace('_', ' ')}: {', '.join(data[key])}")
    options = data["options"]
    click.echo("  options:" if options else "  options: none")
    for opt in options:
        choices = f" [{'|'.join(map(str, opt['choices']))}]" if opt["choices"] else ""
        click.echo(f"    {spec.kind}.{opt['name']} ({opt['type']}{choices}, default {opt['default']!r})")
        if opt["help"]:
            click.echo(f"        {opt['help']}")

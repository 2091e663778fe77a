"""Pieces every subcommand shares: error handling, registry names, ``-o`` options, JSON output."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import click

from ..errors import FWIError, OptionError
from ..specs import KINDS, normalize_name

F = TypeVar("F", bound=Callable[..., Any])


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    click.secho(f"warning: {message}", fg="yellow", err=True)


def plain_warnings() -> None:
    """Print warnings as one ``warning: ...`` line, without Python's source line.

    Installed before the plugins load (they load while options are parsed, before the
    command itself runs), so a broken plugin's warning reads like every other.
    """
    warnings.showwarning = _show_warning


class FatalError(click.ClickException):
    """An :class:`FWIError` raised while options are parsed, reported as the command's own error.

    Click would otherwise blame the option being parsed ("Invalid value for '--plugin'")
    for a failure that has nothing to do with it, such as a broken plugin in strict mode.
    """

    def __init__(self, error: FWIError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code

    def show(self, file: Any = None) -> None:
        click.secho(f"error: {self.message}", fg="red", err=True)


def plugin_manager() -> Any:
    """The process-wide plugin manager; one that cannot load ends the command with its own error."""
    from ..manager import get_plugin_manager

    plain_warnings()
    try:
        return get_plugin_manager()
    except FWIError as exc:
        if os.environ.get("FWI_TRACEBACK"):
            traceback.print_exc()
        raise FatalError(exc) from None


def describe_os_error(exc: OSError) -> str:
    """One line naming the path and what the system said: ``PATH: No space left on device``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    if not paths:
        return reason
    return f"{' -> '.join(paths)}: {reason}"


def handles_errors(func: F) -> F:
    """Report :class:`FWIError` as ``error: ...`` with its exit code and no traceback.

    An :class:`OSError` (a read-only folder, a full disk) is the environment's: one
    ``error: PATH: reason`` line, exit code 1.

    ``FWI_TRACEBACK=1`` prints the traceback too.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        plain_warnings()
        try:
            return func(*args, **kwargs)
        except FWIError as exc:
            if os.environ.get("FWI_TRACEBACK"):
                traceback.print_exc()
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:  # the environment's: a read-only folder, a full disk
            if os.environ.get("FWI_TRACEBACK"):
                traceback.print_exc()
            click.secho(f"error: {describe_os_error(exc)}", fg="red", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.secho("interrupted: finished work is kept; run the same command again to resume", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


class ComponentName(click.ParamType):
    """A registered component name; checked against the registry only when parsed."""

    name = "name"

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if value is None or normalize_name(str(value)) == "none":
            return value
        manager = plugin_manager()
        try:
            return manager.get(self.kind, str(value)).name
        except FWIError as exc:
            self.fail(str(exc), param, ctx)

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        from ..manager import get_plugin_manager

        return [CompletionItem(n) for n in get_plugin_manager().components(self.kind) if n.startswith(incomplete)]


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """``-o key=value`` pairs into a dict (the value may contain ``=``)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"-o {pair!r}: expected key=value, for example -o backbone.size=tiny")
        out[key.strip()] = value.strip()
    return out


def split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Split ``kind.key=value`` overrides from plain (engine) ones.

    Returns ``({kind: {key: value}}, {key: value})``.
    """
    per_kind: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
    plain: dict[str, Any] = {}
    for key, value in overrides.items():
        head, dot, rest = key.partition(".")
        if dot and head in KINDS:
            per_kind[head][rest] = value
        elif dot:
            from ..errors import UnknownNameError
            raise UnknownNameError("option prefix", head, list(KINDS),
                                   hint="Options are KIND.KEY=VALUE (e.g. -o backbone.size=tiny) or run options.")
        else:
            plain[key] = value
    return per_kind, plain


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def load_plugins(targets: Iterable[str]) -> None:
    """Load ``--plugin`` modules or files into the process-wide manager."""
    manager = plugin_manager()
    for target in targets:
        manager.load_plugin(target)


def _load_plugins_callback(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    try:
        load_plugins(value)
    except FWIError as exc:
        if exc.__cause__ is not None:  # the plugin itself failed (strict mode): its error, as for installed ones
            raise FatalError(exc) from None
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


plugin_option = click.option(
    "--plugin", "plugins", multiple=True, metavar="MODULE_OR_PATH", is_eager=True,
    help="Load an extra plugin module or .py file (repeatable).", callback=_load_plugins_callback,
)


def job_flags(func: F) -> F:
    """``--device``, ``--seed``, ``--dry-run`` and ``--json``: the flags every training job takes."""
    from ..engine.options import SEED_MAX

    for flag in reversed((
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where to train (default auto)."),
        click.option("--seed", type=click.IntRange(0, SEED_MAX), help=f"Random seed, 0 to {SEED_MAX}."),
        click.option("--dry-run", is_flag=True, help="Resolve and check everything, print the configuration, stop."),
        click.option("--json", "as_json", is_flag=True, help="Print the configuration or metrics as JSON."),
    )):
        func = flag(func)
    return func

"""Which modules a PEFT method adapts: peft's ``target_modules`` rules, shared by every built-in method."""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from ..errors import OptionError


def matches(name: str, targets: str | Sequence[str]) -> bool:
    """Whether a module name is selected by ``targets``, with peft's ``target_modules`` rules.

    A string is a regular expression matched against the whole name; a sequence holds
    names that match exactly or as a dotted suffix.
    """
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


_REGEX_CHARS = set("\\^$*+?()[]{}|")


def as_peft_targets(targets: Sequence[str]) -> str | list[str]:
    """A backbone's target tuple in peft's form: one pattern with regex syntax becomes a regex."""
    if len(targets) == 1 and _REGEX_CHARS & set(targets[0]):
        return targets[0]
    return list(targets)


def select(model: nn.Module, targets: str | Sequence[str], *, what: str) -> list[str]:
    """Names of the modules ``targets`` selects; an :class:`OptionError` when there is none."""
    names = [n for n, _ in model.named_modules() if n and matches(n, targets)]
    if not names:
        sample = ", ".join(n for n, _ in list(model.named_modules())[1:9])
        raise OptionError(f"{what}: no module of {type(model).__name__} matches {targets!r} "
                          f"(its modules include: {sample}, ...). Pass targets=... to choose others.")
    return names

"""One error hierarchy for everything a user can get wrong.

Every error here is a user error: the CLI prints its message and exits with
``exit_code`` and no traceback (``FWI_TRACEBACK=1`` shows one).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FWIError(Exception):
    """Base of every error the CLI reports without a traceback."""

    exit_code = 1


class UnknownNameError(FWIError, LookupError):
    """A component, option or plugin name that is not registered."""

    exit_code = 2

    def __init__(self, what: str, name: str, choices: Iterable[str], *, hint: str = "") -> None:
        self.what = what
        self.name = name
        self.choices = sorted(set(choices))
        message = f"unknown {what} {name!r}."
        close = difflib.get_close_matches(name, self.choices, n=1, cutoff=0.5)
        if close:
            message += f" Did you mean {close[0]!r}?"
        if self.choices:
            message += f"\nAvailable: {', '.join(self.choices)}."
        else:
            message += "\nNone is available."
        if hint:
            message += f"\n{hint}"
        super().__init__(message)


class OptionError(FWIError, ValueError):
    """An option value that cannot be parsed or fails validation."""

    exit_code = 2


class ConfigError(FWIError, ValueError):
    """A bad configuration file or configuration value."""


class MissingDependencyError(FWIError, ImportError):
    """A component needs a package that is not installed."""

    def __init__(self, component: str, missing: Iterable[str]) -> None:
        self.missing = list(missing)
        super().__init__(
            f"{component} needs {', '.join(self.missing)}, which is not installed: "
            f"pip install {' '.join(self.missing)}"
        )


class PluginError(FWIError):
    """A plugin that fails to load or declares something invalid."""


class DuplicateNameError(PluginError):
    """Two providers registered the same name in one kind."""

    exit_code = 2


class DataError(FWIError, ValueError):
    """Input data (a file, an array) that is not what was expected."""


class SurveyError(FWIError, ValueError):
    """An acquisition geometry or velocity model that cannot be simulated as asked."""

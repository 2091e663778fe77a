"""Registration of the built-in data misfits (the functions live in :mod:`fwi_plugins.misfit_functions`)."""

from __future__ import annotations

from collections.abc import Iterator

from ..hookspecs import hookimpl
from ..specs import MisfitSpec

_MISFITS = (
    ("l2", "misfit_l2", "mean squared difference of the raw amplitudes"),
    ("trace-l2", "misfit_trace_l2", "L2 of traces each scaled to unit energy (insensitive to source strength)"),
    ("ncc", "misfit_ncc", "1 - normalised zero-lag cross-correlation per trace (trace shape only)"),
    ("envelope", "misfit_envelope", "L2 of Hilbert envelopes (less prone to cycle skipping)"),
)


@hookimpl
def fwi_misfits() -> Iterator[MisfitSpec]:
    for name, function, description in _MISFITS:
        yield MisfitSpec(name=name, factory=f"fwi_plugins.misfit_functions:{function}", description=description)

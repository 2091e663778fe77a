"""The gathers' first arrivals against the survey's positions: each shot's earliest arrival lies at its source.

A surface source's direct wave reaches the receivers nearest it first, whatever the earth
below, so a survey whose sources sit where the data's first arrivals do not is not the
survey these gathers were recorded with: receivers stored in the reverse order of their
coordinates, or positions copied from another line. Such gathers map without complaint
and the network draws a mirrored or shifted earth, so they are refused here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from ..survey import Survey

__all__ = ["check_first_breaks"]

#: A first break is where a trace first reaches this share of its shot's largest amplitude.
BREAK_LEVEL = 0.05

#: An earliest arrival this far from its source, in shares of the receiver line, contradicts it.
FAR_SHARE = 0.25


def check_first_breaks(gathers: Any, survey: Survey, where: str) -> None:
    """Refuse gathers whose earliest arrival, shot by shot, lies far from the source ``survey`` states.

    Only the first sample is read. A shot is counted against the survey when its earliest
    arrival is more than a quarter of the receiver line (and three receiver steps) from its
    source; more than half of the shots counted so (and at least two) refuse the input.

    Raises:
        DataError: naming a contradicted shot, its source and where its first arrival lies.
    """
    first = gathers[0:1]
    if hasattr(first, "detach"):
        first = first.detach().cpu().numpy()
    g = np.abs(np.asarray(first, dtype=np.float64)[0])  # (S, T, R)
    if g.shape[0] != survey.n_shots or g.shape[2] != survey.n_receivers or not np.isfinite(g).all():
        return  # the shape and value checks report these
    receiver_x = np.array([p[1] for p in survey.receivers]) * survey.dx
    source_x = np.array([p[1] for p in survey.sources]) * survey.dx
    steps = np.diff(np.unique(receiver_x))
    if steps.size == 0:
        return
    far = max(FAR_SHARE * float(np.ptp(receiver_x)), 3.0 * float(steps.min()))
    contradicted = []
    for s in range(g.shape[0]):
        peak = g[s].max()
        if not peak > 0:
            continue  # a dead shot says nothing of positions
        broke = g[s] >= BREAK_LEVEL * peak  # (T, R)
        live = broke.any(axis=0)
        if live.sum() < 3:
            continue
        arrival = np.where(live, broke.argmax(axis=0), np.iinfo(np.int64).max)
        earliest = arrival.min()
        apex = float(np.median(receiver_x[arrival <= earliest + 1]))
        if abs(apex - source_x[s]) > far:
            contradicted.append((s, apex))
    if len(contradicted) >= 2 and 2 * len(contradicted) > survey.n_shots:
        s, apex = contradicted[0]
        raise DataError(f"{where}: the gathers' first arrivals contradict the survey's source positions: in "
                        f"{len(contradicted)} of {survey.n_shots} shots the earliest arrival is recorded far from "
                        f"the source (shot {s}, at x = {source_x[s]:g} m on the survey's grid, arrives first at "
                        f"x = {apex:g} m). Are the receivers stored in the reverse order of their coordinates, or "
                        f"the positions those of another line?")

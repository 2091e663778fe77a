"""The output folder of ``fwi predict``: it replaces only the files ``fwi predict`` wrote there."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PREDICT_OUTPUTS", "PredictFolder"]

#: What ``fwi predict`` writes in its output folder, in that order.
PREDICT_OUTPUTS = ("velocity.nc", "velocity.sgy", "velocity.png")


class PredictFolder:
    """``fwi predict``'s manifest of its output folder (``.fwi-predict.json``).

    A folder of an earlier version, which kept no manifest, counts as ``fwi predict``'s
    when its ``velocity.nc`` says so in its provenance (``generator = "fwi predict"``).
    """

    def __init__(self, out: Path) -> None:
        from .rundir import OutputManifest

        self.manifest = OutputManifest(out, tool="fwi predict", name=".fwi-predict.json",
                                       hint="choose another --out")

    def _earlier(self) -> bool:
        """Whether the folder, without a manifest, holds a ``velocity.nc`` of ``fwi predict``."""
        nc = self.manifest.folder / PREDICT_OUTPUTS[0]
        if self.manifest.exists() or not nc.is_file():
            return False
        from ...errors import FWIError

        try:
            import xarray as xr

            with xr.open_dataset(nc) as opened:
                return bool(opened.attrs.get("generator") == "fwi predict")
        except (FWIError, OSError, ValueError, ImportError):
            return False

    def check(self) -> None:
        """Refuse, by name, an output that exists and was not written by ``fwi predict``."""
        from ...errors import ConfigError

        foreign = [] if self._earlier() else self.manifest.foreign(*PREDICT_OUTPUTS)
        if foreign:
            raise ConfigError(f"{self.manifest.folder / foreign[0]} was not written by fwi predict, which would "
                              f"replace it; choose another --out")

    def record(self) -> None:
        """Record the outputs as ``fwi predict``'s (once written: a failed write leaves no manifest)."""
        self.manifest.record(*PREDICT_OUTPUTS)

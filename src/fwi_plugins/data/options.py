"""Option dataclasses of the built-in datasets.

Kept apart from the generators so that registering datasets (``fwi list``, ``fwi show``)
imports nothing heavier than :mod:`fwi_plugins.options`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..options import option

SURVEY_HELP = "acquisition: a preset ('openfwi', 'small') or a .toml/.json survey file"


@dataclass(frozen=True, kw_only=True)
class FamilyOptions:
    """Options every generated family shares."""

    n_train: int = option(256, "training maps (sized so that fwi run takes minutes on a laptop CPU)")
    n_val: int = option(16, "validation maps")
    n_test: int = option(32, "test maps")
    seed: int = option(0, "random seed; map i of a split is the same whatever the split sizes")
    nz: int = option(70, "grid points in depth")
    nx: int = option(70, "grid points across")
    survey: str = option("openfwi", SURVEY_HELP)
    vmin: float = option(1500.0, "lowest velocity, m/s")
    vmax: float = option(4500.0, "highest velocity, m/s")

    def __post_init__(self) -> None:
        for name in ("n_train", "n_val", "n_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.n_train + self.n_val + self.n_test == 0:
            raise ValueError("n_train, n_val and n_test are all 0: nothing to generate")
        if self.nz < 8 or self.nx < 8:
            raise ValueError(f"the grid must be at least 8 x 8, got nz={self.nz}, nx={self.nx}")
        if not 0 < self.vmin < self.vmax:
            raise ValueError(f"expected 0 < vmin < vmax (m/s), got vmin={self.vmin}, vmax={self.vmax}")


@dataclass(frozen=True, kw_only=True)
class LayerOptions(FamilyOptions):
    """Layered families; ``None`` picks the family's own default."""

    min_layers: int | None = option(None, "fewest layers per map (default 3 for -a, 5 for -b)")
    max_layers: int | None = option(None, "most layers per map (default 8 for -a, 12 for -b)")

    def __post_init__(self) -> None:
        super().__post_init__()
        lo, hi = self.min_layers, self.max_layers
        if lo is not None and lo < 1:
            raise ValueError(f"min_layers must be >= 1, got {lo}")
        if lo is not None and hi is not None and hi < lo:
            raise ValueError(f"max_layers ({hi}) must be >= min_layers ({lo})")


@dataclass(frozen=True, kw_only=True)
class CurveOptions(LayerOptions):
    """Curved (folded) layers."""

    fold_amplitude: float = option(0.25, "largest fold amplitude, as a fraction of the depth")
    fold_wavelength: float = option(0.7, "typical fold wavelength, as a fraction of the width")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.fold_amplitude <= 1:
            raise ValueError(f"fold_amplitude must be in [0, 1], got {self.fold_amplitude}")
        if self.fold_wavelength <= 0:
            raise ValueError(f"fold_wavelength must be > 0, got {self.fold_wavelength}")


@dataclass(frozen=True, kw_only=True)
class FaultOptions(LayerOptions):
    """Flat layers cut by faults."""

    max_faults: int | None = option(None, "most faults per map (default 1 for -a, 2 for -b)")
    max_throw: float = option(0.2, "largest fault throw, as a fraction of the depth")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_faults is not None and self.max_faults < 1:
            raise ValueError(f"max_faults must be >= 1, got {self.max_faults}")
        if not 0 < self.max_throw <= 1:
            raise ValueError(f"max_throw must be in (0, 1], got {self.max_throw}")


@dataclass(frozen=True, kw_only=True)
class CurveFaultOptions(CurveOptions, FaultOptions):
    """Curved layers cut by faults: the fold options and the fault options together."""


@dataclass(frozen=True, kw_only=True)
class SaltOptions(CurveOptions):
    """Salt bodies in a folded sediment background."""

    max_bodies: int = option(2, "most salt bodies per map")
    salt_velocity: float = option(4450.0, "salt velocity, m/s (clipped to vmax)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_bodies < 1:
            raise ValueError(f"max_bodies must be >= 1, got {self.max_bodies}")


@dataclass(frozen=True, kw_only=True)
class SmoothOptions(FamilyOptions):
    """Smooth Gaussian random fields on a depth trend."""

    correlation_x: float = option(0.25, "horizontal correlation length, as a fraction of the width")
    correlation_z: float = option(0.08, "vertical correlation length, as a fraction of the depth")
    roughness: float = option(0.12, "standard deviation of the random part, as a fraction of vmax - vmin")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.correlation_x <= 0 or self.correlation_z <= 0:
            raise ValueError("correlation_x and correlation_z must be > 0")
        if self.roughness < 0:
            raise ValueError(f"roughness must be >= 0, got {self.roughness}")


@dataclass(frozen=True, kw_only=True)
class OpenFWIOptions:
    """Options of the ``openfwi`` reader."""

    path: str = option("", "folder, .zip or .npy of OpenFWI training files (model*.npy / vmodel*.npy, "
                           "data*.npy when present); 'example' for a tiny generated sample")
    test_path: str = option("", "folder, .zip or .npy of test files; default: the files under 'path' "
                                "whose name contains 'test'")
    family: str = option("", "file-name prefix choosing one family in a folder holding several "
                             "(e.g. flatvel-a)")
    n_train: int = option(480, "training maps (0: all that remain after validation)")
    n_val: int = option(48, "validation maps, drawn from the training files")
    n_test: int = option(96, "test maps (0: all)")
    seed: int = option(0, "seed of the train/validation draw")
    survey: str = option("openfwi", SURVEY_HELP)

    def __post_init__(self) -> None:
        for name in ("n_train", "n_val", "n_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True)
class FilesOptions:
    """Options of the file-based dataset."""

    velocity: str = option("", "velocity file (.npy, .nc, .zarr, .sgy), 'example' for a tiny generated one; "
                                "leave empty for gathers-only data")
    gathers: str = option("", "gathers file (.npy, .nc, .zarr, .sgy); leave empty to simulate them")
    splits: tuple[float, ...] = option((0.8, 0.1, 0.1), "train, val, test fractions of the samples "
                                                       "(in file order; rounding goes to train)")
    survey: str = option("auto", "'auto' (from the gathers file, else OpenFWI's layout on the velocity "
                                 "grid), a preset or a .toml/.json file")
    vmin: float = option(1500.0, "velocity mapped to -1 by the normalisation, m/s")
    vmax: float = option(4500.0, "velocity mapped to +1 by the normalisation, m/s")

    def __post_init__(self) -> None:
        if not self.velocity and not self.gathers:
            raise ValueError("give velocity=FILE, gathers=FILE or both")
        if len(self.splits) != 3 or any(f < 0 for f in self.splits) or not 0.999 <= sum(self.splits) <= 1.001:
            raise ValueError(f"splits must be three fractions (train, val, test) summing to 1, got {self.splits}")


@dataclass(frozen=True, kw_only=True)
class StrataOptions(FamilyOptions):
    """Thin beds on a compaction trend: what the realistic-geology families share."""

    min_bed: float = option(2.0, "thinnest bed, in cells of a 70-cell-deep grid (scaled with nz)")
    max_bed: float = option(5.0, "thickest bed, in cells of a 70-cell-deep grid (scaled with nz)")
    contrast: float = option(0.12, "typical bed-to-bed velocity contrast, as a fraction of vmax - vmin")
    inversions: float = option(0.3, "share of beds slower than the bed above them (velocity inversions)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.min_bed <= self.max_bed:
            raise ValueError(f"expected 0 < min_bed <= max_bed, got min_bed={self.min_bed}, max_bed={self.max_bed}")
        if not 0 <= self.contrast <= 1:
            raise ValueError(f"contrast must be in [0, 1], got {self.contrast}")
        if not 0 <= self.inversions <= 1:
            raise ValueError(f"inversions must be in [0, 1], got {self.inversions}")


def _check_dips(lo: float, hi: float) -> None:
    if not 0 <= lo <= hi < 90:
        raise ValueError(f"expected 0 <= min_dip <= max_dip < 90 (degrees), got min_dip={lo}, max_dip={hi}")


@dataclass(frozen=True, kw_only=True)
class ThrustOptions(StrataOptions):
    """Folded beds cut by thrust faults that repeat the section."""

    max_thrusts: int = option(3, "most thrust faults per map (at least one)")
    min_dip: float = option(20.0, "gentlest thrust dip, degrees")
    max_dip: float = option(45.0, "steepest thrust dip, degrees")
    max_slip: float = option(0.3, "largest slip along a thrust, as a fraction of the depth")
    fold_amplitude: float = option(0.08, "amplitude of the folding before thrusting, as a fraction of the depth")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_thrusts < 1:
            raise ValueError(f"max_thrusts must be >= 1, got {self.max_thrusts}")
        _check_dips(self.min_dip, self.max_dip)
        if not 0 < self.max_slip <= 1:
            raise ValueError(f"max_slip must be in (0, 1], got {self.max_slip}")
        if not 0 <= self.fold_amplitude <= 1:
            raise ValueError(f"fold_amplitude must be in [0, 1], got {self.fold_amplitude}")


@dataclass(frozen=True, kw_only=True)
class SteepBedsOptions(StrataOptions):
    """Steeply dipping thin beds under an angular unconformity."""

    min_dip: float = option(30.0, "gentlest dip of the older beds, degrees")
    max_dip: float = option(60.0, "steepest dip of the older beds, degrees")
    min_beds: int = option(10, "fewest older beds crossing the map")
    max_beds: int = option(30, "most older beds crossing the map")
    min_unconformity: float = option(0.2, "shallowest mean depth of the erosion surface, fraction of the depth")
    max_unconformity: float = option(0.5, "deepest mean depth of the erosion surface, fraction of the depth")
    lateral_gradient: float = option(0.1, "largest velocity change across the width, fraction of vmax - vmin")

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_dips(self.min_dip, self.max_dip)
        if not 1 <= self.min_beds <= self.max_beds:
            raise ValueError(f"expected 1 <= min_beds <= max_beds, got {self.min_beds}, {self.max_beds}")
        if not 0 < self.min_unconformity <= self.max_unconformity < 1:
            raise ValueError("expected 0 < min_unconformity <= max_unconformity < 1, got "
                             f"{self.min_unconformity}, {self.max_unconformity}")
        if not 0 <= self.lateral_gradient <= 1:
            raise ValueError(f"lateral_gradient must be in [0, 1], got {self.lateral_gradient}")


@dataclass(frozen=True, kw_only=True)
class SaltDomeOptions(StrataOptions):
    """A salt diapir with an overhanging cap or a sideways tongue, sediments dragged up its flanks."""

    salt_velocity: float = option(4450.0, "salt velocity, m/s (clipped to vmax)")
    tongue: float = option(0.35, "probability that the cap is a one-sided tongue instead of a mushroom")
    source_layer: float = option(0.6, "probability of a mother salt layer at the bottom feeding the stem")
    carapace: float = option(0.3, "probability of a slower carapace (a thin rim) around the salt")
    drag: float = option(0.15, "largest upward drag of the beds next to the salt, as a fraction of the depth")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("tongue", "source_layer", "carapace"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.drag <= 1:
            raise ValueError(f"drag must be in [0, 1], got {self.drag}")


@dataclass(frozen=True, kw_only=True)
class ChannelsOptions(StrataOptions):
    """Channels and lenses, faster and slower than their host, in gently folded beds."""

    min_bodies: int = option(3, "fewest channels or lenses per map")
    max_bodies: int = option(8, "most channels or lenses per map")
    anomaly: float = option(0.22, "largest velocity difference of a body from its host, fraction of vmax - vmin")
    fold_amplitude: float = option(0.06, "amplitude of the gentle folding, as a fraction of the depth")
    lateral_gradient: float = option(0.1, "largest velocity change across the width, fraction of vmax - vmin")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.min_bodies <= self.max_bodies:
            raise ValueError(f"expected 1 <= min_bodies <= max_bodies, got {self.min_bodies}, {self.max_bodies}")
        for name in ("anomaly", "fold_amplitude", "lateral_gradient"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

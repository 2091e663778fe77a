"""fwi-deepwave: the Deepwave acoustic forward model for fwi-plugins.

Importing this package is cheap; deepwave and torch load only when a physics object is
built (:func:`fwi_deepwave.physics.build`).
"""

__version__ = "0.1.0"

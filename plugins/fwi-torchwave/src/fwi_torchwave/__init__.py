"""fwi-torchwave: a pure-torch acoustic forward model for fwi-plugins.

It solves the same discretised equations as Deepwave's scalar propagator (second order
in time, centred differences in space, C-PML boundary, the same internal time step and
resampling), written in plain torch so that it needs nothing compiled: it runs wherever
torch does, on any CUDA device, batched over models and shots.

Importing this package is cheap; torch loads only when a physics object is built
(:func:`fwi_torchwave.physics.build`).
"""

__version__ = "0.1.0"

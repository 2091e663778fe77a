"""Physics-based refinement: full-waveform inversion from a starting model, its checks, loops,
objective terms, held-out shots and refinement through the network.

Submodules are imported explicitly (``from fwi_plugins.engine.refinement import refine``).
"""

"""Training: the loop that pretraining and adaptation share, what it trains on, its losses,
validation, checkpoints, distributed set-up, augmentations and self-training.

Submodules are imported explicitly (``from fwi_plugins.engine.training import train``).
"""

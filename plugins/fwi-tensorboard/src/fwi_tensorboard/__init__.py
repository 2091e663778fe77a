"""TensorBoard logs of fwi-plugins runs, written from the public lifecycle hooks only."""

__version__ = "0.1.0"

"""Datasets: velocity maps and shot gathers, their formats, generators and simulation cache.

Importing this package stays cheap (numpy only); torch is imported where a tensor is
actually needed.
"""

from __future__ import annotations

from .dataset import SPLITS, Normalization, SeismicDataset

__all__ = ["SPLITS", "Normalization", "SeismicDataset"]

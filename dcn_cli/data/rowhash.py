"""A seeded hash of row numbers to uniform numbers: splits and synthetic data use it."""

from __future__ import annotations

import numpy as np


def hash01(index: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per row number: splitmix64 of (index, seed)."""
    with np.errstate(over="ignore"):
        z = index.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = z + np.uint64(seed % 2**64) * np.uint64(0xD1B54A32D192ED03)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53

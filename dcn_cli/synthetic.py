"""Synthetic datasets with known feature crosses."""

from __future__ import annotations

import numpy as np

MIXER_FEATURES = ("country", "bananas", "cookbooks")


def mixer(rows: int = 100_000, seed: int = 42) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The TensorFlow Recommenders tutorial's toy data, value for value.

    ``y = 0.1 country + 0.4 bananas + 0.7 cookbooks + 0.1 country*bananas
    + 3.1 bananas*cookbooks + 0.1 cookbooks^2``, the inputs drawn in this order
    from ``np.random.RandomState(seed)`` (the tutorial's ``get_mixer_data``).
    """
    rng = np.random.RandomState(seed)
    country = rng.randint(200, size=[rows, 1]) / 200.0
    bananas = rng.randint(24, size=[rows, 1]) / 24.0
    cookbooks = rng.randint(6, size=[rows, 1]) / 6.0
    y = 0.1 * country + 0.4 * bananas + 0.7 * cookbooks
    y += 0.1 * country * bananas + 3.1 * bananas * cookbooks + 0.1 * cookbooks * cookbooks
    columns = {"country": country[:, 0], "bananas": bananas[:, 0], "cookbooks": cookbooks[:, 0]}
    return columns, y[:, 0]

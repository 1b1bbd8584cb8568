"""What several test modules check the same way (test modules do not import each other)."""

import numpy as np


def assert_same_weights(got, want, rtol=1e-5):
    """Each weight tensor of ``got`` equal to ``want``'s to ``rtol`` relative to its norm.

    Not element by element: summing gradients in another order changes them
    by float rounding, and Adam divides by the root of the squared gradient,
    so an element whose gradient is nearly 0 may move by 1e-4 of itself
    while the tensor agrees to 1e-7.
    """
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert np.linalg.norm(a - b) <= rtol * np.linalg.norm(b) + 1e-12, np.abs(a - b).max()

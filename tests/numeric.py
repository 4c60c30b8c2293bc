"""Finite differences for the tests: an independent check on bp's own gradient checker."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray


def numeric_grad(f: Callable[[], float], x: NDArray[np.floating],
                 eps: float = 1e-6) -> NDArray[np.float64]:
    """Central differences of ``f()`` with respect to every entry of ``x``, perturbed in place."""
    flat = x.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous so that perturbing flat perturbs x"
    grad = np.empty(flat.size, dtype=np.float64)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        plus = f()
        flat[i] = original - eps
        minus = f()
        flat[i] = original
        grad[i] = (plus - minus) / (2 * eps)
    return grad.reshape(x.shape)

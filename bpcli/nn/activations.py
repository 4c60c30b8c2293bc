"""Element-wise and row-wise activation functions with their derivatives.

Each activation maps pre-activations ``Z`` to activations ``A`` (same shape) and maps the
upstream gradient ``dA`` back to ``dZ`` by the chain rule, given the cached ``Z`` and ``A``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


class ActivationFn:
    """One activation: ``forward(Z) -> A`` and ``backward(dA, Z, A) -> dZ``."""

    name: ClassVar[str]

    def forward(self, Z: Array) -> Array:
        raise NotImplementedError

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        raise NotImplementedError


class Identity(ActivationFn):
    """``A = Z``."""

    name = "identity"

    def forward(self, Z: Array) -> Array:
        return Z

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        return dA


class ReLU(ActivationFn):
    """``A = max(Z, 0)``; the derivative at 0 is taken as 0."""

    name = "relu"

    def forward(self, Z: Array) -> Array:
        return np.maximum(Z, 0)

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        return dA * (Z > 0)


class LeakyReLU(ActivationFn):
    """``A = Z`` where ``Z > 0``, else ``slope * Z``."""

    name = "leaky_relu"

    def __init__(self, slope: float = 0.01) -> None:
        self.slope = slope

    def forward(self, Z: Array) -> Array:
        return np.where(Z > 0, Z, Z * self.slope)

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        return np.where(Z > 0, dA, dA * self.slope)


class Sigmoid(ActivationFn):
    """``A = 1 / (1 + exp(-Z))``, computed without overflow for large ``|Z|``."""

    name = "sigmoid"

    def forward(self, Z: Array) -> Array:
        return sigmoid(Z)

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        return dA * A * (1 - A)


class Tanh(ActivationFn):
    """``A = tanh(Z)``."""

    name = "tanh"

    def forward(self, Z: Array) -> Array:
        return np.tanh(Z)

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        return dA * (1 - A * A)


class Softmax(ActivationFn):
    """Row-wise ``A_ij = exp(Z_ij) / sum_k exp(Z_ik)`` over the last axis."""

    name = "softmax"

    def forward(self, Z: Array) -> Array:
        return softmax(Z)

    def backward(self, dA: Array, Z: Array, A: Array) -> Array:
        # Jacobian-vector product: dZ_i = A_i * (dA_i - sum_k dA_k A_k)
        return A * (dA - np.sum(dA * A, axis=-1, keepdims=True))


def sigmoid(Z: Array) -> Array:
    """Logistic function; ``exp`` only ever sees non-positive arguments."""
    E = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1 / (1 + E), E / (1 + E))


def softmax(Z: Array) -> Array:
    """Softmax over the last axis, shifted by the row maximum for stability."""
    E = np.exp(Z - np.max(Z, axis=-1, keepdims=True))
    E /= np.sum(E, axis=-1, keepdims=True)
    return E


ACTIVATIONS: dict[str, type[ActivationFn]] = {
    cls.name: cls for cls in (Identity, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax)
}

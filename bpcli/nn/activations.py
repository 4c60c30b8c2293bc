"""Element-wise and row-wise activation functions with their derivatives.

Each activation maps pre-activations ``Z`` to activations ``A`` (same shape) and maps the
upstream gradient ``dA`` back to ``dZ`` by the chain rule.

For speed in training, ``forward`` may write into ``out`` (which may be ``Z`` itself), and
``backward`` may overwrite ``dA`` and return it. Activations whose derivative can be written
in terms of the output alone set ``needs_input = False``: their ``backward`` is called with
``Z=None``, which lets the layer compute them in place and keep no copy of ``Z``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]


class ActivationFn:
    """One activation: ``forward(Z, out) -> A`` and ``backward(dA, Z, A) -> dZ``."""

    name: ClassVar[str]
    #: False when backward can work from the output ``A`` alone.
    needs_input: ClassVar[bool] = True

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        raise NotImplementedError

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        raise NotImplementedError


class Identity(ActivationFn):
    """``A = Z``."""

    name = "identity"
    needs_input = False

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        if out is None or out is Z:
            return Z
        np.copyto(out, Z)
        return out

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        return dA


class ReLU(ActivationFn):
    """``A = max(Z, 0)``; the derivative is 1 where ``A > 0`` (so 0 at ``Z = 0``)."""

    name = "relu"
    needs_input = False

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return np.maximum(Z, 0, out=out)

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        return np.multiply(dA, A > 0, out=dA)


class LeakyReLU(ActivationFn):
    """``A = Z`` where ``Z > 0``, else ``slope * Z`` (``slope >= 0``, so the sign of ``A``
    tells the branch)."""

    name = "leaky_relu"
    needs_input = False

    def __init__(self, slope: float = 0.01) -> None:
        if slope < 0:
            raise ValueError(f"leaky_relu slope must be >= 0, got {slope}")
        self.slope = slope

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return np.multiply(Z, np.where(Z > 0, Z.dtype.type(1), Z.dtype.type(self.slope)),
                           out=out)

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        factor = np.where(A > 0, A.dtype.type(1), A.dtype.type(self.slope))
        return np.multiply(dA, factor, out=dA)


class Sigmoid(ActivationFn):
    """``A = 1 / (1 + exp(-Z))``, computed without overflow for large ``|Z|``;
    ``dZ = dA * A * (1 - A)``."""

    name = "sigmoid"
    needs_input = False

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return sigmoid(Z, out)

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        dA *= A
        dA *= 1 - A
        return dA


class Tanh(ActivationFn):
    """``A = tanh(Z)``; ``dZ = dA * (1 - A^2)``."""

    name = "tanh"
    needs_input = False

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return np.tanh(Z, out=out)

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        dA *= 1 - A * A
        return dA


class Softmax(ActivationFn):
    """Row-wise ``A_ij = exp(Z_ij) / sum_k exp(Z_ik)`` over the last axis;
    ``dZ_i = A_i * (dA_i - sum_k dA_k A_k)``."""

    name = "softmax"
    needs_input = False

    def forward(self, Z: Array, out: Array | None = None) -> Array:
        return softmax(Z, out)

    def backward(self, dA: Array, Z: Array | None, A: Array) -> Array:
        dA -= np.sum(dA * A, axis=-1, keepdims=True)
        dA *= A
        return dA


def sigmoid(Z: Array, out: Array | None = None) -> Array:
    """Logistic function; ``exp`` only ever sees non-positive arguments."""
    E = np.exp(-np.abs(Z))
    positive = Z >= 0
    return np.divide(np.where(positive, 1, E), 1 + E, out=out)


def softmax(Z: Array, out: Array | None = None) -> Array:
    """Softmax over the last axis, shifted by the row maximum for stability."""
    E = np.subtract(Z, np.max(Z, axis=-1, keepdims=True), out=out)
    np.exp(E, out=E)
    E /= np.sum(E, axis=-1, keepdims=True)
    return E


ACTIVATIONS: dict[str, type[ActivationFn]] = {
    cls.name: cls for cls in (Identity, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax)
}

"""Losses: batch means, each returning the loss and its gradient with respect to its input.

Where a loss fuses with the output activation (softmax + cross-entropy, sigmoid + binary
cross-entropy) its input is the output layer's pre-activation ``Z`` (the logits), which
gives a numerically stable loss and the simple gradient ``(activation(Z) - Y) / n``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from bpcli.nn.activations import sigmoid

Array = NDArray[np.floating]


class Loss:
    """``loss(P, Y) -> (value, dP)``; ``fused_activation`` names the output activation
    whose pre-activation this loss takes instead of its output (``None``: takes the output).
    """

    name: ClassVar[str]
    fused_activation: ClassVar[str | None] = None
    #: dtype kind of the targets this loss takes: "f" (floats) or "i" (class indices)
    target_kind: ClassVar[str] = "f"

    def value(self, P: Array, Y: NDArray) -> float:
        raise NotImplementedError

    def value_and_grad(self, P: Array, Y: NDArray) -> tuple[float, Array]:
        raise NotImplementedError


class MeanSquaredError(Loss):
    """``L = mean((P - Y)^2)`` over all entries; ``dP = 2 (P - Y) / P.size``."""

    name = "mse"

    def value(self, P: Array, Y: NDArray) -> float:
        return _mean_square(P - Y)

    def value_and_grad(self, P: Array, Y: NDArray) -> tuple[float, Array]:
        D = P - Y
        loss = _mean_square(D)
        D *= P.dtype.type(2.0 / D.size)
        return loss, D


class SoftmaxCrossEntropy(Loss):
    """Categorical cross-entropy on logits ``Z`` of shape (n, k) with integer labels ``y`` (n,).

    ``L = mean_i(logsumexp(Z_i) - Z_i[y_i])``; ``dZ = (softmax(Z) - onehot(y)) / n``.
    """

    name = "cross_entropy"
    fused_activation = "softmax"
    target_kind = "i"

    def value(self, P: Array, Y: NDArray) -> float:
        shifted = P - np.max(P, axis=1, keepdims=True)
        log_norm = np.log(np.sum(np.exp(shifted), axis=1))
        return float(np.mean(log_norm - shifted[np.arange(len(Y)), Y]))

    def value_and_grad(self, P: Array, Y: NDArray) -> tuple[float, Array]:
        n, k = P.shape
        flat_index = np.arange(0, n * k, k) + Y  # positions of the true classes in S.flat
        S = P - np.max(P, axis=1, keepdims=True)
        flat = S.reshape(-1)
        picked_sum = float(np.add.reduce(flat[flat_index]))
        np.exp(S, out=S)
        norm = np.add.reduce(S, axis=1, keepdims=True)
        loss = (float(np.add.reduce(np.log(norm), axis=None)) - picked_sum) / n
        S /= norm
        flat[flat_index] -= 1
        S *= P.dtype.type(1.0 / n)
        return loss, S


class SigmoidBinaryCrossEntropy(Loss):
    """Binary cross-entropy on logits ``Z`` with targets ``Y`` in {0, 1}, same shape.

    ``L = mean(max(Z, 0) - Z * Y + log(1 + exp(-|Z|)))``, the overflow-free form of
    ``-[Y log s(Z) + (1 - Y) log(1 - s(Z))]``; ``dZ = (s(Z) - Y) / Z.size``.
    """

    name = "binary_cross_entropy"
    fused_activation = "sigmoid"

    def value(self, P: Array, Y: NDArray) -> float:
        return float(np.mean(np.maximum(P, 0) - P * Y + np.log1p(np.exp(-np.abs(P)))))

    def value_and_grad(self, P: Array, Y: NDArray) -> tuple[float, Array]:
        loss = self.value(P, Y)
        G = sigmoid(P) - Y
        G *= P.dtype.type(1.0 / G.size)
        return loss, G


def _mean_square(D: Array) -> float:
    flat = D.reshape(-1)
    return float(np.dot(flat, flat)) / max(flat.size, 1)


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (MeanSquaredError, SoftmaxCrossEntropy, SigmoidBinaryCrossEntropy)
}

"""Losses: batch means, each returning the loss and its gradient with respect to its input.

Where a loss fuses with the output activation (softmax + cross-entropy, sigmoid + binary
cross-entropy) its input is the output layer's pre-activation ``Z`` (the logits), which
gives a numerically stable loss and the simple gradient ``(activation(Z) - Y) / n``.

Losses with options take them as constructor keyword arguments, validated there; the
defaults give the plain loss. ``describe()`` returns the name and options, enough to
rebuild the loss with ``LOSSES[d.pop("name")](**d)``.

Class weights (for imbalanced classification) give the *normalised* weighted mean
``L = sum_i w_i l_i / sum_i w_i``, where ``w_i`` is the weight of sample (or entry) ``i``'s
class: PyTorch's ``CrossEntropyLoss(weight=..., reduction="mean")``. Its gradient is
``w_i dl_i / sum_i w_i``. A batch whose weights are all zero has loss 0 and gradient 0.
Note that this is a mean *within* a batch: averaging batch losses by batch size does not
give the weighted mean over a whole data set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

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

    def describe(self) -> dict[str, Any]:
        """The name and options (plain floats and lists), enough to rebuild the loss."""
        return {"name": self.name}


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


class MeanAbsoluteError(Loss):
    """``L = mean(|P - Y|)`` over all entries; ``dP = sign(P - Y) / P.size``.

    At ``P = Y``, where ``|.|`` has a kink, the subgradient 0 is used.
    """

    name = "mae"

    def value(self, P: Array, Y: NDArray) -> float:
        return _mean_abs(P - Y)

    def value_and_grad(self, P: Array, Y: NDArray) -> tuple[float, Array]:
        D = P - Y
        loss = _mean_abs(D)
        np.sign(D, out=D)
        D *= P.dtype.type(1.0 / D.size)
        return loss, D


class Huber(Loss):
    """Huber loss with threshold ``delta > 0`` (default 1), a mean over all entries.

    With ``d = P - Y``, each entry costs ``d^2 / 2`` where ``|d| <= delta`` and
    ``delta (|d| - delta / 2)`` elsewhere: quadratic near the target, linear (robust to
    outliers) beyond. Writing ``c = clip(d, -delta, delta)``, the cost is
    ``c (d - c / 2)`` and ``dP = c / P.size``.
    """

    name = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        if not (math.isfinite(delta) and delta > 0):
            raise ValueError(f"huber: delta must be a positive number, not {delta!r}")
        self.delta = float(delta)

    def value(self, P: Array, Y: NDArray) -> float:
        return self._value_and_clipped(P - Y)[0]

    def value_and_grad(self, P: Array, Y: NDArray) -> tuple[float, Array]:
        loss, C = self._value_and_clipped(P - Y)
        C *= P.dtype.type(1.0 / C.size)
        return loss, C

    def _value_and_clipped(self, D: Array) -> tuple[float, Array]:
        """The loss of differences ``D`` (consumed) and ``clip(D, -delta, delta)``."""
        delta = D.dtype.type(self.delta)
        C = np.clip(D, -delta, delta)
        # D - C / 2, in place in D
        D -= C * D.dtype.type(0.5)
        loss = float(np.dot(C.reshape(-1), D.reshape(-1))) / max(D.size, 1)
        return loss, C

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "delta": self.delta}


class SoftmaxCrossEntropy(Loss):
    """Categorical cross-entropy on logits ``Z`` of shape (n, k) with integer labels ``y`` (n,).

    Plain: ``L = mean_i(logsumexp(Z_i) - Z_i[y_i])``; ``dZ = (softmax(Z) - onehot(y)) / n``.

    Parameters
    ----------
    label_smoothing : float, 0 <= s < 1, default 0
        The targets become ``t_i = (1 - s) onehot(y_i) + s / k``, and each sample costs
        ``l_i = logsumexp(Z_i) - sum_j t_ij Z_ij`` (the cross-entropy of ``t_i`` with
        ``softmax(Z_i)``), with gradient ``softmax(Z_i) - t_i``.
    class_weights : sequence of k floats >= 0, not all zero, optional
        ``L = sum_i w[y_i] l_i / sum_i w[y_i]`` (the normalised weighted mean, as PyTorch's
        ``CrossEntropyLoss(weight=w)``); ``dZ_i = w[y_i] (softmax(Z_i) - t_i) /
        sum_i w[y_i]``. With label smoothing too, each sample's whole smoothed loss is
        weighted by its label's class weight (PyTorch instead weights the smoothing term
        class by class). Without weights every class weighs the same.
    """

    name = "cross_entropy"
    fused_activation = "softmax"
    target_kind = "i"

    def __init__(
        self, label_smoothing: float = 0.0, class_weights: Sequence[float] | None = None
    ) -> None:
        if not (math.isfinite(label_smoothing) and 0.0 <= label_smoothing < 1.0):
            raise ValueError(
                f"cross_entropy: label_smoothing must be in [0, 1), not {label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)
        self.class_weights = _check_weights(self.name, class_weights, None)

    @property
    def _plain(self) -> bool:
        """No smoothing and no weights: the original, allocation-light fused path."""
        return self.label_smoothing == 0.0 and self.class_weights is None

    def value(self, P: Array, Y: NDArray) -> float:
        if self._plain:
            shifted = P - np.max(P, axis=1, keepdims=True)
            log_norm = np.log(np.sum(np.exp(shifted), axis=1))
            return float(np.mean(log_norm - shifted[np.arange(len(Y)), Y]))
        return self._general(P, Y)[0]

    def value_and_grad(self, P: Array, Y: NDArray) -> tuple[float, Array]:
        if not self._plain:
            loss, E, scale = self._general(P, Y)
            k = P.shape[1]
            dtype = P.dtype.type
            s = self.label_smoothing
            E.reshape(-1)[np.arange(0, E.size, k) + Y] -= dtype(1.0 - s)  # - (1 - s) onehot
            if s:
                E -= dtype(s / k)
            E *= scale
            return loss, E
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

    def _general(self, P: Array, Y: NDArray) -> tuple[float, Array, Array]:
        """With smoothing and/or weights: the loss, ``softmax(Z)`` (a fresh array) and the
        per-sample gradient scale, shape (n, 1) (or a scalar array)."""
        n, k = P.shape
        dtype = P.dtype.type
        s = self.label_smoothing
        S = P - np.max(P, axis=1, keepdims=True)  # logsumexp(Z) - t.Z = logsumexp(S) - t.S
        picked = S[np.arange(n), Y]
        per_sample = picked * dtype(1.0 - s)
        if s:
            per_sample += np.add.reduce(S, axis=1) * dtype(s / k)
        np.exp(S, out=S)
        norm = np.add.reduce(S, axis=1)
        per_sample = np.log(norm) - per_sample
        S /= norm[:, None]
        if self.class_weights is None:
            return float(np.add.reduce(per_sample)) / max(n, 1), S, np.asarray(dtype(1.0 / n))
        if len(self.class_weights) != k:
            raise ValueError(f"cross_entropy: {len(self.class_weights)} class weights for "
                             f"{k} classes")
        w = np.asarray(self.class_weights, dtype=P.dtype)[Y]
        loss, scale = _weighted_mean(per_sample, w)
        return loss, S, scale[:, None]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label_smoothing": self.label_smoothing,
            "class_weights": None if self.class_weights is None else list(self.class_weights),
        }


class SigmoidBinaryCrossEntropy(Loss):
    """Binary cross-entropy on logits ``Z`` with targets ``Y`` in {0, 1}, same shape.

    Plain: ``L = mean(l)`` over all entries, with ``l = max(Z, 0) - Z * Y + log(1 +
    exp(-|Z|))``, the overflow-free form of ``-[Y log s(Z) + (1 - Y) log(1 - s(Z))]``;
    ``dZ = (s(Z) - Y) / Z.size``.

    Parameters
    ----------
    class_weights : two floats ``[w_negative, w_positive]`` >= 0, not both zero, optional
        Each entry is weighted by its own target, ``w = w_negative (1 - Y) + w_positive Y``
        (for 0/1 targets: the weight of that entry's class, column by column), and
        ``L = sum(w l) / sum(w)`` (the normalised weighted mean);
        ``dZ = w (s(Z) - Y) / sum(w)``. This is not PyTorch's ``pos_weight``, which
        scales only the positive term and keeps the plain mean.
    """

    name = "binary_cross_entropy"
    fused_activation = "sigmoid"

    def __init__(self, class_weights: Sequence[float] | None = None) -> None:
        self.class_weights = _check_weights(self.name, class_weights, 2)

    def value(self, P: Array, Y: NDArray) -> float:
        if self.class_weights is None:
            return float(np.mean(np.maximum(P, 0) - P * Y + np.log1p(np.exp(-np.abs(P)))))
        return self._weighted(P, Y)[0]

    def value_and_grad(self, P: Array, Y: NDArray) -> tuple[float, Array]:
        if self.class_weights is None:
            loss = self.value(P, Y)
            G = sigmoid(P) - Y
            G *= P.dtype.type(1.0 / G.size)
            return loss, G
        loss, scale = self._weighted(P, Y)
        G = sigmoid(P) - Y
        G *= scale
        return loss, G

    def _weighted(self, P: Array, Y: NDArray) -> tuple[float, Array]:
        assert self.class_weights is not None
        dtype = P.dtype.type
        w_neg, w_pos = self.class_weights
        entries = np.maximum(P, 0) - P * Y + np.log1p(np.exp(-np.abs(P)))
        # w_neg (1 - Y) + w_pos Y: exactly w_neg at Y = 0 and w_pos at Y = 1
        w = ((1 - Y) * dtype(w_neg) + Y * dtype(w_pos)).astype(P.dtype, copy=False)
        return _weighted_mean(entries, w)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "class_weights": None if self.class_weights is None else list(self.class_weights),
        }


def _mean_square(D: Array) -> float:
    flat = D.reshape(-1)
    return float(np.dot(flat, flat)) / max(flat.size, 1)


def _mean_abs(D: Array) -> float:
    return float(np.add.reduce(np.abs(D), axis=None)) / max(D.size, 1)


def _weighted_mean(losses: Array, w: Array) -> tuple[float, Array]:
    """``sum(w * losses) / sum(w)`` and the gradient scale ``w / sum(w)`` (same shape as
    ``w``, ``w``'s dtype; zeros when ``sum(w) == 0``)."""
    total = float(np.add.reduce(w, axis=None))
    if total == 0.0:
        return 0.0, np.zeros_like(w)
    loss = float(np.dot(w.reshape(-1), losses.reshape(-1))) / total
    w = w * w.dtype.type(1.0 / total)
    return loss, w


def _check_weights(
    loss: str, weights: Sequence[float] | None, count: int | None
) -> tuple[float, ...] | None:
    """Validated class weights as a tuple of floats (``None`` stays ``None``)."""
    if weights is None:
        return None
    values = tuple(float(w) for w in weights)
    if count is not None and len(values) != count:
        raise ValueError(f"{loss}: class_weights needs {count} weights "
                         f"([negative, positive]), not {len(values)}")
    if len(values) < 2:
        raise ValueError(f"{loss}: class_weights needs one weight per class (at least 2)")
    if not all(math.isfinite(w) and w >= 0 for w in values) or not any(values):
        raise ValueError(f"{loss}: class weights must be finite and >= 0, not all zero; "
                         f"got {list(values)}")
    return values


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (
        MeanSquaredError,
        MeanAbsoluteError,
        Huber,
        SoftmaxCrossEntropy,
        SigmoidBinaryCrossEntropy,
    )
}

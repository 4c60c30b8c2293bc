"""Regularisation: L1/L2 penalties on parameters, and gradient clipping.

Penalty convention (Keras'): a penalty adds ``l1 * sum|w| + l2 * sum w^2`` to the loss,
so its gradient is ``l1 * sign(w) + 2 * l2 * w`` (with ``sign(0) = 0``, the subgradient at
the kink). Note the ``l2`` coefficient multiplies ``sum w^2`` itself, not ``sum w^2 / 2``.
By default only weight matrices (key ``"W"``) are penalised, not biases.

The penalty is added once per batch to the batch-mean data loss, so its weight relative to
the data does not depend on the batch size.

Clipping works in place on the network's flat gradient vector (``Network.flat_grads``),
which every layer's ``grads`` are views into, after the penalty gradient has been added.
Decoupled weight decay (AdamW) belongs to the optimizer, not here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # the network imports this module to apply its penalties
    from bpcli.nn.network import Network

Array = NDArray[np.floating]


@dataclass(frozen=True)
class Penalty:
    """``l1 * sum|w| + l2 * sum w^2`` over the parameters named in ``keys``.

    Gradient: ``l1 * sign(w) + 2 * l2 * w``. Coefficients must be finite and >= 0;
    ``Penalty()`` is no penalty (useful to exempt one layer from a global penalty).
    """

    l1: float = 0.0
    l2: float = 0.0
    keys: tuple[str, ...] = ("W",)

    def __post_init__(self) -> None:
        for name in ("l1", "l2"):
            coefficient = getattr(self, name)
            if not (math.isfinite(coefficient) and coefficient >= 0):
                raise ValueError(f"penalty: {name} must be a number >= 0, not {coefficient!r}")
        object.__setattr__(self, "keys", tuple(self.keys))

    @property
    def is_zero(self) -> bool:
        return self.l1 == 0.0 and self.l2 == 0.0

    def value(self, params: Mapping[str, Array]) -> float:
        """The penalty on ``params`` (one layer's); keys not present are skipped."""
        total = 0.0
        if self.is_zero:
            return total
        for key in self.keys:
            if key not in params:
                continue
            flat = params[key].reshape(-1)
            if self.l1:
                total += self.l1 * float(np.add.reduce(np.abs(flat)))
            if self.l2:
                total += self.l2 * float(np.dot(flat, flat))
        return total

    def add_gradient(self, params: Mapping[str, Array], grads: Mapping[str, Array]) -> None:
        """Add ``l1 * sign(w) + 2 * l2 * w`` into ``grads[key]`` in place, for each key."""
        if self.is_zero:
            return
        for key in self.keys:
            if key not in params:
                continue
            w, g = params[key], grads[key]
            dtype = g.dtype.type
            if self.l2:
                g += w * dtype(2.0 * self.l2)
            if self.l1:
                g += np.sign(w) * dtype(self.l1)


@dataclass(frozen=True)
class Penalties:
    """Which penalty applies to which layer: ``per_layer[i]`` for layer ``i`` when given,
    else ``default`` (``None``: no penalty). Layers without parameters are skipped."""

    default: Penalty | None = None
    per_layer: Mapping[int, Penalty] = field(default_factory=dict)

    def for_layer(self, index: int) -> Penalty | None:
        return self.per_layer.get(index, self.default)

    def check(self, network: Network) -> None:
        """Raise ``ValueError`` if an override names a layer that is missing or has no
        parameters (most likely an off-by-one in the layer index)."""
        for index in self.per_layer:
            if not 0 <= index < len(network.layers):
                raise ValueError(f"penalty for layer {index}, but the network has "
                                 f"{len(network.layers)} layers")
            layer = network.layers[index]
            if not layer.params:
                raise ValueError(f"penalty for layer {index} ({layer.kind}), which has no "
                                 "parameters")


def penalty_value(network: Network, penalties: Penalties) -> float:
    """The total penalty over the network's layers."""
    penalties.check(network)
    total = 0.0
    for index, layer in enumerate(network.layers):
        penalty = penalties.for_layer(index)
        if penalty is not None and layer.params:
            total += penalty.value(layer.params)
    return total


def add_penalty_gradients(network: Network, penalties: Penalties) -> float:
    """Add each layer's penalty gradient into its ``grads`` (views into ``flat_grads``);
    return the total penalty. Call after ``compute_gradients``, which assigns ``grads``."""
    penalties.check(network)
    total = 0.0
    for index, layer in enumerate(network.layers):
        penalty = penalties.for_layer(index)
        if penalty is not None and layer.params:
            total += penalty.value(layer.params)
            penalty.add_gradient(layer.params, layer.grads)
    return total


def regularized_loss_and_grads(
    network: Network, X: Array, Y: NDArray, penalties: Penalties
) -> float:
    """Data loss plus penalty on a batch, filling every layer's ``grads`` with the
    gradient of that total (``compute_gradients``, then the penalty's gradient)."""
    loss = network.compute_gradients(X, Y)
    return loss + add_penalty_gradients(network, penalties)


def regularized_loss_value(
    network: Network, X: Array, Y: NDArray, penalties: Penalties, training: bool = True
) -> float:
    """Data loss plus penalty on a batch, without gradients: the function whose gradient
    ``regularized_loss_and_grads`` computes (in training mode)."""
    return network.loss_value(X, Y, training=training) + penalty_value(network, penalties)


# -- gradient clipping ------------------------------------------------------------------
def clip_by_global_norm(flat_grads: Array, max_norm: float) -> float:
    """Scale ``flat_grads`` (1-D) in place by ``max_norm / norm`` when its Euclidean norm
    exceeds ``max_norm``; return the norm before clipping.

    The norm is computed in the gradients' dtype (falling back to float64 only if the sum
    of squares overflows). A non-finite norm (a NaN or infinite gradient) leaves the
    gradients untouched, so that divergence is still seen downstream.
    """
    _check_limit("max_norm", max_norm)
    g = _flat(flat_grads)
    with np.errstate(over="ignore", invalid="ignore"):
        squares = float(np.dot(g, g))
    if math.isinf(squares) and np.all(np.isfinite(g)):
        g64 = g.astype(np.float64)
        squares = float(np.dot(g64, g64))
    norm = math.sqrt(squares) if not math.isnan(squares) else squares
    if math.isfinite(norm) and norm > max_norm:
        g *= g.dtype.type(max_norm / norm)
    return norm


def clip_by_value(flat_grads: Array, limit: float) -> None:
    """Clip every gradient entry to ``[-limit, limit]`` in place (NaN stays NaN)."""
    _check_limit("limit", limit)
    g = _flat(flat_grads)
    limit_ = g.dtype.type(limit)
    np.clip(g, -limit_, limit_, out=g)


def _check_limit(name: str, limit: float) -> None:
    if not (math.isfinite(limit) and limit > 0):
        raise ValueError(f"gradient clipping: {name} must be a positive number, not {limit!r}")


def _flat(flat_grads: Array) -> Array:
    if flat_grads.ndim != 1:
        raise ValueError(f"gradient clipping works on the flat gradient vector (1-D), not "
                         f"an array of shape {flat_grads.shape}")
    return flat_grads

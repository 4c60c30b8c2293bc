"""Layers: the units of forward and backward computation.

Contract (see ``shared/DESIGN.md``): ``forward(X, training)`` caches exactly what
``backward`` needs; ``backward(dY)`` *assigns* each parameter's gradient into ``grads``
under the same key as ``params`` and returns ``dX`` (``None`` when the input gradient is
not needed, which saves a matrix product in the first layer). Shapes exclude the batch
axis: a layer maps ``(batch, *input_shape)`` to ``(batch, *output_shape)``.

Speed rules, for training mode only: a layer may return a buffer it reuses on the next
call (so callers must not keep outputs across training steps), may overwrite its input
when ``may_overwrite_input`` is set (the network sets it where no other layer holds on to
that array), and its ``backward`` may overwrite ``dY``. Inference mode allocates fresh
outputs and never overwrites its input.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike, NDArray

from bpcli.nn.activations import ACTIVATIONS, ActivationFn
from bpcli.nn.init import INITIALIZERS

Array = NDArray[np.floating]
Shape = tuple[int, ...]


class Layer:
    """Base class. Subclasses set ``kind`` and implement ``build``, ``forward``, ``backward``."""

    kind: ClassVar[str]

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.input_shape: Shape = ()
        self.output_shape: Shape = ()
        self.needs_input_grad = True
        self.may_overwrite_input = False

    #: True when the layer keeps a reference to its output for backward (so the next layer
    #: must not overwrite it).
    caches_output: ClassVar[bool] = False

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        """Create parameters for inputs of ``input_shape``; return the output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        return self.output_shape

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def forward(self, X: Array, training: bool) -> Array:
        raise NotImplementedError

    def backward(self, dY: Array) -> Array | None:
        raise NotImplementedError

    def hold_randomness(self, hold: bool) -> None:
        """While held, a stochastic layer reuses its last random draw (for gradient checks)."""

    def describe(self) -> dict[str, Any]:
        """The layer's hyperparameters, enough to rebuild it (``kind`` included)."""
        return {"type": self.kind}

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params.values())


class Dense(Layer):
    """Fully connected: ``Z = X @ W + b`` with ``W`` of shape ``(fan_in, units)``.

    Backward: ``dW = X.T @ dZ``, ``db = sum(dZ, axis=0)``, ``dX = dZ @ W.T``.
    """

    kind = "dense"

    def __init__(self, units: int, init: str = "glorot_uniform") -> None:
        super().__init__()
        if init not in INITIALIZERS:
            raise ValueError(f"unknown initialiser {init!r}")
        self.units = units
        self.init = init
        self._X: Array | None = None
        self._buffers: dict[str, Array] = {}

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"dense expects flat inputs, got shape {input_shape}")
        return (self.units,)

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        fan_in = self.input_shape[0]
        self.params = {
            "W": INITIALIZERS[self.init]((fan_in, self.units), rng, dtype),
            "b": np.zeros(self.units, dtype=dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return shape

    def forward(self, X: Array, training: bool) -> Array:
        W = self.params["W"]
        if training:
            self._X = X
            Z = np.matmul(X, W, out=self._buffer("Z", (len(X), self.units), X.dtype))
        else:
            Z = X @ W
        Z += self.params["b"]
        return Z

    def backward(self, dY: Array) -> Array | None:
        assert self._X is not None, "backward called before forward"
        np.matmul(self._X.T, dY, out=self.grads["W"])
        np.add.reduce(dY, axis=0, out=self.grads["b"])
        if not self.needs_input_grad:
            return None
        W = self.params["W"]
        return np.matmul(dY, W.T, out=self._buffer("dX", (len(dY), W.shape[0]), dY.dtype))

    def _buffer(self, name: str, shape: tuple[int, int], dtype: np.dtype) -> Array:
        """A reusable array for training outputs: allocating a fresh large one every
        step costs page faults that rival the matrix products."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buffer

    def describe(self) -> dict[str, Any]:
        return {"type": self.kind, "units": self.units, "init": self.init}


class Activation(Layer):
    """Applies an activation function from ``ACTIVATIONS``; no parameters."""

    kind = "activation"
    caches_output = True

    def __init__(self, name: str, **options: float) -> None:
        super().__init__()
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}")
        self.name = name
        self.options = options
        self.fn: ActivationFn = ACTIVATIONS[name](**options)
        self._Z: Array | None = None
        self._A: Array | None = None

    def forward(self, X: Array, training: bool) -> Array:
        in_place = training and self.may_overwrite_input and not self.fn.needs_input
        A = self.fn.forward(X, out=X if in_place else None)
        self._Z = X if self.fn.needs_input else None
        self._A = A
        return A

    def backward(self, dY: Array) -> Array:
        assert self._A is not None, "backward called before forward"
        return self.fn.backward(dY, self._Z, self._A)

    def describe(self) -> dict[str, Any]:
        return {"type": self.kind, "name": self.name, **self.options}


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``rate`` and scale the
    survivors by ``1 / (1 - rate)`` so that inference needs no rescaling.
    """

    kind = "dropout"

    def __init__(self, rate: float) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = rate
        self._rng: np.random.Generator | None = None
        self._mask: Array | None = None
        self._held = False

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        self._rng = rng
        return super().build(input_shape, rng, dtype)

    def hold_randomness(self, hold: bool) -> None:
        self._held = hold

    def forward(self, X: Array, training: bool) -> Array:
        if not training:
            self._mask = None
            return X
        if not (self._held and self._mask is not None and self._mask.shape == X.shape):
            assert self._rng is not None, "dropout used before build"
            keep = self._rng.random(X.shape, dtype=X.dtype) >= self.rate
            self._mask = keep.astype(X.dtype) / X.dtype.type(1.0 - self.rate)
        return np.multiply(X, self._mask, out=X if self.may_overwrite_input else None)

    def backward(self, dY: Array) -> Array:
        assert self._mask is not None, "backward called before a training forward"
        return np.multiply(dY, self._mask, out=dY)

    def describe(self) -> dict[str, Any]:
        return {"type": self.kind, "rate": self.rate}


LAYERS: dict[str, type[Layer]] = {cls.kind: cls for cls in (Dense, Activation, Dropout)}


def layer_from_description(description: dict[str, Any]) -> Layer:
    """Rebuild a layer from ``Layer.describe()`` output (used when loading model files)."""
    options = dict(description)
    kind = options.pop("type")
    if kind not in LAYERS:
        raise ValueError(f"unknown layer type {kind!r}")
    layer: Layer = LAYERS[kind](**options)
    return layer

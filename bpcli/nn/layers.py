"""Layers: the units of forward and backward computation.

Contract (see ``shared/DESIGN.md``): ``forward(X, training)`` caches exactly what
``backward`` needs; ``backward(dY)`` *assigns* each parameter's gradient into ``grads``
under the same key as ``params`` and returns ``dX`` (``None`` when the input gradient is
not needed, which saves a matrix product in the first layer). Shapes exclude the batch
axis: a layer maps ``(batch, *input_shape)`` to ``(batch, *output_shape)``.

Speed rules, for training mode only: a layer may return a scratch array it reuses on the
next call (so callers must not keep outputs across training steps), may overwrite its input
when ``may_overwrite_input`` is set (the network sets it where no other layer holds on to
that array), and its ``backward`` may overwrite ``dY``. Inference mode allocates fresh
outputs and never overwrites its input.

Besides ``params`` (trainable, gradients in ``grads``), a layer may keep ``buffers``:
non-trainable state saved with the model, e.g. running statistics (``BatchNorm``'s
``running_mean`` and ``running_var``). They are updated by training forward passes, not by
optimizers, and live outside the network's flat parameter vector.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike, NDArray

from bpcli.nn.activations import ACTIVATIONS, ActivationFn
from bpcli.nn.init import initial_bias, make_initializer

Array = NDArray[np.floating]
Shape = tuple[int, ...]
#: The key of a layer's ``kind`` in its description: "type", the word of the config's
#: layers, in model files and ``bp inspect``. Code says ``kind``; this is the one mapping.
KIND_KEY = "type"


class Layer:
    """Base class. Subclasses set ``kind`` and implement ``build``, ``forward``, ``backward``."""

    kind: ClassVar[str]

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        #: Non-trainable state saved with the model, e.g. running statistics.
        self.buffers: dict[str, Array] = {}
        # Reusable training-mode arrays (see ``_scratch``); not state, never saved.
        self._scratch_arrays: dict[str, Array] = {}
        self.input_shape: Shape = ()
        self.output_shape: Shape = ()
        self.needs_input_grad = True
        self.may_overwrite_input = False
        #: For sequence layers: the earlier layer that knows which positions of this
        #: layer's input are padding (see ``bpcli.nn.sequence``); set by the network.
        self.mask_source: Layer | None = None

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

    def count_params(self, input_shape: Shape) -> int:
        """How many parameters ``build(input_shape, ...)`` would create (without creating
        them, so that a network too big for memory can be refused before it is built)."""
        return 0

    def workspace(self, input_shape: Shape) -> int:
        """Elements per sample of the arrays a training step keeps besides the layer's
        output and its gradient (e.g. a convolution's unrolled windows)."""
        return 0

    def forward(self, X: Array, training: bool) -> Array:
        raise NotImplementedError

    def backward(self, dY: Array) -> Array | None:
        raise NotImplementedError

    def takes_ids(self) -> bool:
        """True for a layer whose input is token ids, which have no gradient."""
        return False

    def next_mask_source(self) -> Layer | None:
        """The mask source of the next layer: this layer's own, passed on by layers that
        keep every position where it is (activations, dropout, normalisation)."""
        return self.mask_source if self.output_shape == self.input_shape else None

    def output_mask(self) -> NDArray[np.bool_] | None:
        """(Mask sources) which positions of this layer's last output are real."""
        source = self.mask_source
        return source.output_mask() if source is not None else None

    def side_features(self) -> Array | None:
        """(Mask sources) the other columns' features an embedding kept aside."""
        source = self.mask_source
        return source.side_features() if source is not None else None

    def side_width(self) -> int:
        source = self.mask_source
        return source.side_width() if source is not None else 0

    def hold_randomness(self, hold: bool) -> None:
        """While held, a stochastic layer reuses its last random draw (for gradient checks)."""

    def describe(self) -> dict[str, Any]:
        """The layer's kind and settings, enough to rebuild it: what model files store
        (the kind under ``KIND_KEY``)."""
        return {KIND_KEY: self.kind, **self.settings()}

    def settings(self) -> dict[str, Any]:
        """The layer's hyperparameters, as its constructor takes them."""
        return {}

    def _scratch(self, name: str, shape: Shape, dtype: DTypeLike) -> Array:
        """A reusable array for training outputs: allocating a fresh large one every
        step costs page faults that rival the matrix products."""
        array = self._scratch_arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self._scratch_arrays[name] = np.empty(shape, dtype=dtype)
        return array

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params.values())


class Dense(Layer):
    """Fully connected: ``Z = X @ W + b`` with ``W`` of shape ``(fan_in, units)``.

    Backward: ``dW = X.T @ dZ``, ``db = sum(dZ, axis=0)``, ``dX = dZ @ W.T``.
    """

    kind = "dense"

    def __init__(self, units: int, init: str = "glorot_uniform",
                 init_options: dict[str, float] | None = None) -> None:
        super().__init__()
        if not isinstance(units, int | np.integer) or isinstance(units, bool) or units < 1:
            raise ValueError(f"dense units must be a positive int, got {units!r}")
        self.units: int = int(units)
        self.init = init
        self.init_options = dict(init_options or {})
        self._initializer = make_initializer(init, **self.init_options)  # checks the name
        self._X: Array | None = None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"dense expects flat inputs, got shape {input_shape}")
        return (self.units,)

    def count_params(self, input_shape: Shape) -> int:
        return (int(input_shape[0]) + 1) * self.units

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        fan_in = self.input_shape[0]
        self.params = {
            "W": self._initializer((fan_in, self.units), rng, dtype),
            "b": initial_bias(self.init, fan_in, self.units, rng, dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return shape

    def forward(self, X: Array, training: bool) -> Array:
        W = self.params["W"]
        if training:
            self._X = X
            Z = np.matmul(X, W, out=self._scratch("Z", (len(X), self.units), X.dtype))
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
        return np.matmul(dY, W.T, out=self._scratch("dX", (len(dY), W.shape[0]), dY.dtype))

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"units": self.units, "init": self.init}
        if self.init_options:
            settings["init_options"] = self.init_options
        return settings


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

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


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

    def settings(self) -> dict[str, Any]:
        return {"rate": self.rate}


def _normalise(
    X: Array, axes: tuple[int, ...], epsilon: float, Xhat: Array, tmp: Array | None
) -> tuple[Array, Array, Array]:
    """Write ``(X - mean) / sqrt(var + epsilon)`` into ``Xhat``, statistics over ``axes``.

    Returns ``(mean, var, inv_std)`` with the reduced axes kept (size 1); ``var`` is the
    biased variance ``mean((X - mean)**2)``. ``tmp`` (shaped like ``X``, or ``None`` to
    allocate) receives the squared deviations.
    """
    mean = np.mean(X, axis=axes, keepdims=True)
    np.subtract(X, mean, out=Xhat)
    squares = np.square(Xhat, out=tmp) if tmp is not None else np.square(Xhat)
    var = np.mean(squares, axis=axes, keepdims=True)
    inv_std = np.sqrt(var + epsilon)
    np.reciprocal(inv_std, out=inv_std)
    Xhat *= inv_std
    return mean, var, inv_std


def _check_epsilon(epsilon: float) -> float:
    if not epsilon > 0:
        raise ValueError(f"normalisation epsilon must be positive, got {epsilon}")
    return float(epsilon)


class BatchNorm(Layer):
    """Batch normalisation: features on axis 1, statistics over every other axis.

    Inputs are ``(batch, features)`` or ``(batch, channels, height, width)``; ``gamma`` and
    ``beta`` have shape ``(features,)`` / ``(channels,)``. With ``n`` the number of values
    per feature in the batch (``batch`` or ``batch * height * width``), training mode
    computes, per feature,

    ``mean = sum(X) / n``, ``var = sum((X - mean)**2) / n`` (biased),
    ``Xhat = (X - mean) / sqrt(var + epsilon)``, ``Y = gamma * Xhat + beta``

    and updates the running statistics (``buffers``), with ``momentum`` the weight of the
    old value (Keras' convention; PyTorch's ``momentum`` is ``1 - momentum`` here):

    ``running_mean = momentum * running_mean + (1 - momentum) * mean``,
    ``running_var = momentum * running_var + (1 - momentum) * var * n / (n - 1)``

    (the unbiased variance, as PyTorch keeps). Inference mode normalises with the running
    statistics instead and updates nothing. Backward, with ``std = sqrt(var + epsilon)``:

    ``dgamma = sum(dY * Xhat)``, ``dbeta = sum(dY)``,
    ``dX = gamma / (n * std) * (n * dY - dbeta - Xhat * dgamma)``

    (the compact form of ``(1 / (n std)) (n dXhat - sum(dXhat) - Xhat sum(dXhat Xhat))``
    with ``dXhat = gamma * dY``), sums over the statistics axes.
    """

    kind = "batch_norm"

    def __init__(self, momentum: float = 0.9, epsilon: float = 1e-5) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"batch_norm momentum must be in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.epsilon = _check_epsilon(epsilon)
        self._Xhat: Array | None = None
        self._inv_std: Array | None = None  # shaped to broadcast against X
        self._frozen = False

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) not in (1, 3):
            raise ValueError("batch_norm expects (features,) or (channels, height, width) "
                             f"inputs, got shape {input_shape}")
        return input_shape

    def count_params(self, input_shape: Shape) -> int:
        return 2 * int(input_shape[0])

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        features = self.input_shape[0]
        self.params = {
            "gamma": np.ones(features, dtype=dtype),
            "beta": np.zeros(features, dtype=dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.buffers = {
            "running_mean": np.zeros(features, dtype=dtype),
            "running_var": np.ones(features, dtype=dtype),
        }
        return shape

    def hold_randomness(self, hold: bool) -> None:
        """While held, training passes leave the running statistics alone.

        Gradient checks hold randomness and then evaluate the loss many times in training
        mode; updating the running statistics on each of those passes would change the
        layer's saved state as a side effect of merely checking it. The batch statistics
        (which the gradient depends on) are used as usual.
        """
        self._frozen = hold

    @staticmethod
    def _per_feature(v: Array, ndim: int) -> Array:
        """``v`` of shape (features,) reshaped to broadcast along axis 1 of an ndim array."""
        return v.reshape((-1,) + (1,) * (ndim - 2))

    def forward(self, X: Array, training: bool) -> Array:
        gamma = self._per_feature(self.params["gamma"], X.ndim)
        beta = self._per_feature(self.params["beta"], X.ndim)
        if not training:
            self._Xhat = self._inv_std = None
            running_var = self.buffers["running_var"]
            scale = self.params["gamma"] / np.sqrt(running_var + self.epsilon)
            shift = self.params["beta"] - self.buffers["running_mean"] * scale
            out: Array = X * self._per_feature(scale, X.ndim)
            out += self._per_feature(shift, X.ndim)
            return out
        n = X.size // X.shape[1] if X.ndim > 1 and X.shape[1] else 0
        if n < 2:
            raise ValueError(
                "batch_norm needs at least 2 values per feature in training mode, got a batch "
                f"of shape {X.shape}: the batch variance is undefined for a single sample; "
                "use batches of 2 or more samples"
            )
        axes = (0, *range(2, X.ndim))
        Xhat = self._scratch("Xhat", X.shape, X.dtype)
        Y = self._scratch("Y", X.shape, X.dtype)
        mean, var, inv_std = _normalise(X, axes, self.epsilon, Xhat, Y)
        if not self._frozen:
            m = self.momentum
            running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
            running_mean *= m
            running_mean += (1.0 - m) * mean.reshape(-1)
            running_var *= m
            running_var += ((1.0 - m) * n / (n - 1)) * var.reshape(-1)
        self._Xhat, self._inv_std = Xhat, inv_std
        np.multiply(Xhat, gamma, out=Y)
        Y += beta
        return Y

    def backward(self, dY: Array) -> Array | None:
        Xhat, inv_std = self._Xhat, self._inv_std
        assert Xhat is not None and inv_std is not None, "backward called before a training forward"
        axes = (0, *range(2, dY.ndim))
        n = dY.size // dY.shape[1]
        dgamma, dbeta = self.grads["gamma"], self.grads["beta"]
        dX = self._scratch("dX", dY.shape, dY.dtype)
        np.multiply(dY, Xhat, out=dX)
        np.sum(dX, axis=axes, out=dgamma)
        np.sum(dY, axis=axes, out=dbeta)
        if not self.needs_input_grad:
            return None
        # dX = gamma / std * (dY - (dbeta + Xhat * dgamma) / n)
        np.multiply(Xhat, self._per_feature(dgamma, dY.ndim), out=dX)
        dX += self._per_feature(dbeta, dY.ndim)
        dX *= -1.0 / n
        dX += dY
        dX *= self._per_feature(self.params["gamma"], dY.ndim) * inv_std
        return dX

    def settings(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "epsilon": self.epsilon}


class LayerNorm(Layer):
    """Layer normalisation: each sample normalised over all its feature axes.

    For ``(batch, features)`` inputs the statistics are over the features; for
    ``(batch, channels, height, width)`` over ``(channels, height, width)``. ``gamma`` and
    ``beta`` have the input shape (``(features,)`` for flat inputs), applied elementwise.
    With ``D`` the number of values per sample:

    ``Xhat = (X - mean) / sqrt(var + epsilon)`` (biased variance), ``Y = gamma * Xhat + beta``

    identically in training and inference. Backward, with ``dXhat = gamma * dY`` and means
    over the feature axes of each sample:

    ``dgamma = sum_batch(dY * Xhat)``, ``dbeta = sum_batch(dY)``,
    ``dX = (dXhat - mean(dXhat) - Xhat * mean(dXhat * Xhat)) / sqrt(var + epsilon)``.
    """

    kind = "layer_norm"

    def __init__(self, epsilon: float = 1e-5) -> None:
        super().__init__()
        self.epsilon = _check_epsilon(epsilon)
        self._Xhat: Array | None = None
        self._inv_std: Array | None = None  # (batch, 1, ...)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) < 1:
            raise ValueError(f"layer_norm needs at least one feature axis, got {input_shape}")
        return input_shape

    def count_params(self, input_shape: Shape) -> int:
        return 2 * math.prod(input_shape)

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        self.params = {
            "gamma": np.ones(self.input_shape, dtype=dtype),
            "beta": np.zeros(self.input_shape, dtype=dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return shape

    def forward(self, X: Array, training: bool) -> Array:
        axes = tuple(range(1, X.ndim))
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not training:
            self._Xhat = self._inv_std = None
            Y = np.empty_like(X)
            _normalise(X, axes, self.epsilon, Y, None)
            Y *= gamma
            Y += beta
            return Y
        Xhat = self._scratch("Xhat", X.shape, X.dtype)
        Y = self._scratch("Y", X.shape, X.dtype)
        _, _, self._inv_std = _normalise(X, axes, self.epsilon, Xhat, Y)
        self._Xhat = Xhat
        np.multiply(Xhat, gamma, out=Y)
        Y += beta
        return Y

    def backward(self, dY: Array) -> Array | None:
        Xhat, inv_std = self._Xhat, self._inv_std
        assert Xhat is not None and inv_std is not None, "backward called before a training forward"
        dX = self._scratch("dX", dY.shape, dY.dtype)
        np.multiply(dY, Xhat, out=dX)
        np.sum(dX, axis=0, out=self.grads["gamma"])
        np.sum(dY, axis=0, out=self.grads["beta"])
        if not self.needs_input_grad:
            return None
        axes = tuple(range(1, dY.ndim))
        dXhat = np.multiply(dY, self.params["gamma"], out=dY)  # backward may overwrite dY
        mean_dXhat = np.mean(dXhat, axis=axes, keepdims=True)
        np.multiply(dXhat, Xhat, out=dX)
        mean_dXhat_Xhat = np.mean(dX, axis=axes, keepdims=True)
        np.multiply(Xhat, mean_dXhat_Xhat, out=dX)
        dX += mean_dXhat
        np.subtract(dXhat, dX, out=dX)
        dX *= inv_std
        return dX

    def settings(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon}


#: Every layer type by ``kind``. The image layers of ``bpcli.nn.conv`` (which import this
#: module) add themselves when ``bpcli.nn`` is imported, which any import of this module does.
LAYERS: dict[str, type[Layer]] = {
    cls.kind: cls for cls in (Dense, Activation, Dropout, BatchNorm, LayerNorm)
}


def layer_from_description(description: dict[str, Any]) -> Layer:
    """Rebuild a layer from ``Layer.describe()`` output (used when loading model files)."""
    options = dict(description)
    kind = options.pop(KIND_KEY)
    if kind not in LAYERS:
        raise ValueError(f"unknown layer type {kind!r}")
    layer: Layer = LAYERS[kind](**options)
    return layer

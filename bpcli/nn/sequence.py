"""Layers for sequences of tokens: inputs of shape ``(batch, length, channels)``.

A text column reaches the network as token ids, one row of ``length`` ids per sample, right-
padded with id 0 (``PADDING``). ``Embedding`` turns the ids into vectors; ``Conv1D`` slides
windows over positions; ``GlobalMaxPool1D`` and ``GlobalAvgPool1D`` (and the recurrent
layers in ``bpcli.nn.recurrent``) reduce a sequence to one vector per sample.

Masks
-----
Padding must not count. ``Embedding`` knows which positions are padding (id 0) and gives
zero vectors there; every later sequence layer reads the mask of real positions from its
``mask_source`` (set by the network when it is built: the nearest earlier layer that knows
the mask, passed along by layers that keep the positions, such as activations and dropout).
``Conv1D`` reads padding positions of its input as zeros, and makes its own mask: an output
position is real when the input position at the centre of its window is (so "same" padding
with stride 1 keeps the mask as it is; a "valid" kernel longer than a short text leaves that
text no real position). The pools and the recurrent layers leave padding out: a max or a
mean over real positions only, a state carried unchanged over padding. A row with no real
position pools to zeros.

Other columns
-------------
When the file has other input columns besides the text, the network's input row is the
``length`` token ids followed by those columns' features; ``Embedding(length=...)`` reads
the ids and keeps the rest aside, and the layer that reduces the sequence to a vector (a
global pool, or a recurrent layer returning its last state) appends them to its output. So
the dense layers that follow see the text's vector and the other columns side by side.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from bpcli.nn.init import initial_bias, make_initializer
from bpcli.nn.layers import LAYERS, Array, Layer, Shape

#: The token id of padding (and of nothing else).
PADDING = 0

Mask = NDArray[np.bool_]


def sequence_mask(layer: Layer) -> Mask | None:
    """The mask of real positions in ``layer``'s input, (batch, length), or None when every
    position is real (no layer before it knows of padding)."""
    source = layer.mask_source
    return source.output_mask() if source is not None else None


class Embedding(Layer):
    """Token ids to vectors: ``Y[n, t] = W[ids[n, t]]``, with ``W`` of shape
    ``(vocabulary, dimension)``.

    Row ``PADDING`` of ``W`` is never used: padding positions give zero vectors and no
    gradient. Backward adds ``dY[n, t]`` into row ``ids[n, t]`` of ``dW`` for every position
    (a token repeated in a batch gets the sum), touching only the rows the batch used.

    ``length`` is how many of the input's columns are token ids (all of them by default);
    the columns after them are other features, passed on to the layer that pools the
    sequence (see the module's docstring).
    """

    kind = "embedding"

    def __init__(self, vocabulary: int, dimension: int, length: int | None = None,
                 init: str = "uniform", init_options: dict[str, float] | None = None) -> None:
        super().__init__()
        for name, value in (("vocabulary", vocabulary), ("dimension", dimension)):
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise ValueError(f"embedding {name} must be a positive int, got {value!r}")
        if vocabulary < 2:
            raise ValueError("embedding vocabulary must hold padding and at least one token")
        if length is not None and (not isinstance(length, int | np.integer) or length < 1):
            raise ValueError(f"embedding length must be a positive int, got {length!r}")
        self.vocabulary = int(vocabulary)
        self.dimension = int(dimension)
        self.length = None if length is None else int(length)
        self.init = init
        self.init_options = dict(init_options if init_options is not None
                                 else ({"limit": 0.05} if init == "uniform" else {}))
        self._initializer = make_initializer(init, **self.init_options)
        self._ids: NDArray[np.intp] | None = None
        self._mask: Mask | None = None
        self._side: Array | None = None

    def _length(self, input_shape: Shape) -> int:
        return self.length if self.length is not None else int(input_shape[0])

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"embedding expects rows of token ids, got shape {input_shape}")
        length = self._length(input_shape)
        if length > input_shape[0]:
            raise ValueError(f"embedding length {length} is more than the {input_shape[0]} "
                             "input columns")
        return (length, self.dimension)

    def count_params(self, input_shape: Shape) -> int:
        return self.vocabulary * self.dimension

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        W = self._initializer((self.vocabulary, self.dimension), rng, dtype)
        W[PADDING] = 0
        self.params = {"W": W}
        self.grads = {"W": np.zeros_like(W)}
        return shape

    def takes_ids(self) -> bool:
        return True

    def next_mask_source(self) -> Layer | None:
        return self

    def output_mask(self) -> Mask | None:
        return self._mask

    def side_features(self) -> Array | None:
        return self._side

    def side_width(self) -> int:
        return int(self.input_shape[0]) - self._length(self.input_shape)

    def forward(self, X: Array, training: bool) -> Array:
        length = self._length(self.input_shape)
        ids_in = X[:, :length]
        ids = ids_in.astype(np.intp)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocabulary
                         or not (training or np.array_equal(ids, ids_in))):
            # (whole numbers: checked where ids come from outside, in inference; training
            # ids come from bp's own encoder)
            raise ValueError(f"token ids must be whole numbers in [0, {self.vocabulary})")
        self._ids = ids
        self._mask = ids != PADDING
        self._side = X[:, length:] if X.shape[1] > length else None
        Y = self.params["W"][ids]
        Y *= self._mask[..., None]
        return Y

    def backward(self, dY: Array) -> Array | None:
        assert self._ids is not None, "backward called before forward"
        dW = self.grads["W"]
        # All of dW, not only the rows the last batch touched: penalties and clipping
        # write into every row after backward.
        dW.fill(0)
        used = self._mask
        assert used is not None
        ids, rows = self._ids[used], dY[used]
        # the rows of each id summed at once: sorted by id, each run of one id reduced
        # (several times faster than np.add.at's one row at a time)
        if len(ids):  # (a batch of padding only touches nothing)
            order = np.argsort(ids, kind="stable")
            ids = ids[order]
            starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
            dW[ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
        return None  # token ids have no gradient

    def settings(self) -> dict[str, Any]:
        described: dict[str, Any] = {"vocabulary": self.vocabulary,
                                     "dimension": self.dimension, "init": self.init,
                                     "init_options": self.init_options}
        if self.length is not None:
            described["length"] = self.length
        return described


def _same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same": ceil(length / stride) outputs, the odd padding at the end."""
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


class Conv1D(Layer):
    """Convolution over positions: ``(batch, length, channels)`` to ``(batch, L', filters)``.

    ``Y[n, t, f] = b[f] + sum_{j, c} Xp[n, t * stride + j, c] * W[f, c, j]`` with ``Xp`` the
    input padded with zeros (``padding`` as ``conv2d`` takes it: ``"same"``, ``"valid"`` or an
    int on each end) and ``W`` of shape ``(filters, channels, kernel_size)``, as PyTorch's
    ``Conv1d`` stores it. With stride 1, the batch's padded sequences are laid end to end and
    each kernel offset is one matrix product of the rows shifted by it (no unrolled
    windows: on benchmarks/text_speed.py's shapes this is about twice as fast); with a
    larger stride, one product over every window of the batch (unrolled to rows of
    ``kernel_size * channels``), backward ``dW = cols.T @ dZ``, ``dcols = dZ @ Wm.T`` added
    back onto the input one kernel offset at a time. The loop
    form is ``bpcli.nn.reference.conv1d_forward``/``conv1d_backward``.
    """

    kind = "conv1d"

    def __init__(self, filters: int, kernel_size: int, stride: int = 1,
                 padding: str | int = "same", init: str = "glorot_uniform",
                 init_options: dict[str, float] | None = None) -> None:
        super().__init__()
        for name, value in (("filters", filters), ("kernel_size", kernel_size),
                            ("stride", stride)):
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise ValueError(f"conv1d {name} must be a positive int, got {value!r}")
        if not (padding in ("same", "valid") or (isinstance(padding, int | np.integer)
                                                 and not isinstance(padding, bool)
                                                 and padding >= 0)):
            raise ValueError(f"conv1d padding must be 'same', 'valid' or an int >= 0, "
                             f"got {padding!r}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.padding: str | int = padding if isinstance(padding, str) else int(padding)
        self.init = init
        self.init_options = dict(init_options or {})
        self._initializer = make_initializer(init, **self.init_options)
        self._cols: Array | None = None  # stride > 1: the unrolled windows
        self._Xp: Array | None = None  # the padded input of the last training pass
        self._mask: Mask | None = None
        self._input_mask: Mask | None = None
        self._pads = (0, 0)

    def _padding(self, length: int) -> tuple[int, int]:
        if self.padding == "same":
            return _same_padding(length, self.kernel_size, self.stride)
        if self.padding == "valid":
            return 0, 0
        assert isinstance(self.padding, int)
        return self.padding, self.padding

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(f"conv1d expects sequences (length, channels), got shape "
                             f"{input_shape}")
        length = input_shape[0]
        left, right = self._padding(length)
        out = (length + left + right - self.kernel_size) // self.stride + 1
        if out < 1:
            raise ValueError(f"conv1d kernel {self.kernel_size} is longer than the padded "
                             f"sequence ({length + left + right} positions)")
        return (out, self.filters)

    def count_params(self, input_shape: Shape) -> int:
        return self.filters * (int(input_shape[-1]) * self.kernel_size + 1)

    def workspace(self, input_shape: Shape) -> int:
        out = self.compute_output_shape(input_shape)[0]
        return out * self.kernel_size * int(input_shape[-1])

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: DTypeLike) -> Shape:
        shape = super().build(input_shape, rng, dtype)
        self._pads = self._padding(int(input_shape[0]))
        channels = int(input_shape[1])
        self.params = {
            "W": self._initializer((self.filters, channels, self.kernel_size), rng, dtype),
            "b": initial_bias(self.init, channels * self.kernel_size, self.filters, rng, dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return shape

    def next_mask_source(self) -> Layer | None:
        return self

    def output_mask(self) -> Mask | None:
        return self._mask

    def _windows(self, Xp: Array) -> Array:
        """Every window of the padded input as rows ``(batch * L', kernel * channels)``."""
        n, _, channels = Xp.shape
        out = self.output_shape[0]
        s = Xp.strides
        view = np.lib.stride_tricks.as_strided(
            Xp, shape=(n, out, self.kernel_size, channels),
            strides=(s[0], s[1] * self.stride, s[1], s[2]), writeable=False)
        return view.reshape(n * out, self.kernel_size * channels)

    def _matrix(self) -> Array:
        """``W`` as ``(kernel * channels, filters)``, rows in the windows' order."""
        return self.params["W"].transpose(2, 1, 0).reshape(-1, self.filters)

    def _window_mask(self, mask: Mask | None) -> Mask | None:
        """An output position is real when the input position at its window's centre is
        (left of centre for even kernels): with "same" padding and stride 1 the mask stays
        as it was, so a text's outputs do not depend on how much padding follows it."""
        if mask is None:
            return None
        left, right = self._pads
        padded = np.pad(mask, ((0, 0), (left, right))) if left or right else mask
        centres = np.arange(self.output_shape[0]) * self.stride + (self.kernel_size - 1) // 2
        return padded[:, centres]

    def _padded(self, X: Array, mask: Mask | None) -> Array:
        """The input with its padding rows, and padding positions as zeros: what earlier
        layers made of them (a bias, a sigmoid's 0.5) reads as the zeros beyond a text's
        end, so a text's outputs do not depend on how much padding follows it."""
        n, length, channels = X.shape
        left, right = self._pads
        Xp = np.zeros((n, length + left + right, channels), dtype=X.dtype)
        inner = Xp[:, left : left + length]
        if mask is None:
            inner[...] = X
        else:
            np.multiply(X, mask[..., None], out=inner)
        return Xp

    def forward(self, X: Array, training: bool) -> Array:
        mask = sequence_mask(self)
        Xp = self._padded(X, mask)
        self._input_mask = mask
        self._mask = self._window_mask(mask)
        if self.stride == 1:
            Z = self._shifted_products(Xp)
        else:
            cols = self._windows(Xp)
            Z = (cols @ self._matrix()).reshape(len(X), *self.output_shape)
            self._cols = cols if training else None
        Z += self.params["b"]
        self._Xp = Xp if training else None
        return Z

    def _kernels(self) -> Array:
        """``W`` as one ``(channels, filters)`` matrix per kernel offset."""
        return np.ascontiguousarray(self.params["W"].transpose(2, 1, 0))

    def _shifted_products(self, Xp: Array) -> Array:
        """Stride 1: the batch's padded sequences end to end, ``(n * Lp, channels)``, and
        for each kernel offset ``j`` one product of the rows shifted by ``j`` with
        ``W[:, :, j]``: no unrolled windows. Rows whose window runs into the next sequence
        are computed and dropped."""
        n, padded, channels = Xp.shape
        flat = Xp.reshape(n * padded, channels)
        rows = n * padded - self.kernel_size + 1
        Zf = np.zeros((n * padded, self.filters), dtype=Xp.dtype)
        for j, Wj in enumerate(self._kernels()):
            Zf[:rows] += flat[j : j + rows] @ Wj
        return Zf.reshape(n, padded, self.filters)[:, : self.output_shape[0]]

    def backward(self, dY: Array) -> Array | None:
        assert self._Xp is not None, "backward called before a training forward"
        n, out = len(dY), self.output_shape[0]
        channels = self.input_shape[1]
        np.add.reduce(dY.reshape(-1, self.filters), axis=0, out=self.grads["b"])
        if self.stride == 1:
            dXp = self._shifted_backward(dY)
        else:
            assert self._cols is not None
            dZ = dY.reshape(-1, self.filters)
            dWm = self._cols.T @ dZ  # (kernel * channels, filters)
            self.grads["W"][...] = dWm.reshape(self.kernel_size, channels, self.filters
                                               ).transpose(2, 1, 0)
            if not self.needs_input_grad:
                return None
            dcols = (dZ @ self._matrix().T).reshape(n, out, self.kernel_size, channels)
            dXp = np.zeros(self._Xp.shape, dtype=dY.dtype)
            end = self.stride * (out - 1) + 1
            for j in range(self.kernel_size):
                dXp[:, j : j + end : self.stride] += dcols[:, :, j]
        if dXp is None:
            return None
        left, length = self._pads[0], self.input_shape[0]
        dX = dXp[:, left : left + length]
        if self._input_mask is not None:
            dX *= self._input_mask[..., None]
        return dX

    def _shifted_backward(self, dY: Array) -> Array | None:
        """The backward pass of ``_shifted_products``: ``dW[:, :, j] = (rows shifted by
        j).T @ dZ`` and ``dX`` (rows shifted by j) ``+= dZ @ W[:, :, j].T``, with ``dZ``
        zero at the dropped rows."""
        assert self._Xp is not None
        n, padded, channels = self._Xp.shape
        flat = self._Xp.reshape(n * padded, channels)
        rows = n * padded - self.kernel_size + 1
        dZf = np.zeros((n, padded, self.filters), dtype=dY.dtype)
        dZf[:, : self.output_shape[0]] = dY
        dZ = dZf.reshape(n * padded, self.filters)[:rows]
        dW = self.grads["W"]
        kernels = self._kernels()
        for j in range(self.kernel_size):
            dW[:, :, j] = (flat[j : j + rows].T @ dZ).T
        if not self.needs_input_grad:
            return None
        dXf = np.zeros((n * padded, channels), dtype=dY.dtype)
        for j, Wj in enumerate(kernels):
            dXf[j : j + rows] += dZ @ Wj.T
        return dXf.reshape(n, padded, channels)

    def settings(self) -> dict[str, Any]:
        described: dict[str, Any] = {"filters": self.filters,
                                     "kernel_size": self.kernel_size, "stride": self.stride,
                                     "padding": self.padding, "init": self.init}
        if self.init_options:
            described["init_options"] = self.init_options
        return described


class _GlobalPool1D(Layer):
    """Shared by the global pools: ``(batch, length, channels)`` to ``(batch, channels)``,
    followed by the other columns' features when the embedding kept some aside."""

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(f"{self.kind} expects sequences (length, channels), got shape "
                             f"{input_shape}")
        return (int(input_shape[1]) + self.side_width(),)

    def _with_side(self, pooled: Array) -> Array:
        side = self.side_features()
        return pooled if side is None else np.concatenate([pooled, side], axis=1)

    def backward_pooled(self, dY: Array) -> Array:
        """The gradient of the pooled part of the output (the side features need none)."""
        return dY[:, : self.input_shape[1]]

    def settings(self) -> dict[str, Any]:
        return {}


class GlobalMaxPool1D(_GlobalPool1D):
    """The largest value of each channel over the real positions; backward sends each
    output's gradient to the position that held the maximum (the first, on ties)."""

    kind = "global_max_pool1d"

    def __init__(self) -> None:
        super().__init__()
        self._argmax: NDArray[np.intp] | None = None
        self._any: Mask | None = None

    def forward(self, X: Array, training: bool) -> Array:
        mask = sequence_mask(self)
        # positions last: argmax runs along contiguous rows, several times faster
        along = X.transpose(0, 2, 1).copy()  # (batch, channels, length); never X itself
        if mask is not None:
            along[~np.broadcast_to(mask[:, None, :], along.shape)] = -np.inf
        argmax = np.argmax(along, axis=2)  # (batch, channels)
        pooled = np.take_along_axis(along, argmax[..., None], axis=2)[..., 0]
        rows_with_tokens: Mask = (np.ones(len(X), dtype=bool) if mask is None
                                  else np.asarray(mask.any(axis=1)))
        pooled = np.where(rows_with_tokens[:, None], pooled, 0).astype(X.dtype, copy=False)
        self._argmax, self._any = argmax, rows_with_tokens
        return self._with_side(pooled)

    def backward(self, dY: Array) -> Array | None:
        assert self._argmax is not None and self._any is not None, "backward before forward"
        if not self.needs_input_grad:
            return None
        d = self.backward_pooled(dY) * self._any[:, None]
        n, length, channels = len(dY), *self.input_shape
        dX = np.zeros((n, length, channels), dtype=dY.dtype)
        np.put_along_axis(dX, self._argmax[:, None, :], d[:, None, :], axis=1)
        return dX


class GlobalAvgPool1D(_GlobalPool1D):
    """The mean of each channel over the real positions; backward spreads each output's
    gradient evenly over them."""

    kind = "global_avg_pool1d"

    def __init__(self) -> None:
        super().__init__()
        self._weights: Array | None = None

    def forward(self, X: Array, training: bool) -> Array:
        mask = sequence_mask(self)
        if mask is None:
            weights = np.full(X.shape[:2], 1.0 / X.shape[1], dtype=X.dtype)
        else:
            counts = np.maximum(mask.sum(axis=1, keepdims=True), 1)
            weights = (mask / counts).astype(X.dtype)
        self._weights = weights
        pooled = np.einsum("nlc,nl->nc", X, weights)
        return self._with_side(pooled)

    def backward(self, dY: Array) -> Array | None:
        assert self._weights is not None, "backward called before forward"
        if not self.needs_input_grad:
            return None
        return self._weights[..., None] * self.backward_pooled(dY)[:, None, :]


LAYERS.update({cls.kind: cls for cls in (Embedding, Conv1D, GlobalMaxPool1D,
                                         GlobalAvgPool1D)})
